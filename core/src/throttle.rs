//! Rate-limited reporting of repeated background failures (sans I/O).
//!
//! A client that cannot reach its server fails the same way many times a second (every
//! entitlement fetch, every stream reconnect). [`ErrorThrottle`] lets the first failure of a
//! kind through, then at most one per window, counting what it held back.

use std::collections::HashMap;

/// Most distinct kinds remembered; past it the oldest state is forgotten.
const MAX_KINDS: usize = 64;

/// Lets one report per kind through per window.
#[derive(Debug, Clone)]
pub struct ErrorThrottle {
    window_ms: u64,
    kinds: HashMap<String, (u64, u64)>,
}

impl ErrorThrottle {
    /// A throttle passing one report per kind every `window_ms` milliseconds.
    pub fn new(window_ms: u64) -> Self {
        ErrorThrottle {
            window_ms,
            kinds: HashMap::new(),
        }
    }

    /// Whether a failure of `kind` at `now` (ms) should be reported. `Some(n)`: report it,
    /// `n` reports of this kind were held back since the last one; `None`: hold it back.
    pub fn allow(&mut self, kind: &str, now: u64) -> Option<u64> {
        if let Some((last, held)) = self.kinds.get_mut(kind) {
            if now.saturating_sub(*last) < self.window_ms {
                *held += 1;
                return None;
            }
            let suppressed = *held;
            *last = now;
            *held = 0;
            return Some(suppressed);
        }
        if self.kinds.len() >= MAX_KINDS {
            self.kinds.clear();
        }
        self.kinds.insert(kind.to_owned(), (now, 0));
        Some(0)
    }

    /// Forgets every kind (the service recovered).
    pub fn clear(&mut self) {
        self.kinds.clear();
    }

    /// Forgets `kind` (it recovered): its next failure is reported at once.
    pub fn reset(&mut self, kind: &str) {
        self.kinds.remove(kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_window_with_the_held_back_count() {
        let mut t = ErrorThrottle::new(1_000);
        assert_eq!(t.allow("network_error", 0), Some(0));
        assert_eq!(t.allow("network_error", 10), None);
        assert_eq!(t.allow("network_error", 999), None);
        assert_eq!(t.allow("timeout", 999), Some(0));
        assert_eq!(t.allow("network_error", 1_000), Some(2));
        t.reset("network_error");
        assert_eq!(t.allow("network_error", 1_001), Some(0));
    }
}
