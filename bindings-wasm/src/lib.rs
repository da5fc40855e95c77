//! `meterline-web`'s Rust half: the core's wasm32 runtime
//! (`meterline_core::runtime::wasm`) as JavaScript values and Promises. Every rule and
//! decision is the core's; this crate converts options ([`config`]), errors ([`error`]) and
//! calls ([`client`]). The ES module around it (`js/`) builds the error classes and checks
//! what JSON cannot carry, as the Node package does.
//!
//! Builds for `wasm32-unknown-unknown` only; on other targets the crate is empty (so the
//! workspace's host builds and lints pass over it).
#![cfg(target_arch = "wasm32")]

pub mod client;
pub mod config;
pub mod error;
