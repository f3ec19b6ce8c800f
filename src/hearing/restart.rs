//! After an unclean stop (kill -9, power cut, out of memory): the audit trail says
//! which sessions the stop cut off.
//!
//! Every session the server ends — a participant leaving, being removed, replaced
//! by another device, the hearing closing, a clean shutdown — leaves a `leave`
//! entry after its `join`. A server that dies has no chance to write those, so at
//! the next start a hearing's trail ends with participants who joined and never
//! left. [`audit_unclean_stop`] runs once at start, before any hearing's actor
//! exists (so nothing else appends to a trail meanwhile), and gives each such
//! hearing one `server_restarted` entry naming the sessions that were lost and the
//! time of the last entry before the stop: the record then shows that the
//! defendant did not walk out, the server went down.
//!
//! Closed hearings are skipped: closing ends every session with a `leave`.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::model::{rfc3339, AuditEntry, AuditRecord};
use crate::store::{Store, StoreError};
use openhearing_signaling::HearingState;

/// Appends a `server_restarted` entry to every hearing whose trail has sessions
/// that were never ended; returns how many hearings got one.
pub async fn audit_unclean_stop(store: &dyn Store) -> Result<usize, StoreError> {
    let mut audited = 0;
    for hearing in store.list_hearings().await? {
        if hearing.status.state == HearingState::Closed {
            continue;
        }
        let Some((entries, _, _)) = store.audit_log(hearing.id).await? else {
            continue;
        };
        let lost = open_sessions(&entries);
        if lost.is_empty() {
            continue;
        }
        let last_entry_at = entries.last().map(|e| rfc3339(e.at));
        let record = AuditRecord {
            at: Utc::now(),
            actor: "system".into(),
            subject: None,
            action: "server_restarted".into(),
            details: json!({
                "previous_stop": "unclean",
                "last_entry_at": last_entry_at,
                "sessions_lost": lost,
            })
            .to_string(),
        };
        store.append_audit(hearing.id, record).await?;
        tracing::warn!(hearing_id = %hearing.id, sessions = lost.len(),
            "the server stopped uncleanly during this hearing; the lost sessions are in its audit trail");
        audited += 1;
    }
    Ok(audited)
}

/// The participants whose last `join` has no later `leave`, oldest first, each
/// with the `seq` of that join.
fn open_sessions(entries: &[AuditEntry]) -> Vec<serde_json::Value> {
    let mut open: BTreeMap<u64, Uuid> = BTreeMap::new();
    let mut by_participant: BTreeMap<Uuid, u64> = BTreeMap::new();
    for e in entries {
        let Some(pid) = e
            .subject
            .as_deref()
            .and_then(|s| s.strip_prefix("participant:"))
            .and_then(|id| Uuid::parse_str(id).ok())
        else {
            continue;
        };
        match e.action.as_str() {
            "join" => {
                if let Some(seq) = by_participant.insert(pid, e.seq) {
                    open.remove(&seq); // replaced by the newer session
                }
                open.insert(e.seq, pid);
            }
            "leave" => {
                if let Some(seq) = by_participant.remove(&pid) {
                    open.remove(&seq);
                }
            }
            _ => {}
        }
    }
    open.into_iter()
        .map(|(seq, pid)| json!({ "participant_id": pid, "join_seq": seq }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, subject: &str, action: &str) -> AuditEntry {
        AuditEntry {
            seq,
            at: Utc::now(),
            actor: "system".into(),
            subject: Some(subject.into()),
            action: action.into(),
            details: "{}".into(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn a_join_without_a_leave_is_a_lost_session() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let p = |id: Uuid| format!("participant:{id}");
        let entries = [
            entry(1, &p(a), "join"),
            entry(2, &p(b), "join"),
            entry(3, &p(b), "mute"),
            entry(4, &p(a), "leave"),
            entry(5, &p(c), "join"),
            entry(6, &p(c), "join"), // a second device replaced the first
            entry(7, "participant:not-a-uuid", "join"),
        ];
        let lost = open_sessions(&entries);
        assert_eq!(
            lost,
            vec![
                json!({ "participant_id": b, "join_seq": 2 }),
                json!({ "participant_id": c, "join_seq": 6 }),
            ]
        );
        let all_left = [entry(1, &p(a), "join"), entry(2, &p(a), "leave")];
        assert!(open_sessions(&all_left).is_empty());
    }
}
