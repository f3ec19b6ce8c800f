//! Persistence of hearings. [`Store`] is the interface the rest of the server uses;
//! [`SqliteStore`] is the only implementation for now (PostgreSQL can follow).

use async_trait::async_trait;
use uuid::Uuid;

use crate::model::{Hearing, NewHearing, Participant};

mod sqlite;

pub use sqlite::SqliteStore;

/// Why a store operation failed. None of these is the user's fault; the API reports
/// them as internal errors and logs the detail.
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
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Stores a hearing and all its participants atomically. The caller validates.
    async fn create_hearing(&self, new: NewHearing) -> Result<Hearing, StoreError>;
    /// Every hearing, newest first, with participants in the order they were given.
    async fn list_hearings(&self) -> Result<Vec<Hearing>, StoreError>;
    async fn get_hearing(&self, id: Uuid) -> Result<Option<Hearing>, StoreError>;
    async fn get_participant(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<Option<Participant>, StoreError>;
}
