//! Single flight: concurrent `entitlement()` misses for one subject share one HTTP request.
//!
//! The first caller registers a [`Flight`] under the subject and spawns the fetch on the
//! worker; later callers find it and wait on it. The worker ends the wait — with the result,
//! or with a timeout after `entitlement_timeout` while the request goes on to fill the cache —
//! so waiters need no timer of their own: a blocking caller waits on a condvar, an async one
//! on a [`Notify`] (which works under any executor).

use std::{
    collections::HashMap,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use crate::entitlement::Entitlements;

/// How a flight ended for its waiters.
#[derive(Debug, Clone)]
pub(crate) enum Landing {
    /// The server answered; the body when it sent one (`None` for 304).
    Answered(Option<Arc<Entitlements>>),
    /// No answer for the waiters (`server unreachable: …`, `timeout after 1s`, …).
    Failed(String),
}

/// One fetch that callers wait on.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    landing: Mutex<Option<Landing>>,
    landed: Condvar,
    landed_async: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Flight {
    /// Ends the wait (the first landing wins; later ones are ignored).
    pub fn land(&self, landing: Landing) {
        let mut slot = lock(&self.landing);
        if slot.is_none() {
            *slot = Some(landing);
            drop(slot);
            self.landed.notify_all();
            self.landed_async.notify_waiters();
        }
    }

    /// Blocks until the flight lands or `limit` passes (`None`).
    pub fn wait(&self, limit: Duration) -> Option<Landing> {
        let deadline = Instant::now() + limit;
        let mut slot = lock(&self.landing);
        loop {
            if let Some(landing) = &*slot {
                return Some(landing.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            slot = self
                .landed
                .wait_timeout(slot, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until the flight lands, without blocking the executor.
    pub async fn wait_async(&self) -> Landing {
        loop {
            let notified = self.landed_async.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(landing) = &*lock(&self.landing) {
                return landing.clone();
            }
            notified.await;
        }
    }
}

/// The flights under way, by subject.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    by_subject: Mutex<HashMap<String, Arc<Flight>>>,
}

impl Flights {
    /// The flight for `subject`, and whether the caller created it (and must start it).
    pub fn join(&self, subject: &str) -> (Arc<Flight>, bool) {
        let mut map = lock(&self.by_subject);
        if let Some(flight) = map.get(subject) {
            return (flight.clone(), false);
        }
        let flight = Arc::new(Flight::default());
        map.insert(subject.to_owned(), flight.clone());
        (flight, true)
    }

    /// Removes `flight` (only if it is still the one registered for `subject`).
    pub fn finish(&self, subject: &str, flight: &Arc<Flight>) {
        let mut map = lock(&self.by_subject);
        if map.get(subject).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            map.remove(subject);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_flight_per_subject_until_finished() {
        let flights = Flights::default();
        let (a, created) = flights.join("c1");
        assert!(created);
        let (b, created) = flights.join("c1");
        assert!(!created && Arc::ptr_eq(&a, &b));
        flights.finish("c1", &a);
        assert!(flights.join("c1").1);
    }

    #[test]
    fn waiters_see_the_first_landing() {
        let flight = Arc::new(Flight::default());
        assert!(flight.wait(Duration::from_millis(10)).is_none());
        let f = flight.clone();
        let t = std::thread::spawn(move || f.wait(Duration::from_secs(5)));
        flight.land(Landing::Failed("timeout after 1s".into()));
        flight.land(Landing::Answered(None));
        assert!(matches!(t.join().unwrap(), Some(Landing::Failed(r)) if r == "timeout after 1s"));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert!(matches!(rt.block_on(flight.wait_async()), Landing::Failed(_)));
    }
}
