//! Fork safety (gunicorn, `multiprocessing`).
//!
//! The core client's worker thread and the async runtime's threads do not exist in a forked
//! child, and locks they held at the moment of `fork()` stay locked there. So the package
//! registers these functions with `os.register_at_fork`; the child bumps the *fork
//! generation*, and every handle created in an older generation is left alone — leaked,
//! never dropped nor locked — and replaced by a fresh one from the same configuration on next
//! use (`client.rs`, `runtime.rs`). The parent is unaffected.
//!
//! The binding's own locks are taken only while holding the GIL, which `os.fork()` holds
//! too, so no other thread can hold one across the fork; the notice queue, which the worker
//! thread also locks, is taken by `_before_fork` explicitly.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;

use crate::notices;

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// How many forks separate this process from the one that imported the module.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// `os.register_at_fork(before=…)`.
#[pyfunction]
pub fn _before_fork() {
    notices::hold_for_fork();
}

/// `os.register_at_fork(after_in_parent=…)`.
#[pyfunction]
pub fn _after_fork_in_parent() {
    notices::release_after_fork(false);
}

/// `os.register_at_fork(after_in_child=…)`.
#[pyfunction]
pub fn _after_fork_in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    notices::release_after_fork(true);
}
