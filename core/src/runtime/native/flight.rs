//! The waiting half of single flight: concurrent `entitlement()` misses for one subject
//! share one HTTP request.
//!
//! Who starts the fetch and who waits is the core's [`Flights`](crate::entitlement_cache::Flights)
//! (here holding an `Arc<Flight>` per subject); a [`Flight`] is what the waiters wait on.
//! The worker ends the wait — with the result, or with a timeout after `entitlement_timeout`
//! while the request goes on to fill the cache — so waiters need no timer of their own: a
//! blocking caller waits on a condvar, an async one on a [`Notify`] (which works under any
//! executor).

use std::{
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

pub(crate) use crate::entitlement_cache::Landing;
use crate::entitlement_cache::{self as core_flight, Join};

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

/// The flights under way: the core's registry, with this runtime's waiting handle.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    by_subject: Mutex<core_flight::Flights<Arc<Flight>>>,
}

impl Flights {
    /// The flight for `subject`, and whether the caller created it (and must start it).
    pub fn join(&self, subject: &str) -> (Arc<Flight>, bool) {
        match lock(&self.by_subject).join(subject, Arc::default) {
            Join::Start(flight) => (flight, true),
            Join::Wait(flight) => (flight, false),
        }
    }

    /// Removes `flight` (only if it is still the one registered for `subject`).
    pub fn finish(&self, subject: &str, flight: &Arc<Flight>) {
        lock(&self.by_subject).finish(subject, |f| Arc::ptr_eq(f, flight));
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
