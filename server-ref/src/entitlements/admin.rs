//! The catalog admin API — `PUT`/`GET`/`DELETE /v1/admin/{features,plans,customers}/{id}`
//! and `GET /v1/admin/{features,plans,customers}` — and the same through
//! `meterline-server admin features|plans|customers …`. Both parse and apply changes
//! through [`super::change`], so they validate alike.

use std::{io::Write, path::PathBuf};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::HeaderMap,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use clap::Subcommand;
use serde_json::{Value, json};

use super::{
    catalog::{Invalid, parse_json},
    change::{self, CatalogError, Collection, Outcome, Publish},
};
use crate::{
    app::AppState,
    auth::{Caller, Scope},
    config::Config,
    error::ApiError,
    store::Storage,
};

/// Items per list page when `limit` is not given, and the most a page holds.
pub const MAX_PAGE: u32 = 1000;

/// The admin routes of the three collections.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for collection in [Collection::Features, Collection::Plans, Collection::Customers] {
        let name = collection.name();
        router = router
            .route(
                &format!("/v1/admin/{name}"),
                get(move |state: State<AppState>, caller: Caller, query| list(collection, state, caller, query)),
            )
            .route(
                &format!("/v1/admin/{name}/{{id}}"),
                get(move |state: State<AppState>, caller: Caller, id: Path<String>| {
                    get_item(collection, state, caller, id)
                })
                .put(
                    move |state: State<AppState>, caller: Caller, id: Path<String>, headers: HeaderMap, body: Body| {
                        put_item(collection, state, caller, id, headers, body)
                    },
                )
                .delete(move |state: State<AppState>, caller: Caller, id: Path<String>| {
                    delete_item(collection, state, caller, id)
                }),
            );
    }
    router
}

/// `GET /v1/admin/{collection}?limit=&cursor=` → `{"<collection>":[…],"next_cursor":…}`,
/// ordered by key (subject); `cursor` is the previous page's `next_cursor`.
async fn list(
    collection: Collection,
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Admin)?;
    let Query(params) =
        query.map_err(|e| ApiError::invalid_parameter(format!("the query string is malformed: {}", e.body_text())))?;
    let (mut limit, mut cursor) = (MAX_PAGE, None);
    for (name, value) in &params {
        match name.as_str() {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| {
                        ApiError::invalid_parameter(format!("`limit` must be an integer from 1 to {MAX_PAGE}"))
                    })?;
            }
            "cursor" => cursor = Some(value.as_str()),
            other => {
                return Err(ApiError::invalid_parameter(format!(
                    "unknown parameter `{}`; use limit or cursor",
                    other.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    let mut items = state
        .store
        .catalog_list(caller.project_id, collection, cursor, limit + 1)
        .await
        .map_err(|e| ApiError::internal("reading the catalog failed", e))?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|item| item[collection.id_field()].clone())
    } else {
        None
    };
    Ok(Json(json!({ collection.name(): items, "next_cursor": next_cursor })))
}

fn not_found(collection: Collection, id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no {} {:?} in this project",
        collection.singular(),
        id.chars().take(256).collect::<String>()
    ))
}

/// `GET /v1/admin/{collection}/{id}`: the item's view; `404 not_found` when absent.
async fn get_item(
    collection: Collection,
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Admin)?;
    collection.check_id(&id)?;
    let item = state
        .store
        .catalog_get(caller.project_id, collection, &id)
        .await
        .map_err(|e| ApiError::internal("reading the catalog failed", e))?;
    item.map(Json).ok_or_else(|| not_found(collection, &id))
}

/// `PUT /v1/admin/{collection}/{id}`: `201` with the view when new, `200` when replaced or
/// identical (then nothing changes: no version bump, no stream message); `400` for bad
/// JSON, fields or keys; `422` for unknown references and grants unfit for their feature.
async fn put_item(
    collection: Collection,
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let body = crate::body::read_limited(&headers, body, super::MAX_ADMIN_BODY_BYTES).await?;
    let change = collection.put(&id, &parse_json(&body)?, "")?;
    let publish = Publish::Hub(&state.hub);
    let ttl_ms = state.config.entitlements.ttl_ms;
    let (status, view) = match change::apply(&state.store, publish, caller.project_id, change, ttl_ms).await? {
        Outcome::Created(view) => (StatusCode::CREATED, view),
        Outcome::Replaced(view) | Outcome::Unchanged(view) => (StatusCode::OK, view),
        other => {
            return Err(ApiError::internal(
                "storing the catalog change failed",
                format!("{other:?}"),
            ));
        }
    };
    Ok((status, Json(view)).into_response())
}

/// `DELETE /v1/admin/{collection}/{id}`: `204`; `404 not_found` when absent; `422
/// unknown_reference` while a plan or customer still names it.
async fn delete_item(
    collection: Collection,
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Admin)?;
    let change = collection.delete(&id)?;
    let publish = Publish::Hub(&state.hub);
    let ttl_ms = state.config.entitlements.ttl_ms;
    match change::apply(&state.store, publish, caller.project_id, change, ttl_ms).await? {
        Outcome::NotFound => Err(not_found(collection, &id)),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// `admin features|plans|customers …`: one collection's command.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Create or replace an item from a JSON body (the same as the HTTP PUT).
    Put {
        /// The feature or plan key, or the customer subject.
        id: String,
        /// The JSON body; or use --file.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        body: Option<String>,
        /// Read the JSON body from this file (`-` for stdin).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Project name.
        #[arg(long)]
        project: String,
    },
    /// Print one item as JSON.
    Get {
        /// The feature or plan key, or the customer subject.
        id: String,
        /// Project name.
        #[arg(long)]
        project: String,
    },
    /// Print every item, one JSON object per line, ordered by key.
    List {
        /// Project name.
        #[arg(long)]
        project: String,
    },
    /// Delete an item.
    Delete {
        /// The feature or plan key, or the customer subject.
        id: String,
        /// Project name.
        #[arg(long)]
        project: String,
    },
}

/// Why a catalog command failed; the message says what and where.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

impl From<Invalid> for CommandError {
    fn from(e: Invalid) -> Self {
        CommandError(format!("{}: {}", e.code, e.message))
    }
}

impl From<CatalogError> for CommandError {
    fn from(e: CatalogError) -> Self {
        CommandError(format!("{}: {e}", e.code()))
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> CommandError {
    CommandError(format!("{what}: {e}"))
}

/// Runs a catalog command against the configured database, printing to `out`. The change's
/// stream messages are marked for a running server to publish (`entitlements.relay_poll_ms`).
pub async fn run_command(
    store: &Storage,
    config: &Config,
    collection: Collection,
    command: CatalogCommand,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let project_name = match &command {
        CatalogCommand::Put { project, .. }
        | CatalogCommand::Get { project, .. }
        | CatalogCommand::List { project }
        | CatalogCommand::Delete { project, .. } => project.clone(),
    };
    let project = store
        .project_by_name(&project_name)
        .await
        .map_err(|e| failed("reading the project failed", e))?
        .ok_or_else(|| CommandError(format!("no project named {project_name:?}")))?;
    let io = |e: std::io::Error| failed("writing the output failed", e);
    let ttl_ms = config.entitlements.ttl_ms;
    let what = collection.singular();
    match command {
        CatalogCommand::Put { id, body, file, .. } => {
            let text = match (body, file) {
                (Some(body), _) => body.into_bytes(),
                (None, Some(path)) if path.as_os_str() == "-" => {
                    let mut buf = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                        .map_err(|e| failed("reading stdin failed", e))?;
                    buf
                }
                (None, Some(path)) => {
                    std::fs::read(&path).map_err(|e| failed(&format!("cannot read {}", path.display()), e))?
                }
                (None, None) => return Err(CommandError("give the JSON body as an argument or with --file".into())),
            };
            let change = collection.put(&id, &parse_json(&text)?, "")?;
            let outcome = change::apply(store, Publish::Relay, project.id, change, ttl_ms).await;
            let (word, view) = match outcome? {
                Outcome::Created(view) => ("created", view),
                Outcome::Replaced(view) => ("replaced", view),
                Outcome::Unchanged(view) => ("unchanged", view),
                other => return Err(CommandError(format!("unexpected outcome {other:?}"))),
            };
            writeln!(out, "{word} {what} {id:?}").map_err(io)?;
            writeln!(out, "{view}").map_err(io)?;
        }
        CatalogCommand::Get { id, .. } => {
            collection.check_id(&id)?;
            let item = store
                .catalog_get(project.id, collection, &id)
                .await
                .map_err(|e| failed("reading the catalog failed", e))?
                .ok_or_else(|| CommandError(format!("no {what} {id:?} in project {project_name:?}")))?;
            writeln!(out, "{item}").map_err(io)?;
        }
        CatalogCommand::List { .. } => {
            let mut cursor: Option<String> = None;
            loop {
                let page = store
                    .catalog_list(project.id, collection, cursor.as_deref(), MAX_PAGE)
                    .await
                    .map_err(|e| failed("reading the catalog failed", e))?;
                for item in &page {
                    writeln!(out, "{item}").map_err(io)?;
                }
                match page.last() {
                    Some(last) if page.len() == MAX_PAGE as usize => {
                        cursor = last[collection.id_field()].as_str().map(str::to_owned);
                    }
                    _ => break,
                }
            }
        }
        CatalogCommand::Delete { id, .. } => {
            let change = collection.delete(&id)?;
            match change::apply(store, Publish::Relay, project.id, change, ttl_ms).await {
                Ok(Outcome::NotFound) => {
                    return Err(CommandError(format!("no {what} {id:?} in project {project_name:?}")));
                }
                Ok(_) => writeln!(out, "deleted {what} {id:?}").map_err(io)?,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
