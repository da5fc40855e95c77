//! The realtime stream (DESIGN §5): the retained log lives in `store`, the fan-out in
//! [`hub`].

pub mod hub;

pub use hub::{Hub, PublishGuard};
