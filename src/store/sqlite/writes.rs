//! The statements that change a hearing, each on a connection that is already inside
//! a write transaction (`SqliteStore::begin` opens it; the caller commits it, and it rolls
//! back on any error). Keeping them free of transactions is what lets one
//! transaction hold several: a hearing actor's batch ([`apply`]) stores a state
//! change together with its audit entry, or neither.

use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::super::{StoreError, Write};
use crate::audit;
use crate::model::{
    micros, rfc3339, Admission, AuditEntry, AuditRecord, Participant, Site, Status,
};

/// Inserts a site unless one of that name exists (its kind is then kept).
pub(super) async fn ensure_site(
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

pub(super) async fn insert_participant(
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

/// Applies a hearing actor's batch in order.
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    hearing_id: Uuid,
    batch: &[Write],
) -> Result<(), StoreError> {
    for write in batch {
        match write {
            Write::Audit(record) => {
                append_audit(conn, hearing_id, record.clone()).await?;
            }
            Write::Status { status, history } => {
                save_status(conn, hearing_id, status, history.as_ref()).await?;
            }
            Write::Participant {
                id,
                admission,
                muted,
            } => save_participant_state(conn, hearing_id, *id, *admission, *muted).await?,
        }
    }
    Ok(())
}

pub(super) async fn save_participant_state(
    conn: &mut SqliteConnection,
    hearing_id: Uuid,
    participant_id: Uuid,
    admission: Admission,
    muted: bool,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE participants SET admission = ?, muted = ? WHERE hearing_id = ? AND id = ?")
        .bind(admission.as_str())
        .bind(i64::from(muted))
        .bind(hearing_id.to_string())
        .bind(participant_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn save_status(
    conn: &mut SqliteConnection,
    hearing_id: Uuid,
    status: &Status,
    history: Option<&(String, DateTime<Utc>)>,
) -> Result<(), StoreError> {
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
    .execute(&mut *conn)
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
        .bind(rfc3339(*at))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Links `record` to the hearing's audit head and moves the head. The transaction
/// is `BEGIN IMMEDIATE`, so the head read here cannot be moved by another writer
/// before this entry lands: two appenders never link to the same predecessor.
pub(super) async fn append_audit(
    conn: &mut SqliteConnection,
    hearing_id: Uuid,
    record: AuditRecord,
) -> Result<AuditEntry, StoreError> {
    let head = sqlx::query("SELECT audit_count, audit_head FROM hearings WHERE id = ?")
        .bind(hearing_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("audit for unknown hearing {hearing_id}")))?;
    let count: i64 = head.try_get("audit_count")?;
    let prev: String = head.try_get("audit_head")?;
    let prev = if count == 0 {
        audit::GENESIS.to_owned()
    } else {
        prev
    };
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
    Ok(entry)
}

/// Rewrites the one row of `write_probe`: the smallest write there is, to learn
/// whether the database can take one (`/readyz`).
pub(super) async fn probe(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO write_probe (id, at) VALUES (1, ?1) \
         ON CONFLICT (id) DO UPDATE SET at = ?1",
    )
    .bind(rfc3339(Utc::now()))
    .execute(conn)
    .await?;
    Ok(())
}
