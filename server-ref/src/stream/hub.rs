//! The in-process fan-out of stream messages: producers append to the log in their
//! transaction, commit, then [`PublishGuard::publish`]; the hub routes each frame to the
//! connections that subscribed to its subject (project-wide frames to every connection of
//! the project), each through its own bounded queue (a [`Route`]).
//!
//! [`Hub::sequence`] serialises "append → commit → publish" across producers, so frames
//! reach every queue in seq order: a client that saw seq N has seen every earlier message
//! for its subjects, which is what makes `since` resumes exact.
//!
//! Routing by subject means a plan change reaching 1,000 customers wakes each subscribed
//! connection once for its own message, instead of waking every connection for every
//! message as one broadcast channel did. A queue that is full when a frame arrives marks its
//! connection as a slow consumer (closed with 1008): memory per connection stays bounded.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex as SyncMutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::{Mutex, MutexGuard, mpsc};

pub use crate::store::StreamFrame;

/// Fan-out of committed stream frames to the open connections.
#[derive(Debug)]
pub struct Hub {
    capacity: usize,
    routes: SyncMutex<Routes>,
    order: Mutex<()>,
}

/// Which connections receive which frames.
#[derive(Debug, Default)]
struct Routes {
    next_id: u64,
    projects: HashMap<i64, ProjectRoutes>,
}

/// One project's connections and their subjects.
#[derive(Debug, Default)]
struct ProjectRoutes {
    /// Every routed connection of the project (they all receive project-wide frames).
    outlets: HashMap<u64, Outlet>,
    /// Subject → the connections subscribed to it.
    subjects: HashMap<String, HashSet<u64>>,
}

/// The hub's end of one connection's queue.
#[derive(Debug)]
struct Outlet {
    tx: mpsc::Sender<Arc<StreamFrame>>,
    /// Frames dropped because the queue was full; non-zero = slow consumer.
    missed: Arc<AtomicU64>,
    /// The subjects it is routed for (to unroute them when it goes).
    subjects: HashSet<String>,
}

impl Outlet {
    fn offer(&self, frame: &Arc<StreamFrame>) {
        if self.missed.load(Ordering::Relaxed) > 0 {
            // Already slow: it is closing, and must not receive frames after a gap.
            self.missed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(frame.clone()) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.missed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Hub {
    /// A hub whose connections may each have `capacity` frames queued; one more makes the
    /// connection a slow consumer (closed with 1008).
    pub fn new(capacity: usize) -> Self {
        Hub {
            capacity: capacity.max(1),
            routes: SyncMutex::new(Routes::default()),
            order: Mutex::new(()),
        }
    }

    /// Take before appending to the stream log and hold until the frames are published.
    pub async fn sequence(&self) -> PublishGuard<'_> {
        PublishGuard {
            hub: self,
            _order: self.order.lock().await,
        }
    }

    /// A queue receiving the project-wide frames of `project_id` published from now on, and
    /// the frames of the subjects later added with [`Route::add`]. Dropping it unroutes it.
    pub fn route(self: &Arc<Self>, project_id: i64) -> Route {
        let (tx, rx) = mpsc::channel(self.capacity);
        let missed = Arc::new(AtomicU64::new(0));
        let mut routes = self.routes();
        let id = routes.next_id;
        routes.next_id += 1;
        let outlet = Outlet {
            tx,
            missed: missed.clone(),
            subjects: HashSet::new(),
        };
        routes
            .projects
            .entry(project_id)
            .or_default()
            .outlets
            .insert(id, outlet);
        Route {
            hub: self.clone(),
            project_id,
            id,
            rx,
            missed,
        }
    }

    /// How many connections are routed.
    pub fn receivers(&self) -> usize {
        self.routes().projects.values().map(|p| p.outlets.len()).sum()
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        // The routes stay consistent whatever panicked while holding them.
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_project(&self, project_id: i64, f: impl FnOnce(&mut ProjectRoutes)) {
        if let Some(project) = self.routes().projects.get_mut(&project_id) {
            f(project);
        }
    }
}

/// One connection's frames: those of its subjects and the project-wide ones, in seq order.
#[derive(Debug)]
pub struct Route {
    hub: Arc<Hub>,
    project_id: i64,
    id: u64,
    rx: mpsc::Receiver<Arc<StreamFrame>>,
    missed: Arc<AtomicU64>,
}

/// Why [`Route::recv`] has no frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// The queue was full when frames arrived: this many were dropped (a slow consumer).
    Lagged(u64),
    /// The hub is gone (the server is stopping).
    Closed,
}

impl Route {
    /// Also routes the frames of `subjects` here from now on.
    pub fn add(&self, subjects: &[String]) {
        let id = self.id;
        self.hub.with_project(self.project_id, |project| {
            for subject in subjects {
                project.subjects.entry(subject.clone()).or_default().insert(id);
            }
            if let Some(outlet) = project.outlets.get_mut(&id) {
                outlet.subjects.extend(subjects.iter().cloned());
            }
        });
    }

    /// Stops routing the frames of `subjects` here (unknown ones are ignored).
    pub fn remove(&self, subjects: &[String]) {
        let id = self.id;
        self.hub.with_project(self.project_id, |project| {
            for subject in subjects {
                unroute(project, subject, id);
            }
            if let Some(outlet) = project.outlets.get_mut(&id) {
                for subject in subjects {
                    outlet.subjects.remove(subject);
                }
            }
        });
    }

    /// The next frame; [`RouteError::Lagged`] as soon as the hub dropped one for this
    /// connection (the frames still queued are not delivered after a gap).
    pub async fn recv(&mut self) -> Result<Arc<StreamFrame>, RouteError> {
        let missed = self.missed.load(Ordering::Relaxed);
        if missed > 0 {
            return Err(RouteError::Lagged(missed));
        }
        self.rx.recv().await.ok_or(RouteError::Closed)
    }

    /// A frame already queued, without waiting: `None` when the queue is empty or after a
    /// gap (which the next [`Route::recv`] reports).
    pub fn try_recv(&mut self) -> Option<Arc<StreamFrame>> {
        if self.missed.load(Ordering::Relaxed) > 0 {
            return None;
        }
        self.rx.try_recv().ok()
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        let mut routes = self.hub.routes();
        let Some(project) = routes.projects.get_mut(&self.project_id) else {
            return;
        };
        if let Some(outlet) = project.outlets.remove(&self.id) {
            for subject in &outlet.subjects {
                unroute(project, subject, self.id);
            }
        }
        if project.outlets.is_empty() {
            routes.projects.remove(&self.project_id);
        }
    }
}

fn unroute(project: &mut ProjectRoutes, subject: &str, id: u64) {
    if let Some(ids) = project.subjects.get_mut(subject) {
        ids.remove(&id);
        if ids.is_empty() {
            project.subjects.remove(subject);
        }
    }
}

/// Holds the hub's publish order; see [`Hub::sequence`].
#[derive(Debug)]
pub struct PublishGuard<'a> {
    hub: &'a Hub,
    _order: MutexGuard<'a, ()>,
}

impl PublishGuard<'_> {
    /// Routes committed frames, in the order given (their seq order), and releases the
    /// order. A frame nobody is subscribed to goes nowhere (it stays in the log).
    pub fn publish(self, frames: Vec<StreamFrame>) {
        let routes = self.hub.routes();
        for frame in frames {
            let Some(project) = routes.projects.get(&frame.project_id) else {
                continue;
            };
            let frame = Arc::new(frame);
            match &frame.subject {
                None => project.outlets.values().for_each(|outlet| outlet.offer(&frame)),
                Some(subject) => {
                    for id in project.subjects.get(subject).into_iter().flatten() {
                        if let Some(outlet) = project.outlets.get(id) {
                            outlet.offer(&frame);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(project_id: i64, seq: u64, subject: Option<&str>) -> StreamFrame {
        StreamFrame {
            project_id,
            seq,
            subject: subject.map(str::to_owned),
            frame: format!("{{\"seq\":{seq}}}").into(),
        }
    }

    fn queued(route: &mut Route) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Ok(frame) = route.rx.try_recv() {
            seqs.push(frame.seq);
        }
        seqs
    }

    fn subjects(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn frames_go_only_to_their_subjects_connections() {
        let hub = Arc::new(Hub::new(16));
        let mut a = hub.route(1);
        let mut b = hub.route(1);
        let mut other_project = hub.route(2);
        a.add(&subjects(&["c1", "c2"]));
        b.add(&subjects(&["c2"]));
        other_project.add(&subjects(&["c1"]));
        hub.sequence().await.publish(vec![
            frame(1, 1, Some("c1")),
            frame(1, 2, Some("c2")),
            frame(1, 3, Some("c3")),
            frame(1, 4, None),
        ]);
        assert_eq!(queued(&mut a), [1, 2, 4]);
        assert_eq!(queued(&mut b), [2, 4]);
        assert_eq!(queued(&mut other_project), Vec::<u64>::new());
        b.remove(&subjects(&["c2", "unknown"]));
        hub.sequence().await.publish(vec![frame(1, 5, Some("c2"))]);
        assert_eq!(queued(&mut a), [5]);
        assert_eq!(queued(&mut b), Vec::<u64>::new());
    }

    #[tokio::test]
    async fn a_dropped_route_is_forgotten() {
        let hub = Arc::new(Hub::new(4));
        let a = hub.route(1);
        a.add(&subjects(&["c1"]));
        assert_eq!(hub.receivers(), 1);
        drop(a);
        assert_eq!(hub.receivers(), 0);
        assert!(hub.routes().projects.is_empty(), "no empty project or subject left");
        hub.sequence().await.publish(vec![frame(1, 1, Some("c1"))]);
    }

    #[tokio::test]
    async fn a_full_queue_makes_a_slow_consumer() {
        let hub = Arc::new(Hub::new(2));
        let mut slow = hub.route(1);
        let mut other = hub.route(1);
        slow.add(&subjects(&["c1"]));
        other.add(&subjects(&["c2"]));
        let mut frames: Vec<StreamFrame> = (1..=4).map(|seq| frame(1, seq, Some("c1"))).collect();
        frames.push(frame(1, 5, Some("c2")));
        hub.sequence().await.publish(frames);
        assert_eq!(slow.recv().await, Err(RouteError::Lagged(2)));
        assert_eq!(queued(&mut other), [5], "another connection's queue is unaffected");
        // Once slow, nothing more is queued (the connection closes rather than skip).
        hub.sequence().await.publish(vec![frame(1, 5, None)]);
        assert_eq!(slow.recv().await, Err(RouteError::Lagged(3)));
    }
}
