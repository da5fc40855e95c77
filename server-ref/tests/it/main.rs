//! The server's integration tests, one test binary (each former `tests/<name>.rs` is the
//! module `<name>` here, so `cargo test -p meterline-server --test it <name>::` runs one
//! of them): the real `meterline-server` binary on real SQLite files, the SDK client
//! against it, and the fuzz inputs replayed. One binary links the server once instead of
//! once per file.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

mod admin;
mod availability;
mod catalog;
mod catalog_cli;
mod cloudevents_spec;
mod declarative;
mod durability;
mod entitlements;
mod entitlements_e2e;
mod events;
mod fuzz_inputs;
mod ingest;
mod ingest_errors;
mod lifecycle;
mod openapi;
mod outage_memory;
mod pg_failover;
mod pg_limits;
mod pg_nodes;
mod pg_races;
mod publishable;
mod sdk_delivery;
mod sdk_identity;
mod security;
mod spool_crash;
mod storage;
mod storage_admin;
mod storage_catalog;
mod stream;
mod stream_fanout;
mod stream_hostile;
mod stream_live;
mod tokens;
mod usage;

use std::process::Command;

/// Set in the child process [`run_alone`] starts.
const ALONE: &str = "METERLINE_TEST_ALONE";

/// For a test that measures this process (its RSS) and so must not share it with the
/// tests running in parallel: outside a child started here, re-runs this binary with only
/// the test `name` (its full path, e.g. `outage_memory::memory_…`), asserts it passed, and
/// returns `true` — the caller then returns. In that child it returns `false` and the caller
/// runs its body.
pub fn run_alone(name: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return false;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ALONE, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} in a process of its own: {}\n{stdout}",
        out.status
    );
    true
}
