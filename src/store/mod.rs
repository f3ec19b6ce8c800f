//! Persistence of hearings. [`Store`] is the interface the rest of the server uses;
//! [`SqliteStore`] is the only implementation for now (PostgreSQL can follow).
//!
//! # When the store cannot write
//!
//! A full disk, an I/O error or a database locked for too long makes writes fail
//! while reads may still work. The store promises three things then:
//! - every write is one transaction that is rolled back on any error, the failed
//!   COMMIT included, and a connection still inside a transaction never goes back
//!   to the pool, so nothing half-written is stored and the next write, once space
//!   returns, succeeds without a restart;
//! - [`StoreError::is_unavailable`] tells such a failure (the caller answers
//!   `store_unavailable`, HTTP 503) from a bug or damaged data (`internal`);
//! - [`Store::writable`] answers whether a write goes through now (`/readyz`),
//!   from the last write's outcome or a probe write at most once a second
//!   ([`readiness`]).
//!
//! What a hearing does with a failed write is the hearing actor's business
//! (`crate::hearing::actor`): it refuses what it was asked and keeps what happened.

use async_trait::async_trait;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::model::{
    Admission, AuditEntry, AuditRecord, Hearing, HearingUpdate, NewHearing, NewParticipant,
    Participant, Role, Site, StateRecord, Status,
};

pub mod readiness;
mod sqlite;
mod timed;

pub use timed::Timed;

/// What the store's and its users' tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::model::AuditRecord;

    /// An audit record of `action` by `system`, stamped now.
    pub fn record(action: &str) -> AuditRecord {
        AuditRecord {
            at: chrono::Utc::now(),
            actor: "system".into(),
            subject: None,
            action: action.into(),
            details: "{}".into(),
        }
    }
}

pub use sqlite::SqliteStore;

/// One change a hearing actor stores; [`Store::apply`] stores a list of them in
/// order, all or none.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Appends to the hearing's audit chain.
    Audit(AuditRecord),
    Status {
        status: Status,
        /// `(actor, at)` when the lifecycle state changed (appends to the history).
        history: Option<(String, DateTime<Utc>)>,
    },
    Participant {
        id: Uuid,
        admission: Admission,
        muted: bool,
    },
}

/// Why a store operation failed. None of these is the user's fault: the API reports
/// them as `store_unavailable` (503) when [`StoreError::is_unavailable`], else as
/// internal errors, and logs the detail.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database URL `{url}`: {source}")]
    Url {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create database directory {}: {source}", path.display())]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open database `{url}`: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database holds an invalid value: {0}")]
    Corrupt(String),
    /// The database file exists but is empty: opening it would silently start a new,
    /// empty database (and a new admin key) in place of the court's records.
    #[error("the database file {} is empty (0 bytes), perhaps truncated by a full disk or an interrupted copy; restore it from a backup, or delete it to start a new, empty database", path.display())]
    EmptyFile { path: std::path::PathBuf },
    /// `PRAGMA quick_check` found damage.
    #[error("the database file {} is damaged (quick_check: {report}); restore it from a backup", path.display())]
    Damaged {
        path: std::path::PathBuf,
        report: String,
    },
}

impl StoreError {
    /// Whether the database could not carry the operation out for now (a full disk,
    /// an I/O error, locked too long, no connection free in time) rather than
    /// refusing it as wrong (a constraint, damaged data) or being gone for good (the
    /// pool closed at shutdown): retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) | StoreError::Open { source: e, .. } => unavailable_sqlx(e),
            StoreError::CreateDir { .. } => true,
            StoreError::Url { .. }
            | StoreError::Migrate(_)
            | StoreError::Corrupt(_)
            | StoreError::EmptyFile { .. }
            | StoreError::Damaged { .. } => false,
        }
    }
}

/// SQLite's primary result codes that mean "not now" (the extended code's low byte):
/// BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL.
const UNAVAILABLE_SQLITE_CODES: [i64; 8] = [5, 6, 7, 8, 10, 13, 14, 15];

fn unavailable_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|c| UNAVAILABLE_SQLITE_CODES.contains(&(c & 0xff))),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::InvalidSavePointStatement
        | sqlx::Error::BeginFailed => true,
        _ => false,
    }
}

/// The persistence the rest of the server uses. Implementations keep each call
/// atomic; the domain code never sees SQL. A PostgreSQL implementation for multi-node
/// deployments implements this same trait.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Checks that the database takes a write now: the outcome of the last write if
    /// it is under a second old, else a probe write (`/readyz`).
    async fn writable(&self) -> Result<(), readiness::NotWritable>;
    /// Stores a hearing (state `scheduled`), its sites and participants atomically.
    /// Participants of roles in `auto_admit` start admitted, the rest in the lobby.
    /// The caller validates.
    async fn create_hearing(
        &self,
        new: NewHearing,
        auto_admit: &[Role],
    ) -> Result<Hearing, StoreError>;
    /// Every hearing, newest first, with sites and participants in the order given.
    async fn list_hearings(&self) -> Result<Vec<Hearing>, StoreError>;
    async fn get_hearing(&self, id: Uuid) -> Result<Option<Hearing>, StoreError>;
    async fn get_participant(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<Option<Participant>, StoreError>;
    /// Changes the description; `None` when the hearing does not exist.
    async fn update_hearing(
        &self,
        id: Uuid,
        update: HearingUpdate,
    ) -> Result<Option<Hearing>, StoreError>;
    /// Adds a site, or changes the kind of an existing one of that name.
    async fn upsert_site(&self, hearing_id: Uuid, site: Site) -> Result<(), StoreError>;
    /// Adds a participant (their site is created with kind `remote` if new).
    async fn add_participant(
        &self,
        hearing_id: Uuid,
        new: NewParticipant,
        admission: Admission,
    ) -> Result<Participant, StoreError>;
    /// Deletes a participant; false when there was none.
    async fn delete_participant(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<bool, StoreError>;
    /// Saves a participant's lobby/mute state.
    async fn save_participant_state(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
        admission: Admission,
        muted: bool,
    ) -> Result<(), StoreError>;
    /// Invalidates the participant's join links; returns the new link version.
    async fn revoke_link(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<Option<u32>, StoreError>;
    /// Saves the hearing's status; with `history`, also appends a state change.
    async fn save_status(
        &self,
        hearing_id: Uuid,
        status: &Status,
        history: Option<(String, DateTime<Utc>)>,
    ) -> Result<(), StoreError>;
    /// The hearing's state changes, oldest first.
    async fn state_history(&self, hearing_id: Uuid) -> Result<Vec<StateRecord>, StoreError>;
    /// Stores a hearing actor's batch (state changes and the audit entries that
    /// record them, in order) in one transaction: all of it or, on error, none.
    async fn apply(&self, hearing_id: Uuid, batch: &[Write]) -> Result<(), StoreError>;
    /// Appends to the hearing's audit chain (see [`crate::audit`]) and moves its head,
    /// atomically.
    async fn append_audit(
        &self,
        hearing_id: Uuid,
        record: AuditRecord,
    ) -> Result<AuditEntry, StoreError>;
    /// The hearing's audit entries in `seq` order, and its recorded head
    /// (entry count, last hash). `None` when the hearing does not exist.
    async fn audit_log(
        &self,
        hearing_id: Uuid,
    ) -> Result<Option<(Vec<AuditEntry>, u64, String)>, StoreError>;
    /// Stores an admin key's SHA-256 under a name.
    async fn add_admin_key(&self, name: &str, sha256: &str) -> Result<(), StoreError>;
    /// The name of the admin key with this SHA-256, if any.
    async fn admin_key_name(&self, sha256: &str) -> Result<Option<String>, StoreError>;
    /// Names and creation times of all admin keys.
    async fn list_admin_keys(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError>;
}
