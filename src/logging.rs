//! The server's log: where it goes, how it looks, and how a chatty library is kept
//! from flooding it.
//!
//! - **Where:** standard output always (systemd's journal reads it) and, when
//!   `log.file` is set, also a file rotated `daily`, `hourly` or `never`, keeping the
//!   newest `log.keep_files` (the `tracing-appender` crate; written by a background
//!   thread, so a slow disk never stalls a hearing).
//! - **How:** colour only for a person at a terminal; a journal, a pipe or the file
//!   gets plain text (`NO_COLOR` turns colour off even at a terminal). `RUST_LOG`,
//!   when set, overrides `log.filter`. Messages of the `log` crate (webrtc uses it)
//!   are forwarded to tracing.
//! - **Repeats:** a library can log the same warning every 50 ms for as long as a
//!   broken connection lingers (webrtc's ICE agent does, for a session that offers
//!   and never connects: 100 such sessions wrote 7.3 MB in 20 s). [`Repeats`] lets
//!   each place in a library's code (target, file and line) log at most
//!   `log.library_repeats_per_minute` lines a minute; the rest are counted, and one
//!   line a minute says how many were left out and what the last one said. The
//!   server's own messages (target `openhearing…`) are never held back: they are
//!   written to be rare. The limit is per place, not per connection: the library's
//!   lines do not say which connection they are about, and a flood from many
//!   connections is the same flood.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer};

/// How long each place's allowance lasts.
pub const WINDOW: Duration = Duration::from_secs(60);

/// When the log file starts a new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rotation {
    Daily,
    Hourly,
    Never,
}

/// What could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("log.file `{}`: {message}", path.display())]
    File { path: PathBuf, message: String },
}

/// Keeps the log file's writer thread alive; drop it last (it flushes).
#[must_use = "the log file stops being written when this is dropped"]
pub struct LogGuard {
    _file: Option<tracing_appender::non_blocking::WorkerGuard>,
    _summaries: Option<std::thread::JoinHandle<()>>,
}

/// How the log is set up (the `[log]` section, see `config/default.toml`).
pub struct LogSettings<'a> {
    pub filter: &'a str,
    pub file: Option<&'a Path>,
    pub rotation: Rotation,
    pub keep_files: usize,
    /// 0: no limit.
    pub library_repeats_per_minute: u32,
}

/// Sets up logging as the module docs describe. Only the first call in a process
/// takes effect (later ones, e.g. in tests, keep the first set-up).
pub fn init(settings: &LogSettings<'_>) -> Result<LogGuard, LoggingError> {
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::EnvFilter;

    let env_filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| EnvFilter::try_new(s).ok())
        .or_else(|| EnvFilter::try_new(settings.filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let max = env_filter.max_level_hint();
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (file_layer, file_guard) = match settings.file {
        Some(path) => {
            let (writer, guard) = tracing_appender::non_blocking(rolling_file(settings, path)?);
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer);
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let (repeats, summaries) = match settings.library_repeats_per_minute {
        0 => (None, None),
        n => {
            let repeats = Repeats::new(n);
            let summaries = repeats.spawn_summaries();
            (Some(repeats), summaries)
        }
    };
    use tracing_subscriber::layer::SubscriberExt;
    let _ = tracing_subscriber::registry()
        .with(env_filter)
        .with(repeats)
        .with(tracing_subscriber::fmt::layer().with_ansi(ansi))
        .with(file_layer)
        .try_init();
    let mut log_bridge = tracing_log::LogTracer::builder();
    if let Some(max) = max {
        log_bridge = log_bridge.with_max_level(tracing_log::AsLog::as_log(&max));
    }
    let _ = log_bridge.init();
    Ok(LogGuard {
        _file: file_guard,
        _summaries: summaries,
    })
}

fn rolling_file(
    settings: &LogSettings<'_>,
    path: &Path,
) -> Result<tracing_appender::rolling::RollingFileAppender, LoggingError> {
    use tracing_appender::rolling::{RollingFileAppender, Rotation as R};
    let fail = |message: String| LoggingError::File {
        path: path.to_owned(),
        message,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| fail("names no file".into()))?;
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let rotation = match settings.rotation {
        Rotation::Daily => R::DAILY,
        Rotation::Hourly => R::HOURLY,
        Rotation::Never => R::NEVER,
    };
    RollingFileAppender::builder()
        .rotation(rotation)
        .filename_prefix(name)
        .max_log_files(settings.keep_files.max(1))
        .build(dir)
        .map_err(|e| fail(e.to_string()))
}

/// Where a library event comes from: its target, file and line.
type Place = (String, Option<String>, Option<u32>);

#[derive(Debug)]
struct Tally {
    since: Instant,
    shown: u32,
    held: u64,
    level: tracing::Level,
    last: String,
}

/// Holds back a library's repeated lines (see the module docs).
#[derive(Clone, Debug)]
pub struct Repeats {
    per_window: u32,
    places: Arc<Mutex<HashMap<Place, Tally>>>,
}

/// What was held back from one place during a window: its count, level and the
/// last line's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub target: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub level: tracing::Level,
    pub count: u64,
    pub last: String,
}

impl Repeats {
    pub fn new(per_window: u32) -> Repeats {
        Repeats {
            per_window,
            places: Arc::default(),
        }
    }

    /// Whether the event from `place` is written now; counts it either way.
    pub fn allow(
        &self,
        place: Place,
        level: tracing::Level,
        now: Instant,
        text: impl FnOnce() -> String,
    ) -> bool {
        let mut places = self.places.lock().unwrap_or_else(|e| e.into_inner());
        let tally = places.entry(place).or_insert(Tally {
            since: now,
            shown: 0,
            held: 0,
            level,
            last: String::new(),
        });
        if now.saturating_duration_since(tally.since) >= WINDOW && tally.held == 0 {
            tally.since = now;
            tally.shown = 0;
        }
        if tally.shown < self.per_window {
            tally.shown += 1;
            return true;
        }
        tally.held += 1;
        tally.level = level;
        tally.last = text();
        false
    }

    /// What was held back in windows that are over; starts their next window.
    /// Places quiet for a whole window are forgotten.
    pub fn take_held(&self, now: Instant) -> Vec<Held> {
        let mut places = self.places.lock().unwrap_or_else(|e| e.into_inner());
        let mut held = Vec::new();
        places.retain(|(target, file, line), t| {
            if now.saturating_duration_since(t.since) < WINDOW {
                return true;
            }
            if t.held == 0 {
                return false;
            }
            held.push(Held {
                target: target.clone(),
                file: file.clone(),
                line: *line,
                level: t.level,
                count: t.held,
                last: std::mem::take(&mut t.last),
            });
            t.since = now;
            t.shown = 0;
            t.held = 0;
            true
        });
        held
    }

    /// A thread that writes, every ten seconds, one line per place whose held-back
    /// repeats' window is over.
    fn spawn_summaries(&self) -> Option<std::thread::JoinHandle<()>> {
        let repeats = self.clone();
        std::thread::Builder::new()
            .name("log-repeats".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(10));
                for h in repeats.take_held(Instant::now()) {
                    tracing::warn!(
                        target: "openhearing::logging",
                        "left out {} repeats of a {} from {} ({}:{}) in the last minute; the last: {}",
                        h.count,
                        h.level,
                        h.target,
                        h.file.as_deref().unwrap_or("?"),
                        h.line.unwrap_or(0),
                        h.last
                    );
                }
            })
            .ok()
    }
}

impl<S: Subscriber> Layer<S> for Repeats {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.normalized_metadata();
        let meta = meta.as_ref().unwrap_or_else(|| event.metadata());
        if meta.target().starts_with("openhearing") {
            return true;
        }
        let place = (
            meta.target().to_owned(),
            meta.file().map(str::to_owned),
            meta.line(),
        );
        self.allow(place, *meta.level(), Instant::now(), || message_of(event))
    }
}

/// The event's message, at most 300 characters.
fn message_of(event: &Event<'_>) -> String {
    struct Message(String);
    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, "{value:?}");
            }
        }
    }
    let mut m = Message(String::new());
    event.record(&mut m);
    m.0.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(line: u32) -> Place {
        (
            "webrtc_ice::agent".into(),
            Some("agent.rs".into()),
            Some(line),
        )
    }

    #[test]
    fn a_place_logs_its_allowance_then_is_counted_and_summarised_once_a_window() {
        let r = Repeats::new(3);
        let t0 = Instant::now();
        let warn = tracing::Level::WARN;
        let shown = (0..1000)
            .filter(|i| r.allow(place(1), warn, t0, || format!("no candidate pairs {i}")))
            .count();
        assert_eq!(shown, 3);
        assert!(
            r.allow(place(2), warn, t0, String::new),
            "another place has its own"
        );
        assert!(
            r.take_held(t0 + WINDOW / 2).is_empty(),
            "the window is not over"
        );
        let held = r.take_held(t0 + WINDOW);
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0].count, 997);
        assert_eq!(held[0].last, "no candidate pairs 999");
        assert_eq!(held[0].line, Some(1));
        // A new window: the allowance again.
        let t1 = t0 + WINDOW;
        let shown = (0..10)
            .filter(|_| r.allow(place(1), warn, t1, String::new))
            .count();
        assert_eq!(shown, 3);
        // Quiet places are forgotten after a window without repeats.
        let _ = r.take_held(t1 + WINDOW);
        assert!(r.take_held(t1 + WINDOW * 3).is_empty());
        assert!(r.places.lock().unwrap().is_empty());
    }
}
