//! The persisted outbox: the browser's counterpart of the native disk spool. Every event the
//! outbox accepts is written to IndexedDB soon after `track()` returns and removed once the
//! server answered for it; what a page left behind is sent by the next page of the origin
//! that starts with the same API key. The decisions are the core's, as for the spool: the
//! outbox says which events are accepted ([`Pushed`](crate::outbox::Pushed)), which leave
//! the store ([`Answer::leaves_store`](crate::outbox::Answer::leaves_store)), which stay for
//! the next start ([`OutboxSettings::keep_undelivered`](crate::outbox::OutboxSettings)),
//! which are evicted or discarded, and how many the queue takes back on replay, in what order
//! ([`Outbox::restore`](crate::outbox::Outbox::restore)); a stored entry is checked with
//! [`spool_record::decode`]. Here is only the IndexedDB I/O.
//!
//! Layout: database `meterline.outbox.<key id>`, object store `events`, key
//! `[session, seq]`, value the event's wire JSON. `session` names one page load (its start
//! time in Unix ms, zero-padded, then random digits: sessions sort oldest first), `seq` is
//! the outbox's sequence number.
//!
//! Timing: `track()` stays synchronous; what it accepted is written in one transaction from
//! a microtask, once the script that called it has returned (one transaction for a loop of
//! `track()` calls), and is durable when that transaction commits — a few milliseconds. A
//! tab that crashes in that window loses those events (the page's memory is all they were
//! in); a tab that is closed normally sends them by `fetch(keepalive)` (`lifecycle.rs`).
//!
//! Several tabs: each page holds the Web Lock `meterline.session.<session>` for its life and
//! writes only while it holds it, so a session's lock is free once its page is gone. At
//! start a page asks for the lock of every other session in the store: a gone page's is
//! granted at once, a live page's when that page goes. Whoever is granted it — one page at a
//! time — takes the session's events over: queues them (each id once) and moves them under
//! its own session in one transaction, then lets the lock go; the next page granted it finds
//! nothing left. A live tab's events are never taken. The server drops an id it already has,
//! so an event sent by a page that was gone before it could remove it is stored once.

use std::{
    cell::{Cell, RefCell},
    collections::{BTreeMap, BTreeSet, HashSet},
    rc::Rc,
};

use js_sys::{Array, Promise};
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use wasm_bindgen_futures::future_to_promise;
use web_sys::{IdbDatabase, IdbFactory, IdbKeyRange, IdbTransactionMode};

use super::{Inner, host, idb, sender};
use crate::{error::Error, spool_record};

/// Where a page's events are persisted, and what waits to be written.
pub(crate) struct Persist {
    /// `indexedDB` and `navigator.locks`; `None` where the host has not both (Node, a
    /// browser without them) or `persist` is off: nothing is persisted.
    host: Option<(IdbFactory, JsValue)>,
    /// This page load's session.
    session: String,
    key_id: String,
    /// Open once this page holds its session lock: writes wait until then.
    db: RefCell<Option<IdbDatabase>>,
    pending: RefCell<Pending>,
    /// Sequence numbers of this session's events the store holds (committed).
    stored: RefCell<BTreeSet<u64>>,
    write_queued: Cell<bool>,
    /// The store failed once: nothing more is written (reported once).
    failed: Cell<bool>,
}

/// What the next transaction writes, in this order.
#[derive(Default)]
struct Pending {
    /// Events to store under this session, by sequence number.
    puts: BTreeMap<u64, String>,
    /// Settled ranges `(first_seq, count)` of this session to remove.
    forget: Vec<(u64, u64)>,
    /// Sessions of gone pages whose events this page took over.
    orphans: Vec<String>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.forget.is_empty() && self.orphans.is_empty()
    }
}

/// The largest key number (`seq` is below 2^53).
const LAST: f64 = f64::INFINITY;

fn session_lock(session: &str) -> String {
    format!("meterline.session.{session}")
}

impl Persist {
    /// The persisted outbox of a client with API key id `key_id`; with `enabled` false (the
    /// `persist` option) nothing is written to IndexedDB and no other tab's events are taken
    /// over, as where the host has no IndexedDB.
    pub fn new(key_id: &str, enabled: bool) -> Persist {
        let random = (host::jitter() * 1e12) as u64;
        Persist {
            host: if enabled { idb::available() } else { None },
            session: format!("{:013}-{random:012}", host::wall_ms()),
            key_id: key_id.to_owned(),
            db: RefCell::new(None),
            pending: RefCell::new(Pending::default()),
            stored: RefCell::new(BTreeSet::new()),
            write_queued: Cell::new(false),
            failed: Cell::new(false),
        }
    }

    /// Whether events are persisted here (the outbox then keeps undelivered batches for the
    /// next page load instead of dropping them).
    pub fn available(&self) -> bool {
        self.host.is_some()
    }

    fn active(&self) -> bool {
        self.host.is_some() && !self.failed.get()
    }

    /// Events persisted or about to be (`stats().spool_length`): this page's, taken-over
    /// ones included.
    pub fn length(&self) -> u64 {
        (self.stored.borrow().len() + self.pending.borrow().puts.len()) as u64
    }

    fn database(&self) -> String {
        format!("meterline.outbox.{}", self.key_id)
    }
}

/// The event `track()` just queued as `seq` (the outbox's newest) is to be persisted.
pub(crate) fn remember(inner: &Rc<Inner>, seq: u64) {
    let persist = &inner.persist;
    if !persist.active() {
        return;
    }
    let Some(text) = inner
        .outbox
        .borrow()
        .newest()
        .and_then(|event| std::str::from_utf8(event).ok().map(str::to_owned))
    else {
        return;
    };
    persist.pending.borrow_mut().puts.insert(seq, text);
    schedule(inner);
}

/// Events `first_seq..first_seq + count` left the store (settled, evicted, discarded).
pub(crate) fn forget(inner: &Rc<Inner>, first_seq: u64, count: u64) {
    let persist = &inner.persist;
    if !persist.active() || count == 0 {
        return;
    }
    let mut pending = persist.pending.borrow_mut();
    let unwritten: Vec<u64> = pending
        .puts
        .range(first_seq..first_seq + count)
        .map(|(&s, _)| s)
        .collect();
    for seq in unwritten {
        pending.puts.remove(&seq);
    }
    pending.forget.push((first_seq, count));
    drop(pending);
    schedule(inner);
}

/// Writes what is pending from a microtask (after the running script: one transaction for
/// a burst of `track()` calls), once the store is open.
fn schedule(inner: &Rc<Inner>) {
    let persist = &inner.persist;
    if persist.write_queued.get() || persist.db.borrow().is_none() {
        return;
    }
    persist.write_queued.set(true);
    let inner = inner.clone();
    wasm_bindgen_futures::spawn_local(async move {
        inner.persist.write_queued.set(false);
        write(&inner).await;
    });
}

/// One readwrite transaction: the new events, then the removals; resolves once committed.
async fn write(inner: &Rc<Inner>) {
    let persist = &inner.persist;
    let Some(db) = persist.db.borrow().clone() else { return };
    let pending = std::mem::take(&mut *persist.pending.borrow_mut());
    if pending.is_empty() || !persist.active() {
        return;
    }
    let session = persist.session.as_str();
    let written = async {
        let tx = db
            .transaction_with_str_and_mode(idb::STORE, IdbTransactionMode::Readwrite)
            .map_err(|e| host::describe(&e))?;
        let store = tx.object_store(idb::STORE).map_err(|e| host::describe(&e))?;
        for (seq, text) in &pending.puts {
            store
                .put_with_key(&JsValue::from_str(text), &idb::key(session, *seq as f64))
                .map_err(|e| host::describe(&e))?;
        }
        let ranges = pending
            .forget
            .iter()
            .map(|&(first, count)| (session, first as f64, (first + count - 1) as f64))
            .chain(pending.orphans.iter().map(|s| (s.as_str(), 0.0, LAST)));
        for (owner, low, high) in ranges {
            let range =
                IdbKeyRange::bound(&idb::key(owner, low), &idb::key(owner, high)).map_err(|e| host::describe(&e))?;
            store.delete(&range).map_err(|e| host::describe(&e))?;
        }
        idb::next_event(&tx, "complete", &["error", "abort"]).await
    };
    match written.await {
        Ok(()) => {
            let mut stored = persist.stored.borrow_mut();
            stored.extend(pending.puts.keys());
            for &(first, count) in &pending.forget {
                let gone: Vec<u64> = stored.range(first..first + count).copied().collect();
                for seq in gone {
                    stored.remove(&seq);
                }
            }
        }
        Err(why) => fail_with(inner, &format!("a write failed ({why})"), pending.puts.keys().copied()),
    }
}

/// The store cannot be used: stop persisting, report it once.
fn fail(inner: &Rc<Inner>, why: &str) {
    fail_with(inner, why, std::iter::empty());
}

/// [`fail`] after a write that did not store `unwritten`. The outbox stops keeping what it
/// gives up on (it is dropped and counted from now on), and counts as dropped the events
/// it already gave up on as kept that the store never took — the unwritten ones and those
/// still waiting to be written, unless they left the store since. So every event is
/// delivered, kept in the store, or counted as dropped.
fn fail_with(inner: &Rc<Inner>, why: &str, unwritten: impl IntoIterator<Item = u64>) {
    if inner.persist.failed.replace(true) {
        return;
    }
    let pending = std::mem::take(&mut *inner.persist.pending.borrow_mut());
    let left = |seq: u64| {
        pending
            .forget
            .iter()
            .any(|&(first, count)| (first..first + count).contains(&seq))
    };
    let unstored: Vec<u64> = unwritten
        .into_iter()
        .chain(pending.puts.keys().copied())
        .filter(|&seq| !left(seq))
        .collect();
    let lost = inner.outbox.borrow_mut().store_failed(unstored);
    inner.persist.stored.borrow_mut().clear();
    inner.report(Error::Spool(format!(
        "IndexedDB {:?}: {why}; this page's events are no longer persisted: those queued are \
         still sent, a batch given up on is dropped (counted in `dropped`){}",
        inner.persist.database(),
        if lost > 0 {
            format!("; {lost} given up on before they were stored are dropped")
        } else {
            String::new()
        }
    )));
}

/// Opens the store, takes this page's session lock, writes what was tracked meanwhile, then
/// watches the other sessions in the store to take over each one's events once its page
/// is gone.
pub(crate) fn start(inner: &Rc<Inner>) {
    let Some((factory, locks)) = inner.persist.host.clone() else {
        return;
    };
    let inner = inner.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let started = async {
            open(&inner, &factory, &locks).await?;
            schedule(&inner);
            watch_others(&inner, &locks).await
        };
        if let Err(why) = started.await {
            fail(&inner, &why);
        }
    });
}

/// Opens the database and waits until this page holds its session lock (held for the
/// page's life: the callback's promise never settles).
async fn open(inner: &Rc<Inner>, factory: &IdbFactory, locks: &JsValue) -> Result<(), String> {
    let db = idb::open(factory, &inner.persist.database()).await?;
    let (granted, held) = futures_channel::oneshot::channel::<()>();
    let hold = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
        let _ = granted.send(());
        Promise::new(&mut |_, _| {}).into()
    });
    // Its promise settles when the lock is let go: never, while the page lives.
    let _released = idb::request_lock(
        locks,
        &session_lock(&inner.persist.session),
        false,
        hold.unchecked_ref(),
    )?;
    held.await
        .map_err(|_| "the session lock was never granted".to_owned())?;
    *inner.persist.db.borrow_mut() = Some(db);
    Ok(())
}

/// Asks for the lock of every other session in the store. A gone page's lock is granted at
/// once, a live page's when that page is gone; this page then holds it while it takes over
/// the session's events ([`take_over`]), so two pages never take the same events.
async fn watch_others(inner: &Rc<Inner>, locks: &JsValue) -> Result<(), String> {
    let Some(db) = inner.persist.db.borrow().clone() else {
        return Ok(());
    };
    let store = db
        .transaction_with_str(idb::STORE)
        .and_then(|tx| tx.object_store(idb::STORE))
        .map_err(|e| host::describe(&e))?;
    let keys = idb::done(&store.get_all_keys().map_err(|e| host::describe(&e))?).await?;
    // Keys come sorted: one run per session, oldest session first.
    let mut sessions: Vec<String> = Array::from(&keys)
        .iter()
        .filter_map(|key| Array::from(&key).get(0).as_string())
        .filter(|s| *s != inner.persist.session)
        .collect();
    sessions.dedup();
    for session in sessions {
        let weak = Rc::downgrade(inner);
        let name = session_lock(&session);
        let take = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
            future_to_promise(async move {
                if let Some(inner) = weak.upgrade()
                    && let Err(why) = take_over(&inner, &session).await
                {
                    fail(&inner, &format!("taking over stored events failed ({why})"));
                }
                Ok(JsValue::UNDEFINED)
            })
            .into()
        });
        // Settles once the take-over is done and the lock let go.
        let _released = idb::request_lock(locks, &name, false, take.unchecked_ref())?;
    }
    Ok(())
}

/// Takes over the events of `session`, whose page is gone (this page holds its lock): queues
/// them in their order, and moves them under this session in one transaction that removes
/// theirs. After shutdown they are left for another page.
async fn take_over(inner: &Rc<Inner>, session: &str) -> Result<(), String> {
    let persist = &inner.persist;
    let Some(db) = persist.db.borrow().clone() else {
        return Ok(());
    };
    if inner.closed.get() || !persist.active() {
        return Ok(());
    }
    let store = db
        .transaction_with_str(idb::STORE)
        .and_then(|tx| tx.object_store(idb::STORE))
        .map_err(|e| host::describe(&e))?;
    let range =
        IdbKeyRange::bound(&idb::key(session, 0.0), &idb::key(session, LAST)).map_err(|e| host::describe(&e))?;
    let stored = idb::done(&store.get_all_with_key(&range).map_err(|e| host::describe(&e))?).await?;
    let stored: Vec<String> = Array::from(&stored).iter().filter_map(|v| v.as_string()).collect();
    if stored.is_empty() {
        return Ok(());
    }
    restore(inner, stored);
    persist.pending.borrow_mut().orphans.push(session.to_owned());
    write(inner).await;
    sender::wake(inner);
    Ok(())
}

/// Queues stored events through the outbox's bound (what it refuses or evicts is counted
/// as dropped), once per id; entries that are not events are dropped and counted. While
/// the user has opted out nothing is queued: they are discarded (counted as opted out).
fn restore(inner: &Rc<Inner>, stored: Vec<String>) {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
    }
    if inner.opted_out.get() {
        let discarded = stored.len() as u64;
        inner.opted_out_events.set(inner.opted_out_events.get() + discarded);
        return;
    }
    let mut seen = HashSet::new();
    let mut unreadable = 0;
    let mut queued = Vec::new();
    let mut evicted = Vec::new();
    {
        let mut outbox = inner.outbox.borrow_mut();
        for text in stored {
            let id = match spool_record::decode(&spool_record::encode_key(0), text.as_bytes()) {
                Ok((_, event)) => serde_json::from_slice::<Id<'_>>(event).map(|i| i.id.into_owned()),
                Err(_) => {
                    unreadable += 1;
                    continue;
                }
            };
            if !id.is_ok_and(|id| seen.insert(id)) {
                continue;
            }
            if let Some((seq, gone)) = outbox.restore(text.clone().into_bytes()) {
                queued.push((seq, text));
                evicted.extend(gone);
            }
        }
        outbox.count_dropped(unreadable);
    }
    inner.persist.pending.borrow_mut().puts.extend(queued);
    for seq in evicted {
        forget(inner, seq, 1);
    }
}
