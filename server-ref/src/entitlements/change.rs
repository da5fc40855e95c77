//! A catalog change — create, replace or delete a feature, plan or customer — parsed and
//! validated the same way for the admin API, the CLI and the `[catalog]` of
//! `meterline.toml`, then applied by [`apply`] in one transaction together with the
//! `entitlements.updated` messages of every customer whose answer it changes.

use axum::http::StatusCode;
use serde_json::Value;

use super::catalog::{
    CustomerDef, FeatureDef, Invalid, PlanDef, check_key, check_subject, parse_customer, parse_feature, parse_plan,
};
use crate::{
    error::ApiError,
    store::{Storage, StoreError, StreamFrame},
    stream::Hub,
};

/// The three catalog collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// `/v1/admin/features/{key}`.
    Features,
    /// `/v1/admin/plans/{key}`.
    Plans,
    /// `/v1/admin/customers/{subject}`.
    Customers,
}

impl Collection {
    /// The collection's name in URLs, list bodies and `meterline.toml` (`features` …).
    pub fn name(self) -> &'static str {
        match self {
            Collection::Features => "features",
            Collection::Plans => "plans",
            Collection::Customers => "customers",
        }
    }

    /// One item, in messages (`feature` …).
    pub fn singular(self) -> &'static str {
        match self {
            Collection::Features => "feature",
            Collection::Plans => "plan",
            Collection::Customers => "customer",
        }
    }

    /// The field naming an item in its views (`key` or `subject`).
    pub fn id_field(self) -> &'static str {
        match self {
            Collection::Customers => "subject",
            Collection::Features | Collection::Plans => "key",
        }
    }

    /// Checks an item's key or subject (`400 invalid_key`).
    pub fn check_id(self, id: &str) -> Result<(), Invalid> {
        match self {
            Collection::Customers => check_subject(id, "the customer subject"),
            Collection::Features => check_key(id, "the feature key"),
            Collection::Plans => check_key(id, "the plan key"),
        }
    }

    /// A create-or-replace of item `id` with `body`; `path` prefixes field names in errors
    /// (empty for HTTP and the CLI, `catalog.plans.pro` for `meterline.toml`).
    pub fn put(self, id: &str, body: &Value, path: &str) -> Result<Change, Invalid> {
        self.check_id(id)?;
        let id = id.to_owned();
        Ok(match self {
            Collection::Features => Change::PutFeature(id, parse_feature(body, path)?),
            Collection::Plans => Change::PutPlan(id, parse_plan(body, path)?),
            Collection::Customers => Change::PutCustomer(id, parse_customer(body, path)?),
        })
    }

    /// A delete of item `id`.
    pub fn delete(self, id: &str) -> Result<Change, Invalid> {
        self.check_id(id)?;
        Ok(Change::Delete(self, id.to_owned()))
    }
}

/// A catalog change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Create or replace a feature.
    PutFeature(String, FeatureDef),
    /// Create or replace a plan.
    PutPlan(String, PlanDef),
    /// Create or replace a customer.
    PutCustomer(String, CustomerDef),
    /// Delete an item.
    Delete(Collection, String),
}

/// What a change did; puts carry the stored view (the definition plus its key or subject).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A new item.
    Created(Value),
    /// An item replaced by a different definition.
    Replaced(Value),
    /// The stored definition was identical: nothing was written, no message sent.
    Unchanged(Value),
    /// The item was deleted.
    Deleted,
    /// There was nothing to delete.
    NotFound,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A reference to a feature or plan that does not exist, or a delete that would leave
    /// one behind (`422 unknown_reference`); the message names the reference and where.
    #[error("{0}")]
    Reference(String),
    /// A grant whose fields do not suit its feature's kind (`422 kind_mismatch`).
    #[error("{0}")]
    KindMismatch(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CatalogError {
    /// The admin API's error code for it.
    pub fn code(&self) -> &'static str {
        match self {
            CatalogError::Reference(_) => "unknown_reference",
            CatalogError::KindMismatch(_) => "kind_mismatch",
            CatalogError::Store(_) => "internal_error",
        }
    }
}

impl From<sqlx::Error> for CatalogError {
    fn from(e: sqlx::Error) -> Self {
        CatalogError::Store(StoreError::Database(e))
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let code = e.code();
        match e {
            CatalogError::Reference(m) | CatalogError::KindMismatch(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, m)
            }
            CatalogError::Store(e) if e.is_contention() => {
                tracing::warn!(error = %e, "a catalog change lost every retry to concurrent writers");
                ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "the catalog change kept losing to concurrent writers; nothing was changed, retry shortly",
                    )
                }
            }
            CatalogError::Store(e) => ApiError::internal("storing the catalog change failed", e),
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.code, e.message)
    }
}

/// A change's outcome and the stream frames committed with it.
#[derive(Debug)]
pub struct Applied {
    /// What happened.
    pub outcome: Outcome,
    /// `entitlements.updated` frames, in seq order.
    pub frames: Vec<StreamFrame>,
}

/// Where the `entitlements.updated` messages of a change go.
#[derive(Debug, Clone, Copy)]
pub enum Publish<'a> {
    /// This process's hub (the server): publish after the commit, in seq order.
    Hub(&'a Hub),
    /// Another process (the CLI): mark the messages for the running server to relay.
    Relay,
}

/// Applies `change` to project `project_id`: one transaction that also appends an
/// `entitlements.updated` message (answers computed with `ttl_ms`) for every customer whose
/// answer changes, then publishes them as `publish` says.
pub async fn apply(
    store: &Storage,
    publish: Publish<'_>,
    project_id: i64,
    change: Change,
    ttl_ms: u64,
) -> Result<Outcome, CatalogError> {
    match publish {
        Publish::Hub(hub) => {
            let order = hub.sequence().await;
            let applied = store.apply_catalog_change(project_id, change, ttl_ms, false).await?;
            // On PostgreSQL every node's stream follower publishes them, this one's included.
            if store.publishes_locally() {
                order.publish(applied.frames);
            }
            Ok(applied.outcome)
        }
        Publish::Relay => Ok(store
            .apply_catalog_change(project_id, change, ttl_ms, true)
            .await?
            .outcome),
    }
}
