//! Server configuration: the embedded `config/default.toml`, a file merged over it, and
//! `OPENHEARING_SECTION__KEY` environment overrides, in that order.
//!
//! Every error names the full key path and where the bad value came from (the file or
//! the environment variable).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use openhearing_signaling::{Action, Role};
use serde::{Deserialize, Serialize};

use crate::permissions::Permissions;
pub use crate::permissions::WorkflowConfig;

/// The built-in configuration, also the documentation of every key.
/// Shortest `auth.admin_api_key` accepted: the key opens every hearing's record.
pub const MIN_ADMIN_KEY_CHARS: usize = 32;

/// The commented example in `config/default.toml`, refused as a real key.
pub const PLACEHOLDER_ADMIN_KEY: &str = "change-me-to-a-long-random-string";

pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "OPENHEARING_";

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub data: DataConfig,
    pub auth: AuthConfig,
    pub media: MediaConfig,
    pub signaling: SignalingConfig,
    pub workflow: WorkflowConfig,
    pub recording: RecordingConfig,
    /// Role → what it may do. See [`crate::permissions`].
    pub permissions: BTreeMap<Role, Vec<Action>>,
    pub log: LogConfig,
    pub integrity: IntegrityConfig,
}

/// Media health thresholds (`[integrity]`; see [`crate::hearing::health`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityConfig {
    pub sample_seconds: f64,
    pub report_timeout_seconds: f64,
    pub drop_ratio_degraded: f64,
    pub receiver_loss_degraded: f64,
    pub receiver_jitter_degraded_ms: f64,
    pub concealment_degraded: f64,
    pub concealment_lost: f64,
    pub freeze_ratio_degraded: f64,
    pub min_frames_per_second: f64,
    pub report_slack_packets: u64,
    pub alert_after_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_suspend_after_seconds: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub tls: TlsConfig,
    pub shutdown_grace_seconds: u64,
    pub connections: ConnectionsConfig,
}

/// Bounds on the HTTP/WebSocket connections one server holds (`[server.connections]`):
/// what an unauthenticated client can make the server keep open, and for how long.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsConfig {
    pub max_total: u32,
    pub max_per_address: u32,
    pub tls_handshake_timeout_seconds: u64,
    pub header_read_timeout_seconds: u64,
    pub idle_timeout_seconds: u64,
    pub websocket_idle_timeout_seconds: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dir: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_api_key: Option<String>,
    pub join_token_ttl_hours: u64,
    /// What a second device on a link in use gets: `replace`, `lobby` or `refuse`.
    pub second_device: crate::hearing::SecondDevice,
    /// Minutes before a hearing's date from which its links work.
    pub link_valid_before_minutes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    pub bind_address: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_address: Option<IpAddr>,
    pub udp_port_min: u16,
    pub udp_port_max: u16,
    /// When true each connection also listens on TCP at the same port number as its
    /// UDP port.
    pub ice_tcp: bool,
    pub pli_throttle_ms: u64,
    pub ice_check_interval_ms: u64,
    /// The most one subscriber is sent, in kbit/s (the lower of this and its
    /// bandwidth estimate); unset: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_subscriber_kbps: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalingConfig {
    pub max_message_bytes: usize,
    pub max_sdp_bytes: usize,
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    pub join_timeout_seconds: u64,
    pub join_burst_per_participant: u32,
    pub joins_per_minute_per_participant: u32,
    pub join_burst_per_source: u32,
    pub joins_per_minute_per_source: u32,
    /// A participant leaving again within this many seconds has their leave told
    /// to others only when the window passes (0: at once).
    pub notice_coalesce_seconds: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Whether the server records at all.
    pub enabled: bool,
    /// Whether a hearing created without saying is recorded.
    pub enabled_by_default: bool,
    /// The recordings folder; relative paths are under `data.dir`.
    pub dir: PathBuf,
    pub segment_seconds: u32,
    pub queue_packets: usize,
    pub render_after_close: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub filter: String,
    /// Also write the log to this file (rotated); unset: standard output only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    pub rotation: crate::logging::Rotation,
    pub keep_files: usize,
    /// Lines a minute from any one place in a library's code; 0: no limit.
    pub library_repeats_per_minute: u32,
}

impl LogConfig {
    /// The settings [`crate::logging::init`] takes.
    pub fn settings(&self) -> crate::logging::LogSettings<'_> {
        crate::logging::LogSettings {
            filter: &self.filter,
            file: self.file.as_deref(),
            rotation: self.rotation,
            keep_files: self.keep_files,
            library_repeats_per_minute: self.library_repeats_per_minute,
        }
    }
}

/// Why the configuration could not be loaded. Every variant names where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is not valid TOML: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: `{key}`: {message}")]
    Key {
        key: String,
        origin: String,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

impl ConfigError {
    /// The full key path the error is about, if any (e.g. `media.udp_port_min`).
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } => Some(key),
            _ => None,
        }
    }
}

const DEFAULT_ORIGIN: &str = "built-in default configuration";

/// Accumulates layers of TOML and remembers which layer set each key.
struct Layers {
    table: toml::Table,
    origins: HashMap<String, String>,
    /// Environment values that were read as a non-string TOML value, by key path, so
    /// they can be retried as plain strings (an all-digit API key, say).
    env_raw: HashMap<String, String>,
}

impl Layers {
    fn new() -> Self {
        Layers {
            table: toml::Table::new(),
            origins: HashMap::new(),
            env_raw: HashMap::new(),
        }
    }

    fn merge_toml(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_owned(),
                    message: e.to_string().trim_end().to_owned(),
                })?;
        merge_into(&mut self.table, table, "", origin, &mut self.origins);
        Ok(())
    }

    fn merge_env(
        &mut self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k[ENV_PREFIX.len()..].contains("__"))
            .collect();
        // Deterministic order whatever the environment's.
        vars.sort();
        for (var, raw) in vars {
            let segments: Vec<String> = var[ENV_PREFIX.len()..]
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            if segments.iter().any(|s| s.is_empty()) {
                return Err(ConfigError::Env {
                    var,
                    message: "empty key segment; use OPENHEARING_SECTION__KEY".into(),
                });
            }
            let value = parse_env_value(&raw);
            let origin = format!("environment variable {var}");
            let mut table = &mut self.table;
            let mut path = String::new();
            let (last, parents) = match segments.split_last() {
                Some(split) => split,
                None => continue,
            };
            for seg in parents {
                push_path(&mut path, seg);
                let entry = table
                    .entry(seg.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if !entry.is_table() {
                    *entry = toml::Value::Table(toml::Table::new());
                    self.origins.insert(path.clone(), origin.clone());
                }
                table = match entry {
                    toml::Value::Table(t) => t,
                    _ => unreachable!("just made a table"),
                };
            }
            push_path(&mut path, last);
            if value.is_str() {
                self.env_raw.remove(&path);
            } else {
                self.env_raw.insert(path.clone(), raw);
            }
            table.insert(last.clone(), value);
            self.origins.insert(path, origin.clone());
        }
        Ok(())
    }

    /// Where the key at `path` (or its nearest recorded parent) was set.
    fn origin_of(&self, path: &str) -> String {
        let mut p = path;
        loop {
            if let Some(o) = self.origins.get(p) {
                return o.clone();
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return DEFAULT_ORIGIN.to_owned(),
            }
        }
    }

    fn finish(mut self) -> Result<Config, ConfigError> {
        let config: Config = loop {
            let value = toml::Value::Table(self.table.clone());
            match serde_path_to_error::deserialize(value) {
                Ok(config) => break config,
                Err(e) => {
                    let key = e.path().to_string();
                    let key = if key == "." { String::new() } else { key };
                    // An environment value read as a number or boolean where a string
                    // is wanted: take it literally and try again.
                    if let Some(raw) = self.env_raw.remove(&key) {
                        if self.set_string(&key, raw) {
                            continue;
                        }
                    }
                    return Err(ConfigError::Key {
                        origin: self.origin_of(&key),
                        key,
                        message: clean_message(&e.inner().to_string()),
                    });
                }
            }
        };
        config.validate(|key| self.origin_of(key))?;
        Ok(config)
    }

    /// Replaces the value at dotted `path` with a string; false if there is none.
    fn set_string(&mut self, path: &str, raw: String) -> bool {
        let mut table = &mut self.table;
        let mut segments = path.split('.').peekable();
        while let Some(seg) = segments.next() {
            if segments.peek().is_none() {
                return match table.get_mut(seg) {
                    Some(v) => {
                        *v = toml::Value::String(raw);
                        true
                    }
                    None => false,
                };
            }
            table = match table.get_mut(seg) {
                Some(toml::Value::Table(t)) => t,
                _ => return false,
            };
        }
        false
    }
}

/// The deserializer's message without its own trailing "in `table`" context line (the
/// full key path is reported separately).
fn clean_message(message: &str) -> String {
    message
        .lines()
        .filter(|l| !l.starts_with("in `"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned()
}

fn push_path(path: &mut String, seg: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(seg);
}

fn merge_into(
    base: &mut toml::Table,
    over: toml::Table,
    prefix: &str,
    origin: &str,
    origins: &mut HashMap<String, String>,
) {
    for (k, v) in over {
        let mut path = prefix.to_owned();
        push_path(&mut path, &k);
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => {
                merge_into(b, o, &path, origin, origins);
            }
            (_, v) => {
                record_origins(&v, &path, origin, origins);
                base.insert(k, v);
            }
        }
    }
}

fn record_origins(
    v: &toml::Value,
    path: &str,
    origin: &str,
    origins: &mut HashMap<String, String>,
) {
    origins.insert(path.to_owned(), origin.to_owned());
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            let mut p = path.to_owned();
            push_path(&mut p, k);
            record_origins(v, &p, origin, origins);
        }
    }
}

/// An environment value as a TOML value (`8443`, `false`, `"x"`, `[1, 2]`), else a string.
fn parse_env_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => match t.remove("v") {
            Some(v) if !v.is_table() => v,
            _ => toml::Value::String(raw.to_owned()),
        },
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

impl Config {
    /// The embedded default, `path` merged over it, then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(
            path,
            std::env::vars_os().filter_map(|(k, v)| {
                // Variables that are not valid UTF-8 cannot be ours; skip them.
                Some((k.into_string().ok()?, v.into_string().ok()?))
            }),
        )
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut layers = Layers::new();
        layers.merge_toml(DEFAULT_TOML, DEFAULT_ORIGIN)?;
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            layers.merge_toml(&text, &format!("config file {}", path.display()))?;
        }
        layers.merge_env(env)?;
        layers.finish()
    }

    /// The embedded default with `text` merged over it; `origin_name` names `text` in
    /// errors. No environment overrides.
    pub fn from_toml_str(text: &str, origin_name: &str) -> Result<Config, ConfigError> {
        let mut layers = Layers::new();
        layers.merge_toml(DEFAULT_TOML, DEFAULT_ORIGIN)?;
        layers.merge_toml(text, origin_name)?;
        layers.finish()
    }

    /// Checks relations between values that the types alone cannot express.
    fn validate(&self, origin: impl Fn(&str) -> String) -> Result<(), ConfigError> {
        // `origin_key` is the key whose origin to report when `key` itself is unset.
        let err_at = |key: &str, origin_key: &str, message: String| ConfigError::Key {
            key: key.to_owned(),
            origin: origin(origin_key),
            message,
        };
        let err = |key: &str, message: String| err_at(key, key, message);
        // For a relation between two keys, blame the one the operator set (the later
        // key when both or neither were).
        let blame = |a: &'static str, b: &'static str| {
            if origin(b) != DEFAULT_ORIGIN || origin(a) == DEFAULT_ORIGIN {
                b
            } else {
                a
            }
        };
        let nonzero = |key: &str, v: u64| {
            if v == 0 {
                Err(err(key, "must be greater than 0".into()))
            } else {
                Ok(())
            }
        };

        if let Some(url) = &self.server.public_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            match rest {
                Some(host) if !host.trim_end_matches('/').is_empty() => {}
                _ => {
                    return Err(err(
                        "server.public_url",
                        format!("`{url}` must be an absolute http:// or https:// URL"),
                    ))
                }
            }
        }
        match (&self.server.tls.cert_file, &self.server.tls.key_file) {
            (Some(_), None) => {
                return Err(err_at(
                    "server.tls.key_file",
                    "server.tls.cert_file",
                    "missing: cert_file is set, so key_file must be set too".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(err_at(
                    "server.tls.cert_file",
                    "server.tls.key_file",
                    "missing: key_file is set, so cert_file must be set too".into(),
                ))
            }
            _ => {}
        }
        let c = &self.server.connections;
        for (key, v) in [
            ("server.connections.max_total", u64::from(c.max_total)),
            (
                "server.connections.max_per_address",
                c.max_per_address.into(),
            ),
            (
                "server.connections.tls_handshake_timeout_seconds",
                c.tls_handshake_timeout_seconds,
            ),
            (
                "server.connections.header_read_timeout_seconds",
                c.header_read_timeout_seconds,
            ),
            (
                "server.connections.idle_timeout_seconds",
                c.idle_timeout_seconds,
            ),
            (
                "server.connections.websocket_idle_timeout_seconds",
                c.websocket_idle_timeout_seconds,
            ),
        ] {
            nonzero(key, v)?;
        }
        if c.max_per_address > c.max_total {
            return Err(err(
                blame(
                    "server.connections.max_total",
                    "server.connections.max_per_address",
                ),
                format!(
                    "server.connections.max_per_address ({}) is larger than server.connections.max_total ({})",
                    c.max_per_address, c.max_total
                ),
            ));
        }
        if self.data.dir.as_os_str().is_empty() {
            return Err(err("data.dir", "must not be empty".into()));
        }
        if let Some(url) = &self.data.database_url {
            if !url.starts_with("sqlite:") {
                return Err(err(
                    "data.database_url",
                    format!("`{url}`: only sqlite: URLs are supported"),
                ));
            }
        }
        if let Some(key) = &self.auth.admin_api_key {
            if key.trim() == PLACEHOLDER_ADMIN_KEY {
                return Err(err(
                    "auth.admin_api_key",
                    "is the example value from config/default.toml; generate a real key (e.g. `openssl rand -hex 32`) or leave it unset".into(),
                ));
            }
            if key.trim().chars().count() < MIN_ADMIN_KEY_CHARS {
                return Err(err(
                    "auth.admin_api_key",
                    format!("must be at least {MIN_ADMIN_KEY_CHARS} characters long (a guessable key opens every hearing); e.g. `openssl rand -hex 32`"),
                ));
            }
        }
        nonzero("auth.join_token_ttl_hours", self.auth.join_token_ttl_hours)?;
        if let Some(a) = self.media.announced_address {
            if a.is_unspecified() {
                return Err(err(
                    "media.announced_address",
                    format!("`{a}` is not an address browsers can reach; set a public IP or leave it unset"),
                ));
            }
        }
        nonzero("media.udp_port_min", self.media.udp_port_min.into())?;
        if self.media.udp_port_min > self.media.udp_port_max {
            return Err(err(
                blame("media.udp_port_min", "media.udp_port_max"),
                format!(
                    "media.udp_port_max ({}) is smaller than media.udp_port_min ({})",
                    self.media.udp_port_max, self.media.udp_port_min
                ),
            ));
        }
        if !(10..=1000).contains(&self.media.ice_check_interval_ms) {
            return Err(err(
                "media.ice_check_interval_ms",
                format!(
                    "{} is out of range; use 10 to 1000 milliseconds",
                    self.media.ice_check_interval_ms
                ),
            ));
        }
        if let Some(kbps) = self.media.max_subscriber_kbps {
            if kbps < 64 {
                return Err(err(
                    "media.max_subscriber_kbps",
                    format!("{kbps} is too small; use at least 64 (kbit/s), or leave it unset for no cap"),
                ));
            }
        }
        if self.signaling.max_message_bytes < 1024 {
            return Err(err(
                "signaling.max_message_bytes",
                format!(
                    "{} is too small; SDP offers need at least 1024 bytes",
                    self.signaling.max_message_bytes
                ),
            ));
        }
        if self.signaling.max_sdp_bytes < self.signaling.max_message_bytes {
            return Err(err(
                "signaling.max_sdp_bytes",
                format!(
                    "{} is smaller than signaling.max_message_bytes ({}); an offer or answer may be at least as large as any other message",
                    self.signaling.max_sdp_bytes, self.signaling.max_message_bytes
                ),
            ));
        }
        nonzero(
            "signaling.rate_limit_per_second",
            self.signaling.rate_limit_per_second.into(),
        )?;
        if self.signaling.rate_limit_burst < self.signaling.rate_limit_per_second {
            return Err(err(
                blame("signaling.rate_limit_per_second", "signaling.rate_limit_burst"),
                format!(
                    "signaling.rate_limit_burst ({}) is smaller than signaling.rate_limit_per_second ({})",
                    self.signaling.rate_limit_burst, self.signaling.rate_limit_per_second
                ),
            ));
        }
        nonzero(
            "signaling.join_timeout_seconds",
            self.signaling.join_timeout_seconds,
        )?;
        for (key, value) in [
            (
                "signaling.join_burst_per_participant",
                self.signaling.join_burst_per_participant,
            ),
            (
                "signaling.joins_per_minute_per_participant",
                self.signaling.joins_per_minute_per_participant,
            ),
            (
                "signaling.join_burst_per_source",
                self.signaling.join_burst_per_source,
            ),
            (
                "signaling.joins_per_minute_per_source",
                self.signaling.joins_per_minute_per_source,
            ),
        ] {
            nonzero(key, value.into())?;
        }
        if !(1..=3600).contains(&self.recording.segment_seconds) {
            return Err(err(
                "recording.segment_seconds",
                "must be between 1 and 3600".into(),
            ));
        }
        nonzero(
            "recording.queue_packets",
            self.recording.queue_packets as u64,
        )?;
        for role in Role::ALL {
            if !self.permissions.contains_key(&role) {
                return Err(err(
                    &format!("permissions.{role}"),
                    "every role needs an entry (use [] for a role that may do nothing)".into(),
                ));
            }
        }
        for role in &self.workflow.call_in_roles {
            if self.workflow.auto_admit.contains(role) {
                return Err(err(
                    "workflow.call_in_roles",
                    format!("`{role}` is also in workflow.auto_admit; a role either waits to be called in or enters at once"),
                ));
            }
        }
        let i = &self.integrity;
        for (key, v, min, max) in [
            ("integrity.sample_seconds", i.sample_seconds, 0.1, 60.0),
            (
                "integrity.report_timeout_seconds",
                i.report_timeout_seconds,
                0.5,
                600.0,
            ),
            (
                "integrity.drop_ratio_degraded",
                i.drop_ratio_degraded,
                0.0,
                1.0,
            ),
            (
                "integrity.receiver_loss_degraded",
                i.receiver_loss_degraded,
                0.0,
                1.0,
            ),
            (
                "integrity.receiver_jitter_degraded_ms",
                i.receiver_jitter_degraded_ms,
                0.0,
                10_000.0,
            ),
            (
                "integrity.concealment_degraded",
                i.concealment_degraded,
                0.0,
                1.0,
            ),
            ("integrity.concealment_lost", i.concealment_lost, 0.0, 1.0),
            (
                "integrity.freeze_ratio_degraded",
                i.freeze_ratio_degraded,
                0.0,
                1.0,
            ),
            (
                "integrity.min_frames_per_second",
                i.min_frames_per_second,
                0.0,
                120.0,
            ),
            (
                "integrity.alert_after_seconds",
                i.alert_after_seconds,
                0.0,
                3600.0,
            ),
            (
                "integrity.auto_suspend_after_seconds",
                i.auto_suspend_after_seconds.unwrap_or(0.0),
                0.0,
                86400.0,
            ),
        ] {
            if !(min..=max).contains(&v) {
                return Err(err(key, format!("must be between {min} and {max}")));
            }
        }
        if self.log.keep_files == 0 {
            return Err(err(
                "log.keep_files",
                "must be at least 1 (the file being written)".to_owned(),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.log.filter) {
            return Err(err(
                "log.filter",
                format!("`{}` is not a valid filter: {e}", self.log.filter),
            ));
        }
        Ok(())
    }

    /// The recordings folder (`recording.dir`, under `data.dir` when relative).
    pub fn recordings_dir(&self) -> PathBuf {
        if self.recording.dir.is_absolute() {
            self.recording.dir.clone()
        } else {
            self.data.dir.join(&self.recording.dir)
        }
    }

    /// The permission table and workflow rules, ready for lookups.
    pub fn permissions(&self) -> Permissions {
        Permissions::new(&self.permissions, &self.workflow)
    }

    /// The database URL: `data.database_url`, else `sqlite://<data.dir>/openhearing.db`.
    pub fn database_url(&self) -> String {
        match &self.data.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.data.dir.join("openhearing.db").display()
            ),
        }
    }

    /// The base URL for join links, without a trailing slash: `server.public_url`, else
    /// derived from the TLS setting, the announced (or listen) address and the port.
    pub fn public_base_url(&self) -> String {
        if let Some(url) = &self.server.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.server.tls.enabled {
            "https"
        } else {
            "http"
        };
        let ip = self
            .media
            .announced_address
            .unwrap_or_else(|| self.server.listen.ip());
        let host = if ip.is_unspecified() {
            local_hostname()
        } else {
            match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            }
        };
        let port = self.server.listen.port();
        let default_port = if self.server.tls.enabled { 443 } else { 80 };
        if port == default_port {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{port}")
        }
    }
}

/// This machine's host name, or `localhost` when it cannot be found.
pub fn local_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("openhearing.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn default_parses_to_documented_values() {
        let c = Config::load_with_env(None, no_env()).unwrap();
        assert_eq!(
            c.server.listen,
            "0.0.0.0:8443".parse::<std::net::SocketAddr>().unwrap()
        );
        assert_eq!(c.server.public_url, None);
        assert!(c.server.tls.enabled);
        assert_eq!(c.server.tls.cert_file, None);
        assert_eq!(c.server.tls.key_file, None);
        assert_eq!(c.server.shutdown_grace_seconds, 10);
        let conn = &c.server.connections;
        assert_eq!((conn.max_total, conn.max_per_address), (4096, 256));
        assert_eq!(conn.tls_handshake_timeout_seconds, 10);
        assert_eq!(conn.header_read_timeout_seconds, 15);
        assert_eq!(conn.idle_timeout_seconds, 60);
        assert_eq!(conn.websocket_idle_timeout_seconds, 300);
        assert_eq!(c.data.dir, PathBuf::from("./data"));
        assert_eq!(c.data.database_url, None);
        assert_eq!(c.auth.admin_api_key, None);
        assert_eq!(c.auth.join_token_ttl_hours, 720);
        assert_eq!(c.auth.link_valid_before_minutes, 60);
        assert_eq!(c.auth.second_device, crate::hearing::SecondDevice::Lobby);
        assert_eq!(c.media.bind_address, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(c.media.announced_address, None);
        assert_eq!(c.media.udp_port_min, 40000);
        assert_eq!(c.media.udp_port_max, 40999);
        assert!(c.media.ice_tcp);
        assert_eq!(c.media.pli_throttle_ms, 500);
        assert_eq!(c.media.ice_check_interval_ms, 20);
        assert_eq!(c.signaling.max_message_bytes, 65536);
        assert_eq!(c.signaling.max_sdp_bytes, 524288);
        assert_eq!(c.signaling.rate_limit_per_second, 50);
        assert_eq!(c.signaling.rate_limit_burst, 200);
        assert_eq!(c.signaling.join_timeout_seconds, 10);
        assert_eq!(c.signaling.join_burst_per_participant, 5);
        assert_eq!(c.signaling.joins_per_minute_per_participant, 6);
        assert_eq!(c.signaling.join_burst_per_source, 100);
        assert_eq!(c.signaling.joins_per_minute_per_source, 300);
        assert_eq!(c.signaling.notice_coalesce_seconds, 10);
        assert_eq!(c.log.filter, "info");
        assert_eq!(c.database_url(), "sqlite://./data/openhearing.db");
    }

    #[test]
    fn every_default_key_is_commented() {
        // Each `key = value` line (commented-out optional ones too) follows a comment.
        let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let l = line.trim_start_matches("# ").trim();
            let is_key = l.contains(" = ") && !l.starts_with('#') && i > 0 && {
                let k = l.split(" = ").next().unwrap_or("");
                k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            };
            if is_key {
                let prev = lines[i - 1].trim();
                assert!(
                    prev.starts_with('#'),
                    "key on line {} has no comment",
                    i + 1
                );
            }
        }
    }

    #[test]
    fn file_is_merged_over_default() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[media]\nudp_port_min = 50000\nudp_port_max = 50010\n[server.tls]\nenabled = false\n",
        );
        let c = Config::load_with_env(Some(&p), no_env()).unwrap();
        assert_eq!(c.media.udp_port_min, 50000);
        assert_eq!(c.media.udp_port_max, 50010);
        assert!(!c.server.tls.enabled);
        // Untouched keys keep their defaults.
        assert_eq!(c.media.pli_throttle_ms, 500);
        assert_eq!(c.server.listen.port(), 8443);
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "[media]\nudp_port_mn = 5\n");
        let e = Config::load_with_env(Some(&p), no_env()).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.key(), Some("media.udp_port_mn"), "{msg}");
        assert!(msg.contains("media.udp_port_mn"), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn invalid_value_names_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "[media]\nudp_port_max = 70000\n");
        let e = Config::load_with_env(Some(&p), no_env()).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.key(), Some("media.udp_port_max"), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");

        let e = Config::from_toml_str("[server]\nlisten = \"nope\"\n", "test.toml").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("server.listen") && msg.contains("test.toml"),
            "{msg}"
        );
    }

    #[test]
    fn syntax_error_and_missing_file_are_clear() {
        let e = Config::from_toml_str("[media\n", "broken.toml").unwrap_err();
        assert!(
            e.to_string().contains("broken.toml is not valid TOML"),
            "{e}"
        );
        let e =
            Config::load_with_env(Some(Path::new("/nonexistent/x.toml")), no_env()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.toml"), "{e}");
    }

    #[test]
    fn env_overrides_file_and_default() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "[server.tls]\nenabled = true\n");
        let env = vec![
            ("OPENHEARING_SERVER__TLS__ENABLED".into(), "false".into()),
            ("OPENHEARING_MEDIA__UDP_PORT_MIN".into(), "40100".into()),
            ("OPENHEARING_LOG__FILTER".into(), "debug".into()),
            ("OPENHEARING_DATA__DIR".into(), "/var/lib/oh".into()),
            // Not config overrides: no `__`, or another prefix.
            ("OPENHEARING_SERVER_URL".into(), "https://x".into()),
            ("PATH".into(), "/bin".into()),
        ];
        let c = Config::load_with_env(Some(&p), env).unwrap();
        assert!(!c.server.tls.enabled);
        assert_eq!(c.media.udp_port_min, 40100);
        assert_eq!(c.log.filter, "debug");
        assert_eq!(c.data.dir, PathBuf::from("/var/lib/oh"));
        assert_eq!(c.database_url(), "sqlite:///var/lib/oh/openhearing.db");
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let env = vec![("OPENHEARING_MEDIA__UDP_PORT_MIN".into(), "lots".into())];
        let e = Config::load_with_env(None, env).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.key(), Some("media.udp_port_min"));
        assert!(
            msg.contains("environment variable OPENHEARING_MEDIA__UDP_PORT_MIN"),
            "{msg}"
        );

        // A number where a string is wanted is taken literally.
        let env = vec![(
            "OPENHEARING_AUTH__ADMIN_API_KEY".into(),
            "12345678901234567890123456789012".into(),
        )];
        let c = Config::load_with_env(None, env).unwrap();
        assert_eq!(
            c.auth.admin_api_key.as_deref(),
            Some("12345678901234567890123456789012")
        );

        let env = vec![("OPENHEARING_MEDIA__COLOUR".into(), "blue".into())];
        let e = Config::load_with_env(None, env).unwrap_err();
        assert!(e.to_string().contains("OPENHEARING_MEDIA__COLOUR"), "{e}");
        assert_eq!(e.key(), Some("media.colour"));
    }

    #[test]
    fn the_subscriber_cap_is_unset_by_default_and_checked() {
        let c = Config::load_with_env(None, no_env()).unwrap();
        assert_eq!(c.media.max_subscriber_kbps, None);
        let env = vec![(
            "OPENHEARING_MEDIA__MAX_SUBSCRIBER_KBPS".into(),
            "300".into(),
        )];
        let c = Config::load_with_env(None, env).unwrap();
        assert_eq!(c.media.max_subscriber_kbps, Some(300));
        let env = vec![("OPENHEARING_MEDIA__MAX_SUBSCRIBER_KBPS".into(), "10".into())];
        let e = Config::load_with_env(None, env).unwrap_err();
        assert_eq!(e.key(), Some("media.max_subscriber_kbps"), "{e}");
    }

    #[test]
    fn semantic_validation() {
        let cases = [
            ("[media]\nudp_port_min = 41000\n", "media.udp_port_min"),
            ("[media]\nudp_port_max = 39000\n", "media.udp_port_max"),
            (
                "[signaling]\nrate_limit_per_second = 300\n",
                "signaling.rate_limit_per_second",
            ),
            (
                "[server.tls]\ncert_file = \"/c.pem\"\n",
                "server.tls.key_file",
            ),
            (
                "[server.tls]\nkey_file = \"/k.pem\"\n",
                "server.tls.cert_file",
            ),
            (
                "[auth]\njoin_token_ttl_hours = 0\n",
                "auth.join_token_ttl_hours",
            ),
            ("[auth]\nadmin_api_key = \"short\"\n", "auth.admin_api_key"),
            (
                "[auth]\nadmin_api_key = \"0123456789abcdef0123456789abcde\"\n",
                "auth.admin_api_key",
            ),
            (
                "[auth]\nadmin_api_key = \"change-me-to-a-long-random-string\"\n",
                "auth.admin_api_key",
            ),
            (
                "[media]\nice_check_interval_ms = 0\n",
                "media.ice_check_interval_ms",
            ),
            (
                "[signaling]\nrate_limit_per_second = 0\n",
                "signaling.rate_limit_per_second",
            ),
            (
                "[signaling]\nrate_limit_burst = 10\n",
                "signaling.rate_limit_burst",
            ),
            (
                "[server]\npublic_url = \"example.com\"\n",
                "server.public_url",
            ),
            (
                "[data]\ndatabase_url = \"postgres://x\"\n",
                "data.database_url",
            ),
            ("[log]\nfilter = \"[[[\"\n", "log.filter"),
            (
                "[server.connections]\nidle_timeout_seconds = 0\n",
                "server.connections.idle_timeout_seconds",
            ),
            (
                "[server.connections]\nmax_per_address = 5000\n",
                "server.connections.max_per_address",
            ),
            (
                "[server.connections]\nmax_total = 100\n",
                "server.connections.max_total",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml_str(text, "case.toml").unwrap_err();
            assert_eq!(e.key(), Some(key), "{text}: {e}");
            assert!(e.to_string().contains("case.toml"), "{e}");
        }
    }

    #[test]
    fn public_base_url_derivation() {
        let c = Config::from_toml_str("[server]\npublic_url = \"https://court.example/\"\n", "t")
            .unwrap();
        assert_eq!(c.public_base_url(), "https://court.example");

        let c = Config::from_toml_str(
            "[server]\nlisten = \"0.0.0.0:8443\"\n[media]\nannounced_address = \"203.0.113.10\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.public_base_url(), "https://203.0.113.10:8443");

        let c = Config::from_toml_str(
            "[server]\nlisten = \"127.0.0.1:80\"\n[server.tls]\nenabled = false\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.public_base_url(), "http://127.0.0.1");

        let c = Config::from_toml_str("", "t").unwrap();
        assert_eq!(
            c.public_base_url(),
            format!("https://{}:8443", local_hostname())
        );
    }
}
