//! The admin API's handlers, one per route, each with the OpenAPI description of its
//! route: a one-line `#[utoipa::path]` naming the method, path, body and the route's
//! set of answers, which [`super::openapi`] declares (the tag, key requirement and
//! path parameters all routes share are added there too).
//!
//! A handler gets its request already checked and resolved, as one
//! [`Call`](super::extract::Call) (key, state, what the path names, body), so what
//! is left here is the operation itself: every change goes through the hearing's
//! actor ([`Hearings::admin`](crate::hearing::Hearings::admin)), creation through
//! [`crate::hearing::create_hearing`]; neither this module nor any other part of the
//! API writes audit records. The answer is built from what the store holds
//! afterwards.

use axum::http::StatusCode;
use axum::Json;
use openhearing_signaling::{ErrorCode, StateChange};
use uuid::Uuid;

use super::dto::{
    AuditEntryView, AuditHead, AuditTrail, CreateHearingRequest, CreateParticipantRequest,
    HearingDetail, HearingLinks, HearingList, IssuedLink, ParticipantLink, RemoveQuery,
    SiteKindRequest, SiteList, StateRequest, Verification,
};
use super::extract::{
    AdminAuth, AdminJson, AdminQuery, Call, HearingId, HearingParticipant, HearingSite, SiteName,
};
#[allow(unused_imports)] // the answer sets are named only inside `#[utoipa::path]`
use super::openapi::answers::*;
use super::{AdminError, AdminState};
use crate::hearing::{AdminOp, AdminOutcome, Refusal};
use crate::model::{
    rfc3339, Admission, Hearing, HearingState, HearingUpdate, Participant, Site, ValidationError,
    MAX_PARTICIPANTS,
};

/// What a handler answers: `T` as JSON, or the error's answer.
type Answer<T> = Result<Json<T>, AdminError>;

/// What a handler that creates answers: `201` (or the status it gives) and `T`.
type Created<T> = Result<(StatusCode, Json<T>), AdminError>;

/// Creates a hearing with its sites and participants and returns every join link.
#[utoipa::path(post, path = "/api/v1/hearings", request_body = CreateHearingRequest, responses(CreateHearing))]
pub(super) async fn create_hearing(
    call: Call<(), AdminJson<CreateHearingRequest>>,
) -> Created<HearingLinks> {
    let new = call.body.0.into_new_hearing()?;
    let (store, actor) = (call.state.store.as_ref(), call.auth.actor());
    let hearing = crate::hearing::create_hearing(store, &call.state.hearings, new, &actor).await?;
    Ok((StatusCode::CREATED, Json(links(&call.state, &hearing)?)))
}

/// Every hearing, newest first.
#[utoipa::path(get, path = "/api/v1/hearings", responses(ListHearings))]
pub(super) async fn list_hearings(call: Call) -> Answer<HearingList> {
    let hearings = call.state.store.list_hearings().await?;
    Ok(Json(HearingList { hearings }))
}

/// One hearing: status, sites, participants (admission, court mute, link version)
/// and its state history.
#[utoipa::path(get, path = "/api/v1/hearings/{id}", responses(GetHearing))]
pub(super) async fn get_hearing(call: Call<HearingId>) -> Answer<HearingDetail> {
    Ok(Json(detail(&call.state, call.target.0).await?))
}

/// Changes the case number, title or scheduled start (absent fields stay).
#[utoipa::path(patch, path = "/api/v1/hearings/{id}", request_body = HearingUpdate, responses(UpdateHearing))]
pub(super) async fn update_hearing(
    call: Call<Hearing, AdminJson<HearingUpdate>>,
) -> Answer<HearingDetail> {
    let AdminJson(update) = call.body;
    update.validate().map_err(|e| {
        if e.field.is_empty() {
            ValidationError::new("body", e.message)
        } else {
            e
        }
    })?;
    let update = HearingUpdate {
        case_number: update.case_number.map(|c| c.trim().to_owned()),
        title: update.title.map(|t| t.trim().to_owned()),
        scheduled_at: update.scheduled_at,
    };
    let op = AdminOp::Update(update);
    change(&call.state, &call.auth, call.target.id, op).await
}

/// Moves the hearing through its lifecycle: `open`, `in_session`, `suspended`
/// (reason), `adjourned` (reason and `adjourned_to`), `closed`. Connected
/// participants are told at once; closing disconnects everyone and ends every link.
#[utoipa::path(post, path = "/api/v1/hearings/{id}/state", request_body = StateRequest, responses(SetState))]
pub(super) async fn set_state(
    call: Call<Hearing, AdminJson<StateRequest>>,
) -> Answer<HearingDetail> {
    let AdminJson(req) = call.body;
    let state_change = StateChange {
        state: req.state,
        reason: req.reason,
        adjourned_to: req.adjourned_to.map(rfc3339),
    };
    let op = AdminOp::SetState(state_change);
    change(&call.state, &call.auth, call.target.id, op).await
}

/// The hearing's sites.
#[utoipa::path(get, path = "/api/v1/hearings/{id}/sites", responses(ListSites))]
pub(super) async fn list_sites(call: Call<Hearing>) -> Answer<SiteList> {
    Ok(Json(SiteList {
        sites: call.target.sites,
    }))
}

/// Adds a site or changes its kind; participants of that site see the new kind.
#[utoipa::path(put, path = "/api/v1/hearings/{id}/sites/{name}", request_body = SiteKindRequest, responses(UpsertSite))]
pub(super) async fn upsert_site(
    call: Call<HearingSite, AdminJson<SiteKindRequest>>,
) -> Created<Site> {
    let (hearing, SiteName(name)) = (&call.target.hearing, &call.target.item);
    let site = Site {
        name: name.trim().to_owned(),
        kind: call.body.0.kind,
    };
    site.validate("site")?;
    let exists = hearing.sites.iter().any(|s| s.name == site.name);
    apply(
        &call.state,
        &call.auth,
        hearing.id,
        AdminOp::UpsertSite(site.clone()),
    )
    .await?;
    let status = if exists {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(site)))
}

/// Invites a participant (their site is created as `remote` if new) and returns
/// their join link. Connected participants see them at once.
#[utoipa::path(post, path = "/api/v1/hearings/{id}/participants", request_body = CreateParticipantRequest, responses(AddParticipant))]
pub(super) async fn add_participant(
    call: Call<Hearing, AdminJson<CreateParticipantRequest>>,
) -> Created<IssuedLink> {
    let hearing = &call.target;
    let new = call.body.0.into_new("")?;
    if hearing.status.state == HearingState::Closed {
        return Err(refusal(
            ErrorCode::HearingClosed,
            "the hearing is closed; nobody can be added to it",
        ));
    }
    if hearing.participants.len() >= MAX_PARTICIPANTS {
        return Err(refusal(
            ErrorCode::NotApplicable,
            format!("the hearing already has {MAX_PARTICIPANTS} participants, the most allowed"),
        ));
    }
    let outcome = apply(
        &call.state,
        &call.auth,
        hearing.id,
        AdminOp::AddParticipant(new),
    )
    .await?;
    let AdminOutcome::Participant(p) = outcome else {
        return Err(not_returned("participant"));
    };
    Ok((StatusCode::CREATED, Json(issued(&call.state, hearing, p)?)))
}

/// One participant: role, site, admission, court mute and link version.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}/participants/{pid}",
    responses(GetParticipant)
)]
pub(super) async fn get_participant(call: Call<HearingParticipant>) -> Answer<Participant> {
    Ok(Json(call.target.item))
}

/// Removes a participant: they are disconnected at once and their link stops
/// working. The record stays (admission `removed`) for the audit trail.
#[utoipa::path(
    delete,
    path = "/api/v1/hearings/{id}/participants/{pid}",
    params(RemoveQuery),
    responses(RemoveParticipant)
)]
pub(super) async fn remove_participant(
    call: Call<HearingParticipant, AdminQuery<RemoveQuery>>,
) -> Answer<Participant> {
    let (hearing, pid) = (call.target.hearing.id, call.target.item.id);
    let reason = call.body.0.reason;
    let remove = AdminOp::Remove {
        participant: pid,
        reason,
    };
    apply(&call.state, &call.auth, hearing, remove).await?;
    let p = call.state.store.get_participant(hearing, pid).await?;
    Ok(Json(p.ok_or(AdminError::ParticipantNotFound(pid))?))
}

/// Revokes a participant's join link: every earlier link stops working (a
/// connected participant is disconnected) and a new link is returned.
#[utoipa::path(
    post,
    path = "/api/v1/hearings/{id}/participants/{pid}/revoke",
    responses(RevokeLink)
)]
pub(super) async fn revoke_link(call: Call<HearingParticipant>) -> Answer<IssuedLink> {
    let (hearing, mut p) = (&call.target.hearing, call.target.item.clone());
    if p.admission == Admission::Removed {
        let message = format!(
            "{} was removed from the hearing; their link cannot be renewed",
            p.name
        );
        return Err(refusal(ErrorCode::NotApplicable, message));
    }
    let outcome = apply(
        &call.state,
        &call.auth,
        hearing.id,
        AdminOp::RevokeLink(p.id),
    )
    .await?;
    let AdminOutcome::LinkVersion(version) = outcome else {
        return Err(not_returned("link version"));
    };
    p.link_version = version;
    Ok(Json(issued(&call.state, hearing, p)?))
}

/// Every participant's current join link (removed participants left out). The
/// same link each time: a link is a function of the participant's link version, so
/// asking again hands out no second valid link; `…/revoke` replaces one.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}/links",
    responses(HearingLinksAnswers)
)]
pub(super) async fn hearing_links(call: Call<Hearing>) -> Answer<HearingLinks> {
    Ok(Json(links(&call.state, &call.target)?))
}

/// The hearing's audit trail, with the result of verifying its hash chain.
#[utoipa::path(get, path = "/api/v1/hearings/{id}/audit", responses(Audit))]
pub(super) async fn audit_trail(call: Call<HearingId>) -> Answer<AuditTrail> {
    let HearingId(id) = call.target;
    let (entries, count, head) = call
        .state
        .store
        .audit_log(id)
        .await?
        .ok_or(AdminError::HearingNotFound(id))?;
    let verification = match crate::audit::verify_chain(id, &entries, count, &head) {
        Ok(()) => Verification {
            ok: true,
            problem: None,
        },
        Err(problem) => Verification {
            ok: false,
            problem: Some(problem.to_string()),
        },
    };
    let entries = entries
        .into_iter()
        .map(|e| AuditEntryView {
            details: serde_json::from_str(&e.details)
                .unwrap_or(serde_json::Value::String(e.details)),
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            subject: e.subject,
            action: e.action,
            prev_hash: e.prev_hash,
            hash: e.hash,
        })
        .collect();
    Ok(Json(AuditTrail {
        hearing_id: id,
        entries,
        head: AuditHead { count, hash: head },
        verification,
    }))
}

/// Every (not removed) participant's current join link.
fn links(state: &AdminState, hearing: &Hearing) -> Result<HearingLinks, AdminError> {
    let participants = hearing
        .participants
        .iter()
        .filter(|p| p.admission != Admission::Removed)
        .map(|p: &Participant| {
            Ok(ParticipantLink {
                participant_id: p.id,
                name: p.name.clone(),
                role: p.role,
                site: p.site.clone(),
                join_url: fresh_link(state, hearing, p)?,
            })
        })
        .collect::<Result<Vec<_>, AdminError>>()?;
    Ok(HearingLinks {
        hearing_id: hearing.id,
        case_number: hearing.case_number.clone(),
        title: hearing.title.clone(),
        participants,
    })
}

/// The participant with their current join link.
fn issued(
    state: &AdminState,
    hearing: &Hearing,
    participant: Participant,
) -> Result<IssuedLink, AdminError> {
    Ok(IssuedLink {
        join_url: fresh_link(state, hearing, &participant)?,
        participant,
    })
}

/// The join link of `participant`'s current link version in `hearing`.
fn fresh_link(
    state: &AdminState,
    hearing: &Hearing,
    participant: &Participant,
) -> Result<String, AdminError> {
    let token = state.tokens.issue(hearing, participant)?;
    Ok(join_url(&state.public_url, hearing.id, &token))
}

/// `{public_url}/join/{hearing_id}#token={jwt}`: the token is in the fragment so it
/// never reaches server or proxy logs.
pub fn join_url(public_url: &str, hearing_id: Uuid, token: &str) -> String {
    format!(
        "{}/join/{hearing_id}#token={token}",
        public_url.trim_end_matches('/')
    )
}

/// Applies `op` to hearing `id` through its actor, on behalf of the key `auth` names.
async fn apply(
    state: &AdminState,
    auth: &AdminAuth,
    id: Uuid,
    op: AdminOp,
) -> Result<AdminOutcome, AdminError> {
    Ok(state.hearings.admin(id, op, auth.actor()).await?)
}

/// Applies `op` (see [`apply`]) and answers with the hearing as stored afterwards.
async fn change(
    state: &AdminState,
    auth: &AdminAuth,
    id: Uuid,
    op: AdminOp,
) -> Answer<HearingDetail> {
    apply(state, auth, id, op).await?;
    Ok(Json(detail(state, id).await?))
}

/// The answer when the hearing's actor did not return the new `what` it should have
/// (a bug, not a refusal): `500 internal`.
fn not_returned(what: &str) -> AdminError {
    let message = format!("the hearing did not return the new {what}");
    refusal(ErrorCode::Internal, message)
}

/// A refusal of this API's own, answered like the hearing's (see [`AdminError::status`]).
fn refusal(code: ErrorCode, message: impl Into<String>) -> AdminError {
    AdminError::Refused(Refusal::new(code, message))
}

/// The stored hearing with its state history.
async fn detail(state: &AdminState, id: Uuid) -> Result<HearingDetail, AdminError> {
    let hearing = state
        .store
        .get_hearing(id)
        .await?
        .ok_or(AdminError::HearingNotFound(id))?;
    let state_history = state.store.state_history(id).await?;
    Ok(HearingDetail {
        hearing,
        state_history,
    })
}
