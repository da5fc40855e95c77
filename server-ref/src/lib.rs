//! meterline's reference server: CloudEvents ingest with exactly-once storage on SQLite,
//! the schema and key admin API, customer tokens and rate limits, the realtime stream,
//! entitlements with usage counted at ingest, and health/metrics endpoints (DESIGN §3–§8).
//!
//! The binary (`src/main.rs`) wires [`config`] → [`store`] → [`app::router`] → serve;
//! the modules are public so tests and benchmarks can reuse them.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let config: meterline_server::config::Config = "[server]\nbind = \"127.0.0.1:0\"".parse()?;
//! meterline_server::app::serve(config).await
//! # }
//! ```

pub mod admin;
pub mod app;
pub mod auth;
pub mod body;
pub mod browser;
pub mod cli;
pub mod config;
pub mod entitlements;
pub mod error;
pub mod events;
pub mod health;
pub mod ingest;
pub mod listener;
pub mod nodes;
pub mod ratelimit;
pub mod schemas;
pub mod settings;
pub mod store;
pub mod stream;
