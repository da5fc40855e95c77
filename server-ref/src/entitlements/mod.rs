//! Entitlements (DESIGN §4): the catalog of features, plans and customers, usage counted
//! from the stored events, and the answers of `GET /v1/customers/{subject}/entitlements`.
//!
//! - [`catalog`]: definitions and their validation (shared by HTTP, CLI and
//!   `meterline.toml`); [`change`]: applying a change with its stream messages;
//! - [`admin`]: the `/v1/admin/{features,plans,customers}` endpoints and the CLI commands;
//! - [`customers`]: `GET /v1/customers/{subject}/entitlements|usage`; [`answer`] builds
//!   them; [`period`]: the period math;
//! - [`metering`]: usage counting and threshold messages inside the event writer;
//! - [`declarative`]: the `[catalog]` of `meterline.toml`, applied at start;
//! - [`relay`]: publishing the messages of changes the CLI made while the server runs.

pub mod admin;
pub mod answer;
pub mod catalog;
pub mod change;
pub mod customers;
pub mod declarative;
pub mod metering;
pub mod period;
pub mod relay;

use axum::{Router, routing::get};
use serde::Deserialize;

use crate::app::AppState;

/// Largest admin body (a plan with its grants, a customer with overrides).
pub const MAX_ADMIN_BODY_BYTES: usize = 1024 * 1024;

/// `[entitlements]` section of `meterline.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EntitlementsConfig {
    /// `ttl_ms` of every entitlement answer: how long an SDK may serve it from its cache.
    pub ttl_ms: u64,
    /// How often the server looks for stream messages of catalog changes made by the CLI
    /// (another process) and publishes them to its stream subscribers.
    pub relay_poll_ms: u64,
}

impl Default for EntitlementsConfig {
    fn default() -> Self {
        EntitlementsConfig {
            ttl_ms: 60_000,
            relay_poll_ms: 1_000,
        }
    }
}

impl EntitlementsConfig {
    /// Checks value ranges; errors name the key.
    pub fn check(&self) -> Result<(), String> {
        if self.relay_poll_ms == 0 {
            return Err("`entitlements.relay_poll_ms` must be greater than 0".to_owned());
        }
        Ok(())
    }
}

/// The entitlement routes: the catalog admin API and the customer answers.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/customers/{subject}/entitlements", get(customers::get_entitlements))
        .route("/v1/customers/{subject}/usage", get(customers::get_usage))
        .merge(admin::routes())
}
