//! The `openhearing` command line: run the server, check configuration, manage
//! hearings through the admin API, manage admin keys and verify audit trails
//! directly on the database.
//!
//! One file per concern: this one holds the clap definitions, the errors and the
//! dispatch; [`parse`] the value parsers, [`client`] the admin API's HTTP client,
//! [`print`] the human output, [`local`] the commands that work on the data folder
//! directly (admin keys, audit verification, archives, configuration check).

mod client;
mod local;
mod parse;
mod print;

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::api::admin::dto::StateRequest;
use crate::config::{Config, ConfigError, DEFAULT_TOML};
use crate::model::{HearingState, HearingUpdate, NewHearing, NewParticipant, Site};
use crate::store::StoreError;
use print::{
    print_audit, print_hearing, print_issued, print_links, print_list, print_removed, show,
};

pub use client::{client_from_options, default_server_url, ApiClient, ClientTls};
pub use parse::{
    parse_hearing_id, parse_key_name, parse_participant_id, parse_participant_spec,
    parse_site_spec, parse_state, parse_time,
};

#[derive(Debug, Parser)]
#[command(
    name = "openhearing",
    version,
    about = "Open-source server for online court hearings"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Configuration file merged over the built-in defaults.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Create and run hearings through a running server's admin API.
    Hearing(HearingArgs),
    /// Create and list admin API keys (directly on the database).
    AdminKey(AdminKeyArgs),
    /// Check a hearing's audit trail (directly on the database).
    Audit(AuditArgs),
    /// Verify, describe or render a hearing's recorded archive (a folder under the
    /// recordings folder).
    #[command(subcommand)]
    Archive(ArchiveCommand),
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Check every file, hash, journal link and the manifest's signature. Exit 0 when
    /// everything checks, 1 naming each problem, 2 when the archive cannot be read.
    Verify {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The server's archive public key (`<data.dir>/archive-signing.pub`); without
        /// it the signature is checked against the key recorded in the archive only.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
    },
    /// Participants, tracks, durations, gaps, media health (per pair: the share of
    /// in-session time ok, and the outages) and verification status.
    Info {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
    },
    /// One playable MP4 of the hearing: a grid of everyone's video with name and role,
    /// all audio mixed, gaps shown as such.
    Render {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[arg(short = 'o', long = "output", value_name = "FILE.mp4")]
        output: PathBuf,
        /// Output width and height in pixels.
        #[arg(long, default_value_t = 1280)]
        width: u32,
        #[arg(long, default_value_t = 720)]
        height: u32,
        /// Burn a strip under the grid showing, over time, who could see and hear
        /// whom: per pair and kind ok (green) / degraded (amber) / lost (red), from
        /// the journal's media_health entries.
        #[arg(long)]
        health_strip: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the built-in defaults + FILE + OPENHEARING_* environment overrides.
    Check {
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print the built-in default configuration (with every key explained).
    Default,
}

#[derive(Debug, Args)]
pub struct HearingArgs {
    #[command(flatten)]
    pub api: ApiOptions,
    #[command(subcommand)]
    pub command: HearingCommand,
}

/// How to reach the admin API.
#[derive(Debug, Clone, Default, Args)]
pub struct ApiOptions {
    /// Local configuration used to derive the server URL, the API key and the
    /// certificate to trust (default: built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Server base URL, e.g. https://127.0.0.1:8443 (default: from the configuration).
    #[arg(
        long,
        global = true,
        env = "OPENHEARING_SERVER_URL",
        value_name = "URL"
    )]
    pub server: Option<String>,
    /// Admin API key: the one printed at the server's first start, or one from
    /// `openhearing admin-key create` (default: auth.admin_api_key of the configuration).
    #[arg(
        long,
        global = true,
        env = "OPENHEARING_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// Do not verify the server's TLS certificate.
    #[arg(long, global = true)]
    pub insecure: bool,
}

#[derive(Debug, Subcommand)]
pub enum HearingCommand {
    /// Create a hearing and print every participant's join link.
    Create {
        /// Case number, e.g. "HS-123/2026".
        #[arg(long = "case", value_name = "CASE_NUMBER")]
        case_number: String,
        #[arg(long)]
        title: String,
        /// When the hearing starts (RFC 3339, e.g. 2026-12-01T08:00:00+07:00).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        scheduled_at: Option<DateTime<Utc>>,
        /// A site as NAME=KIND (KIND: central, detention, office, court, remote);
        /// repeat for each. Sites only participants name are `remote`.
        #[arg(long = "site", value_name = "NAME=KIND", value_parser = parse_site_spec)]
        sites: Vec<Site>,
        /// A participant as NAME:ROLE:SITE (the site may contain ':'); repeat for each.
        #[arg(long = "participant", value_name = "NAME:ROLE:SITE", required = true, value_parser = parse_participant_spec)]
        participants: Vec<NewParticipant>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List hearings, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one hearing: state, sites, participants and state history.
    Get {
        #[arg(value_parser = parse_hearing_id)]
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Change a hearing's title, case number or scheduled start.
    Update {
        #[arg(value_parser = parse_hearing_id)]
        id: Uuid,
        #[arg(long)]
        title: Option<String>,
        #[arg(long, value_name = "CASE_NUMBER")]
        case_number: Option<String>,
        /// RFC 3339, e.g. 2026-12-01T08:00:00+07:00.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        scheduled_at: Option<DateTime<Utc>>,
        #[arg(long)]
        json: bool,
    },
    /// Move a hearing through its lifecycle: open, in_session, suspended (needs
    /// --reason), adjourned (needs --reason and --adjourned-to), closed.
    State {
        #[arg(value_parser = parse_hearing_id)]
        id: Uuid,
        #[arg(value_parser = parse_state)]
        state: HearingState,
        #[arg(long)]
        reason: Option<String>,
        /// The new date of an adjourned hearing (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        adjourned_to: Option<DateTime<Utc>>,
        #[arg(long)]
        json: bool,
    },
    /// Invite a participant to a hearing and print their join link.
    AddParticipant {
        #[arg(value_parser = parse_hearing_id)]
        id: Uuid,
        /// NAME:ROLE:SITE (the site may contain ':').
        #[arg(long, value_name = "NAME:ROLE:SITE", value_parser = parse_participant_spec)]
        participant: NewParticipant,
        #[arg(long)]
        json: bool,
    },
    /// Remove a participant: they are disconnected and their link stops working.
    RemoveParticipant {
        #[arg(value_parser = parse_hearing_id)]
        id: Uuid,
        #[arg(value_parser = parse_participant_id)]
        participant_id: Uuid,
        /// Why (shown to them and audited).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a participant's join link and print a new one.
    RevokeLink {
        #[arg(value_parser = parse_hearing_id)]
        id: Uuid,
        #[arg(value_parser = parse_participant_id)]
        participant_id: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Print fresh join links for every participant of a hearing.
    Links {
        #[arg(value_parser = parse_hearing_id)]
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Show a hearing's audit trail and whether its hash chain is intact (exit 1 if not).
    Audit {
        #[arg(value_parser = parse_hearing_id)]
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AdminKeyArgs {
    /// Configuration naming the database (default: built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AdminKeyCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminKeyCommand {
    /// Create a new admin API key and print it once (only its hash is stored).
    Create {
        /// A name for the key (letters, digits, `.`, `_`, `-`); audit entries of
        /// its changes say `admin:<name>`.
        #[arg(long, value_parser = parse_key_name)]
        name: String,
    },
    /// List the stored admin keys (names and creation times; keys are not kept).
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a hearing's audit chain: exit 0 when intact, 1 naming the first entry
    /// that was modified, removed or reordered. Works with the server running or
    /// stopped.
    Verify {
        #[arg(long, value_name = "ID", value_parser = parse_hearing_id)]
        hearing: Uuid,
        /// Configuration naming the database (default: built-in defaults).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Logging(#[from] crate::logging::LoggingError),
    #[error("participant `{spec}`: {reason}")]
    BadParticipant { spec: String, reason: String },
    #[error("invalid server URL `{0}`: it must start with http:// or https://")]
    BadServerUrl(String),
    #[error("no admin API key: pass --api-key KEY or set OPENHEARING_API_KEY (the key the server printed at its first start, or one made with `openhearing admin-key create --name NAME`)")]
    NoApiKey,
    #[error("nothing to change: give --title, --case-number or --scheduled-at")]
    NothingToUpdate,
    #[error("cannot read the server certificate {}: {source}", path.display())]
    ReadCert {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot reach the server at {url} (is it running, and is --server right?): {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the server refused the request ({status}, {code}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the server ({status}): {detail}")]
    UnexpectedResponse { status: u16, detail: String },
    #[error("no database at {}: start the server once with this configuration, or pass the server's --config", path.display())]
    NoDatabase { path: PathBuf },
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("an admin key named `{0}` exists already; choose another name")]
    KeyNameTaken(String),
    #[error("no hearing with id {id} in the database {database}")]
    HearingNotFound { id: Uuid, database: String },
    #[error("audit chain of hearing {hearing} is broken: {problem}")]
    AuditBroken { hearing: Uuid, problem: String },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("server failed: {0}")]
    Serve(Box<dyn std::error::Error + Send + Sync>),
}

async fn run_hearing(args: HearingArgs) -> Result<(), CliError> {
    let client = client_from_options(&args.api)?;
    match args.command {
        HearingCommand::Create {
            case_number,
            title,
            scheduled_at,
            sites,
            participants,
            json,
        } => {
            let new = NewHearing {
                scheduled_at,
                recording: None,
                sites,
                case_number,
                title,
                participants,
            };
            show(&client.create_hearing(&new).await?, json, print_links)
        }
        HearingCommand::List { json } => {
            show(&client.list_hearings().await?, json, |l| print_list(l))
        }
        HearingCommand::Get { id, json } => {
            show(&client.get_hearing(id).await?, json, print_hearing)
        }
        HearingCommand::Update {
            id,
            title,
            case_number,
            scheduled_at,
            json,
        } => {
            if title.is_none() && case_number.is_none() && scheduled_at.is_none() {
                return Err(CliError::NothingToUpdate);
            }
            let update = HearingUpdate {
                case_number,
                title,
                scheduled_at,
            };
            show(
                &client.update_hearing(id, &update).await?,
                json,
                print_hearing,
            )
        }
        HearingCommand::State {
            id,
            state,
            reason,
            adjourned_to,
            json,
        } => {
            let req = StateRequest {
                state,
                reason,
                adjourned_to,
            };
            show(&client.set_state(id, &req).await?, json, print_hearing)
        }
        HearingCommand::AddParticipant {
            id,
            participant,
            json,
        } => show(
            &client.add_participant(id, &participant).await?,
            json,
            print_issued,
        ),
        HearingCommand::RemoveParticipant {
            id,
            participant_id,
            reason,
            json,
        } => {
            let p = client
                .remove_participant(id, participant_id, reason.as_deref())
                .await?;
            show(&p, json, print_removed)
        }
        HearingCommand::RevokeLink {
            id,
            participant_id,
            json,
        } => show(
            &client.revoke_link(id, participant_id).await?,
            json,
            print_issued,
        ),
        HearingCommand::Links { id, json } => {
            show(&client.hearing_links(id).await?, json, print_links)
        }
        HearingCommand::Audit { id, json } => {
            let trail = client.audit(id).await?;
            show(&trail, json, print_audit)?;
            match trail.verification.problem {
                None => Ok(()),
                Some(problem) => Err(CliError::AuditBroken {
                    hearing: id,
                    problem,
                }),
            }
        }
    }
}

async fn serve(config_path: Option<PathBuf>) -> Result<(), CliError> {
    let config = Config::load(config_path.as_deref())?;
    let _log = crate::logging::init(&config.log.settings())?;
    crate::server::serve(config).await.map_err(CliError::Serve)
}

fn report(e: &CliError) {
    eprintln!("error: {e}");
    // Print the causes a message does not already include.
    let mut shown = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !shown.contains(&text) {
            eprintln!("  caused by: {text}");
            shown = text;
        }
        source = s.source();
    }
}

/// Runs the command line; the binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    run(cli)
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Config(ConfigCommand::Default) => {
            print!("{DEFAULT_TOML}");
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Check { file }) => local::config_check(file.as_deref()),
        Command::Serve { config } => block_on(serve(config)),
        Command::Hearing(args) => block_on(run_hearing(args)),
        Command::AdminKey(args) => block_on(local::run_admin_key(args)),
        Command::Audit(AuditArgs {
            command: AuditCommand::Verify { hearing, config },
        }) => block_on(local::audit_verify(hearing, config.as_deref())),
        Command::Archive(cmd) => local::run_archive(cmd),
    }
}

fn block_on(fut: impl std::future::Future<Output = Result<(), CliError>>) -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
        .and_then(|rt| rt.block_on(fut));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_parses_commands() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "openhearing",
            "hearing",
            "create",
            "--case",
            "HS-1/2026",
            "--title",
            "T",
            "--participant",
            "A:judge:R1",
            "--participant",
            "B:observer:R:2",
            "--json",
            "--server",
            "http://x:1",
        ])
        .unwrap();
        let Command::Hearing(HearingArgs {
            api,
            command: HearingCommand::Create {
                participants, json, ..
            },
        }) = cli.command
        else {
            panic!("wrong command");
        };
        assert!(json);
        assert_eq!(api.server.as_deref(), Some("http://x:1"));
        assert_eq!(participants.len(), 2);
        assert_eq!(participants[1].site, "R:2");

        let e = Cli::try_parse_from([
            "openhearing",
            "hearing",
            "create",
            "--case",
            "c",
            "--title",
            "t",
            "--participant",
            "bad",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("participant `bad`"), "{e}");
    }
}
