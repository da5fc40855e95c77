//! Runs the shared conformance vectors (`tests/vectors/*.json`) through the core's public API.
#![allow(clippy::unwrap_used, missing_docs)]

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use meterline_core::{
    Event,
    retry::{Outcome, RetryDecision, RetryPolicy},
    schema::SchemaRegistry,
};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn registry(doc: &Value, strict: bool) -> SchemaRegistry {
    let mut r = SchemaRegistry::new(strict);
    for (t, s) in doc["schemas"].as_object().unwrap() {
        r.insert(t, s).unwrap();
    }
    r
}

/// Compares a result with a case's `expect` ({"ok": true} or {"code", "path"}).
fn check(name: &str, expect: &Value, got: Result<(), (String, String)>) {
    match (expect["ok"].as_bool().unwrap(), got) {
        (true, Ok(())) => {}
        (false, Err((code, path))) => {
            assert_eq!(code, expect["code"].as_str().unwrap(), "{name}: code");
            assert_eq!(path, expect["path"].as_str().unwrap(), "{name}: path");
        }
        (want, got) => panic!("{name}: expected ok={want}, got {got:?}"),
    }
}

#[test]
fn wire_events() {
    let doc = vector("events.json");
    let reg = registry(&doc, false);
    for case in doc["wire"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let got = Event::from_value(case["event"].clone()).and_then(|e| {
            let data = Value::Object(e.data.unwrap_or_default());
            reg.validate(&e.event_type, &data)
        });
        check(name, &case["expect"], got.map_err(|e| (e.code.to_owned(), e.path)));
    }
}

#[cfg(feature = "native")]
mod track {
    use meterline_core::{Client, Config, Error};
    use serde_json::value::RawValue;

    use super::*;

    fn client(doc: &Value, strict: bool) -> Client {
        let mut config = Config::new("ml_sk_vectors_0123456789abcdef0123", "http://127.0.0.1:9");
        config.fetch_schemas = false;
        config.strict_types = strict;
        config.flush_interval = Duration::from_secs(3600);
        config.schemas = doc["schemas"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Client::new(config).unwrap()
    }

    fn run(doc: &Value, cases: &str, strict: bool) {
        let client = client(doc, strict);
        for case in doc[cases].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let input = &case["input"];
            let (event_type, subject) = (input["type"].as_str().unwrap(), input["subject"].as_str().unwrap());
            let (id, time) = (
                input["id"].as_str().map(str::to_owned),
                input["time"].as_str().map(str::to_owned),
            );
            let as_value = client.track(event_type, subject, input["data"].clone(), id.clone(), time.clone());
            // The JSON-text entry point the Node binding uses must answer the same.
            let text = RawValue::from_string(input["data"].to_string()).unwrap();
            let as_text = client.track_json(event_type, subject, &text, id, time);
            for got in [as_value, as_text] {
                let got = got.map(|_| ()).map_err(|e| match e {
                    Error::Validation(v) => (v.code.to_owned(), v.path),
                    other => panic!("{name}: not a validation error: {other}"),
                });
                check(name, &case["expect"], got);
            }
        }
        // Nothing can be delivered to port 9; give the queue up quickly.
        let _ = client.shutdown(Duration::from_millis(10));
    }

    #[test]
    fn track_json_names_what_data_is_when_not_an_object() {
        let client = client(&vector("events.json"), false);
        for (text, kind) in [
            ("[1,2]", "an array"),
            ("\"text\"", "a string"),
            ("12.5", "a number"),
            ("-1", "a number"),
            ("true", "a boolean"),
            ("false", "a boolean"),
            ("null", "null"),
        ] {
            let data = RawValue::from_string(text.into()).unwrap();
            match client.track_json("api.call", "c1", &data, None, None) {
                Err(Error::Validation(v)) => {
                    assert_eq!((v.code, v.path.as_str()), ("invalid_event", "/data"), "{text}");
                    assert!(v.message.ends_with(&format!("got {kind}")), "{text}: {}", v.message);
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // Surrounding whitespace is not part of the object; the event is accepted.
        let data = RawValue::from_string(" {\"n\": 1} ".into()).unwrap();
        let got = client.track_json("no.schema.here", "c1", &data, None, None);
        assert!(got.is_ok(), "{got:?}");
        let _ = client.shutdown(Duration::from_millis(10));
    }

    #[test]
    fn track_events() {
        let doc = vector("events.json");
        run(&doc, "track", false);
        run(&doc, "strict_track", true);
    }
}

#[test]
fn retry_decisions() {
    let doc = vector("retry.json");
    let p = &doc["policy"];
    let ms = |v: &Value| Duration::from_millis(v.as_u64().unwrap());
    let policy = RetryPolicy {
        initial_delay: ms(&p["initial_delay_ms"]),
        max_delay: ms(&p["max_delay_ms"]),
        max_retry_after: ms(&p["max_retry_after_ms"]),
        max_retries: None,
    };
    let now: SystemTime = httpdate::parse_http_date(doc["now"].as_str().unwrap()).unwrap();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let outcome = match &case["outcome"] {
            Value::String(s) if s == "network" => Outcome::Network,
            Value::String(s) if s == "timeout" => Outcome::Timeout,
            v => Outcome::Status {
                status: v.as_u64().unwrap() as u16,
                retry_after: case["retry_after"].as_str(),
            },
        };
        let retry = case["retry"].as_u64().unwrap() as u32;
        let expect = &case["expect"];
        // The two extremes of the jitter draw bound every possible delay.
        for jitter in [0.0, 0.999_999] {
            let decision = policy.decide(outcome, retry, jitter, now);
            match decision {
                RetryDecision::Retry { delay } => {
                    assert!(expect["retry"].as_bool().unwrap(), "{name}: retried");
                    let (lo, hi) = (ms(&expect["min_delay_ms"]), ms(&expect["max_delay_ms"]));
                    assert!(
                        delay >= lo && delay <= hi,
                        "{name}: delay {delay:?} not in [{lo:?}, {hi:?}]"
                    );
                }
                RetryDecision::Done => assert!(expect["done"].as_bool().unwrap(), "{name}: done"),
                RetryDecision::GiveUp => {
                    assert!(
                        !expect["retry"].as_bool().unwrap() && !expect["done"].as_bool().unwrap(),
                        "{name}: gave up"
                    )
                }
            }
        }
    }
}

/// `errors.json`: the one list of classes, and the class, status and retryability of every
/// kind of core error.
#[test]
fn error_classes() {
    use meterline_core::{Error, ValidationError, error::ErrorClass, wire::Rejection};

    let doc = vector("errors.json");
    let listed: Vec<(&str, Option<&str>, &str)> = doc["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap();
            (name, c["parent"].as_str(), c["default_code"].as_str().unwrap())
        })
        .collect();
    let core: Vec<(&str, Option<&str>, &str)> = ErrorClass::ALL
        .iter()
        .map(|c| (c.name(), c.parent().map(ErrorClass::name), c.default_code()))
        .collect();
    assert_eq!(listed, core, "errors.json's classes are ErrorClass::ALL");

    for case in doc["cases"].as_array().unwrap() {
        let code = case["code"].as_str().unwrap().to_owned();
        let message = "from the vector".to_owned();
        let status = case["status"].as_u64().map(|s| u16::try_from(s).unwrap());
        let err = match case["source"].as_str().unwrap() {
            "validation" => {
                let mut v = ValidationError::invalid_event("/x", message);
                v.code = Box::leak(code.clone().into_boxed_str());
                Error::Validation(v)
            }
            "rejected" => Error::Rejected(
                serde_json::from_value::<Rejection>(serde_json::json!({
                    "index": 0, "id": "e1", "code": code, "path": "/data", "message": message
                }))
                .unwrap(),
            ),
            "response" => Error::from_response(status.unwrap(), code.clone(), message),
            "codec" => Error::Codec {
                code: Box::leak(code.clone().into_boxed_str()),
                message,
            },
            "stream" => Error::Stream {
                code: code.clone(),
                message,
            },
            "config" => Error::config("flush_at", message),
            "timeout" => Error::Timeout(Duration::from_secs(1)),
            "queue_full" => Error::QueueFull {
                capacity: 1,
                policy: "drop_newest",
            },
            "closed" => Error::Closed,
            "network" => Error::Network(message),
            "spool" => Error::Spool(message),
            "internal" => Error::Internal(message),
            other => panic!("errors.json: unknown source {other:?}"),
        };
        let name = format!("{} {code}", case["source"]);
        assert_eq!(err.code(), code, "{name}: code");
        assert_eq!(err.class().name(), case["class"].as_str().unwrap(), "{name}: class");
        assert_eq!(err.status(), status, "{name}: status");
        assert_eq!(
            err.retryable(),
            case["retryable"].as_bool().unwrap(),
            "{name}: retryable"
        );
    }
}

/// `settings` over `defaults`, one level deep (`retry` is replaced whole).
fn merged(defaults: &Value, settings: &Value) -> Value {
    let mut out = defaults.clone();
    for (k, v) in settings.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

#[test]
fn outbox_sequences() {
    use meterline_core::outbox::conformance::VectorOutbox;
    let doc = vector("outbox.json");
    for scenario in doc["scenarios"].as_array().unwrap() {
        let name = scenario["name"].as_str().unwrap();
        let mut outbox = VectorOutbox::new(&merged(&doc["defaults"], &scenario["settings"]))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (i, step) in scenario["steps"].as_array().unwrap().iter().enumerate() {
            let got = outbox.step(step).unwrap_or_else(|e| panic!("{name}, step {i}: {e}"));
            for (key, want) in step["expect"].as_object().into_iter().flatten() {
                assert_eq!(&got[key], want, "{name}, step {i} ({}): `{key}` in {got}", step["op"]);
            }
        }
    }
}
