//! The crash-safe disk spool (`spool_dir`): every accepted event is written to an embedded
//! store ([fjall](https://docs.rs/fjall), an LSM tree with a write-ahead journal) before
//! `track()` returns, removed once the server has answered for its batch, and replayed at
//! the next start.
//!
//! fjall hands each write to the OS (a `write` of its journal buffer) before `insert`
//! returns, so a write survives a crash or `kill -9` of the process without an `fsync`; the
//! [`SpoolFsync`] policy decides what a power loss can take. The journal tolerates a torn
//! last write (the one a kill interrupted).
//!
//! Layout: `<spool_dir>/lock` (an exclusive `flock`: one client per directory) and
//! `<spool_dir>/store/` (fjall's files). Key = a sequence number (big-endian `u64`, so the
//! store iterates in arrival order), value = the event's wire JSON.

use std::{
    fs::File,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use fjall::{Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use crate::{config::SpoolFsync, error::Error, spool_record};

const STORE: &str = "store";
const LOCK: &str = "lock";
const PARTITION: &str = "events";
/// The `interval` policy's background `fsync` period.
const FSYNC_INTERVAL_MS: u16 = 1000;

/// An open spool; holds the directory's lock until dropped.
pub(crate) struct Spool {
    keyspace: Keyspace,
    events: PartitionHandle,
    fsync: SpoolFsync,
    len: AtomicU64,
    /// Held for the lock; dropped last.
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("fsync", &self.fsync)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// What [`Spool::open`] found on disk.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// Spooled events (key, wire JSON), oldest first.
    pub events: Vec<(u64, Vec<u8>)>,
    /// One past the largest key found: where new keys continue.
    pub next_key: u64,
    /// Entries that were not events (bad key or value); removed from the store.
    pub skipped: u64,
    /// Set when the store could not be read and was moved aside: says where.
    pub moved_aside: Option<Error>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`. Fails with `invalid_config` naming `spool_dir`
    /// when the directory cannot be created or locked (another client uses it). A store that
    /// cannot be read is moved to `<dir>/corrupt-<unix ms>` and an empty one started
    /// (reported in [`Recovered::moved_aside`]).
    pub fn open(dir: &Path, fsync: SpoolFsync) -> Result<(Spool, Recovered), Error> {
        std::fs::create_dir_all(dir).map_err(|e| dir_error(dir, "cannot be created", &e))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))
            .map_err(|e| dir_error(dir, "cannot hold a lock file", &e))?;
        match fs4::FileExt::try_lock(&lock) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(Error::config(
                    "spool_dir",
                    format!(
                        "{} is in use by another client (one client per spool directory)",
                        dir.display()
                    ),
                ));
            }
            Err(fs4::TryLockError::Error(e)) => return Err(dir_error(dir, "cannot be locked", &e)),
        }
        let store = dir.join(STORE);
        let (keyspace, events, mut recovered) = match read_store(&store, fsync) {
            Ok(found) => found,
            Err(first) => {
                let aside = dir.join(format!("corrupt-{}", unix_millis()));
                std::fs::rename(&store, &aside).map_err(|e| dir_error(dir, "holds an unreadable store", &e))?;
                let (keyspace, events, recovered) = read_store(&store, fsync).map_err(|e| {
                    Error::config(
                        "spool_dir",
                        format!("cannot create a spool store in {}: {e}", store.display()),
                    )
                })?;
                let report = Error::config(
                    "spool_dir",
                    format!(
                        "the spool store {} could not be read ({first}); moved it to {} and started an empty one (its events are not sent)",
                        store.display(),
                        aside.display()
                    ),
                );
                (
                    keyspace,
                    events,
                    Recovered {
                        moved_aside: Some(report),
                        ..recovered
                    },
                )
            }
        };
        recovered.next_key = recovered.events.last().map_or(0, |(k, _)| k + 1);
        let spool = Spool {
            len: AtomicU64::new(recovered.events.len() as u64),
            keyspace,
            events,
            fsync,
            _lock: lock,
        };
        Ok((spool, recovered))
    }

    /// Events in the spool.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    /// Writes one event; under [`SpoolFsync::Always`] also `fsync`s before returning.
    pub fn insert(&self, key: u64, event: &[u8]) -> Result<(), Error> {
        self.events
            .insert(spool_record::encode_key(key), event)
            .map_err(write_error)?;
        if self.fsync == SpoolFsync::Always
            && let Err(e) = self.keyspace.persist(PersistMode::SyncData)
        {
            self.remove([key]);
            return Err(write_error(e));
        }
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes events (delivered, rejected or evicted). A failure is logged: those events
    /// are sent again at the next start and the server drops them as duplicates.
    pub fn remove(&self, keys: impl IntoIterator<Item = u64>) {
        let mut batch = self.keyspace.batch();
        let mut n = 0u64;
        for key in keys {
            batch.remove(&self.events, spool_record::encode_key(key));
            n += 1;
        }
        match batch.commit() {
            Ok(()) => {
                self.len.fetch_sub(n.min(self.len()), Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(events = n, "cannot remove sent events from the spool: {e}"),
        }
    }
}

/// Opens the store and reads every entry; entries that are not events are removed.
fn read_store(store: &Path, fsync: SpoolFsync) -> Result<(Keyspace, PartitionHandle, Recovered), fjall::Error> {
    let keyspace = fjall::Config::new(store)
        .fsync_ms((fsync == SpoolFsync::Interval).then_some(FSYNC_INTERVAL_MS))
        .flush_workers(1)
        .compaction_workers(1)
        .cache_size(4 * 1024 * 1024)
        .max_write_buffer_size(16 * 1024 * 1024)
        .open()?;
    let events = keyspace.open_partition(PARTITION, PartitionCreateOptions::default())?;
    let mut recovered = Recovered::default();
    let mut bad = Vec::new();
    for entry in events.iter() {
        let (key, value) = entry?;
        match spool_record::decode(&key, &value) {
            Ok((seq, event)) => recovered.events.push((seq, event.to_vec())),
            Err(_) => bad.push(key),
        }
    }
    if !bad.is_empty() {
        recovered.skipped = bad.len() as u64;
        let mut batch = keyspace.batch();
        for key in bad {
            batch.remove(&events, key);
        }
        batch.commit()?;
    }
    Ok((keyspace, events, recovered))
}

fn dir_error(dir: &Path, what: &str, e: &std::io::Error) -> Error {
    Error::config("spool_dir", format!("{} {what}: {e}", dir.display()))
}

fn write_error(e: fjall::Error) -> Error {
    Error::Spool(format!("cannot write the event to the spool: {e}"))
}

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
