//! The command line: `serve` (the default) and the `admin` commands, which work directly
//! on the database (also while a server runs on it).

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use meterline_core::key::KeyKind;

use crate::{
    admin::create_key,
    app::create_project,
    config::{Config, ConfigError, LogFormat},
    entitlements::{
        admin::{CatalogCommand, CommandError, run_command},
        change::Collection,
    },
    settings::{Settings, SettingsChange, apply_from_cli},
    store::{Storage, StoreError},
};

/// meterline's reference server.
#[derive(Debug, Parser)]
#[command(name = "meterline-server", version, about)]
pub struct Cli {
    /// Config file; a missing file is fine unless named explicitly.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Database URL (overrides `storage.database_url`), e.g. sqlite://meterline.db or
    /// postgres://user:password@host:5432/meterline.
    #[arg(long, global = true, value_name = "URL", env = "METERLINE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// PostgreSQL: most pooled connections (overrides `storage.max_connections`).
    #[arg(long, global = true, value_name = "N")]
    pub max_connections: Option<u32>,
    /// PostgreSQL: statement timeout in ms, 0 = none (overrides `storage.statement_timeout_ms`).
    #[arg(long, global = true, value_name = "MS")]
    pub statement_timeout_ms: Option<u64>,
    /// Address to listen on (overrides `server.bind`); port 0 picks a free one.
    #[arg(long, global = true, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Log format (overrides `log.format`); the level comes from RUST_LOG (default info).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to do; `serve` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Manage projects and keys directly in the database.
    Admin {
        /// The admin command.
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// `admin …` commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Projects.
    Project {
        /// The project command.
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// API keys.
    Keys {
        /// The keys command.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Entitlement features (`PUT /v1/admin/features/{key}` …).
    Features {
        /// The catalog command.
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Entitlement plans (`PUT /v1/admin/plans/{key}` …).
    Plans {
        /// The catalog command.
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Entitlement customers (`PUT /v1/admin/customers/{subject}` …).
    Customers {
        /// The catalog command.
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Project settings (`GET`/`PUT /v1/admin/settings`).
    Settings {
        /// The settings command.
        #[command(subcommand)]
        command: SettingsCommand,
    },
}

/// `admin settings …`.
#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Print a project's settings as JSON.
    Show {
        /// Project name.
        #[arg(long)]
        project: String,
    },
    /// Change the settings given (the others keep their values) and print them all as JSON.
    /// A running server applies them within `auth.key_cache_secs`.
    Set {
        /// Project name.
        #[arg(long)]
        project: String,
        /// Reject events whose type has no schema.
        #[arg(long, value_name = "BOOL")]
        strict_types: Option<bool>,
        /// Event types a publishable key with a customer token may send, comma-separated
        /// (the whole list; "" for none).
        #[arg(long, value_name = "TYPES")]
        client_event_types: Option<String>,
        /// Browser origins served CORS, comma-separated, as scheme://host[:port] (the whole
        /// list; "" for none).
        #[arg(long, value_name = "ORIGINS")]
        allowed_origins: Option<String>,
    },
}

/// A comma-separated list of the command line; blanks dropped.
fn list_arg(text: Option<String>) -> Option<Vec<String>> {
    text.map(|text| {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// `admin project …`.
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project and print its secret and admin keys (shown this once).
    Create {
        /// Name: 1–64 letters, digits, `-`, `_` or `.`.
        name: String,
    },
}

/// Key kinds on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// `ml_sk_…`.
    Secret,
    /// `ml_pk_…`.
    Publishable,
    /// `ml_ak_…`.
    Admin,
}

impl From<KindArg> for KeyKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Secret => KeyKind::Secret,
            KindArg::Publishable => KeyKind::Publishable,
            KindArg::Admin => KeyKind::Admin,
        }
    }
}

/// `admin keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (shown this once).
    Create {
        /// Project name.
        #[arg(long)]
        project: String,
        /// Kind of key.
        #[arg(long, value_enum)]
        kind: KindArg,
    },
    /// Revoke a key by id. A running server notices within `auth.revocation_poll_ms`: it stops
    /// accepting the key (and customer tokens it signed) and closes its streams.
    Revoke {
        /// The key id (the part after `ml_sk_`, before the next `_`).
        id: String,
    },
    /// List a project's keys (ids only, never secrets).
    List {
        /// Project name.
        #[arg(long)]
        project: String,
    },
}

impl Cli {
    /// The effective configuration: defaults, then the config file, then flags.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let (path, required) = match &self.config {
            Some(path) => (path.clone(), true),
            None => (PathBuf::from("meterline.toml"), false),
        };
        let mut config = Config::load(&path, required)?;
        if let Some(url) = &self.database_url {
            config.storage.database_url = url.clone();
        }
        if let Some(n) = self.max_connections {
            config.storage.max_connections = n;
        }
        if let Some(ms) = self.statement_timeout_ms {
            config.storage.statement_timeout_ms = ms;
        }
        if let Some(bind) = self.bind {
            config.server.bind = bind;
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
        config.check()?;
        Ok(config)
    }
}

/// A failed admin command.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input (unknown project, invalid name …).
    #[error("{0}")]
    Usage(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A catalog command failed.
    #[error(transparent)]
    Catalog(#[from] CommandError),
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs an `admin` command against the configured database, printing to stdout.
pub async fn run_admin(config: &Config, command: AdminCommand) -> Result<(), AdminError> {
    use std::io::Write;
    let store = Storage::open_for_cli(&config.storage).await?;
    let result = async {
        let mut out = std::io::stdout().lock();
        match command {
            AdminCommand::Project {
                command: ProjectCommand::Create { name },
            } => {
                check_project_name(&name)?;
                drop(out);
                create_project(&store, &name).await?.print()?;
            }
            AdminCommand::Keys {
                command: KeysCommand::Create { project, kind },
            } => {
                let project = find_project(&store, &project).await?;
                let kind = KeyKind::from(kind);
                let (key, record) = create_key(&store, project.id, kind).await?;
                writeln!(out, "id: {}", record.id)?;
                writeln!(out, "{} key: {key}", kind.as_str())?;
            }
            AdminCommand::Keys {
                command: KeysCommand::Revoke { id },
            } => match store.revoke_key(None, &id).await? {
                Some(record) => writeln!(out, "revoked: {} ({})", record.id, record.kind.as_str())?,
                None => return Err(AdminError::Usage(format!("no key with id {id:?}"))),
            },
            AdminCommand::Keys {
                command: KeysCommand::List { project },
            } => {
                let project = find_project(&store, &project).await?;
                for key in store.keys(project.id).await? {
                    let status = key
                        .revoked_at
                        .as_deref()
                        .map_or_else(|| "active".to_owned(), |t| format!("revoked {t}"));
                    writeln!(out, "{}\t{}\t{}\t{status}", key.id, key.kind.as_str(), key.created_at)?;
                }
            }
            AdminCommand::Features { command } => {
                run_command(&store, config, Collection::Features, command, &mut out).await?;
            }
            AdminCommand::Plans { command } => {
                run_command(&store, config, Collection::Plans, command, &mut out).await?
            }
            AdminCommand::Customers { command } => {
                run_command(&store, config, Collection::Customers, command, &mut out).await?;
            }
            AdminCommand::Settings {
                command: SettingsCommand::Show { project },
            } => {
                let project = find_project(&store, &project).await?;
                print_settings(&mut out, &Settings::from(project))?;
            }
            AdminCommand::Settings {
                command:
                    SettingsCommand::Set {
                        project,
                        strict_types,
                        client_event_types,
                        allowed_origins,
                    },
            } => {
                let project = find_project(&store, &project).await?;
                let change = SettingsChange {
                    strict_types,
                    client_event_types: list_arg(client_event_types),
                    allowed_origins: list_arg(allowed_origins),
                };
                let update = change.check("").map_err(|e| {
                    AdminError::Usage(
                        e.replace("`client_event_types", "`--client-event-types")
                            .replace("`allowed_origins", "`--allowed-origins"),
                    )
                })?;
                let settings = apply_from_cli(&store, project.id, &update)
                    .await
                    .map_err(AdminError::Usage)?;
                print_settings(&mut out, &settings)?;
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

fn print_settings(out: &mut impl std::io::Write, settings: &Settings) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(settings).map_err(std::io::Error::other)?;
    writeln!(out, "{text}")
}

async fn find_project(store: &Storage, name: &str) -> Result<crate::store::Project, AdminError> {
    store
        .project_by_name(name)
        .await?
        .ok_or_else(|| AdminError::Usage(format!("no project named {name:?}")))
}

fn check_project_name(name: &str) -> Result<(), AdminError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AdminError::Usage(format!(
            "invalid project name {name:?}: use 1–64 letters, digits, `-`, `_` or `.`"
        )))
    }
}
