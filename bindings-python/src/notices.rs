//! What the background hands to Python: log records and `on_error` calls.
//!
//! The core's worker thread never touches the interpreter. It only appends a [`Notice`] to a
//! bounded in-memory queue; a daemon thread started by the Python package
//! (`meterline._dispatch`) takes them with `_take_notices` and calls `logging` and the
//! callbacks with the GIL held the ordinary way. So no Rust thread ever waits for the GIL while
//! a Python thread waits for it (no deadlock in `flush`, `shutdown` or a finalizer), a slow or
//! raising callback cannot stall delivery, and nothing attaches to a finalizing interpreter.
//!
//! Fork: `_before_fork` takes the queue's lock so no other thread holds it while the process
//! forks; both `_after_fork_*` release it, and the child also empties the queue (the parent
//! delivers those notices).

use std::{
    cell::RefCell,
    collections::VecDeque,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::Duration,
};

use meterline_core::{Error, entitlement_cache::UsageThresholdEvent};
use pyo3::{prelude::*, types::PyTuple};

use crate::error::to_py_err;

/// Most notices kept while nobody takes them; the oldest are dropped (and counted) beyond.
const CAPACITY: usize = 10_000;

/// One thing to hand to Python.
pub enum Notice {
    /// A record for the `meterline` logger.
    Log {
        /// Python `logging` level number.
        level: u8,
        /// The formatted message with its fields.
        message: String,
    },
    /// A background error for a client's `on_error` callback.
    Error {
        /// The client's callback.
        callback: Arc<Callback>,
        /// What went wrong.
        error: Error,
    },
    /// A stream `usage.threshold` message for a client's `on_usage_threshold`.
    Threshold {
        /// The client's callback.
        callback: Arc<Callback>,
        /// The crossing.
        event: UsageThresholdEvent,
    },
    /// The stream connected or was lost, for a client's `on_connection_change`.
    Connection {
        /// The client's callback.
        callback: Arc<Callback>,
        /// Whether it is connected now.
        connected: bool,
        /// `"connected"`, or why it was lost.
        reason: String,
    },
}

/// A client's `on_error` callable. Cleared by the garbage collector's `__clear__`, so a
/// callback that refers back to its client does not keep the pair alive forever.
#[derive(Default)]
pub struct Callback(Mutex<Option<Py<PyAny>>>);

impl Callback {
    /// Wraps a callable.
    pub fn new(callable: Py<PyAny>) -> Self {
        Callback(Mutex::new(Some(callable)))
    }

    /// The callable, while it is set.
    pub fn get(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        lock(&self.0).as_ref().map(|c| c.clone_ref(py))
    }

    /// For `__traverse__`: never blocks (a busy lock just skips the visit).
    pub fn visit(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Ok(guard) = self.0.try_lock()
            && let Some(callable) = guard.as_ref()
        {
            visit.call(callable)?;
        }
        Ok(())
    }

    /// For `__clear__`.
    pub fn clear(&self) {
        let callable = lock(&self.0).take();
        drop(callable);
    }
}

struct Queue {
    items: VecDeque<Notice>,
    dropped: u64,
    /// Set by `_wake_notices`: the next `_take_notices` returns at once.
    woken: bool,
    /// Set at interpreter exit, once the dispatcher is gone: later notices go to stderr.
    closed: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    items: VecDeque::new(),
    dropped: 0,
    woken: false,
    closed: false,
});
static READY: Condvar = Condvar::new();

thread_local! {
    /// The queue lock held across `fork()` by the forking thread.
    static HELD_FOR_FORK: RefCell<Option<MutexGuard<'static, Queue>>> = const { RefCell::new(None) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Queues a notice for the dispatcher; never blocks on Python.
pub fn push(notice: Notice) {
    let mut queue = lock(&QUEUE);
    if queue.closed {
        drop(queue);
        after_exit(&notice);
        return;
    }
    if queue.items.len() >= CAPACITY {
        queue.items.pop_front();
        queue.dropped += 1;
    }
    queue.items.push_back(notice);
    drop(queue);
    READY.notify_one();
}

/// After the interpreter's exit handlers ran there is no Python to call: warnings and errors
/// go to stderr so they are not lost silently.
fn after_exit(notice: &Notice) {
    match notice {
        Notice::Log { level, message } if *level >= 30 => eprintln!("meterline: {message}"),
        Notice::Log { .. } => {}
        Notice::Error { error, .. } => eprintln!("meterline: background error after exit: {error}"),
        Notice::Threshold { .. } | Notice::Connection { .. } => {}
    }
}

/// Waits up to `timeout` seconds for notices and returns them all as tuples:
/// `("log", level, message)`, `("error", callback, exception)`,
/// `("threshold", callback, (seq, subject, feature, threshold, usage, limit))` or
/// `("connection", callback, (connected, reason))`.
#[pyfunction]
pub fn _take_notices(py: Python<'_>, timeout: f64) -> PyResult<Vec<Bound<'_, PyTuple>>> {
    let wait = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::from_secs(1));
    let (items, dropped) = py.detach(|| {
        let mut queue = lock(&QUEUE);
        if queue.items.is_empty() && !wait.is_zero() {
            queue = READY
                .wait_timeout_while(queue, wait, |q| q.items.is_empty() && !q.woken)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        queue.woken = false;
        let dropped = std::mem::take(&mut queue.dropped);
        (std::mem::take(&mut queue.items), dropped)
    });
    let mut out = Vec::with_capacity(items.len() + 1);
    if dropped > 0 {
        let message = format!("{dropped} log records and error notices were dropped (nobody took them in time)");
        out.push(("log", 30u8, message).into_pyobject(py)?);
    }
    for notice in items {
        match notice {
            Notice::Log { level, message } => out.push(("log", level, message).into_pyobject(py)?),
            Notice::Error { callback, error } => {
                if let Some(callable) = callback.get(py) {
                    let exception = to_py_err(py, &error).into_value(py);
                    out.push(("error", callable, exception).into_pyobject(py)?);
                }
            }
            Notice::Threshold { callback, event } => {
                if let Some(callable) = callback.get(py) {
                    let e = event;
                    let fields = (e.seq, e.subject, e.feature, e.threshold, e.usage, e.limit);
                    out.push(("threshold", callable, fields).into_pyobject(py)?);
                }
            }
            Notice::Connection {
                callback,
                connected,
                reason,
            } => {
                if let Some(callable) = callback.get(py) {
                    out.push(("connection", callable, (connected, reason)).into_pyobject(py)?);
                }
            }
        }
    }
    Ok(out)
}

/// Wakes a dispatcher waiting in `_take_notices` (used when it is told to stop).
#[pyfunction]
pub fn _wake_notices() {
    lock(&QUEUE).woken = true;
    READY.notify_all();
}

/// Called at interpreter exit after the dispatcher stopped: later notices go to stderr.
#[pyfunction]
pub fn _close_notices() {
    lock(&QUEUE).closed = true;
}

/// Takes the queue lock before `fork()` (see the module docs).
pub fn hold_for_fork() {
    let guard = lock(&QUEUE);
    HELD_FOR_FORK.with(|held| *held.borrow_mut() = Some(guard));
}

/// Releases the lock after `fork()`; in the child, forgets the parent's notices.
pub fn release_after_fork(in_child: bool) {
    HELD_FOR_FORK.with(|held| {
        if let Some(mut guard) = held.borrow_mut().take()
            && in_child
        {
            let parents = std::mem::take(&mut guard.items);
            guard.dropped = 0;
            drop(guard);
            // Dropped after the lock is released (and with the GIL held: this is an at-fork
            // hook), in case dropping a callback runs Python code.
            drop(parents);
        }
    });
}
