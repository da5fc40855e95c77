//! The step driver of the outbox vectors (`tests/vectors/outbox.json`): one [`Outbox`]
//! driven by JSON steps with the vectors' own clock, answering JSON. Events are made up of
//! `size` bytes each; the wall clock that resolves a `Retry-After` date is 2027-01-15
//! 08:00:00 UTC (1,800,000,000 s after the epoch) plus the step's `now`.
//!
//! Hidden from the docs: not part of the SDK's API.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Answer, Dispatch, Outbox, OutboxSettings, Pushed, Settled};
use crate::{
    config::OverflowPolicy,
    queue::BatchRules,
    retry::{Outcome, RetryPolicy},
};

/// An [`Outbox`] under test.
#[derive(Debug)]
#[doc(hidden)]
pub struct VectorOutbox {
    outbox: Outbox,
}

impl VectorOutbox {
    /// An outbox with a scenario's `settings` (`flush_at`, `max_batch_bytes`,
    /// `flush_interval_ms`, `max_queue_size`, `overflow`, `max_in_flight`,
    /// `keep_undelivered`, `retry`: {`initial_delay_ms`, `max_delay_ms`,
    /// `max_retry_after_ms`, `max_retries`}), at time 0.
    pub fn new(settings: &Value) -> Result<Self, String> {
        let n = |key: &str| {
            settings[key]
                .as_u64()
                .ok_or_else(|| format!("settings: `{key}` must be a whole number"))
        };
        let r = &settings["retry"];
        let ms = |key: &str| {
            r[key]
                .as_u64()
                .map(Duration::from_millis)
                .ok_or_else(|| format!("settings.retry: `{key}` must be a whole number"))
        };
        let overflow: OverflowPolicy = settings["overflow"]
            .as_str()
            .ok_or("settings: `overflow` must be a string")?
            .parse()
            .map_err(|e| format!("settings: {e}"))?;
        let settings = OutboxSettings {
            rules: BatchRules {
                flush_at: n("flush_at")? as usize,
                max_batch_bytes: n("max_batch_bytes")? as usize,
                flush_interval: Duration::from_millis(n("flush_interval_ms")?),
            },
            capacity: n("max_queue_size")? as usize,
            overflow,
            max_in_flight: n("max_in_flight")? as usize,
            retry: RetryPolicy {
                initial_delay: ms("initial_delay_ms")?,
                max_delay: ms("max_delay_ms")?,
                max_retry_after: ms("max_retry_after_ms")?,
                max_retries: r["max_retries"].as_u64().map(|m| m as u32),
            },
            keep_undelivered: settings["keep_undelivered"].as_bool().unwrap_or(false),
        };
        Ok(VectorOutbox {
            outbox: Outbox::new(settings, 0),
        })
    }

    /// Runs one step (`{"op": …, …}`) and returns what it gave, for the step's `expect`.
    pub fn step(&mut self, step: &Value) -> Result<Value, String> {
        let n = |key: &str| {
            step[key]
                .as_u64()
                .ok_or_else(|| format!("`{key}` must be a whole number"))
        };
        let outbox = &mut self.outbox;
        let op = step["op"].as_str().ok_or("`op` must be a string")?;
        Ok(match op {
            "track" => {
                let (now, size) = (n("now")?, step["size"].as_u64().unwrap_or(10) as usize);
                let (mut queued, mut evicted, mut full) = (Vec::new(), Vec::new(), 0);
                let (mut refused, mut raised, mut reports, mut warnings, mut wake) = (0, 0, 0, 0, false);
                for _ in 0..step["events"].as_u64().unwrap_or(1) {
                    match outbox.push(vec![b'x'; size], || now) {
                        Pushed::Queued { seq, wake: w } => {
                            queued.push(seq);
                            wake |= w;
                        }
                        Pushed::Evicted { seq, evicted_seq } => {
                            queued.push(seq);
                            evicted.push(evicted_seq);
                        }
                        Pushed::Full(_) => full += 1,
                        Pushed::Dropped(r) => {
                            refused += 1;
                            raised += u64::from(r.raise);
                            reports += u64::from(r.report);
                            warnings += u64::from(r.warn.is_some());
                        }
                    }
                }
                json!({"queued": queued, "evicted": evicted, "full": full, "refused": refused,
                    "raised": raised, "reports": reports, "warnings": warnings, "wake": wake})
            }
            "refuse" => {
                let r = outbox.refuse(n("now")?);
                json!({"raise": r.raise, "report": r.report, "warn": r.warn.is_some()})
            }
            "poll" => {
                let (mut send, mut resend) = (Vec::new(), Vec::new());
                for dispatch in outbox.poll(n("now")?) {
                    match dispatch {
                        Dispatch::Send { first_seq, events } => {
                            send.push(json!({"first_seq": first_seq, "count": events.len()}))
                        }
                        Dispatch::Resend { first_seq, retry } => {
                            resend.push(json!({"first_seq": first_seq, "retry": retry}))
                        }
                    }
                }
                json!({"send": send, "resend": resend})
            }
            "answer" => {
                let now = n("now")?;
                let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(now);
                let jitter = step["jitter"].as_f64().unwrap_or(0.5);
                let answer = parse_answer(&step["answer"])?;
                match outbox.answer(n("first_seq")?, answer, now, wall, jitter) {
                    None => json!({"settled": null}),
                    Some(Settled::Delivered { count }) => json!({"settled": "delivered", "count": count}),
                    Some(Settled::Retry { retry, delay }) => {
                        json!({"settled": "retry", "retry": retry, "delay_ms": delay.as_millis() as u64})
                    }
                    Some(Settled::GaveUp { count, kept, permanent }) => {
                        json!({"settled": "gave_up", "count": count, "kept": kept, "permanent": permanent})
                    }
                }
            }
            "flush" => json!({"target": outbox.request_flush(n("now")?)}),
            "drain" => json!({"target": outbox.drain(n("now")?)}),
            "abort" => json!({"given_up": outbox.abort()}),
            "next_wake" => json!({"at": outbox.next_wake(n("now")?)}),
            "stats" => {
                let s = outbox.stats();
                json!({"enqueued": s.enqueued, "sent": s.sent, "duplicates": s.duplicates,
                    "rejected": s.rejected, "dropped": s.dropped, "retried": s.retried,
                    "batches": s.batches, "queue_length": s.queue_length,
                    "low_watermark": outbox.low_watermark(), "in_outage": outbox.in_outage(),
                    "finished": outbox.finished()})
            }
            other => return Err(format!("unknown op {other:?}")),
        })
    }
}

/// `{"accepted", "duplicates", "rejected"}`, `"delivered"`, `"unclear"`, `"network"`,
/// `"timeout"`, `{"status", "retry_after"}`, `"unsendable"` or `"aborted"`.
fn parse_answer(v: &Value) -> Result<Answer<'_>, String> {
    let count = |key: &str| v[key].as_u64().unwrap_or(0);
    Ok(match v {
        Value::String(s) => match s.as_str() {
            "delivered" => Answer::Delivered,
            "network" => Answer::Failed(Outcome::Network),
            "unclear" => Answer::Unclear,
            "timeout" => Answer::Failed(Outcome::Timeout),
            "unsendable" => Answer::Unsendable,
            "aborted" => Answer::Aborted,
            other => return Err(format!("unknown answer {other:?}")),
        },
        Value::Object(o) if o.contains_key("status") => Answer::Failed(Outcome::Status {
            status: v["status"].as_u64().ok_or("`status` must be a number")? as u16,
            retry_after: v["retry_after"].as_str(),
        }),
        Value::Object(_) => Answer::Counted {
            accepted: count("accepted"),
            duplicates: count("duplicates"),
            rejected: count("rejected"),
        },
        other => return Err(format!("bad `answer`: {other}")),
    })
}
