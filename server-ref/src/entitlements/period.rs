//! Usage periods, all in UTC and all starting at midnight, so a period is a whole number of
//! the daily usage counters: day; week (Monday 00:00); month (calendar); billing (monthly
//! from the customer's anchor day, clamped to the last day of shorter months).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use meterline_core::entitlement::Period;

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// The UTC day (days since the epoch) of a time in µs since the epoch.
pub fn day_of_us(time_us: i64) -> i64 {
    time_us.div_euclid(DAY_US)
}

/// The UTC day (days since the epoch) of a time.
pub fn day_of(t: DateTime<Utc>) -> i64 {
    day_of_us(t.timestamp_micros())
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

/// The billing period start in (year, month) for an anchor day (clamped to the month's end).
fn billing_start(year: i32, month: u32, anchor_day: u32) -> NaiveDate {
    let day = anchor_day.min(days_in_month(year, month));
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default()
}

fn add_months(year: i32, month: u32, delta: i32) -> (i32, u32) {
    let index = year * 12 + month as i32 - 1 + delta;
    (index.div_euclid(12), index.rem_euclid(12) as u32 + 1)
}

/// `[start, end)` of the period containing `now`. `anchor` only matters for `billing`.
pub fn bounds(period: Period, anchor: DateTime<Utc>, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.date_naive();
    match period {
        Period::Day => (midnight(today), midnight(today) + Duration::days(1)),
        Period::Week => {
            let start = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            (midnight(start), midnight(start) + Duration::days(7))
        }
        Period::Month => {
            let start = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or_default();
            let (ny, nm) = add_months(today.year(), today.month(), 1);
            let end = NaiveDate::from_ymd_opt(ny, nm, 1).unwrap_or_default();
            (midnight(start), midnight(end))
        }
        Period::Billing => {
            let anchor_day = anchor.day();
            let (mut y, mut m) = (today.year(), today.month());
            if billing_start(y, m, anchor_day) > today {
                (y, m) = add_months(y, m, -1);
            }
            let (ny, nm) = add_months(y, m, 1);
            (
                midnight(billing_start(y, m, anchor_day)),
                midnight(billing_start(ny, nm, anchor_day)),
            )
        }
    }
}

/// `[start, end)` of the period before the one starting at `start`.
pub fn previous(period: Period, anchor: DateTime<Utc>, start: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    bounds(period, anchor, start - Duration::seconds(1))
}

/// RFC 3339 text of a period bound.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn b(p: Period, anchor: &str, now: &str) -> (String, String) {
        let (s, e) = bounds(p, t(anchor), t(now));
        (rfc3339(s), rfc3339(e))
    }

    #[test]
    fn calendar_periods() {
        let a = "2020-01-01T00:00:00Z";
        assert_eq!(
            b(Period::Day, a, "2026-03-01T23:59:59Z"),
            ("2026-03-01T00:00:00Z".into(), "2026-03-02T00:00:00Z".into())
        );
        // 2026-11-29 is a Sunday; the week starts Monday 2026-11-23.
        assert_eq!(
            b(Period::Week, a, "2026-11-29T23:00:00Z"),
            ("2026-11-23T00:00:00Z".into(), "2026-11-30T00:00:00Z".into())
        );
        assert_eq!(
            b(Period::Week, a, "2026-11-30T00:00:00Z"),
            ("2026-11-30T00:00:00Z".into(), "2026-12-07T00:00:00Z".into())
        );
        assert_eq!(
            b(Period::Month, a, "2026-12-31T23:59:59Z"),
            ("2026-12-01T00:00:00Z".into(), "2027-01-01T00:00:00Z".into())
        );
        assert_eq!(
            b(Period::Month, a, "2026-02-01T00:00:00Z"),
            ("2026-02-01T00:00:00Z".into(), "2026-03-01T00:00:00Z".into())
        );
    }

    #[test]
    fn billing_periods_follow_the_anchor_and_clamp() {
        let a = "2026-01-31T10:00:00Z";
        assert_eq!(
            b(Period::Billing, a, "2026-02-15T00:00:00Z"),
            ("2026-01-31T00:00:00Z".into(), "2026-02-28T00:00:00Z".into())
        );
        assert_eq!(
            b(Period::Billing, a, "2026-02-28T00:00:00Z"),
            ("2026-02-28T00:00:00Z".into(), "2026-03-31T00:00:00Z".into())
        );
        assert_eq!(
            b(Period::Billing, a, "2028-02-29T12:00:00Z"),
            ("2028-02-29T00:00:00Z".into(), "2028-03-31T00:00:00Z".into())
        );
        let a = "2026-01-15T00:00:00Z";
        assert_eq!(
            b(Period::Billing, a, "2026-01-14T23:59:59Z"),
            ("2025-12-15T00:00:00Z".into(), "2026-01-15T00:00:00Z".into())
        );
        assert_eq!(
            b(Period::Billing, a, "2026-12-20T00:00:00Z"),
            ("2026-12-15T00:00:00Z".into(), "2027-01-15T00:00:00Z".into())
        );
    }

    #[test]
    fn leap_years_month_ends_and_year_boundaries() {
        let a = "2020-01-01T00:00:00Z";
        // 2026-12-31 is a Thursday: its week runs into 2027.
        assert_eq!(
            b(Period::Week, a, "2026-12-31T12:00:00Z"),
            ("2026-12-28T00:00:00Z".into(), "2027-01-04T00:00:00Z".into())
        );
        assert_eq!(
            b(Period::Week, a, "2027-01-03T23:59:59Z"),
            ("2026-12-28T00:00:00Z".into(), "2027-01-04T00:00:00Z".into())
        );
        assert_eq!(
            b(Period::Month, a, "2028-02-29T23:59:59Z"),
            ("2028-02-01T00:00:00Z".into(), "2028-03-01T00:00:00Z".into())
        );
        assert_eq!(
            b(Period::Day, a, "2028-02-29T00:00:00Z"),
            ("2028-02-29T00:00:00Z".into(), "2028-03-01T00:00:00Z".into())
        );
        // Anchored on the 29th: February of a common year ends the period on the 28th.
        let a = "2024-02-29T08:00:00Z";
        assert_eq!(
            b(Period::Billing, a, "2027-02-28T10:00:00Z"),
            ("2027-02-28T00:00:00Z".into(), "2027-03-29T00:00:00Z".into())
        );
        assert_eq!(
            b(Period::Billing, a, "2027-02-27T10:00:00Z"),
            ("2027-01-29T00:00:00Z".into(), "2027-02-28T00:00:00Z".into())
        );
        // Anchored on the 31st: 30-day months end on the 30th; December wraps the year.
        let a = "2026-01-31T00:00:00Z";
        assert_eq!(
            b(Period::Billing, a, "2026-04-30T00:00:00Z"),
            ("2026-04-30T00:00:00Z".into(), "2026-05-31T00:00:00Z".into())
        );
        assert_eq!(
            b(Period::Billing, a, "2027-01-01T00:00:00Z"),
            ("2026-12-31T00:00:00Z".into(), "2027-01-31T00:00:00Z".into())
        );
    }

    #[test]
    fn previous_periods() {
        let a = t("2026-01-31T00:00:00Z");
        let (s, _) = bounds(Period::Billing, a, t("2026-03-05T00:00:00Z"));
        let (ps, pe) = previous(Period::Billing, a, s);
        assert_eq!(
            (rfc3339(ps), rfc3339(pe)),
            ("2026-01-31T00:00:00Z".into(), "2026-02-28T00:00:00Z".into())
        );
        let (s, _) = bounds(Period::Month, a, t("2026-01-05T00:00:00Z"));
        assert_eq!(rfc3339(previous(Period::Month, a, s).0), "2025-12-01T00:00:00Z");
    }

    #[test]
    fn days_floor_before_the_epoch() {
        assert_eq!(day_of_us(0), 0);
        assert_eq!(day_of_us(-1), -1);
        assert_eq!(day_of_us(DAY_US), 1);
    }
}
