//! [`Store`] on SQLite, through sqlx with runtime-checked queries.
//!
//! The database runs in WAL mode: a write appends to the `-wal` file and a commit is
//! one append, so on a full disk a write fails cleanly at that append (SQLITE_FULL)
//! and leaves the database and the earlier WAL frames intact; checkpoints that fail
//! for want of space are retried by SQLite later. A rollback journal would need a new
//! journal file per transaction instead.
//!
//! Every write is one `BEGIN IMMEDIATE`
//! transaction (the write lock is taken before anything is read, so a read-then-write
//! cannot fail half-way with SQLITE_BUSY), committed at the end and rolled back on any
//! error by sqlx's [`sqlx::Transaction`] (its drop rolls back, also when the COMMIT
//! itself failed or the caller gave up waiting). SQLite may already have rolled
//! back on its own after SQLITE_FULL, and then that rollback fails and sqlx still
//! counts the connection as inside a transaction; so every connection is checked
//! when it comes back to the pool ([`clean_on_release`]) and closed instead of
//! reused if it is still counted inside one. A write lock can therefore never
//! outlive the write that took it, and the next write after space returns succeeds.
//!
//! Modules: `rows` reads rows back into the model, `writes` holds the statements
//! that change a hearing (shared by the single calls and [`Store::apply`]'s batches).

mod rows;
mod writes;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, Transaction};
use uuid::Uuid;

use super::readiness::{NotWritable, Readiness};
use super::{Store, StoreError, Write};
use crate::model::{
    micros, rfc3339, Admission, AuditEntry, AuditRecord, Hearing, HearingUpdate, NewHearing,
    NewParticipant, Participant, Role, Site, SiteKind, StateRecord, Status,
};
use rows::{
    audit_from_row, hearing_from_row, parse_enum, parse_opt_time, parse_time, participant_from_row,
    site_from_row, HEARING_COLUMNS, PARTICIPANT_COLUMNS, PARTICIPANT_FROM,
};
use writes::{ensure_site, insert_participant};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// One write: `$body` (statements on the transaction `$tx`, `?` allowed) between
/// [`SqliteStore::begin`] and the commit; its value, or the first error, as noted by
/// [`SqliteStore::noted`]. On an error the transaction is dropped uncommitted, which
/// rolls it back.
macro_rules! in_write {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let done = async {
            let mut $tx = $store.begin().await?;
            let value = $body;
            $tx.commit().await?;
            Ok::<_, StoreError>(value)
        }
        .await;
        $store.noted(done)
    }};
}

/// A SQLite database file (or `sqlite::memory:`).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    readiness: Arc<Readiness>,
}

/// Decides whether a connection coming back to the pool may be reused: not while
/// sqlx counts it inside a transaction. A committed write and a read come back at
/// depth 0; a transaction dropped uncommitted has only queued its rollback, and after
/// SQLITE_FULL that rollback may fail and leave the count at 1 for good. Either way
/// the connection is closed (which ends any transaction) and the pool opens a fresh
/// one: it costs a reconnect after a failed write, and no round trip otherwise. No
/// code here issues `BEGIN` by hand, so sqlx's count is the whole truth.
fn clean_on_release(
    conn: &mut SqliteConnection,
    _meta: PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::debug!("a database connection came back inside a transaction; closing it");
    }
    Box::pin(std::future::ready(Ok(clean)))
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
        let file = options.get_filename().to_owned();
        if let Some(parent) = file.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                    path: parent.to_owned(),
                    source,
                })?;
            }
        }
        // SQLite takes a 0-byte file for a new database: the migrations would run and
        // the court's records would be replaced without a word.
        if std::fs::metadata(&file).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(StoreError::EmptyFile { path: file });
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // No idle timeout, no lifetime (so sqlx runs no maintenance task): sqlx
            // 0.9.0's task can read an underflowed idle count and spin at 100 % CPU
            // forever once the pool closes (sqlx issue 3645, fixed upstream after
            // 0.9.0); seen here as a test process stuck at exit. A local SQLite file
            // gains nothing from recycling its four connections.
            .idle_timeout(None)
            .max_lifetime(None)
            .min_connections(0)
            .after_release(clean_on_release)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                url: database_url.to_owned(),
                source,
            })?;
        // A damaged file is refused before the migrations touch it.
        let report: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_all(&pool)
            .await
            .map_err(|source| StoreError::Open {
                url: database_url.to_owned(),
                source,
            })?;
        if report.len() != 1 || report[0] != "ok" {
            pool.close().await;
            return Err(StoreError::Damaged {
                path: file,
                report: report.join("; "),
            });
        }
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore {
            pool,
            readiness: Arc::default(),
        })
    }

    /// Starts a write: one `BEGIN IMMEDIATE` transaction, rolled back when dropped
    /// uncommitted (every write method goes through `in_write!`).
    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Notes a write's outcome for [`Store::writable`] and passes it on.
    fn noted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => self.readiness.note(Ok(())),
            Err(e) if e.is_unavailable() => self.readiness.note(Err(NotWritable(e.to_string()))),
            Err(_) => {} // refused as wrong: says nothing about the disk
        }
        result
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

impl SqliteStore {
    async fn fill(&self, hearing: &mut Hearing) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT hearing_id, name, kind FROM sites WHERE hearing_id = ? ORDER BY position",
        )
        .bind(hearing.id.to_string())
        .fetch_all(&self.pool)
        .await?;
        hearing.sites = rows
            .iter()
            .map(|r| site_from_row(r).map(|(_, s)| s))
            .collect::<Result<_, _>>()?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PARTICIPANT_COLUMNS} FROM {PARTICIPANT_FROM} \
             WHERE p.hearing_id = ? ORDER BY p.position"
        )))
        .bind(hearing.id.to_string())
        .fetch_all(&self.pool)
        .await?;
        hearing.participants = rows
            .iter()
            .map(participant_from_row)
            .collect::<Result<_, _>>()?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn writable(&self) -> Result<(), NotWritable> {
        self.readiness
            .check(|| async {
                in_write!(self, |tx| writes::probe(&mut tx).await?)
                    .map_err(|e| NotWritable(e.to_string()))
            })
            .await
    }

    async fn create_hearing(
        &self,
        new: NewHearing,
        auto_admit: &[Role],
    ) -> Result<Hearing, StoreError> {
        // Stored with microsecond precision so what we return equals what we read back.
        let created_at = micros(Utc::now());
        let scheduled_at = new.scheduled_at.map(micros);
        let hearing_id = Uuid::new_v4();
        let sites = new.all_sites();
        let status = Status::scheduled(created_at);
        let participants = in_write!(self, |tx| {
            sqlx::query(
                "INSERT INTO hearings (id, case_number, title, created_at, scheduled_at, state, state_since, recording) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(hearing_id.to_string())
            .bind(&new.case_number)
            .bind(&new.title)
            .bind(rfc3339(created_at))
            .bind(scheduled_at.map(rfc3339))
            .bind(status.state.as_str())
            .bind(rfc3339(created_at))
            .bind(i64::from(new.recording.unwrap_or(true)))
            .execute(&mut *tx)
            .await?;
            for site in &sites {
                ensure_site(&mut tx, hearing_id, site).await?;
            }
            let mut participants = Vec::with_capacity(new.participants.len());
            for p in &new.participants {
                let site_kind = sites
                    .iter()
                    .find(|s| s.name == p.site)
                    .map_or(SiteKind::Remote, |s| s.kind);
                let participant = Participant {
                    id: Uuid::new_v4(),
                    hearing_id,
                    admission: if auto_admit.contains(&p.role) {
                        Admission::Admitted
                    } else {
                        Admission::Lobby
                    },
                    name: p.name.clone(),
                    role: p.role,
                    site: p.site.clone(),
                    site_kind,
                    muted: false,
                    link_version: 0,
                    party: p.party.clone(),
                };
                insert_participant(&mut tx, &participant).await?;
                participants.push(participant);
            }
            participants
        })?;
        Ok(Hearing {
            id: hearing_id,
            case_number: new.case_number,
            title: new.title,
            created_at,
            scheduled_at,
            status,
            recording: new.recording.unwrap_or(true),
            sites,
            participants,
        })
    }

    async fn list_hearings(&self) -> Result<Vec<Hearing>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HEARING_COLUMNS} FROM hearings ORDER BY created_at DESC, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut hearings = rows
            .iter()
            .map(hearing_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let rows =
            sqlx::query("SELECT hearing_id, name, kind FROM sites ORDER BY hearing_id, position")
                .fetch_all(&self.pool)
                .await?;
        let mut sites: HashMap<Uuid, Vec<Site>> = HashMap::new();
        for row in &rows {
            let (h, s) = site_from_row(row)?;
            sites.entry(h).or_default().push(s);
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PARTICIPANT_COLUMNS} FROM {PARTICIPANT_FROM} ORDER BY p.hearing_id, p.position"
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut by_hearing: HashMap<Uuid, Vec<Participant>> = HashMap::new();
        for row in &rows {
            let p = participant_from_row(row)?;
            by_hearing.entry(p.hearing_id).or_default().push(p);
        }
        for h in &mut hearings {
            h.sites = sites.remove(&h.id).unwrap_or_default();
            h.participants = by_hearing.remove(&h.id).unwrap_or_default();
        }
        Ok(hearings)
    }

    async fn get_hearing(&self, id: Uuid) -> Result<Option<Hearing>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HEARING_COLUMNS} FROM hearings WHERE id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut hearing = hearing_from_row(&row)?;
        self.fill(&mut hearing).await?;
        Ok(Some(hearing))
    }

    async fn get_participant(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<Option<Participant>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PARTICIPANT_COLUMNS} FROM {PARTICIPANT_FROM} WHERE p.hearing_id = ? AND p.id = ?"
        )))
        .bind(hearing_id.to_string())
        .bind(participant_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(participant_from_row).transpose()
    }

    async fn update_hearing(
        &self,
        id: Uuid,
        update: HearingUpdate,
    ) -> Result<Option<Hearing>, StoreError> {
        let updated = in_write!(self, |tx| {
            let done = sqlx::query(
                "UPDATE hearings SET case_number = COALESCE(?, case_number), \
                 title = COALESCE(?, title), scheduled_at = COALESCE(?, scheduled_at) WHERE id = ?",
            )
            .bind(update.case_number)
            .bind(update.title)
            .bind(update.scheduled_at.map(rfc3339))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            done.rows_affected()
        });
        if updated? == 0 {
            return Ok(None);
        }
        self.get_hearing(id).await
    }

    async fn upsert_site(&self, hearing_id: Uuid, site: Site) -> Result<(), StoreError> {
        in_write!(self, |tx| {
            ensure_site(&mut tx, hearing_id, &site).await?;
            sqlx::query("UPDATE sites SET kind = ? WHERE hearing_id = ? AND name = ?")
                .bind(site.kind.as_str())
                .bind(hearing_id.to_string())
                .bind(&site.name)
                .execute(&mut *tx)
                .await?;
        })
    }

    async fn add_participant(
        &self,
        hearing_id: Uuid,
        new: NewParticipant,
        admission: Admission,
    ) -> Result<Participant, StoreError> {
        in_write!(self, |tx| {
            ensure_site(
                &mut tx,
                hearing_id,
                &Site {
                    name: new.site.clone(),
                    kind: SiteKind::Remote,
                },
            )
            .await?;
            let kind: String =
                sqlx::query_scalar("SELECT kind FROM sites WHERE hearing_id = ? AND name = ?")
                    .bind(hearing_id.to_string())
                    .bind(&new.site)
                    .fetch_one(&mut *tx)
                    .await?;
            let participant = Participant {
                id: Uuid::new_v4(),
                hearing_id,
                name: new.name.clone(),
                role: new.role,
                site: new.site.clone(),
                site_kind: SiteKind::from_str(&kind)
                    .map_err(|e| StoreError::Corrupt(format!("sites.kind: {e}")))?,
                admission,
                muted: false,
                link_version: 0,
                party: new.party.clone(),
            };
            insert_participant(&mut tx, &participant).await?;
            participant
        })
    }

    async fn delete_participant(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<bool, StoreError> {
        in_write!(self, |tx| {
            let done = sqlx::query("DELETE FROM participants WHERE hearing_id = ? AND id = ?")
                .bind(hearing_id.to_string())
                .bind(participant_id.to_string())
                .execute(&mut *tx)
                .await?;
            done.rows_affected() > 0
        })
    }

    async fn save_participant_state(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
        admission: Admission,
        muted: bool,
    ) -> Result<(), StoreError> {
        in_write!(self, |tx| {
            writes::save_participant_state(&mut tx, hearing_id, participant_id, admission, muted)
                .await?;
        })
    }

    async fn revoke_link(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<Option<u32>, StoreError> {
        in_write!(self, |tx| {
            let v: Option<i64> = sqlx::query_scalar(
                "UPDATE participants SET link_version = link_version + 1 \
                 WHERE hearing_id = ? AND id = ? RETURNING link_version",
            )
            .bind(hearing_id.to_string())
            .bind(participant_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            v
        })?
        .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("link_version {v}"))))
        .transpose()
    }

    async fn save_status(
        &self,
        hearing_id: Uuid,
        status: &Status,
        history: Option<(String, DateTime<Utc>)>,
    ) -> Result<(), StoreError> {
        in_write!(self, |tx| {
            writes::save_status(&mut tx, hearing_id, status, history.as_ref()).await?;
        })
    }

    async fn state_history(&self, hearing_id: Uuid) -> Result<Vec<StateRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, state, reason, adjourned_to, actor, at FROM hearing_states \
             WHERE hearing_id = ? ORDER BY seq",
        )
        .bind(hearing_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get("seq")?;
                Ok(StateRecord {
                    seq: seq as u64,
                    state: parse_enum(row, "state")?,
                    reason: row.try_get("reason")?,
                    adjourned_to: parse_opt_time(row, "adjourned_to")?,
                    actor: row.try_get("actor")?,
                    at: parse_time(row, "at")?,
                })
            })
            .collect()
    }

    async fn apply(&self, hearing_id: Uuid, batch: &[Write]) -> Result<(), StoreError> {
        in_write!(self, |tx| {
            writes::apply(&mut tx, hearing_id, batch).await?;
        })
    }

    async fn append_audit(
        &self,
        hearing_id: Uuid,
        record: AuditRecord,
    ) -> Result<AuditEntry, StoreError> {
        in_write!(self, |tx| {
            let entry = writes::append_audit(&mut tx, hearing_id, record).await?;
            entry
        })
    }

    async fn audit_log(
        &self,
        hearing_id: Uuid,
    ) -> Result<Option<(Vec<AuditEntry>, u64, String)>, StoreError> {
        // The head and the entries from one snapshot (one read transaction): read
        // apart, an entry appended between the two reads made a sound chain look
        // broken (seen at the end of a soak, while the last sessions' `leave` rows
        // were written).
        let mut tx = self.pool.begin().await?;
        let Some(head) = sqlx::query("SELECT audit_count, audit_head FROM hearings WHERE id = ?")
            .bind(hearing_id.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let count: i64 = head.try_get("audit_count")?;
        let hash: String = head.try_get("audit_head")?;
        let rows = sqlx::query(
            "SELECT seq, at, actor, subject, action, details, prev_hash, hash FROM audit \
             WHERE hearing_id = ? ORDER BY seq",
        )
        .bind(hearing_id.to_string())
        .fetch_all(&mut *tx)
        .await?;
        // A read: nothing to commit, and ending it at once frees the snapshot.
        tx.rollback().await?;
        let entries = rows.iter().map(audit_from_row).collect::<Result<_, _>>()?;
        Ok(Some((entries, count.max(0) as u64, hash)))
    }

    async fn add_admin_key(&self, name: &str, sha256: &str) -> Result<(), StoreError> {
        in_write!(self, |tx| {
            sqlx::query(
                "INSERT INTO admin_keys (id, name, sha256, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(Uuid::new_v4().to_string())
            .bind(name)
            .bind(sha256)
            .bind(rfc3339(Utc::now()))
            .execute(&mut *tx)
            .await?;
        })
    }

    async fn admin_key_name(&self, sha256: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM admin_keys WHERE sha256 = ?")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn list_admin_keys(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows = sqlx::query("SELECT name, created_at FROM admin_keys ORDER BY created_at, name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, parse_time(r, "created_at")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
