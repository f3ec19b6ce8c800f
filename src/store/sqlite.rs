//! [`Store`] on SQLite, through sqlx with runtime-checked queries.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::model::{Hearing, NewHearing, Participant, Role};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A SQLite database file (or `sqlite::memory:`).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the file and its directory if missing) the database at
    /// `database_url`, switches it to WAL mode and runs pending migrations.
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(database_url)
            .map_err(|source| StoreError::Url {
                url: database_url.to_owned(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                    path: parent.to_owned(),
                    source,
                })?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                url: database_url.to_owned(),
                source,
            })?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The underlying pool (for tests and maintenance).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn parse_uuid(row: &SqliteRow, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|e| StoreError::Corrupt(format!("{column} `{text}`: {e}")))
}

fn participant_from_row(row: &SqliteRow) -> Result<Participant, StoreError> {
    let role_text: String = row.try_get("role")?;
    let role = Role::from_str(&role_text)
        .map_err(|e| StoreError::Corrupt(format!("participants.role: {e}")))?;
    Ok(Participant {
        id: parse_uuid(row, "id")?,
        hearing_id: parse_uuid(row, "hearing_id")?,
        name: row.try_get("name")?,
        role,
        site: row.try_get("site")?,
    })
}

fn hearing_from_row(row: &SqliteRow) -> Result<Hearing, StoreError> {
    let created: String = row.try_get("created_at")?;
    let created_at = DateTime::parse_from_rfc3339(&created)
        .map_err(|e| StoreError::Corrupt(format!("hearings.created_at `{created}`: {e}")))?
        .with_timezone(&Utc);
    Ok(Hearing {
        id: parse_uuid(row, "id")?,
        case_number: row.try_get("case_number")?,
        title: row.try_get("title")?,
        created_at,
        participants: Vec::new(),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_hearing(&self, new: NewHearing) -> Result<Hearing, StoreError> {
        // Stored with microsecond precision so what we return equals what we read back.
        let now = Utc::now();
        let created_at =
            DateTime::parse_from_rfc3339(&now.to_rfc3339_opts(SecondsFormat::Micros, true))
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or(now);
        let hearing_id = Uuid::new_v4();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO hearings (id, case_number, title, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(hearing_id.to_string())
        .bind(&new.case_number)
        .bind(&new.title)
        .bind(created_at.to_rfc3339_opts(SecondsFormat::Micros, true))
        .execute(&mut *tx)
        .await?;
        let mut participants = Vec::with_capacity(new.participants.len());
        for (position, p) in new.participants.into_iter().enumerate() {
            let participant = Participant {
                id: Uuid::new_v4(),
                hearing_id,
                name: p.name,
                role: p.role,
                site: p.site,
            };
            sqlx::query(
                "INSERT INTO participants (id, hearing_id, position, name, role, site) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(participant.id.to_string())
            .bind(hearing_id.to_string())
            .bind(position as i64)
            .bind(&participant.name)
            .bind(participant.role.as_str())
            .bind(&participant.site)
            .execute(&mut *tx)
            .await?;
            participants.push(participant);
        }
        tx.commit().await?;
        Ok(Hearing {
            id: hearing_id,
            case_number: new.case_number,
            title: new.title,
            created_at,
            participants,
        })
    }

    async fn list_hearings(&self) -> Result<Vec<Hearing>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, case_number, title, created_at FROM hearings \
             ORDER BY created_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut hearings = rows
            .iter()
            .map(hearing_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query(
            "SELECT id, hearing_id, name, role, site FROM participants \
             ORDER BY hearing_id, position",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by_hearing: HashMap<Uuid, Vec<Participant>> = HashMap::new();
        for row in &rows {
            let p = participant_from_row(row)?;
            by_hearing.entry(p.hearing_id).or_default().push(p);
        }
        for h in &mut hearings {
            h.participants = by_hearing.remove(&h.id).unwrap_or_default();
        }
        Ok(hearings)
    }

    async fn get_hearing(&self, id: Uuid) -> Result<Option<Hearing>, StoreError> {
        let row =
            sqlx::query("SELECT id, case_number, title, created_at FROM hearings WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut hearing = hearing_from_row(&row)?;
        let rows = sqlx::query(
            "SELECT id, hearing_id, name, role, site FROM participants \
             WHERE hearing_id = ? ORDER BY position",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        hearing.participants = rows
            .iter()
            .map(participant_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Some(hearing))
    }

    async fn get_participant(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<Option<Participant>, StoreError> {
        let row = sqlx::query(
            "SELECT id, hearing_id, name, role, site FROM participants \
             WHERE hearing_id = ? AND id = ?",
        )
        .bind(hearing_id.to_string())
        .bind(participant_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(participant_from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewParticipant;

    fn new_hearing(case: &str, n: usize) -> NewHearing {
        NewHearing {
            case_number: case.into(),
            title: format!("Phiên tòa {case}"),
            participants: (0..n)
                .map(|i| NewParticipant {
                    name: format!("Người {i}"),
                    role: Role::ALL[i % Role::ALL.len()],
                    site: format!("Điểm cầu {i}"),
                })
                .collect(),
        }
    }

    fn url(dir: &std::path::Path) -> String {
        format!("sqlite://{}", dir.join("sub/dir/openhearing.db").display())
    }

    #[tokio::test]
    async fn create_get_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&url(dir.path())).await.unwrap();
        store.ping().await.unwrap();
        assert!(store.list_hearings().await.unwrap().is_empty());

        let a = store
            .create_hearing(new_hearing("HS-1/2026", 3))
            .await
            .unwrap();
        let b = store
            .create_hearing(new_hearing("HS-2/2026", 10))
            .await
            .unwrap();
        assert_eq!(a.participants.len(), 3);
        assert!(a.participants.iter().all(|p| p.hearing_id == a.id));

        let got = store.get_hearing(a.id).await.unwrap().unwrap();
        assert_eq!(got, a);
        assert_eq!(store.get_hearing(Uuid::new_v4()).await.unwrap(), None);

        let list = store.list_hearings().await.unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.contains(&a) && list.contains(&b));

        let p = &b.participants[7];
        assert_eq!(
            store.get_participant(b.id, p.id).await.unwrap().as_ref(),
            Some(p)
        );
        // A participant of another hearing is not found.
        assert_eq!(store.get_participant(a.id, p.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&url(dir.path())).await.unwrap();
        let a = store
            .create_hearing(new_hearing("HS-9/2026", 2))
            .await
            .unwrap();
        store.close().await;
        drop(store);

        let store = SqliteStore::open(&url(dir.path())).await.unwrap();
        assert_eq!(store.get_hearing(a.id).await.unwrap(), Some(a));
    }

    #[tokio::test]
    async fn create_is_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&url(dir.path())).await.unwrap();
        // Make the database itself refuse the third participant, mid-transaction.
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE INSERT ON participants \
             WHEN NEW.name = 'refused' BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let mut h = new_hearing("HS-3/2026", 4);
        h.participants[2].name = "refused".into();
        let e = store.create_hearing(h).await.unwrap_err();
        assert!(e.to_string().contains("refused by test"), "{e}");

        let hearings: i64 = sqlx::query_scalar("SELECT count(*) FROM hearings")
            .fetch_one(store.pool())
            .await
            .unwrap();
        let participants: i64 = sqlx::query_scalar("SELECT count(*) FROM participants")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!((hearings, participants), (0, 0));
    }

    #[tokio::test]
    async fn bad_url_is_clear() {
        let e = SqliteStore::open("sqlite:///proc/forbidden/x.db")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/proc/forbidden"), "{e}");
    }
}
