//! The option table against `Config::new`, the naming schemes and `tests/vectors/options.json`.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use super::*;

fn vector() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/options.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_vector_file_writes_the_table() {
    let doc = vector();
    let table = table_json();
    assert_eq!(
        doc["table"],
        table,
        "tests/vectors/options.json's `table` differs from core/src/options.rs; it should read:\n{}",
        serde_json::to_string_pretty(&table).unwrap()
    );
}

#[test]
fn names_follow_each_scheme() {
    for o in OPTIONS {
        let camel: String = o
            .snake
            .split('_')
            .enumerate()
            .map(|(i, part)| {
                let mut chars = part.chars();
                match (i, chars.next()) {
                    (0, _) => part.to_owned(),
                    (_, Some(first)) => first.to_uppercase().chain(chars).collect(),
                    (_, None) => String::new(),
                }
            })
            .collect();
        assert_eq!(o.camel, camel, "{}", o.snake);
        let js = match o.kind {
            Kind::Duration { .. } => format!("{camel}Ms"),
            _ => camel,
        };
        assert_eq!(o.js, js, "{}", o.snake);
    }
}

/// Applying every documented default to a fresh `Config` changes nothing: `Config::new` and
/// the table agree.
#[test]
fn the_documented_defaults_are_config_new() {
    let fresh = Config::new("k", "e");
    for o in OPTIONS {
        let value = match o.default {
            DefaultValue::Bool(b) => Read::Bool(b),
            DefaultValue::Count(n) => Read::Count(usize::try_from(n).unwrap()),
            DefaultValue::Duration(d) => Read::Duration(d),
            DefaultValue::Text(t) => Read::Text(t.to_owned()),
            _ => continue,
        };
        let mut config = fresh.clone();
        (o.set)(&mut config, value).unwrap();
        assert_eq!(format!("{config:?}"), format!("{fresh:?}"), "{}", o.snake);
    }
}

#[test]
fn the_overflow_choices_are_the_policies() {
    let row = OptionSpec::find("overflow", Spelling::Snake).unwrap();
    assert_eq!(row.kind, Kind::Choice(&OverflowPolicy::NAMES));
    for policy in OverflowPolicy::ALL {
        assert_eq!(policy.as_str().parse::<OverflowPolicy>().unwrap(), policy);
    }
}

/// A neutral value of the vector file as `spelling`'s host gives it: durations in seconds
/// (a float) or milliseconds (a whole number).
fn host_value(value: &Value, spec: Option<&OptionSpec>, spelling: Spelling) -> HostValue {
    let duration = spec.is_some_and(|s| matches!(s.kind, Kind::Duration { .. }));
    match value {
        Value::Null => HostValue::Null,
        Value::Bool(b) => HostValue::Bool(*b),
        Value::Number(n) if duration && spelling != Spelling::CamelMs => HostValue::Float(n.as_f64().unwrap() / 1000.0),
        Value::Number(n) => n.as_i64().map_or(HostValue::Float(n.as_f64().unwrap()), HostValue::Int),
        Value::String(s) => HostValue::Str(s.clone()),
        other => HostValue::Json(other.clone()),
    }
}

/// What a `Config` holds for an option, neutrally (durations in milliseconds).
fn held(config: &Config, snake: &str) -> Value {
    let ms = |d: Duration| Value::from(u64::try_from(d.as_millis()).unwrap());
    match snake {
        "endpoint" => config.endpoint.clone().into(),
        "source" => config.source.clone().into(),
        "flush_at" => config.flush_at.into(),
        "max_batch_bytes" => config.max_batch_bytes.into(),
        "flush_interval" => ms(config.flush_interval),
        "max_queue_size" => config.max_queue_size.into(),
        "overflow" => config.overflow.as_str().into(),
        "block_timeout" => ms(config.block_timeout),
        "compression" => config.compression.as_str().into(),
        "request_timeout" => ms(config.request_timeout),
        "strict_types" => config.strict_types.into(),
        "fetch_schemas" => config.fetch_schemas.into(),
        "schema_refresh_interval" => ms(config.schema_refresh_interval),
        "max_in_flight" => config.max_in_flight.into(),
        "cache_size" => config.cache_size.into(),
        "entitlement_timeout" => ms(config.entitlement_timeout),
        "max_stale" => ms(config.max_stale),
        "max_ttl" => config.max_ttl.map_or(Value::Null, ms),
        "stream" => config.stream.into(),
        "stream_endpoint" => config.stream_endpoint.clone().into(),
        "customer_token" => config.customer_token.clone().into(),
        "spool_fsync" => config.spool_fsync.as_str().into(),
        "persist" => config.persist.into(),
        other => panic!("options.json: no way to read {other:?} back"),
    }
}

fn run(case: &Value, spelling: Spelling) -> Result<Config, Error> {
    let given = case["options"].as_object().unwrap().iter().map(|(snake, value)| {
        let spec = OptionSpec::find(snake, Spelling::Snake);
        let name = spec.map_or(snake.as_str(), |s| s.name(spelling)).to_owned();
        (name, host_value(value, spec, spelling))
    });
    let env: HashMap<String, Option<String>> = case["env"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned)))
                .collect()
        })
        .unwrap_or_default();
    build(given, spelling, &[], false, &|name| env.get(name).cloned().flatten())
}

#[test]
fn the_vectors_pass_in_every_spelling() {
    let doc = vector();
    for spelling in [Spelling::Snake, Spelling::Camel, Spelling::CamelMs] {
        for case in doc["valid"].as_array().unwrap() {
            let name = format!("{spelling:?}: {}", case["name"]);
            let config = run(case, spelling).unwrap_or_else(|e| panic!("{name}: {e}"));
            for (snake, want) in case["expect"]["config"].as_object().into_iter().flatten() {
                assert_eq!(&held(&config, snake), want, "{name}: {snake}");
            }
        }
        for case in doc["invalid"].as_array().unwrap() {
            let name = format!("{spelling:?}: {}", case["name"]);
            let expect = &case["expect"];
            let err = run(case, spelling).err().unwrap_or_else(|| panic!("{name}: accepted"));
            let option = expect["option"].as_str().unwrap();
            let option = match expect["unknown"].as_bool() {
                Some(true) => option,
                _ => OptionSpec::find(option, Spelling::Snake).unwrap().name(spelling),
            };
            assert_eq!(err.class().name(), expect["class"], "{name}: {err}");
            assert_eq!(err.code(), expect["code"], "{name}: {err}");
            match &err {
                Error::Config { field, .. } => assert_eq!(field, option, "{name}: {err}"),
                other => panic!("{name}: {other}"),
            }
            assert!(err.to_string().contains(option), "{name}: {err}");
        }
    }
}

#[test]
fn range_errors_speak_the_callers_unit() {
    let given = |name: &str, value: HostValue| {
        vec![
            (
                "apiKey".to_owned(),
                HostValue::Str("ml_sk_abc_0123456789abcdef0123".into()),
            ),
            ("endpoint".to_owned(), HostValue::Str("http://x".into())),
            (name.to_owned(), value),
        ]
    };
    let js = config_from_host(
        given("entitlementTimeoutMs", HostValue::Int(61_000)),
        Spelling::CamelMs,
        &[],
    );
    let message = js.unwrap_err().to_string();
    assert!(
        message.contains("`entitlementTimeoutMs`") && message.contains("60000 ms"),
        "{message}"
    );
    let py = config_from_host(
        given("entitlement_timeout", HostValue::Float(61.0))
            .into_iter()
            .map(|(k, v)| (if k == "apiKey" { "api_key".to_owned() } else { k }, v)),
        Spelling::Snake,
        &[],
    );
    let message = py.unwrap_err().to_string();
    assert!(
        message.contains("`entitlement_timeout`") && message.contains("60 s"),
        "{message}"
    );
}

#[test]
fn host_options_are_left_to_the_binding_and_listed() {
    let given = vec![
        (
            "api_key".to_owned(),
            HostValue::Str("ml_sk_abc_0123456789abcdef0123".into()),
        ),
        ("endpoint".to_owned(), HostValue::Str("http://x".into())),
        ("on_error".to_owned(), HostValue::Other("a function".into())),
    ];
    config_from_host(given.clone(), Spelling::Snake, &["on_error"]).unwrap();
    let mut typo = given;
    typo.push(("on_eror".to_owned(), HostValue::Null));
    let message = config_from_host(typo, Spelling::Snake, &["on_error"])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("`on_eror`") && message.contains("on_error"),
        "{message}"
    );
}

#[test]
fn a_whole_javascript_number_within_2_pow_53_is_an_integer() {
    assert_eq!(HostValue::js_number(3.0), HostValue::Int(3));
    assert_eq!(
        HostValue::js_number(-9_007_199_254_740_991.0),
        HostValue::Int(-9_007_199_254_740_991)
    );
    assert_eq!(
        HostValue::js_number(9_007_199_254_740_992.0),
        HostValue::Float(9_007_199_254_740_992.0)
    );
    assert_eq!(HostValue::js_number(0.5), HostValue::Float(0.5));
    assert!(matches!(HostValue::js_number(f64::NAN), HostValue::Float(f) if f.is_nan()));
}
