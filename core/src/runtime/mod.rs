//! The I/O half: waiting, sockets and threads. Decisions come from the sans-I/O modules.

pub mod native;
