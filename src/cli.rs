//! The `openhearing` command line: run the server, check configuration, manage
//! hearings through the admin API, manage admin keys and verify audit trails
//! directly on the database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::api::admin::{
    AuditTrail, CreateHearingRequest, CreateParticipantRequest, ErrorBody, HearingDetail,
    HearingLinks, HearingList, IssuedLink, StateRequest,
};
use crate::auth::{admin_key_sha256, generate_admin_key};
use crate::config::{Config, ConfigError, DEFAULT_TOML};
use crate::model::{
    Hearing, HearingState, HearingUpdate, NewHearing, NewParticipant, Participant, Role, Site,
    SiteKind,
};
use crate::store::{SqliteStore, Store, StoreError};

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

/// Parses a hearing id (a UUID).
pub fn parse_hearing_id(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text.trim()).map_err(|_| {
        format!("`{text}` is not a hearing id; expected a UUID like 67e55044-10b1-426f-9247-bb680e5fe0c8 (see `openhearing hearing list`)")
    })
}

/// Parses a participant id (a UUID).
pub fn parse_participant_id(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text.trim()).map_err(|_| {
        format!(
            "`{text}` is not a participant id; expected a UUID (see `openhearing hearing get ID`)"
        )
    })
}

/// Parses an RFC 3339 date and time.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("`{text}` is not an RFC 3339 date and time like 2026-12-01T08:00:00+07:00: {e}")
        })
}

/// Parses a hearing state's wire name.
pub fn parse_state(text: &str) -> Result<HearingState, String> {
    text.trim().parse().map_err(|e| format!("{e}"))
}

/// Parses `NAME=KIND`, splitting at the last `=`.
pub fn parse_site_spec(spec: &str) -> Result<Site, String> {
    let Some((name, kind)) = spec.rsplit_once('=') else {
        return Err(format!(
            "site `{spec}`: expected NAME=KIND, e.g. \"Phòng xử án 1=central\""
        ));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("site `{spec}`: the name (before '=') is empty"));
    }
    let kind: SiteKind = kind
        .trim()
        .parse()
        .map_err(|e| format!("site `{spec}`: {e}"))?;
    Ok(Site {
        name: name.to_owned(),
        kind,
    })
}

/// Checks an admin key name: 1-64 letters, digits, `.`, `_` or `-`.
pub fn parse_key_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err("the key name must be 1 to 64 characters long".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "`{name}`: a key name may contain only letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(name.to_owned())
}

/// Parses `NAME:ROLE:SITE`, splitting at the first two colons only.
pub fn parse_participant_spec(spec: &str) -> Result<NewParticipant, CliError> {
    let bad = |reason: String| CliError::BadParticipant {
        spec: spec.to_owned(),
        reason,
    };
    let mut parts = spec.splitn(3, ':');
    let (Some(name), Some(role), Some(site)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(
            "expected NAME:ROLE:SITE, e.g. \"Nguyễn Văn A:presiding_judge:Phòng xử án 1\"".into(),
        ));
    };
    let (name, role, site) = (name.trim(), role.trim(), site.trim());
    if name.is_empty() {
        return Err(bad("the name (before the first ':') is empty".into()));
    }
    if site.is_empty() {
        return Err(bad("the site (after the second ':') is empty".into()));
    }
    let role: Role = role
        .parse()
        .map_err(|e: openhearing_signaling::protocol::UnknownRole| bad(e.to_string()))?;
    Ok(NewParticipant {
        name: name.to_owned(),
        role,
        site: site.to_owned(),
        party: None,
    })
}

/// How the client treats the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTls {
    /// Public roots only.
    Default,
    /// Public roots plus this PEM certificate (the server's self-signed one).
    Trust(PathBuf),
    /// No verification at all.
    Insecure,
}

/// A client of the admin API.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    api_key: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    pub fn new(base_url: &str, api_key: &str, tls: &ClientTls) -> Result<Self, CliError> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 9 {
            return Err(CliError::BadServerUrl(base_url.to_owned()));
        }
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("openhearing-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(30));
        match tls {
            ClientTls::Default => {}
            ClientTls::Insecure => builder = builder.danger_accept_invalid_certs(true),
            ClientTls::Trust(path) => {
                let pem = std::fs::read(path).map_err(|source| CliError::ReadCert {
                    path: path.clone(),
                    source,
                })?;
                let cert = reqwest::Certificate::from_pem(&pem).map_err(CliError::Client)?;
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(ApiClient {
            base,
            api_key: api_key.trim().to_owned(),
            http: builder.build().map_err(CliError::Client)?,
        })
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, CliError> {
        let response = request
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|source| CliError::Request {
                url: url.to_owned(),
                source,
            })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|source| CliError::Request {
            url: url.to_owned(),
            source,
        })?;
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(|e| CliError::UnexpectedResponse {
                status: status.as_u16(),
                detail: e.to_string(),
            })
        } else if let Ok(body) = serde_json::from_slice::<ErrorBody>(&bytes) {
            Err(CliError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            })
        } else {
            Err(CliError::UnexpectedResponse {
                status: status.as_u16(),
                detail: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
            })
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/hearings{path}", self.base)
    }

    pub async fn create_hearing(&self, new: &NewHearing) -> Result<HearingLinks, CliError> {
        let url = self.url("");
        let body = CreateHearingRequest::from(new);
        self.send(self.http.post(&url).json(&body), &url).await
    }

    pub async fn list_hearings(&self) -> Result<Vec<Hearing>, CliError> {
        let url = self.url("");
        let list: HearingList = self.send(self.http.get(&url), &url).await?;
        Ok(list.hearings)
    }

    pub async fn get_hearing(&self, id: Uuid) -> Result<HearingDetail, CliError> {
        let url = self.url(&format!("/{id}"));
        self.send(self.http.get(&url), &url).await
    }

    pub async fn update_hearing(
        &self,
        id: Uuid,
        update: &HearingUpdate,
    ) -> Result<HearingDetail, CliError> {
        let url = self.url(&format!("/{id}"));
        self.send(self.http.patch(&url).json(update), &url).await
    }

    pub async fn set_state(&self, id: Uuid, req: &StateRequest) -> Result<HearingDetail, CliError> {
        let url = self.url(&format!("/{id}/state"));
        self.send(self.http.post(&url).json(req), &url).await
    }

    pub async fn add_participant(
        &self,
        id: Uuid,
        new: &NewParticipant,
    ) -> Result<IssuedLink, CliError> {
        let url = self.url(&format!("/{id}/participants"));
        let body = CreateParticipantRequest::from(new);
        self.send(self.http.post(&url).json(&body), &url).await
    }

    pub async fn remove_participant(
        &self,
        id: Uuid,
        participant: Uuid,
        reason: Option<&str>,
    ) -> Result<Participant, CliError> {
        let url = self.url(&format!("/{id}/participants/{participant}"));
        let mut request = self.http.delete(&url);
        if let Some(r) = reason {
            request = request.query(&[("reason", r)]);
        }
        self.send(request, &url).await
    }

    pub async fn revoke_link(&self, id: Uuid, participant: Uuid) -> Result<IssuedLink, CliError> {
        let url = self.url(&format!("/{id}/participants/{participant}/revoke"));
        self.send(self.http.post(&url), &url).await
    }

    pub async fn hearing_links(&self, id: Uuid) -> Result<HearingLinks, CliError> {
        let url = self.url(&format!("/{id}/links"));
        self.send(self.http.get(&url), &url).await
    }

    pub async fn audit(&self, id: Uuid) -> Result<AuditTrail, CliError> {
        let url = self.url(&format!("/{id}/audit"));
        self.send(self.http.get(&url), &url).await
    }
}

/// The admin API URL a local server with `config` listens on.
pub fn default_server_url(config: &Config) -> String {
    let scheme = if config.server.tls.enabled {
        "https"
    } else {
        "http"
    };
    let listen = config.server.listen;
    let host = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("{scheme}://{host}:{}", listen.port())
}

/// Builds the client from the options, filling gaps from the local configuration.
pub fn client_from_options(opts: &ApiOptions) -> Result<ApiClient, CliError> {
    let config = Config::load(opts.config.as_deref())?;
    client_with_config(opts, &config)
}

fn client_with_config(opts: &ApiOptions, config: &Config) -> Result<ApiClient, CliError> {
    let server = opts
        .server
        .clone()
        .unwrap_or_else(|| default_server_url(config));
    let api_key = opts
        .api_key
        .clone()
        .or_else(|| config.auth.admin_api_key.clone())
        .filter(|k| !k.trim().is_empty())
        .ok_or(CliError::NoApiKey)?;
    let tls = if opts.insecure {
        ClientTls::Insecure
    } else {
        let generated = config.data.dir.join("tls").join("cert.pem");
        let trust = config
            .server
            .tls
            .cert_file
            .clone()
            .filter(|p| p.exists())
            .or_else(|| generated.exists().then_some(generated));
        match trust {
            Some(p) if server.starts_with("https://") => ClientTls::Trust(p),
            _ => ClientTls::Default,
        }
    };
    ApiClient::new(&server, &api_key, &tls)
}

/// The SQLite file a `sqlite:` database URL names, if it is one.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Opens the configured database, which must exist already (commands that inspect
/// it must not create an empty one).
async fn open_existing_store(config: &Config) -> Result<SqliteStore, CliError> {
    let url = config.database_url();
    if let Some(path) = sqlite_path(&url) {
        if !path.exists() {
            return Err(CliError::NoDatabase { path });
        }
    }
    Ok(SqliteStore::open(&url).await?)
}

/// Sets up logging: `RUST_LOG` if set, else `filter`. Messages of the `log` crate
/// (used by webrtc) are forwarded to tracing.
pub fn init_logging(filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::EnvFilter;

    let env_filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| EnvFilter::try_new(s).ok())
        .or_else(|| EnvFilter::try_new(filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let max = env_filter.max_level_hint();
    let _ = tracing_subscriber::registry()
        .with(env_filter)
        .with(tracing_subscriber::fmt::layer())
        .try_init();
    let mut log_bridge = tracing_log::LogTracer::builder();
    if let Some(max) = max {
        log_bridge = log_bridge.with_max_level(tracing_log::AsLog::as_log(&max));
    }
    let _ = log_bridge.init();
}

fn print_links(links: &HearingLinks) {
    println!(
        "Hearing {}  {}  {}",
        links.hearing_id, links.case_number, links.title
    );
    for p in &links.participants {
        println!();
        println!("  {:<16} {}  ({})", p.role.as_str(), p.name, p.site);
        println!("  {}", p.join_url);
    }
}

fn print_issued(link: &IssuedLink) {
    let p = &link.participant;
    println!(
        "Participant {}  {}  {}  ({})  link version {}",
        p.id,
        p.role.as_str(),
        p.name,
        p.site,
        p.link_version
    );
    println!("  {}", link.join_url);
}

fn print_hearing(d: &HearingDetail) {
    let h = &d.hearing;
    println!("Hearing     {}", h.id);
    println!("Case number {}", h.case_number);
    println!("Title       {}", h.title);
    println!("Created     {}", h.created_at.to_rfc3339());
    if let Some(t) = h.scheduled_at {
        println!("Scheduled   {}", t.to_rfc3339());
    }
    let s = &h.status;
    print!("State       {} since {}", s.state, s.since.to_rfc3339());
    if let Some(r) = &s.reason {
        print!(" ({r})");
    }
    if let Some(t) = s.adjourned_to {
        print!(", adjourned to {}", t.to_rfc3339());
    }
    println!("{}", if s.locked { ", locked" } else { "" });
    println!();
    println!("  {:<10}  SITE", "KIND");
    for site in &h.sites {
        println!("  {:<10}  {}", site.kind.as_str(), site.name);
    }
    println!();
    println!(
        "  {:<36}  {:<17}  {:<9}  {:<5}  {:>4}  {:<30}  SITE",
        "PARTICIPANT", "ROLE", "ADMISSION", "MUTED", "LINK", "NAME"
    );
    for p in &h.participants {
        println!(
            "  {:<36}  {:<17}  {:<9}  {:<5}  {:>4}  {:<30}  {}",
            p.id,
            p.role.as_str(),
            p.admission.as_str(),
            if p.muted { "yes" } else { "no" },
            p.link_version,
            p.name,
            p.site
        );
    }
    if !d.state_history.is_empty() {
        println!();
        println!("  STATE HISTORY");
        for r in &d.state_history {
            let mut line = format!(
                "  #{} {} {} by {}",
                r.seq,
                r.at.to_rfc3339(),
                r.state,
                r.actor
            );
            if let Some(reason) = &r.reason {
                line.push_str(&format!(" ({reason})"));
            }
            if let Some(t) = r.adjourned_to {
                line.push_str(&format!(", to {}", t.to_rfc3339()));
            }
            println!("{line}");
        }
    }
}

fn print_list(hearings: &[Hearing]) {
    if hearings.is_empty() {
        println!("no hearings");
        return;
    }
    println!(
        "{:<36}  {:<20}  {:<10}  {:<20}  {:>6}  TITLE",
        "ID", "CASE NUMBER", "STATE", "CREATED", "PEOPLE"
    );
    for h in hearings {
        println!(
            "{:<36}  {:<20}  {:<10}  {:<20}  {:>6}  {}",
            h.id,
            h.case_number,
            h.status.state.as_str(),
            h.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            h.participants.len(),
            h.title
        );
    }
}

fn print_audit(trail: &AuditTrail) {
    println!("Audit trail of hearing {}", trail.hearing_id);
    for e in &trail.entries {
        println!(
            "  #{:<4} {}  {:<48}  {:<18}  {}  {}",
            e.seq,
            e.at.to_rfc3339(),
            e.actor,
            e.action,
            e.subject.as_deref().unwrap_or("-"),
            e.details
        );
    }
    match &trail.verification.problem {
        None => println!(
            "chain intact: {} entries, head {}",
            trail.head.count, trail.head.hash
        ),
        Some(p) => println!("chain BROKEN: {p}"),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::UnexpectedResponse {
        status: 0,
        detail: e.to_string(),
    })?;
    println!("{text}");
    Ok(())
}

/// Prints `value` as JSON or with `table`.
fn show<T: serde::Serialize>(value: &T, json: bool, table: impl Fn(&T)) -> Result<(), CliError> {
    if json {
        print_json(value)
    } else {
        table(value);
        Ok(())
    }
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
            show(&p, json, |p| {
                println!(
                    "{} ({}, {}) was removed; their link no longer works",
                    p.name, p.role, p.id
                )
            })
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

async fn run_admin_key(args: AdminKeyArgs) -> Result<(), CliError> {
    let config = Config::load(args.config.as_deref())?;
    match args.command {
        AdminKeyCommand::Create { name } => {
            // Creating the database is fine here: a key made before the first start
            // means the server generates none.
            let store = SqliteStore::open(&config.database_url()).await?;
            if store
                .list_admin_keys()
                .await?
                .iter()
                .any(|(n, _)| *n == name)
            {
                return Err(CliError::KeyNameTaken(name));
            }
            let key = generate_admin_key();
            store.add_admin_key(&name, &admin_key_sha256(&key)).await?;
            store.close().await;
            eprintln!(
                "admin API key `{name}` created; it is shown only now (the server keeps only its hash):"
            );
            println!("{key}");
            Ok(())
        }
        AdminKeyCommand::List { json } => {
            let store = open_existing_store(&config).await?;
            let keys = store.list_admin_keys().await?;
            store.close().await;
            if json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|(name, at)| serde_json::json!({ "name": name, "created_at": at }))
                    .collect();
                return print_json(&list);
            }
            if keys.is_empty() {
                println!("no admin keys in the database");
            }
            for (name, at) in keys {
                println!("{name:<24}  created {}", at.to_rfc3339());
            }
            if config.auth.admin_api_key.is_some() {
                println!("{:<24}  auth.admin_api_key in the configuration", "config");
            }
            Ok(())
        }
    }
}

/// `openhearing audit verify`: reads the chain straight from the database.
async fn audit_verify(hearing: Uuid, config_path: Option<&Path>) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    let store = open_existing_store(&config).await?;
    let log = store.audit_log(hearing).await;
    store.close().await;
    let Some((entries, count, head)) = log? else {
        return Err(CliError::HearingNotFound {
            id: hearing,
            database: config.database_url(),
        });
    };
    match crate::audit::verify_chain(hearing, &entries, count, &head) {
        Ok(()) => {
            println!(
                "audit chain of hearing {hearing} intact: {} entries",
                entries.len()
            );
            Ok(())
        }
        Err(problem) => Err(CliError::AuditBroken {
            hearing,
            problem: problem.to_string(),
        }),
    }
}

fn config_check(file: Option<&Path>) -> ExitCode {
    match Config::load(file) {
        Ok(_) => {
            match file {
                Some(f) => println!("ok: {}", f.display()),
                None => println!("ok: built-in default configuration"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config_path: Option<PathBuf>) -> Result<(), CliError> {
    let config = Config::load(config_path.as_deref())?;
    init_logging(&config.log.filter);
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
        Command::Config(ConfigCommand::Check { file }) => config_check(file.as_deref()),
        Command::Serve { config } => block_on(serve(config)),
        Command::Hearing(args) => block_on(run_hearing(args)),
        Command::AdminKey(args) => block_on(run_admin_key(args)),
        Command::Audit(AuditArgs {
            command: AuditCommand::Verify { hearing, config },
        }) => block_on(audit_verify(hearing, config.as_deref())),
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
    use crate::api::admin::tests::{state, KEY};
    use crate::api::admin::{routes, AdminState};

    #[test]
    fn participant_spec() {
        let p = parse_participant_spec("Nguyễn Văn A:presiding_judge:Phòng xử án 1").unwrap();
        assert_eq!(p.name, "Nguyễn Văn A");
        assert_eq!(p.role, Role::PresidingJudge);
        assert_eq!(p.site, "Phòng xử án 1");

        // The site may contain colons.
        let p = parse_participant_spec("B:defendant:Trại tạm giam: phân khu 2:A").unwrap();
        assert_eq!(p.site, "Trại tạm giam: phân khu 2:A");

        for (spec, needle) in [
            ("only-a-name", "expected NAME:ROLE:SITE"),
            ("A:judge", "expected NAME:ROLE:SITE"),
            ("A:king:Room 1", "unknown role `king`"),
            (":judge:Room 1", "name"),
            ("A:judge:  ", "site"),
        ] {
            let e = parse_participant_spec(spec).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("participant `{spec}`")), "{msg}");
            assert!(msg.contains(needle), "{msg}");
        }
    }

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

    #[test]
    fn derived_defaults() {
        let c = Config::from_toml_str("", "t").unwrap();
        assert_eq!(default_server_url(&c), "https://127.0.0.1:8443");
        let c = Config::from_toml_str(
            "[server]\nlisten = \"192.0.2.1:9000\"\n[server.tls]\nenabled = false\n",
            "t",
        )
        .unwrap();
        assert_eq!(default_server_url(&c), "http://192.0.2.1:9000");

        // No key anywhere: the error says how to provide one. A legacy key file is
        // not read (the server imports and deletes it).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-api-key"), "k-from-file\n").unwrap();
        let text = format!("[data]\ndir = {:?}\n", dir.path().display().to_string());
        let c = Config::from_toml_str(&text, "t").unwrap();
        let e = client_with_config(&ApiOptions::default(), &c).unwrap_err();
        assert!(matches!(e, CliError::NoApiKey), "{e}");
        assert!(e.to_string().contains("--api-key"), "{e}");
        assert!(e.to_string().contains("OPENHEARING_API_KEY"), "{e}");
        // The configured key is used, and --api-key wins over it.
        let text = format!(
            "[data]\ndir = {:?}\n[auth]\nadmin_api_key = \"configured-key-0123456789\"\n",
            dir.path().display().to_string()
        );
        let c = Config::from_toml_str(&text, "t").unwrap();
        let client = client_with_config(&ApiOptions::default(), &c).unwrap();
        assert_eq!(client.api_key, "configured-key-0123456789");
        assert_eq!(client.base, "https://127.0.0.1:8443");
        let opts = ApiOptions {
            api_key: Some("from-the-option".into()),
            ..ApiOptions::default()
        };
        assert_eq!(
            client_with_config(&opts, &c).unwrap().api_key,
            "from-the-option"
        );

        let e = ApiClient::new("ftp://x", "k", &ClientTls::Default).unwrap_err();
        assert!(matches!(e, CliError::BadServerUrl(_)));
    }

    async fn serve_plain(state: AdminState) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = routes::<AdminState>().with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    fn sample() -> NewHearing {
        NewHearing {
            scheduled_at: None,
            sites: Vec::new(),
            case_number: "HS-123/2026".into(),
            title: "Vụ án trộm cắp tài sản".into(),
            participants: vec![
                parse_participant_spec("Nguyễn Văn A:presiding_judge:Phòng xử án 1").unwrap(),
                parse_participant_spec("Trần Thị B:defendant:Trại tạm giam số 1").unwrap(),
            ],
        }
    }

    #[tokio::test]
    async fn client_against_real_http() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path()).await;
        let tokens = st.tokens.clone();
        let base = serve_plain(st).await;
        let client = ApiClient::new(&base, KEY, &ClientTls::Default).unwrap();

        let links = client.create_hearing(&sample()).await.unwrap();
        assert_eq!(links.participants.len(), 2);
        assert_eq!(links.participants[0].name, "Nguyễn Văn A");
        let url = &links.participants[1].join_url;
        let token = url.split_once("#token=").unwrap().1;
        assert_eq!(
            tokens.verify(token).unwrap().sub,
            links.participants[1].participant_id
        );

        // The --json shape: hearing_id and participants with the documented fields.
        let json = serde_json::to_value(&links).unwrap();
        for key in ["participant_id", "name", "role", "site", "join_url"] {
            assert!(json["participants"][0].get(key).is_some(), "{key}");
        }
        assert!(json.get("hearing_id").is_some());

        let list = client.list_hearings().await.unwrap();
        assert_eq!(list.len(), 1);
        let h = client.get_hearing(links.hearing_id).await.unwrap();
        assert_eq!(h.hearing.participants[1].role, Role::Defendant);
        let again = client.hearing_links(links.hearing_id).await.unwrap();
        assert_eq!(again.participants.len(), 2);

        // Server-side errors come back with their code and message.
        let e = client.get_hearing(Uuid::new_v4()).await.unwrap_err();
        assert!(
            matches!(&e, CliError::Api { status: 404, code, .. } if code == "hearing_not_found"),
            "{e}"
        );
        let mut bad = sample();
        bad.participants[0].site = " ".into();
        let e = client.create_hearing(&bad).await.unwrap_err();
        assert!(e.to_string().contains("participants[0].site"), "{e}");

        let wrong = ApiClient::new(&base, "wrong-key", &ClientTls::Default).unwrap();
        let e = wrong.list_hearings().await.unwrap_err();
        assert!(matches!(&e, CliError::Api { status: 401, .. }), "{e}");
    }

    #[tokio::test]
    async fn client_trusts_generated_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path()).await;
        let tls_cfg = crate::config::TlsConfig {
            enabled: true,
            cert_file: None,
            key_file: None,
        };
        let material = crate::tls::load_or_create(&tls_cfg, dir.path(), &[])
            .await
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = routes::<AdminState>().with_state(st);
        let server = axum_server::from_tcp_rustls(listener, material.rustls.clone()).unwrap();
        tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        let base = format!("https://127.0.0.1:{}", addr.port());

        // Without trusting the self-signed certificate the connection is refused ...
        let plain = ApiClient::new(&base, KEY, &ClientTls::Default).unwrap();
        assert!(matches!(
            plain.list_hearings().await,
            Err(CliError::Request { .. })
        ));
        // ... trusting <data.dir>/tls/cert.pem works, and so does --insecure.
        let opts = ApiOptions {
            server: Some(base.clone()),
            api_key: Some(KEY.into()),
            ..ApiOptions::default()
        };
        let text = format!("[data]\ndir = {:?}\n", dir.path().display().to_string());
        let config = Config::from_toml_str(&text, "t").unwrap();
        let trusted = client_with_config(&opts, &config).unwrap();
        assert!(trusted.list_hearings().await.unwrap().is_empty());
        let insecure = ApiClient::new(&base, KEY, &ClientTls::Insecure).unwrap();
        assert!(insecure.list_hearings().await.unwrap().is_empty());
    }
}
