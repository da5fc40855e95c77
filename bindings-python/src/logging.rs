//! The core's `tracing` events → the standard `logging` logger `"meterline"`.
//!
//! A minimal [`Subscriber`]: it keeps only events whose target starts with `meterline`, at
//! or above the level last set with `_set_log_level` (the package sets it from the logger's
//! effective level whenever a client is created; INFO by default), formats the message with
//! its fields, and queues it as a [`Notice`]. It never holds the GIL — Python's `logging`
//! is called by the dispatcher thread.

use std::sync::atomic::{AtomicU8, Ordering};

use pyo3::prelude::*;
use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span,
    subscriber::Interest,
};

use crate::notices::{Notice, push};

/// Lowest Python level number forwarded (20 = INFO).
static MIN_LEVEL: AtomicU8 = AtomicU8::new(20);

/// Sets the lowest `logging` level number forwarded from the core.
#[pyfunction]
pub fn _set_log_level(level: i64) {
    MIN_LEVEL.store(level.clamp(0, 255) as u8, Ordering::Relaxed);
}

/// Installs the forwarder as this extension module's global `tracing` subscriber.
pub fn install() {
    // Fails only if something already installed one in this module's copy of `tracing`.
    let _ = tracing::subscriber::set_global_default(PythonLogging);
}

fn python_level(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

fn ours(metadata: &Metadata<'_>) -> bool {
    metadata.is_event() && metadata.target().starts_with("meterline")
}

struct PythonLogging;

impl Subscriber for PythonLogging {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // "sometimes": the level threshold can change at run time.
        if ours(metadata) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        ours(metadata) && python_level(metadata.level()) >= MIN_LEVEL.load(Ordering::Relaxed)
    }

    fn new_span(&self, _span: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _span: &span::Id, _values: &span::Record<'_>) {}

    fn record_follows_from(&self, _span: &span::Id, _follows: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = Message::default();
        event.record(&mut text);
        if !text.fields.is_empty() {
            text.message.push_str(" (");
            text.message.push_str(&text.fields);
            text.message.push(')');
        }
        push(Notice::Log {
            level: python_level(event.metadata().level()),
            message: text.message,
        });
    }

    fn enter(&self, _span: &span::Id) {}

    fn exit(&self, _span: &span::Id) {}
}

/// `message` plus `key=value` pairs of the other fields.
#[derive(Default)]
struct Message {
    message: String,
    fields: String,
}

impl Message {
    fn field(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = self.message.write_fmt(value);
        } else {
            if !self.fields.is_empty() {
                self.fields.push_str(", ");
            }
            let _ = write!(self.fields, "{}={}", field.name(), value);
        }
    }
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}
