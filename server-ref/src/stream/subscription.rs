//! Which frames one connection wants, and from which seq on (pure; no I/O).
//!
//! Each subscribed subject remembers the seq its live delivery starts after: the project's
//! seq when it was subscribed, after the replay of the log up to that seq. Frames arrive
//! from the hub in seq order, and frames the connection already got from the log (or that
//! predate the subscription) carry a seq at or below that mark, so every message is sent
//! once and none is skipped. Project-wide messages (`subject` = `None`, e.g.
//! `schema.updated`) are delivered from the first subscribe on.

use std::collections::{HashMap, HashSet};

use crate::store::StreamFrame;

/// A connection's subscriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    /// Subject → the seq after which its live frames are delivered.
    subjects: HashMap<String, u64>,
    /// The seq after which project-wide frames are delivered; `None` before the first
    /// subscribe.
    project_wide_after: Option<u64>,
}

impl Subscriptions {
    /// Whether the connection has subscribed (it then receives project-wide messages).
    pub fn is_active(&self) -> bool {
        self.project_wide_after.is_some()
    }

    /// Number of subscribed subjects.
    pub fn len(&self) -> usize {
        self.subjects.len()
    }

    /// Whether no subject is subscribed.
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// The requested subjects not subscribed yet, without repeats, in request order.
    pub fn new_subjects(&self, requested: &[String]) -> Vec<String> {
        let mut seen = HashSet::new();
        requested
            .iter()
            .filter(|s| !self.subjects.contains_key(*s) && seen.insert(s.as_str()))
            .cloned()
            .collect()
    }

    /// Whether a frame read from the log for a subscribe of `new` subjects is replayed:
    /// frames of those subjects, and project-wide ones only on the connection's first
    /// subscribe (later ones were delivered live already).
    pub fn replays(&self, frame: &StreamFrame, new: &[String]) -> bool {
        match &frame.subject {
            None => !self.is_active(),
            Some(subject) => new.contains(subject),
        }
    }

    /// Subscribes `new` subjects with live delivery after `seq` (and, on the first
    /// subscribe, project-wide messages after `seq`).
    pub fn add(&mut self, new: Vec<String>, seq: u64) {
        self.project_wide_after.get_or_insert(seq);
        for subject in new {
            self.subjects.insert(subject, seq);
        }
    }

    /// Unsubscribes `subjects` (unknown ones are ignored).
    pub fn remove(&mut self, subjects: &[String]) {
        for subject in subjects {
            self.subjects.remove(subject);
        }
    }

    /// Whether a live frame of the connection's project is delivered.
    pub fn wants(&self, frame: &StreamFrame) -> bool {
        match &frame.subject {
            None => self.project_wide_after.is_some_and(|after| frame.seq > after),
            Some(subject) => self.subjects.get(subject).is_some_and(|after| frame.seq > *after),
        }
    }

    /// The subscribed subjects, sorted (the `subscribed` answer lists them).
    pub fn sorted(&self) -> Vec<String> {
        let mut subjects: Vec<String> = self.subjects.keys().cloned().collect();
        subjects.sort();
        subjects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, subject: Option<&str>) -> StreamFrame {
        StreamFrame {
            project_id: 1,
            seq,
            subject: subject.map(str::to_owned),
            frame: format!("{{\"seq\":{seq}}}").into(),
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn nothing_before_the_first_subscribe() {
        let subs = Subscriptions::default();
        assert!(!subs.is_active());
        assert!(!subs.wants(&frame(1, None)));
        assert!(!subs.wants(&frame(1, Some("c1"))));
    }

    #[test]
    fn live_frames_start_after_the_subscribe_seq() {
        let mut subs = Subscriptions::default();
        subs.add(strings(&["c1"]), 10);
        assert!(!subs.wants(&frame(10, Some("c1"))), "already replayed or older");
        assert!(subs.wants(&frame(11, Some("c1"))));
        assert!(!subs.wants(&frame(12, Some("c2"))));
        assert!(!subs.wants(&frame(9, None)));
        assert!(subs.wants(&frame(11, None)));
    }

    #[test]
    fn a_later_subscribe_keeps_earlier_subjects_live() {
        let mut subs = Subscriptions::default();
        subs.add(strings(&["a"]), 5);
        // Frame 7 for `a` is still queued in the hub when `b` subscribes at seq 8.
        let new = subs.new_subjects(&strings(&["a", "b", "b"]));
        assert_eq!(new, strings(&["b"]));
        assert!(subs.replays(&frame(6, Some("b")), &new));
        assert!(!subs.replays(&frame(6, Some("a")), &new), "a is live already");
        assert!(!subs.replays(&frame(6, None), &new), "project-wide is live already");
        subs.add(new, 8);
        assert!(subs.wants(&frame(7, Some("a"))), "not skipped");
        assert!(!subs.wants(&frame(7, Some("b"))), "replayed from the log");
        assert!(subs.wants(&frame(9, Some("b"))));
        assert_eq!(subs.sorted(), strings(&["a", "b"]));
    }

    #[test]
    fn first_subscribe_replays_project_wide_frames() {
        let subs = Subscriptions::default();
        assert!(subs.replays(&frame(3, None), &[]));
    }

    #[test]
    fn unsubscribe_stops_delivery() {
        let mut subs = Subscriptions::default();
        subs.add(strings(&["a", "b"]), 0);
        subs.remove(&strings(&["a", "zzz"]));
        assert_eq!(subs.len(), 1);
        assert!(!subs.wants(&frame(1, Some("a"))));
        assert!(subs.wants(&frame(1, Some("b"))));
        subs.remove(&strings(&["b"]));
        assert!(subs.is_empty());
        assert!(subs.wants(&frame(2, None)), "project-wide messages continue");
    }
}
