//! Python values → JSON, straight from the objects (no `json.dumps`): `track()`'s `data`, the
//! `schemas` option, and `time`/`id` arguments.
//!
//! What converts (documented in the package README):
//!
//! | Python | JSON |
//! |---|---|
//! | `dict` and other `Mapping`s with `str` keys | object |
//! | `list`, `tuple` | array |
//! | `str` | string |
//! | `int` (and `IntEnum`, …) within the 64-bit range | integer |
//! | finite `float` | number |
//! | `Decimal` whose value survives the round trip through a JSON number | integer or number |
//! | `bool`, `None` | `true`/`false`, `null` |
//!
//! Everything else — `bytes`, `set`, `datetime`, NaN/±Infinity, integers beyond 64 bits, keys
//! that are not strings, nesting deeper than [`MAX_DEPTH`] (which also stops cyclic
//! structures) — is refused with an `invalid_event` [`ValidationError`] whose `path` is the JSON
//! pointer of the offending value, e.g. `/data/items/3/price`. The caller's objects are never
//! modified.

use meterline_core::ValidationError;
use pyo3::{
    prelude::*,
    sync::PyOnceLock,
    types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple, PyType},
};
use serde_json::{Map, Number, Value};

/// Deepest nesting of objects and arrays accepted inside `data`. Far beyond any real payload;
/// it turns a cyclic structure into a clear error instead of endless recursion.
pub const MAX_DEPTH: usize = meterline_core::arguments::MAX_DATA_DEPTH;

/// Why a value cannot become JSON; `segments` is the path from the failing value outwards
/// (innermost first), so a successful conversion never builds a path.
pub struct Unconvertible {
    segments: Vec<String>,
    message: String,
}

impl Unconvertible {
    fn new(message: impl Into<String>) -> Self {
        Unconvertible {
            segments: Vec::new(),
            message: message.into(),
        }
    }

    fn within(mut self, segment: impl Into<String>) -> Self {
        self.segments.push(segment.into());
        self
    }

    /// The JSON pointer of the failing value below `root` (e.g. `/data`).
    pub fn path(&self, root: &str) -> String {
        let mut path = String::from(root);
        for segment in self.segments.iter().rev() {
            path.push('/');
            // RFC 6901 escaping.
            path.push_str(&segment.replace('~', "~0").replace('/', "~1"));
        }
        path
    }

    /// What is wrong, for messages.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// As the validation error `track()` raises (`invalid_event` at the value's path).
    pub fn into_validation(self, root: &str) -> ValidationError {
        ValidationError::invalid_event(self.path(root), self.message)
    }
}

/// Converts any JSON-compatible Python value; see the module docs for the rules.
pub fn to_json(obj: &Bound<'_, PyAny>) -> Result<Value, Unconvertible> {
    value(obj, 0)
}

fn value(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, Unconvertible> {
    // Exact types first: one pointer comparison each, the common case.
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return string(s).map(Value::String);
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return integer(obj);
    }
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        return object(d, depth);
    }
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return float(f.value());
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(list) = obj.cast_exact::<PyList>() {
        return array(list.iter(), depth);
    }
    // Subclasses (str/int enums, OrderedDict, …) and the other accepted types.
    if let Ok(s) = obj.cast::<PyString>() {
        return string(s).map(Value::String);
    }
    if obj.is_instance_of::<PyInt>() {
        return integer(obj);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return float(f.value());
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return object(d, depth);
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return array(list.iter(), depth);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return array(tuple.iter(), depth);
    }
    if is_decimal(obj) {
        return decimal(obj);
    }
    if let Ok(mapping) = obj.cast::<PyMapping>() {
        return mapping_object(mapping, depth);
    }
    Err(Unconvertible::new(refusal(obj)))
}

fn string(s: &Bound<'_, PyString>) -> Result<String, Unconvertible> {
    s.to_str()
        .map(str::to_owned)
        .map_err(|_| Unconvertible::new("string contains a lone surrogate and cannot be encoded as UTF-8"))
}

fn integer(obj: &Bound<'_, PyAny>) -> Result<Value, Unconvertible> {
    if let Ok(i) = obj.extract::<i64>() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(u) = obj.extract::<u64>() {
        return Ok(Value::Number(u.into()));
    }
    Err(Unconvertible::new(format!(
        "integer {} is outside the 64-bit range JSON numbers are read with (-2**63 … 2**64-1); send it as a string",
        short_repr(obj)
    )))
}

fn float(f: f64) -> Result<Value, Unconvertible> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| Unconvertible::new(format!("{f} is not a JSON number (NaN and Infinity are not allowed)")))
}

fn object(dict: &Bound<'_, PyDict>, depth: usize) -> Result<Value, Unconvertible> {
    let depth = deeper(depth)?;
    let mut map = Map::new();
    for (key, item) in dict.iter() {
        let key = key_string(&key)?;
        let item = value(&item, depth).map_err(|e| e.within(key.as_str()))?;
        map.insert(key, item);
    }
    Ok(Value::Object(map))
}

fn mapping_object(mapping: &Bound<'_, PyMapping>, depth: usize) -> Result<Value, Unconvertible> {
    let depth = deeper(depth)?;
    let items = mapping
        .items()
        .map_err(|e| Unconvertible::new(format!("cannot read the mapping's items: {e}")))?;
    let mut map = Map::new();
    for pair in items.iter() {
        let (key, item): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair
            .extract()
            .map_err(|_| Unconvertible::new("the mapping's items() did not yield (key, value) pairs"))?;
        let key = key_string(&key)?;
        let item = value(&item, depth).map_err(|e| e.within(key.as_str()))?;
        map.insert(key, item);
    }
    Ok(Value::Object(map))
}

fn key_string(key: &Bound<'_, PyAny>) -> Result<String, Unconvertible> {
    match key.cast::<PyString>() {
        Ok(s) => string(s),
        Err(_) => Err(Unconvertible::new(format!(
            "object keys must be strings, got {} key {}",
            type_name(key),
            short_repr(key)
        ))),
    }
}

fn array<'py>(items: impl Iterator<Item = Bound<'py, PyAny>>, depth: usize) -> Result<Value, Unconvertible> {
    let depth = deeper(depth)?;
    let mut out = Vec::with_capacity(items.size_hint().0);
    for (i, item) in items.enumerate() {
        out.push(value(&item, depth).map_err(|e| e.within(i.to_string()))?);
    }
    Ok(Value::Array(out))
}

fn deeper(depth: usize) -> Result<usize, Unconvertible> {
    if depth >= MAX_DEPTH {
        return Err(Unconvertible::new(format!(
            "nesting deeper than {MAX_DEPTH} levels (or a structure that contains itself)"
        )));
    }
    Ok(depth + 1)
}

static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn is_decimal(obj: &Bound<'_, PyAny>) -> bool {
    let py = obj.py();
    // `decimal` is imported on first need only; an import failure just means "not a Decimal".
    match DECIMAL.import(py, "decimal", "Decimal") {
        Ok(cls) => obj.is_instance(cls).unwrap_or(false),
        Err(_) => false,
    }
}

/// A `Decimal` is sent when JSON can carry its exact value: as an integer when it is integral
/// and within 64 bits, else as a number when the shortest double that round-trips prints the
/// same decimal value (`Decimal("0.1")` → `0.1`). Anything that would be silently rounded
/// (`Decimal("0.1000000000000000000001")`), NaN and Infinity are refused.
fn decimal(obj: &Bound<'_, PyAny>) -> Result<Value, Unconvertible> {
    let lossy = || {
        Unconvertible::new(format!(
            "{} cannot be sent exactly as a JSON number (a 64-bit integer or a double); \
             convert it with float() or str() first",
            short_repr(obj)
        ))
    };
    let finite = obj
        .call_method0("is_finite")
        .and_then(|b| b.is_truthy())
        .unwrap_or(false);
    if !finite {
        return Err(Unconvertible::new(format!(
            "{} is not a JSON number (NaN and Infinity are not allowed)",
            short_repr(obj)
        )));
    }
    let py = obj.py();
    let integral = obj
        .call_method0("to_integral_value")
        .and_then(|i| i.eq(obj))
        .unwrap_or(false);
    if integral {
        let as_int = obj.call_method1("__int__", ()).map_err(|_| lossy())?;
        return integer(&as_int).map_err(|_| lossy());
    }
    let text = obj.str().map_err(|_| lossy())?;
    let parsed: f64 = text.to_str().map_err(|_| lossy())?.parse().map_err(|_| lossy())?;
    let number = Number::from_f64(parsed).ok_or_else(lossy)?;
    // serde_json prints the shortest representation that round-trips; compare its value.
    let printed = number.to_string();
    let cls = DECIMAL.import(py, "decimal", "Decimal").map_err(|_| lossy())?;
    let same = cls.call1((printed,)).and_then(|d| d.eq(obj)).unwrap_or(false);
    if same { Ok(Value::Number(number)) } else { Err(lossy()) }
}

/// The refusal message for a type JSON has no form for, with a hint where one is useful.
fn refusal(obj: &Bound<'_, PyAny>) -> String {
    let name = type_name(obj);
    let hint = match name.as_str() {
        "bytes" | "bytearray" | "memoryview" => "; decode it to a str (or base64-encode it) first",
        "set" | "frozenset" => "; pass a list instead (JSON has no sets)",
        "datetime" | "date" | "time" => "; send it as a string, e.g. value.isoformat()",
        "UUID" => "; send it as a string, str(value)",
        "complex" => "; JSON numbers are real",
        _ => "",
    };
    format!("values of type {name} cannot be sent as JSON{hint}")
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

/// `repr()` cut to a readable length (errors never echo megabytes).
fn short_repr(obj: &Bound<'_, PyAny>) -> String {
    let text = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unrepresentable>".to_owned());
    match text.char_indices().nth(48) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// Extracts an optional `str` argument (`id`), refusing other types with a validation error
/// at `path`. A `uuid.UUID` is accepted as its canonical string.
pub fn optional_string(
    obj: Option<&Bound<'_, PyAny>>,
    name: &str,
    path: &str,
) -> Result<Option<String>, ValidationError> {
    let Some(obj) = obj else { return Ok(None) };
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return string(s).map(Some).map_err(|e| e.into_validation(path));
    }
    if type_name(obj) == "UUID" {
        return Ok(Some(obj.str().map(|s| s.to_string()).unwrap_or_default()));
    }
    Err(ValidationError::invalid_event(
        path,
        format!("`{name}` must be a str, got {}", type_name(obj)),
    ))
}

/// Extracts a required `str` argument (`type`, `subject`) borrowed from the Python string.
pub fn required_str<'a>(obj: &'a Bound<'_, PyAny>, name: &str, path: &str) -> Result<&'a str, ValidationError> {
    match obj.cast::<PyString>() {
        Ok(s) => s.to_str().map_err(|_| {
            ValidationError::invalid_event(
                path,
                format!("`{name}` contains a lone surrogate and cannot be encoded as UTF-8"),
            )
        }),
        Err(_) => Err(ValidationError::invalid_event(
            path,
            format!("`{name}` must be a str, got {}", type_name(obj)),
        )),
    }
}

static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `time`: an aware `datetime` (sent in RFC 3339 with its offset) or an RFC 3339 string
/// (checked by the core). A naive `datetime` is refused: its instant is ambiguous.
pub fn event_time(obj: Option<&Bound<'_, PyAny>>) -> Result<Option<String>, ValidationError> {
    const PATH: &str = "/time";
    let Some(obj) = obj else { return Ok(None) };
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return string(s).map(Some).map_err(|e| e.into_validation(PATH));
    }
    let py = obj.py();
    let is = |cell: &PyOnceLock<Py<PyType>>, name: &str| {
        cell.import(py, "datetime", name)
            .is_ok_and(|cls| obj.is_instance(cls).unwrap_or(false))
    };
    if is(&DATETIME, "datetime") {
        let offset = obj
            .call_method0("utcoffset")
            .map_err(|e| ValidationError::invalid_event(PATH, format!("cannot read the datetime's UTC offset: {e}")))?;
        if offset.is_none() {
            return Err(ValidationError::invalid_event(
                PATH,
                "`time` is a naive datetime (no tzinfo); pass an aware one, e.g. datetime.now(timezone.utc)",
            ));
        }
        let text = obj
            .call_method0("isoformat")
            .and_then(|t| t.extract::<String>())
            .map_err(|e| ValidationError::invalid_event(PATH, format!("cannot format the datetime: {e}")))?;
        return Ok(Some(text));
    }
    if is(&DATE, "date") {
        return Err(ValidationError::invalid_event(
            PATH,
            "`time` is a date without a time of day; pass an aware datetime or an RFC 3339 string",
        ));
    }
    Err(ValidationError::invalid_event(
        PATH,
        format!(
            "`time` must be an aware datetime or an RFC 3339 str, got {}",
            type_name(obj)
        ),
    ))
}
