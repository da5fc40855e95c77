//! The one tokio runtime of the asyncio bridge (pyo3-async-runtimes' generic API), rebuilt
//! after `fork()`.
//!
//! `pyo3_async_runtimes::tokio` keeps its runtime in a `OnceLock` that cannot be replaced, so
//! a forked child would inherit a runtime whose threads are gone and hang on every `await`.
//! Here the runtime is tagged with the fork generation it was built in; a child builds a new
//! one on first use and leaks the inherited one (dropping it would join threads that do not
//! exist). Outer spawns come from Python threads holding the GIL — which `fork()` also holds,
//! so the slot's lock is never held across a fork — and spawns from inside the runtime use
//! the current handle without locking.

use std::{
    cell::OnceCell,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
};

use pyo3::prelude::*;
use pyo3_async_runtimes::{
    TaskLocals,
    generic::{ContextExt, Runtime as GenericRuntime},
};

use crate::error::IntoPyErr;
use tokio::{
    runtime::{Builder, Handle, Runtime},
    task::JoinHandle,
};

use crate::fork;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

static CURRENT: Mutex<Option<(u64, Arc<Runtime>)>> = Mutex::new(None);

/// The fork-aware runtime, as pyo3-async-runtimes sees it.
pub struct AsyncRuntime;

/// The runtime's handle, building the runtime on first use in this process.
pub fn handle() -> PyResult<Handle> {
    if let Ok(current) = Handle::try_current() {
        return Ok(current);
    }
    let generation = fork::generation();
    let mut slot = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((built_in, runtime)) = slot.as_ref()
        && *built_in == generation
    {
        return Ok(runtime.handle().clone());
    }
    let runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("meterline-async")
        .enable_all()
        .build()
        .map_err(|e| meterline_core::Error::Internal(format!("cannot start the async runtime: {e}")).into_py_err())?;
    let handle = runtime.handle().clone();
    // An inherited runtime's threads are gone: leak it rather than join them.
    std::mem::forget(slot.replace((generation, Arc::new(runtime))));
    Ok(handle)
}

/// Spawns a task on the runtime.
pub fn spawn<F>(fut: F) -> PyResult<JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(handle()?.spawn(fut))
}

fn handle_or_panic() -> Handle {
    // Only reachable if the OS refuses threads; pyo3 turns the panic into an exception.
    handle().unwrap_or_else(|e| panic!("{e}"))
}

impl GenericRuntime for AsyncRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        handle_or_panic().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        handle_or_panic().spawn_blocking(f)
    }
}

impl ContextExt for AsyncRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS.try_with(|c| c.get().cloned()).unwrap_or_default()
    }
}
