//! The I/O half: waiting, sockets and threads. Decisions come from the sans-I/O modules.

#[cfg(feature = "native")]
pub mod native;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod wasm;
