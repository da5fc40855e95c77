//! Daily usage counters (`usage_daily`): one row per (project, event type, property,
//! subject, UTC day). Property `""` counts events; any other sums the numbers found at
//! `data.<property>` (a missing or non-numeric value adds 0). The event writer adds the
//! events it stores; a feature that starts reading a counter no other feature reads gets
//! it rebuilt from the stored events.

use sqlx::{Row, SqliteConnection};

use super::StoreError;

/// A counter: (event type, property), property `""` counting events.
pub type Meter<'a> = (&'a str, &'a str);

/// One subject's addition to a counter on one day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayUsage {
    /// The customer.
    pub subject: String,
    /// UTC day (days since the Unix epoch).
    pub day: i64,
    /// What the events added.
    pub value: f64,
}

/// The UTC day of `time_us` (floor division, also before 1970), as SQL.
const DAY_SQL: &str = "(time_us / 86400000000 - (time_us % 86400000000 < 0))";

/// The JSON path of a property: `$."tokens"`. Property names are feature keys
/// (`[A-Za-z0-9_.:-]`), so the quotes make one member name of them, dots included.
fn json_path(property: &str) -> String {
    format!("$.\"{property}\"")
}

/// What one event adds to a counter, as SQL; `?` is bound to the property's JSON path.
fn value_sql(property: &str) -> &'static str {
    if property.is_empty() {
        "1.0"
    } else {
        "iif(json_type(data, ?) IN ('integer', 'real'), json_extract(data, ?), 0.0)"
    }
}

/// A counter's total over days `[from, to)`.
pub async fn usage(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
    (event_type, property): Meter<'_>,
    (from, to): (i64, i64),
) -> Result<f64, StoreError> {
    let total: f64 = sqlx::query_scalar(
        "SELECT TOTAL(value) FROM usage_daily WHERE project_id = ? AND event_type = ? AND property = ?
         AND subject = ? AND day >= ? AND day < ?",
    )
    .bind(project_id)
    .bind(event_type)
    .bind(property)
    .bind(subject)
    .bind(from)
    .bind(to)
    .fetch_one(&mut *conn)
    .await?;
    Ok(total)
}

/// What the events of `event_type` stored after `after_seq` (this transaction's) add to
/// each of the counters of `properties`, by subject and day: one list per property, in
/// order. One pass over the new rows, however many properties. Runs on the event writer's
/// own handle (`db`, while it holds the connection's lock): the rows come back without a
/// round trip to sqlx's connection thread each.
pub fn added_since(
    db: &rusqlite::Connection,
    project_id: i64,
    event_type: &str,
    properties: &[String],
    after_seq: i64,
) -> rusqlite::Result<Vec<Vec<DayUsage>>> {
    let totals: Vec<String> = properties.iter().map(|p| format!("TOTAL({})", value_sql(p))).collect();
    // NOT INDEXED: walk the new rows by seq (the rowid). Through the (project, type, …)
    // index SQLite would visit every event of the type ever stored.
    let sql = format!(
        "SELECT subject, {DAY_SQL} AS day, {} FROM events NOT INDEXED
         WHERE seq > ? AND project_id = ? AND type = ? GROUP BY subject, day",
        totals.join(", ")
    );
    let mut params: Vec<rusqlite::types::Value> = Vec::new();
    for property in properties.iter().filter(|p| !p.is_empty()) {
        let path = json_path(property);
        params.push(path.clone().into());
        params.push(path.into());
    }
    params.extend([after_seq.into(), project_id.into(), event_type.to_owned().into()]);
    let mut statement = db.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(params))?;
    let mut out: Vec<Vec<DayUsage>> = vec![Vec::new(); properties.len()];
    while let Some(row) = rows.next()? {
        let subject: String = row.get(0)?;
        let day: i64 = row.get(1)?;
        for (i, list) in out.iter_mut().enumerate() {
            list.push(DayUsage {
                subject: subject.clone(),
                day,
                value: row.get(2 + i)?,
            });
        }
    }
    Ok(out)
}

/// Each subject's total of a counter over days `[from, to)`, for many subjects in one
/// statement; subjects without usage are left out.
pub async fn usage_of_subjects(
    conn: &mut SqliteConnection,
    project_id: i64,
    (event_type, property): Meter<'_>,
    subjects: &[&str],
    (from, to): (i64, i64),
) -> Result<Vec<(String, f64)>, StoreError> {
    let list = serde_json::to_string(subjects).map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))?;
    let rows = sqlx::query(
        "SELECT subject, TOTAL(value) FROM usage_daily WHERE project_id = ? AND event_type = ? AND property = ?
         AND subject IN (SELECT value FROM json_each(?)) AND day >= ? AND day < ? GROUP BY subject",
    )
    .bind(project_id)
    .bind(event_type)
    .bind(property)
    .bind(list)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// Adds `rows` to a counter: one upsert per row through a cached statement on the event
/// writer's own handle (see [`added_since`]).
pub fn add(
    db: &rusqlite::Connection,
    project_id: i64,
    (event_type, property): Meter<'_>,
    rows: &[DayUsage],
) -> rusqlite::Result<()> {
    let mut upsert = db.prepare_cached(
        "INSERT INTO usage_daily (project_id, event_type, property, subject, day, value) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (project_id, event_type, property, subject, day) DO UPDATE SET value = value + excluded.value",
    )?;
    for row in rows {
        upsert.execute(rusqlite::params![
            project_id,
            event_type,
            property,
            row.subject,
            row.day,
            row.value
        ])?;
    }
    Ok(())
}

/// Rebuilds a counter from every stored event of its type (a feature started reading it).
pub async fn rebuild(conn: &mut SqliteConnection, project_id: i64, meter: Meter<'_>) -> Result<(), StoreError> {
    drop_counter(conn, project_id, meter).await?;
    let (event_type, property) = meter;
    let sql = format!(
        "INSERT INTO usage_daily (project_id, event_type, property, subject, day, value)
         SELECT project_id, type, ?, subject, {DAY_SQL} AS day, TOTAL({}) FROM events
         WHERE project_id = ? AND type = ? GROUP BY subject, day",
        value_sql(property)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(property);
    if !property.is_empty() {
        let path = json_path(property);
        query = query.bind(path.clone()).bind(path);
    }
    query.bind(project_id).bind(event_type).execute(&mut *conn).await?;
    Ok(())
}

/// Deletes a counter (no feature reads it any more).
pub async fn drop_counter(
    conn: &mut SqliteConnection,
    project_id: i64,
    (event_type, property): Meter<'_>,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM usage_daily WHERE project_id = ? AND event_type = ? AND property = ?")
        .bind(project_id)
        .bind(event_type)
        .bind(property)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The highest event seq stored so far (0 when none): events stored after this point in a
/// transaction are exactly those with a greater seq. On the event writer's own handle (see
/// [`added_since`]).
pub fn last_event_seq(db: &rusqlite::Connection) -> rusqlite::Result<i64> {
    db.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?
        .query_row([], |row| row.get(0))
}
