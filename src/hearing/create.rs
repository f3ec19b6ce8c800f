//! Creating a hearing: storing it with its sites and participants, and opening its
//! audit trail with the `hearing_created` entry.
//!
//! Every other change to a hearing goes through its actor, which audits it; a
//! hearing that does not exist yet has no actor, so its creation is this one
//! function instead. It lives in the domain, not in the admin API, so that the
//! domain alone writes audit records and decides what a new hearing starts with:
//! the roles the workflow admits without the lobby, and whether it is recorded when
//! the request did not say.

use chrono::{DateTime, Utc};

use super::Hearings;
use crate::model::{rfc3339, AuditRecord, Hearing, NewHearing};
use crate::store::{Store, StoreError};

/// Stores the validated hearing `new` and audits its creation by `actor` (e.g.
/// `admin:<key name>`). `hearings` supplies the workflow's auto-admitted roles and
/// the server's recording default (used when `new.recording` is unset).
pub async fn create_hearing(
    store: &dyn Store,
    hearings: &Hearings,
    mut new: NewHearing,
    actor: &str,
) -> Result<Hearing, StoreError> {
    let auto_admit = hearings.permissions().workflow().auto_admit.clone();
    new.recording.get_or_insert(hearings.record_by_default());
    let hearing = store.create_hearing(new, &auto_admit).await?;
    store
        .append_audit(hearing.id, created_record(&hearing, actor, Utc::now()))
        .await?;
    tracing::info!(hearing_id = %hearing.id, case_number = %hearing.case_number, participants = hearing.participants.len(), actor = %actor, "hearing created");
    Ok(hearing)
}

/// The `hearing_created` entry: what the hearing was created with, so the trail
/// shows it even after later changes.
fn created_record(hearing: &Hearing, actor: &str, at: DateTime<Utc>) -> AuditRecord {
    let details = serde_json::json!({
        "case_number": hearing.case_number,
        "title": hearing.title,
        "scheduled_at": hearing.scheduled_at.map(rfc3339),
        "sites": hearing.sites,
        "participants": hearing.participants.iter().map(|p| serde_json::json!({
            "id": p.id, "name": p.name, "role": p.role, "site": p.site,
        })).collect::<Vec<_>>(),
    });
    AuditRecord {
        at,
        actor: actor.to_owned(),
        subject: None,
        action: "hearing_created".into(),
        details: details.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::model::{Admission, NewParticipant, Role};
    use crate::permissions::Permissions;
    use crate::store::SqliteStore;

    fn new_hearing(recording: Option<bool>) -> NewHearing {
        let person = |name: &str, role, site: &str| NewParticipant {
            name: name.into(),
            role,
            site: site.into(),
            party: None,
        };
        NewHearing {
            case_number: "HS-7/2026".into(),
            title: "Vụ án".into(),
            scheduled_at: None,
            recording,
            sites: Vec::new(),
            participants: vec![
                person("Nguyễn Văn A", Role::PresidingJudge, "Phòng xử án 1"),
                person("Trần Thị B", Role::Defendant, "Trại tạm giam"),
            ],
        }
    }

    #[tokio::test]
    async fn creation_applies_the_defaults_and_opens_the_audit_trail() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
        let hearings = Hearings::new(
            Duration::from_secs(60),
            store.clone(),
            Arc::new(Permissions::defaults()),
            None,
            true,
        );

        let h = create_hearing(store.as_ref(), &hearings, new_hearing(None), "admin:ops")
            .await
            .unwrap();
        assert!(h.recording, "unset: the server's default");
        assert_eq!(h.participants[0].admission, Admission::Admitted);
        assert_eq!(h.participants[1].admission, Admission::Lobby);
        let (entries, count, head) = store.audit_log(h.id).await.unwrap().unwrap();
        assert_eq!((entries.len(), count), (1, 1));
        assert_eq!(head, entries[0].hash);
        let e = &entries[0];
        assert_eq!(
            (e.action.as_str(), e.actor.as_str()),
            ("hearing_created", "admin:ops")
        );
        let details: serde_json::Value = serde_json::from_str(&e.details).unwrap();
        assert_eq!(details["participants"][1]["role"], "defendant");
        assert_eq!(
            details["participants"][1]["id"],
            h.participants[1].id.to_string()
        );

        let h = create_hearing(
            store.as_ref(),
            &hearings,
            new_hearing(Some(false)),
            "system",
        )
        .await
        .unwrap();
        assert!(!h.recording, "an explicit choice wins over the default");
    }
}
