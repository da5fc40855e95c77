//! CloudEvents 1.0 context attributes checked by the spec, for events received as JSON.
//!
//! What the spec (`spec.md`, "Naming Conventions", "Type System", "REQUIRED/OPTIONAL
//! Attributes", "Extension Context Attributes") and its JSON format (`formats/json-format.md`
//! §2.2, §3.1) require of the attributes meterline does not otherwise look at:
//! - every attribute name is lower-case ASCII letters and digits (the 20-character length is
//!   a SHOULD NOT, so longer names pass; see docs/decisions.md);
//! - every value is one of the spec's types as JSON maps them: a boolean, an integer number
//!   in the signed 32-bit range (no fraction or exponent), or a string of allowed characters
//!   (String, Binary, URI, URI-reference and Timestamp are all JSON strings); `null` is
//!   "unset", so an extension that is `null` is simply absent;
//! - `source` is a URI-reference and `dataschema` a non-empty absolute URI (RFC 3986 §4.1
//!   and §4.3); `data_base64` (binary data) has no place beside meterline's object `data`.
//!
//! These run where an event arrives as JSON ([`Event::from_value`](super::Event::from_value),
//! the server's ingest), not in `track()`: the SDK's attributes are either checked once
//! (`source`, at configuration) or made by the SDK itself.

use serde_json::{Map, Value};

use super::{MAX_ATTRIBUTE_LEN, kind_of, truncate};
use crate::error::ValidationError;

/// Checks what is left of an event object once the attributes meterline reads were taken
/// out: `dataschema`, `data_base64` and the extension attributes.
pub(super) fn check_other_attributes(rest: &Map<String, Value>) -> Result<(), ValidationError> {
    for (name, value) in rest {
        match name.as_str() {
            "dataschema" => check_dataschema(value)?,
            "data_base64" => {
                return Err(ValidationError::invalid_event(
                    "/data_base64",
                    "binary data (`data_base64`) is not accepted: `data` must be a JSON object",
                ));
            }
            _ => check_extension(name, value)?,
        }
    }
    Ok(())
}

/// Checks the characters of a String attribute: the spec refuses the control characters
/// U+0000–U+001F and U+007F–U+009F and Unicode's noncharacters (a Rust string holds no
/// unpaired surrogates, the third kind it refuses).
#[inline]
pub fn check_string(path: &str, name: &str, value: &str) -> Result<(), ValidationError> {
    // Printable ASCII, the common case, needs no look at each character.
    if printable_ascii(value.as_bytes()) {
        return Ok(());
    }
    check_string_chars(path, name, value)
}

#[cold]
fn check_string_chars(path: &str, name: &str, value: &str) -> Result<(), ValidationError> {
    match value.chars().position(|c| !allowed_in_string(c)) {
        None => Ok(()),
        Some(at) => {
            let c = value.chars().nth(at).unwrap_or_default();
            Err(ValidationError::invalid_event(
                path,
                format!(
                    "`{name}` holds U+{:04X} at character {at}, which a CloudEvents String may not contain \
                     (control characters and noncharacters)",
                    u32::from(c)
                ),
            ))
        }
    }
}

/// Checks `source`: a non-empty URI-reference (RFC 3986 §4.1) of at most
/// [`MAX_ATTRIBUTE_LEN`] characters. The configuration check of the SDK calls this too.
pub fn check_source(source: &str) -> Result<(), ValidationError> {
    if source.is_empty() {
        return Err(ValidationError::invalid_event("/source", "`source` must not be empty"));
    }
    if source.len() > MAX_ATTRIBUTE_LEN && source.chars().count() > MAX_ATTRIBUTE_LEN {
        return Err(ValidationError::invalid_event(
            "/source",
            format!("`source` is longer than {MAX_ATTRIBUTE_LEN} characters"),
        ));
    }
    uri(source, UriKind::Reference).map_err(|why| {
        ValidationError::invalid_event(
            "/source",
            format!(
                "`source` must be a URI-reference (RFC 3986), e.g. \"billing-api\" or \"https://example.com/app\": \
                 {why}; got {:?}",
                truncate(source)
            ),
        )
    })
}

fn check_dataschema(value: &Value) -> Result<(), ValidationError> {
    let text = match value {
        Value::Null => return Ok(()),
        Value::String(s) => s,
        other => {
            return Err(ValidationError::invalid_event(
                "/dataschema",
                format!("`dataschema` must be a string (a URI), got {}", kind_of(other)),
            ));
        }
    };
    if text.is_empty() {
        return Err(ValidationError::invalid_event(
            "/dataschema",
            "`dataschema` must not be empty when present (leave it out instead)",
        ));
    }
    uri(text, UriKind::Absolute).map_err(|why| {
        ValidationError::invalid_event(
            "/dataschema",
            format!(
                "`dataschema` must be an absolute URI (RFC 3986 §4.3), e.g. \"https://example.com/schema.json\": \
                 {why}; got {:?}",
                truncate(text)
            ),
        )
    })
}

fn check_extension(name: &str, value: &Value) -> Result<(), ValidationError> {
    let path = pointer(name);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(ValidationError::invalid_event(
            path,
            format!(
                "attribute name {:?} is not allowed: CloudEvents attribute names are lower-case letters \
                 a–z and digits 0–9 only",
                truncate(name)
            ),
        ));
    }
    match value {
        Value::Null | Value::Bool(_) => Ok(()),
        Value::String(s) => check_string(&path, name, s),
        // serde_json reads a number with a fraction or an exponent as a float.
        Value::Number(n) if n.is_f64() => Err(ValidationError::invalid_event(
            path,
            format!("`{name}` is {n}: a CloudEvents Integer is written without a fraction or exponent"),
        )),
        Value::Number(n) => match n.as_i64().map(i32::try_from) {
            Some(Ok(_)) => Ok(()),
            _ => Err(ValidationError::invalid_event(
                path,
                format!("`{name}` is {n}, outside the CloudEvents Integer range (a signed 32-bit integer)"),
            )),
        },
        Value::Array(_) | Value::Object(_) => Err(ValidationError::invalid_event(
            path,
            format!(
                "`{name}` is {}: a CloudEvents attribute is a boolean, an integer or a string",
                kind_of(value)
            ),
        )),
    }
}

/// The JSON pointer (RFC 6901) of a top-level member; a name too long to quote whole points
/// at the event itself.
fn pointer(name: &str) -> String {
    if name.chars().count() > MAX_ATTRIBUTE_LEN {
        return String::new();
    }
    format!("/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// Whether every byte is printable ASCII (0x20–0x7E), eight bytes at a time: `track()` checks
/// its type and subject with this on every call.
#[inline]
fn printable_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below 0x20, or above 0x7E (its high bit set, or set by adding 1), sets its 0x80.
    let printable = |w: u64| (w.wrapping_sub(ONES * 0x20) & !w | (w.wrapping_add(ONES) | w)) & HIGH == 0;
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    if bytes.len() < 8 {
        return bytes.iter().all(|b| (0x20..0x7f).contains(b));
    }
    // Whole words, then the last eight bytes (overlapping the last whole word).
    (0..bytes.len() / 8).all(|i| printable(word(i * 8))) && printable(word(bytes.len() - 8))
}

fn allowed_in_string(c: char) -> bool {
    let u = u32::from(c);
    let control = u <= 0x1f || (0x7f..=0x9f).contains(&u);
    let noncharacter = (0xfdd0..=0xfdef).contains(&u) || (u & 0xfffe) == 0xfffe;
    !control && !noncharacter
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum UriKind {
    /// RFC 3986 §4.1 `URI-reference`: a URI or a relative reference.
    Reference,
    /// RFC 3986 §4.3 `absolute-URI`: a scheme, no fragment.
    Absolute,
}

/// Checks `s` against RFC 3986's grammar; the error says what is wrong.
fn uri(s: &str, kind: UriKind) -> Result<(), String> {
    let (rest, fragment) = split(s, '#');
    if let Some(fragment) = fragment {
        if kind == UriKind::Absolute {
            return Err("an absolute URI has no fragment (`#…`)".into());
        }
        chars(fragment, "the fragment", |b| pchar(b) || b == b'/' || b == b'?')?;
    }
    let (rest, query) = split(rest, '?');
    if let Some(query) = query {
        chars(query, "the query", |b| pchar(b) || b == b'/' || b == b'?')?;
    }
    // A scheme ends at the first `:` that comes before any `/`.
    let (scheme, hier) = match rest.find([':', '/']) {
        Some(i) if rest.as_bytes()[i] == b':' => (Some(&rest[..i]), &rest[i + 1..]),
        _ => (None, rest),
    };
    match scheme {
        Some(scheme) if !is_scheme(scheme) => {
            return Err(format!(
                "{:?} before the first `:` is not a scheme (a letter, then letters, digits, `+`, `-` or `.`)",
                truncate(scheme)
            ));
        }
        None if kind == UriKind::Absolute => return Err("it has no scheme (such as `https:`)".into()),
        _ => {}
    }
    let path = match hier.strip_prefix("//") {
        Some(after) => {
            let (authority, path) = match after.find('/') {
                Some(i) => after.split_at(i),
                None => (after, ""),
            };
            check_authority(authority)?;
            path
        }
        None => hier,
    };
    chars(path, "the path", |b| pchar(b) || b == b'/')
}

fn check_authority(authority: &str) -> Result<(), String> {
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            chars(userinfo, "the user information", |b| {
                unreserved(b) || sub_delim(b) || b == b':'
            })?;
            host_port
        }
        None => authority,
    };
    let port = if let Some(literal) = host_port.strip_prefix('[') {
        let (inside, after) = literal
            .split_once(']')
            .ok_or("an IP literal host (`[…]`) is not closed")?;
        let ip_future = inside.starts_with(['v', 'V']);
        let fine = !inside.is_empty()
            && inside.bytes().all(|b| {
                b.is_ascii_hexdigit() || b == b':' || b == b'.' || (ip_future && (unreserved(b) || sub_delim(b)))
            });
        if !fine {
            return Err(format!("{:?} is not an IP literal", truncate(inside)));
        }
        match after {
            "" => "",
            _ => after
                .strip_prefix(':')
                .ok_or("only a port may follow an IP literal host")?,
        }
    } else {
        let (host, port) = split(host_port, ':');
        chars(host, "the host", |b| unreserved(b) || sub_delim(b))?;
        port.unwrap_or("")
    };
    if port.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("the port {:?} is not a number", truncate(port)))
    }
}

fn split(s: &str, at: char) -> (&str, Option<&str>) {
    match s.split_once(at) {
        Some((before, after)) => (before, Some(after)),
        None => (s, None),
    }
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Checks that every byte of `part` is `allowed` or belongs to a `%XX` escape.
fn chars(part: &str, what: &str, allowed: impl Fn(u8) -> bool) -> Result<(), String> {
    let bytes = part.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let escape = bytes.get(i + 1..i + 3);
            if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
                return Err(format!("`%` in {what} must start a `%XX` escape"));
            }
            i += 3;
        } else if allowed(b) {
            i += 1;
        } else {
            let c = part[i..].chars().next().unwrap_or_default();
            return Err(format!("{c:?} may not appear in {what} (percent-encode it)"));
        }
    }
    Ok(())
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn pchar(b: u8) -> bool {
    unreserved(b) || sub_delim(b) || b == b':' || b == b'@'
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn printable_ascii_agrees_with_the_byte_rule_for_every_byte_at_every_offset() {
        for len in 1..=24 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    assert_eq!(
                        printable_ascii(&bytes),
                        (0x20..0x7f).contains(&b),
                        "byte {b:#04x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn uri_references_follow_rfc_3986() {
        // The spec's own examples of `source`, and what meterline's SDKs send by default.
        for ok in [
            "https://github.com/cloudevents",
            "mailto:cncf-wg-serverless@lists.cncf.io",
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
            "/cloudevents/spec/pull/123",
            "/sensors/tn-1234567/alerts",
            "1-555-123-4567",
            "billing-api",
            "ip-10-0-0-12.eu-west-1.compute.internal",
            "http://user:pw@[::1]:8080/a%20b?q=1&r=/x#frag",
            "http://[v1.fe80::a+en1]/",
            "//example.com/app",
            "a/b:c",
            "?only=query",
        ] {
            assert_eq!(uri(ok, UriKind::Reference), Ok(()), "{ok}");
        }
        for bad in [
            "billing api",
            "1:2",
            "-x:y",
            "a%2",
            "a%zz",
            "http://exa mple.com",
            "http://h:80x/",
            "http://[::1/",
            "http://[g::1]/",
            "tab\there",
            "naïve",
            "a#b#c",
            "quo\"te",
            "back\\slash",
            "{curly}",
        ] {
            assert!(uri(bad, UriKind::Reference).is_err(), "{bad}");
        }
        assert_eq!(uri("https://example.com/s.json?v=2", UriKind::Absolute), Ok(()));
        for relative in ["/schema.json", "schema.json", "//example.com/s", "https://e.com/s#frag"] {
            assert!(uri(relative, UriKind::Absolute).is_err(), "{relative}");
        }
    }

    #[test]
    fn strings_refuse_control_characters_and_noncharacters() {
        for ok in ["plain", "naïve ✓ 𝄞", "\u{a0}", "\u{fffd}", "\u{10fffd}"] {
            assert_eq!(check_string("/x", "x", ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "a\nb",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
            "\u{80}",
            "\u{9f}",
            "\u{fdd0}",
            "\u{fffe}",
            "\u{1ffff}",
        ] {
            let err = check_string("/x", "x", bad).unwrap_err();
            assert_eq!((err.code, err.path.as_str()), ("invalid_event", "/x"), "{bad:?}");
        }
    }

    #[test]
    fn extensions_are_named_and_typed_by_the_spec() {
        let ok = json!({"traceparent": "00-abc", "comexampleothervalue": 5, "flag": true, "unset": null,
                        "min": i32::MIN, "max": i32::MAX, "abc123": "x", "averyveryverylongextensionname": 1,
                        "dataschema": "https://example.com/s.json", "dataschemax": ""});
        assert_eq!(check_other_attributes(ok.as_object().unwrap()), Ok(()));
        for (member, path) in [
            (json!({"Foo_Bar": "x"}), "/Foo_Bar"),
            (json!({"traceParent": "x"}), "/traceParent"),
            (json!({"trace-id": "x"}), "/trace-id"),
            (json!({"a/b~c": 1}), "/a~1b~0c"),
            (json!({"": 1}), "/"),
            (json!({"big": 2_147_483_648u64}), "/big"),
            (json!({"small": -2_147_483_649i64}), "/small"),
            (json!({"ratio": 1.5}), "/ratio"),
            (json!({"whole": 1.0}), "/whole"),
            (json!({"list": [1]}), "/list"),
            (json!({"nested": {"a": 1}}), "/nested"),
            (json!({"text": "line\nbreak"}), "/text"),
            (json!({"dataschema": ""}), "/dataschema"),
            (json!({"dataschema": "/relative.json"}), "/dataschema"),
            (json!({"dataschema": 7}), "/dataschema"),
            (json!({"data_base64": "AAEC"}), "/data_base64"),
        ] {
            let err = check_other_attributes(member.as_object().unwrap()).unwrap_err();
            assert_eq!(
                (err.code, err.path.as_str()),
                ("invalid_event", path),
                "{member}: {err}"
            );
        }
        let long = "X".repeat(10_000);
        let err = check_other_attributes(json!({ long: 1 }).as_object().unwrap()).unwrap_err();
        assert_eq!(err.path, "");
        assert!(err.message.len() < 300, "{}", err.message.len());
    }

    #[test]
    fn sources_are_uri_references() {
        assert_eq!(check_source("billing-api"), Ok(()));
        for bad in ["", "billing api", "x".repeat(257).as_str(), "a\u{1}"] {
            let err = check_source(bad).unwrap_err();
            assert_eq!(err.path, "/source", "{bad:?}");
        }
    }
}
