//! Reading rows back into the model: one function per table, and the column lists
//! the queries select, kept next to the code that reads them so the two cannot drift.
//! A value the model cannot hold (a bad UUID, time or enum text) is
//! [`StoreError::Corrupt`], never a panic.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::super::StoreError;
use crate::model::{AuditEntry, Hearing, Participant, Site, Status};

pub(super) fn parse_uuid(row: &SqliteRow, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|e| StoreError::Corrupt(format!("{column} `{text}`: {e}")))
}

pub(super) fn parse_time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let text: String = row.try_get(column)?;
    parse_time_text(column, &text)
}

pub(super) fn parse_time_text(column: &str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("{column} `{text}`: {e}")))
}

pub(super) fn parse_opt_time(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| parse_time_text(column, &t)).transpose()
}

pub(super) fn parse_enum<T: FromStr>(row: &SqliteRow, column: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(column)?;
    T::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(super) const PARTICIPANT_COLUMNS: &str =
    "p.id, p.hearing_id, p.name, p.role, p.site, s.kind AS site_kind, \
     p.admission, p.muted, p.link_version, p.party";
pub(super) const PARTICIPANT_FROM: &str =
    "participants p JOIN sites s ON s.hearing_id = p.hearing_id AND s.name = p.site";

pub(super) fn participant_from_row(row: &SqliteRow) -> Result<Participant, StoreError> {
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

pub(super) const HEARING_COLUMNS: &str = "id, case_number, title, created_at, scheduled_at, state, \
     state_reason, state_since, adjourned_to, locked, spotlight, rooms, consultation_requests, recording";

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(super) fn hearing_from_row(row: &SqliteRow) -> Result<Hearing, StoreError> {
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

pub(super) fn site_from_row(row: &SqliteRow) -> Result<(Uuid, Site), StoreError> {
    Ok((
        parse_uuid(row, "hearing_id")?,
        Site {
            name: row.try_get("name")?,
            kind: parse_enum(row, "kind")?,
        },
    ))
}

pub(super) fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry, StoreError> {
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
