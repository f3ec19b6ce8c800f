//! [`Store`] on SQLite, through sqlx with runtime-checked queries.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::audit;
use crate::model::{
    micros, rfc3339, Admission, AuditEntry, AuditRecord, Hearing, HearingUpdate, NewHearing,
    NewParticipant, Participant, Role, Site, SiteKind, StateRecord, Status,
};

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

fn parse_time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let text: String = row.try_get(column)?;
    parse_time_text(column, &text)
}

fn parse_time_text(column: &str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("{column} `{text}`: {e}")))
}

fn parse_opt_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| parse_time_text(column, &t)).transpose()
}

fn parse_enum<T: FromStr>(row: &SqliteRow, column: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(column)?;
    T::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

const PARTICIPANT_COLUMNS: &str =
    "p.id, p.hearing_id, p.name, p.role, p.site, s.kind AS site_kind, \
     p.admission, p.muted, p.link_version, p.party";
const PARTICIPANT_FROM: &str =
    "participants p JOIN sites s ON s.hearing_id = p.hearing_id AND s.name = p.site";

fn participant_from_row(row: &SqliteRow) -> Result<Participant, StoreError> {
    let link_version: i64 = row.try_get("link_version")?;
    Ok(Participant {
        id: parse_uuid(row, "id")?,
        hearing_id: parse_uuid(row, "hearing_id")?,
        name: row.try_get("name")?,
        role: parse_enum(row, "role")?,
        site: row.try_get("site")?,
        site_kind: parse_enum(row, "site_kind")?,
        admission: parse_enum(row, "admission")?,
        muted: row.try_get::<i64, _>("muted")? != 0,
        link_version: u32::try_from(link_version)
            .map_err(|_| StoreError::Corrupt(format!("link_version {link_version}")))?,
        party: row.try_get("party")?,
    })
}

const HEARING_COLUMNS: &str = "id, case_number, title, created_at, scheduled_at, state, \
     state_reason, state_since, adjourned_to, locked, spotlight, rooms, consultation_requests, recording";

fn parse_json<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn hearing_from_row(row: &SqliteRow) -> Result<Hearing, StoreError> {
    let spotlight: Option<String> = row.try_get("spotlight")?;
    Ok(Hearing {
        id: parse_uuid(row, "id")?,
        case_number: row.try_get("case_number")?,
        title: row.try_get("title")?,
        created_at: parse_time(row, "created_at")?,
        scheduled_at: parse_opt_time(row, "scheduled_at")?,
        status: Status {
            state: parse_enum(row, "state")?,
            reason: row.try_get("state_reason")?,
            since: parse_time(row, "state_since")?,
            adjourned_to: parse_opt_time(row, "adjourned_to")?,
            locked: row.try_get::<i64, _>("locked")? != 0,
            spotlight: spotlight
                .map(|t| {
                    Uuid::parse_str(&t)
                        .map_err(|e| StoreError::Corrupt(format!("spotlight `{t}`: {e}")))
                })
                .transpose()?,
            rooms: parse_json(row, "rooms")?,
            consultation_requests: parse_json(row, "consultation_requests")?,
        },
        recording: row.try_get::<i64, _>("recording")? != 0,
        sites: Vec::new(),
        participants: Vec::new(),
    })
}

fn site_from_row(row: &SqliteRow) -> Result<(Uuid, Site), StoreError> {
    Ok((
        parse_uuid(row, "hearing_id")?,
        Site {
            name: row.try_get("name")?,
            kind: parse_enum(row, "kind")?,
        },
    ))
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    Ok(AuditEntry {
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("audit seq {seq}")))?,
        at: parse_time(row, "at")?,
        actor: row.try_get("actor")?,
        subject: row.try_get("subject")?,
        action: row.try_get("action")?,
        details: row.try_get("details")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
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

/// Inserts a site unless one of that name exists (its kind is then kept).
async fn ensure_site(
    conn: &mut sqlx::SqliteConnection,
    hearing_id: Uuid,
    site: &Site,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sites (hearing_id, name, kind, position) \
         VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(position) + 1, 0) FROM sites WHERE hearing_id = ?1)) \
         ON CONFLICT (hearing_id, name) DO NOTHING",
    )
    .bind(hearing_id.to_string())
    .bind(&site.name)
    .bind(site.kind.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_participant(
    conn: &mut sqlx::SqliteConnection,
    participant: &Participant,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO participants (id, hearing_id, position, name, role, site, admission, muted, link_version, party) \
         VALUES (?1, ?2, (SELECT COALESCE(MAX(position) + 1, 0) FROM participants WHERE hearing_id = ?2), \
                 ?3, ?4, ?5, ?6, 0, 0, ?7)",
    )
    .bind(participant.id.to_string())
    .bind(participant.hearing_id.to_string())
    .bind(&participant.name)
    .bind(participant.role.as_str())
    .bind(&participant.site)
    .bind(participant.admission.as_str())
    .bind(&participant.party)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
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
        let mut tx = self.pool.begin().await?;
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
        for p in new.participants {
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
                name: p.name,
                role: p.role,
                site: p.site,
                site_kind,
                muted: false,
                link_version: 0,
                party: p.party,
            };
            insert_participant(&mut tx, &participant).await?;
            participants.push(participant);
        }
        tx.commit().await?;
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
        let done = sqlx::query(
            "UPDATE hearings SET case_number = COALESCE(?, case_number), \
             title = COALESCE(?, title), scheduled_at = COALESCE(?, scheduled_at) WHERE id = ?",
        )
        .bind(update.case_number)
        .bind(update.title)
        .bind(update.scheduled_at.map(rfc3339))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_hearing(id).await
    }

    async fn upsert_site(&self, hearing_id: Uuid, site: Site) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        ensure_site(&mut tx, hearing_id, &site).await?;
        sqlx::query("UPDATE sites SET kind = ? WHERE hearing_id = ? AND name = ?")
            .bind(site.kind.as_str())
            .bind(hearing_id.to_string())
            .bind(&site.name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_participant(
        &self,
        hearing_id: Uuid,
        new: NewParticipant,
        admission: Admission,
    ) -> Result<Participant, StoreError> {
        let mut tx = self.pool.begin().await?;
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
            name: new.name,
            role: new.role,
            site: new.site,
            site_kind: SiteKind::from_str(&kind)
                .map_err(|e| StoreError::Corrupt(format!("sites.kind: {e}")))?,
            admission,
            muted: false,
            link_version: 0,
            party: new.party,
        };
        insert_participant(&mut tx, &participant).await?;
        tx.commit().await?;
        Ok(participant)
    }

    async fn delete_participant(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM participants WHERE hearing_id = ? AND id = ?")
            .bind(hearing_id.to_string())
            .bind(participant_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn save_participant_state(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
        admission: Admission,
        muted: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE participants SET admission = ?, muted = ? WHERE hearing_id = ? AND id = ?",
        )
        .bind(admission.as_str())
        .bind(i64::from(muted))
        .bind(hearing_id.to_string())
        .bind(participant_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revoke_link(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<Option<u32>, StoreError> {
        let v: Option<i64> = sqlx::query_scalar(
            "UPDATE participants SET link_version = link_version + 1 \
             WHERE hearing_id = ? AND id = ? RETURNING link_version",
        )
        .bind(hearing_id.to_string())
        .bind(participant_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        v.map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("link_version {v}"))))
            .transpose()
    }

    async fn save_status(
        &self,
        hearing_id: Uuid,
        status: &Status,
        history: Option<(String, DateTime<Utc>)>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE hearings SET state = ?, state_reason = ?, state_since = ?, adjourned_to = ?, \
             locked = ?, spotlight = ?, rooms = ?, consultation_requests = ? WHERE id = ?",
        )
        .bind(status.state.as_str())
        .bind(&status.reason)
        .bind(rfc3339(status.since))
        .bind(status.adjourned_to.map(rfc3339))
        .bind(i64::from(status.locked))
        .bind(status.spotlight.map(|s| s.to_string()))
        .bind(serde_json::to_string(&status.rooms).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(&status.consultation_requests).unwrap_or_else(|_| "[]".into()))
        .bind(hearing_id.to_string())
        .execute(&mut *tx)
        .await?;
        if let Some((actor, at)) = history {
            sqlx::query(
                "INSERT INTO hearing_states (hearing_id, seq, state, reason, adjourned_to, actor, at) \
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM hearing_states WHERE hearing_id = ?1), \
                         ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(hearing_id.to_string())
            .bind(status.state.as_str())
            .bind(&status.reason)
            .bind(status.adjourned_to.map(rfc3339))
            .bind(actor)
            .bind(rfc3339(at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
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

    async fn append_audit(
        &self,
        hearing_id: Uuid,
        record: AuditRecord,
    ) -> Result<AuditEntry, StoreError> {
        // BEGIN IMMEDIATE takes the write lock before reading the head, so two
        // appenders can never link to the same predecessor.
        let mut conn = self.pool.acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let result = async {
            let head = sqlx::query("SELECT audit_count, audit_head FROM hearings WHERE id = ?")
                .bind(hearing_id.to_string())
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("audit for unknown hearing {hearing_id}")))?;
            let count: i64 = head.try_get("audit_count")?;
            let prev: String = head.try_get("audit_head")?;
            let prev = if count == 0 { audit::GENESIS.to_owned() } else { prev };
            let record = AuditRecord {
                at: micros(record.at),
                ..record
            };
            let entry = audit::link(hearing_id, count as u64 + 1, &prev, record);
            sqlx::query(
                "INSERT INTO audit (hearing_id, seq, at, actor, subject, action, details, prev_hash, hash) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(hearing_id.to_string())
            .bind(entry.seq as i64)
            .bind(rfc3339(entry.at))
            .bind(&entry.actor)
            .bind(&entry.subject)
            .bind(&entry.action)
            .bind(&entry.details)
            .bind(&entry.prev_hash)
            .bind(&entry.hash)
            .execute(&mut *conn)
            .await?;
            sqlx::query("UPDATE hearings SET audit_count = ?, audit_head = ? WHERE id = ?")
                .bind(entry.seq as i64)
                .bind(&entry.hash)
                .bind(hearing_id.to_string())
                .execute(&mut *conn)
                .await?;
            Ok::<_, StoreError>(entry)
        }
        .await;
        match result {
            Ok(entry) => {
                sqlx::query("COMMIT").execute(&mut *conn).await?;
                Ok(entry)
            }
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(e)
            }
        }
    }

    async fn audit_log(
        &self,
        hearing_id: Uuid,
    ) -> Result<Option<(Vec<AuditEntry>, u64, String)>, StoreError> {
        let Some(head) = sqlx::query("SELECT audit_count, audit_head FROM hearings WHERE id = ?")
            .bind(hearing_id.to_string())
            .fetch_optional(&self.pool)
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
        .fetch_all(&self.pool)
        .await?;
        let entries = rows.iter().map(audit_from_row).collect::<Result<_, _>>()?;
        Ok(Some((entries, count.max(0) as u64, hash)))
    }

    async fn add_admin_key(&self, name: &str, sha256: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_keys (id, name, sha256, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(name)
        .bind(sha256)
        .bind(rfc3339(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
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
mod tests {
    use super::*;
    use crate::model::NewParticipant;

    fn new_hearing(case: &str, n: usize) -> NewHearing {
        NewHearing {
            scheduled_at: None,
            recording: None,
            sites: Vec::new(),
            case_number: case.into(),
            title: format!("Phiên tòa {case}"),
            participants: (0..n)
                .map(|i| NewParticipant {
                    name: format!("Người {i}"),
                    role: Role::ALL[i % Role::ALL.len()],
                    site: format!("Điểm cầu {i}"),
                    party: (i % 2 == 0).then(|| format!("Bên {i}")),
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
            .create_hearing(new_hearing("HS-1/2026", 3), &[])
            .await
            .unwrap();
        let b = store
            .create_hearing(new_hearing("HS-2/2026", 10), &[])
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
            .create_hearing(new_hearing("HS-9/2026", 2), &[])
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
        let e = store.create_hearing(h, &[]).await.unwrap_err();
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

    /// Item 8 of the hardening review: a 0-byte database file was silently replaced
    /// by a fresh database with a new admin key.
    #[tokio::test]
    async fn an_empty_database_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/dir/openhearing.db");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"").unwrap();
        let e = SqliteStore::open(&url(dir.path())).await.unwrap_err();
        assert!(matches!(e, StoreError::EmptyFile { .. }), "{e}");
        assert!(e.to_string().contains("restore it from a backup"), "{e}");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "left untouched");
    }

    #[tokio::test]
    async fn a_damaged_database_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SqliteStore::open(&url(dir.path())).await.unwrap();
            store
                .create_hearing(new_hearing("HS-9/2026", 3), &[])
                .await
                .unwrap();
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(store.pool())
                .await
                .unwrap();
            store.close().await;
        }
        // Overwrite the middle of the file (past the header) with garbage.
        let file = dir.path().join("sub/dir/openhearing.db");
        let mut bytes = std::fs::read(&file).unwrap();
        assert!(bytes.len() > 8192, "{} bytes", bytes.len());
        for b in &mut bytes[4096..8192] {
            *b = 0xA5;
        }
        std::fs::write(&file, &bytes).unwrap();
        let e = SqliteStore::open(&url(dir.path())).await.unwrap_err();
        assert!(
            matches!(e, StoreError::Damaged { .. } | StoreError::Open { .. }),
            "{e}"
        );
    }
}
