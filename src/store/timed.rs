//! A [`Store`] that times every call of another: `openhearing_store_seconds{op}`
//! (a histogram) and `openhearing_store_errors_total{op}` in `/metrics`. The server
//! wraps its store in it once, so every database call — the hearing actors' batches,
//! joins' lookups, the admin API — is measured where it happens.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{readiness, Store, StoreError, Write};
use crate::model::{
    Admission, AuditEntry, AuditRecord, Hearing, HearingUpdate, NewHearing, NewParticipant,
    Participant, Role, Site, StateRecord, Status,
};

/// `inner`, timed.
pub struct Timed(pub Arc<dyn Store>);

async fn timed<T, E>(op: &'static str, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let start = Instant::now();
    let out = call.await;
    crate::metrics::store_call(op, start.elapsed(), out.is_err());
    out
}

#[async_trait]
impl Store for Timed {
    async fn ping(&self) -> Result<(), StoreError> {
        timed("ping", self.0.ping()).await
    }
    async fn writable(&self) -> Result<(), readiness::NotWritable> {
        timed("writable", self.0.writable()).await
    }
    async fn create_hearing(
        &self,
        new: NewHearing,
        auto_admit: &[Role],
    ) -> Result<Hearing, StoreError> {
        timed("create_hearing", self.0.create_hearing(new, auto_admit)).await
    }
    async fn list_hearings(&self) -> Result<Vec<Hearing>, StoreError> {
        timed("list_hearings", self.0.list_hearings()).await
    }
    async fn get_hearing(&self, id: Uuid) -> Result<Option<Hearing>, StoreError> {
        timed("get_hearing", self.0.get_hearing(id)).await
    }
    async fn get_participant(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<Option<Participant>, StoreError> {
        timed(
            "get_participant",
            self.0.get_participant(hearing_id, participant_id),
        )
        .await
    }
    async fn update_hearing(
        &self,
        id: Uuid,
        update: HearingUpdate,
    ) -> Result<Option<Hearing>, StoreError> {
        timed("update_hearing", self.0.update_hearing(id, update)).await
    }
    async fn upsert_site(&self, hearing_id: Uuid, site: Site) -> Result<(), StoreError> {
        timed("upsert_site", self.0.upsert_site(hearing_id, site)).await
    }
    async fn add_participant(
        &self,
        hearing_id: Uuid,
        new: NewParticipant,
        admission: Admission,
    ) -> Result<Participant, StoreError> {
        timed(
            "add_participant",
            self.0.add_participant(hearing_id, new, admission),
        )
        .await
    }
    async fn delete_participant(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<bool, StoreError> {
        timed(
            "delete_participant",
            self.0.delete_participant(hearing_id, participant_id),
        )
        .await
    }
    async fn save_participant_state(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
        admission: Admission,
        muted: bool,
    ) -> Result<(), StoreError> {
        timed(
            "save_participant_state",
            self.0
                .save_participant_state(hearing_id, participant_id, admission, muted),
        )
        .await
    }
    async fn revoke_link(
        &self,
        hearing_id: Uuid,
        participant_id: Uuid,
    ) -> Result<Option<u32>, StoreError> {
        timed(
            "revoke_link",
            self.0.revoke_link(hearing_id, participant_id),
        )
        .await
    }
    async fn save_status(
        &self,
        hearing_id: Uuid,
        status: &Status,
        history: Option<(String, DateTime<Utc>)>,
    ) -> Result<(), StoreError> {
        timed(
            "save_status",
            self.0.save_status(hearing_id, status, history),
        )
        .await
    }
    async fn state_history(&self, hearing_id: Uuid) -> Result<Vec<StateRecord>, StoreError> {
        timed("state_history", self.0.state_history(hearing_id)).await
    }
    async fn apply(&self, hearing_id: Uuid, batch: &[Write]) -> Result<(), StoreError> {
        timed("apply", self.0.apply(hearing_id, batch)).await
    }
    async fn append_audit(
        &self,
        hearing_id: Uuid,
        record: AuditRecord,
    ) -> Result<AuditEntry, StoreError> {
        timed("append_audit", self.0.append_audit(hearing_id, record)).await
    }
    async fn audit_log(
        &self,
        hearing_id: Uuid,
    ) -> Result<Option<(Vec<AuditEntry>, u64, String)>, StoreError> {
        timed("audit_log", self.0.audit_log(hearing_id)).await
    }
    async fn add_admin_key(&self, name: &str, sha256: &str) -> Result<(), StoreError> {
        timed("add_admin_key", self.0.add_admin_key(name, sha256)).await
    }
    async fn admin_key_name(&self, sha256: &str) -> Result<Option<String>, StoreError> {
        timed("admin_key_name", self.0.admin_key_name(sha256)).await
    }
    async fn list_admin_keys(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        timed("list_admin_keys", self.0.list_admin_keys()).await
    }
}
