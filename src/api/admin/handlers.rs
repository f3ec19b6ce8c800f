//! The admin API's handlers, one per route, each with the OpenAPI description of its
//! route (`#[utoipa::path]`, collected in [`super::ApiDoc`]; the tag, key requirement
//! and path parameters all routes share are added there).
//!
//! A handler gets its request already checked and resolved by the extractors of
//! [`super::extract`] (key, path, hearing, participant, body), so what is left here
//! is the operation itself: every change goes through the hearing's actor
//! ([`Hearings::admin`](crate::hearing::Hearings::admin)), creation through
//! [`crate::hearing::create_hearing`]; neither this module nor any other part of the
//! API writes audit records. The answer is built from what the store holds
//! afterwards.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use openhearing_signaling::{ErrorCode, StateChange};
use uuid::Uuid;

use super::dto::{
    AuditEntryView, AuditHead, AuditTrail, CreateHearingRequest, CreateParticipantRequest,
    ErrorBody, HearingDetail, HearingLinks, HearingList, IssuedLink, ParticipantLink, RemoveQuery,
    SiteKindRequest, SiteList, StateRequest, Verification,
};
use super::extract::{
    AdminAuth, AdminJson, AdminQuery, HearingId, HearingParticipant, HearingSite, InPath, SiteName,
};
use super::openapi::{ChangeErrors, CreateErrors, HearingErrors, KeyErrors, ParticipantErrors};
use super::{AdminError, AdminState};
use crate::hearing::{AdminOp, AdminOutcome, Refusal};
use crate::model::{
    rfc3339, Admission, Hearing, HearingState, HearingUpdate, Participant, Site, ValidationError,
    MAX_PARTICIPANTS,
};

/// Creates a hearing with its sites and participants and returns every join link.
#[utoipa::path(
    post,
    path = "/api/v1/hearings",
    request_body = CreateHearingRequest,
    responses(
        (status = 201, description = "Created; the join links", body = HearingLinks),
        (status = 422, description = "A field is missing or invalid; the message names it", body = ErrorBody),
        CreateErrors,
    )
)]
pub(super) async fn create_hearing(
    auth: AdminAuth,
    State(state): State<AdminState>,
    AdminJson(request): AdminJson<CreateHearingRequest>,
) -> Result<(StatusCode, Json<HearingLinks>), AdminError> {
    let new = request.into_new_hearing()?;
    let hearing =
        crate::hearing::create_hearing(state.store.as_ref(), &state.hearings, new, &auth.actor())
            .await?;
    Ok((StatusCode::CREATED, Json(links(&state, &hearing)?)))
}

/// Every hearing, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/hearings",
    responses(
        (status = 200, description = "The hearings", body = HearingList),
        KeyErrors,
    )
)]
pub(super) async fn list_hearings(
    _auth: AdminAuth,
    State(state): State<AdminState>,
) -> Result<Json<HearingList>, AdminError> {
    Ok(Json(HearingList {
        hearings: state.store.list_hearings().await?,
    }))
}

/// One hearing: status, sites, participants (admission, court mute, link version)
/// and its state history.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}",
    responses(
        (status = 200, description = "The hearing", body = HearingDetail),
        HearingErrors,
    )
)]
pub(super) async fn get_hearing(
    _auth: AdminAuth,
    State(state): State<AdminState>,
    InPath(HearingId(id)): InPath<HearingId>,
) -> Result<Json<HearingDetail>, AdminError> {
    Ok(Json(detail(&state, id).await?))
}

/// Changes the case number, title or scheduled start (absent fields stay).
#[utoipa::path(
    patch,
    path = "/api/v1/hearings/{id}",
    request_body = HearingUpdate,
    responses(
        (status = 200, description = "The changed hearing", body = HearingDetail),
        (status = 422, description = "A field is invalid; the message names it", body = ErrorBody),
        ChangeErrors,
    )
)]
pub(super) async fn update_hearing(
    auth: AdminAuth,
    State(state): State<AdminState>,
    InPath(hearing): InPath<Hearing>,
    AdminJson(update): AdminJson<HearingUpdate>,
) -> Result<Json<HearingDetail>, AdminError> {
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
    change(&state, &auth, hearing.id, AdminOp::Update(update)).await
}

/// Moves the hearing through its lifecycle: `open`, `in_session`, `suspended`
/// (reason), `adjourned` (reason and `adjourned_to`), `closed`. Connected
/// participants are told at once; closing disconnects everyone and ends every link.
#[utoipa::path(
    post,
    path = "/api/v1/hearings/{id}/state",
    request_body = StateRequest,
    responses(
        (status = 200, description = "The hearing in its new state", body = HearingDetail),
        (status = 409, description = "`invalid_transition`: the lifecycle does not allow this move", body = ErrorBody),
        (status = 422, description = "`reason_required`, `malformed_message` (bad reason) or `validation_failed`", body = ErrorBody),
        ChangeErrors,
    )
)]
pub(super) async fn set_state(
    auth: AdminAuth,
    State(state): State<AdminState>,
    InPath(hearing): InPath<Hearing>,
    AdminJson(req): AdminJson<StateRequest>,
) -> Result<Json<HearingDetail>, AdminError> {
    let state_change = StateChange {
        state: req.state,
        reason: req.reason,
        adjourned_to: req.adjourned_to.map(rfc3339),
    };
    change(&state, &auth, hearing.id, AdminOp::SetState(state_change)).await
}

/// The hearing's sites.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}/sites",
    responses(
        (status = 200, description = "The sites", body = SiteList),
        HearingErrors,
    )
)]
pub(super) async fn list_sites(
    _auth: AdminAuth,
    InPath(hearing): InPath<Hearing>,
) -> Result<Json<SiteList>, AdminError> {
    Ok(Json(SiteList {
        sites: hearing.sites,
    }))
}

/// Adds a site or changes its kind; participants of that site see the new kind.
#[utoipa::path(
    put,
    path = "/api/v1/hearings/{id}/sites/{name}",
    request_body = SiteKindRequest,
    responses(
        (status = 200, description = "The site's kind was changed", body = Site),
        (status = 201, description = "The site was added", body = Site),
        (status = 422, description = "Bad name or kind; the message names the field", body = ErrorBody),
        ChangeErrors,
    )
)]
pub(super) async fn upsert_site(
    auth: AdminAuth,
    State(state): State<AdminState>,
    InPath(HearingSite {
        hearing,
        item: SiteName(name),
    }): InPath<HearingSite>,
    AdminJson(req): AdminJson<SiteKindRequest>,
) -> Result<(StatusCode, Json<Site>), AdminError> {
    let site = Site {
        name: name.trim().to_owned(),
        kind: req.kind,
    };
    site.validate("site")?;
    let exists = hearing.sites.iter().any(|s| s.name == site.name);
    apply(&state, &auth, hearing.id, AdminOp::UpsertSite(site.clone())).await?;
    let status = if exists {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(site)))
}

/// Invites a participant (their site is created as `remote` if new) and returns
/// their join link. Connected participants see them at once.
#[utoipa::path(
    post,
    path = "/api/v1/hearings/{id}/participants",
    request_body = CreateParticipantRequest,
    responses(
        (status = 201, description = "Added; the participant and their join link", body = IssuedLink),
        (status = 409, description = "`hearing_closed`, or `not_applicable` (participant limit reached)", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid; the message names it", body = ErrorBody),
        ChangeErrors,
    )
)]
pub(super) async fn add_participant(
    auth: AdminAuth,
    State(state): State<AdminState>,
    InPath(hearing): InPath<Hearing>,
    AdminJson(request): AdminJson<CreateParticipantRequest>,
) -> Result<(StatusCode, Json<IssuedLink>), AdminError> {
    let new = request.into_new("")?;
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
    let outcome = apply(&state, &auth, hearing.id, AdminOp::AddParticipant(new)).await?;
    let AdminOutcome::Participant(p) = outcome else {
        return Err(not_returned("participant"));
    };
    Ok((StatusCode::CREATED, Json(issued(&state, &hearing, p)?)))
}

/// One participant: role, site, admission, court mute and link version.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}/participants/{pid}",
    responses(
        (status = 200, description = "The participant", body = Participant),
        ParticipantErrors,
    )
)]
pub(super) async fn get_participant(
    _auth: AdminAuth,
    InPath(HearingParticipant { item: p, .. }): InPath<HearingParticipant>,
) -> Result<Json<Participant>, AdminError> {
    Ok(Json(p))
}

/// Removes a participant: they are disconnected at once and their link stops
/// working. The record stays (admission `removed`) for the audit trail.
#[utoipa::path(
    delete,
    path = "/api/v1/hearings/{id}/participants/{pid}",
    params(RemoveQuery),
    responses(
        (status = 200, description = "The participant, now removed", body = Participant),
        (status = 409, description = "`not_applicable`: already removed", body = ErrorBody),
        (status = 422, description = "Bad reason or query", body = ErrorBody),
        ParticipantErrors,
    )
)]
pub(super) async fn remove_participant(
    auth: AdminAuth,
    State(state): State<AdminState>,
    InPath(HearingParticipant { hearing, item: p }): InPath<HearingParticipant>,
    AdminQuery(query): AdminQuery<RemoveQuery>,
) -> Result<Json<Participant>, AdminError> {
    let remove = AdminOp::Remove {
        participant: p.id,
        reason: query.reason,
    };
    apply(&state, &auth, hearing.id, remove).await?;
    let p = state
        .store
        .get_participant(hearing.id, p.id)
        .await?
        .ok_or(AdminError::ParticipantNotFound(p.id))?;
    Ok(Json(p))
}

/// Revokes a participant's join link: every earlier link stops working (a
/// connected participant is disconnected) and a new link is returned.
#[utoipa::path(
    post,
    path = "/api/v1/hearings/{id}/participants/{pid}/revoke",
    responses(
        (status = 200, description = "The participant with their new link version, and the new link", body = IssuedLink),
        (status = 409, description = "`not_applicable`: the participant was removed", body = ErrorBody),
        ParticipantErrors,
    )
)]
pub(super) async fn revoke_link(
    auth: AdminAuth,
    State(state): State<AdminState>,
    InPath(HearingParticipant {
        hearing,
        item: mut p,
    }): InPath<HearingParticipant>,
) -> Result<Json<IssuedLink>, AdminError> {
    if p.admission == Admission::Removed {
        let message = format!(
            "{} was removed from the hearing; their link cannot be renewed",
            p.name
        );
        return Err(refusal(ErrorCode::NotApplicable, message));
    }
    let outcome = apply(&state, &auth, hearing.id, AdminOp::RevokeLink(p.id)).await?;
    let AdminOutcome::LinkVersion(version) = outcome else {
        return Err(not_returned("link version"));
    };
    p.link_version = version;
    Ok(Json(issued(&state, &hearing, p)?))
}

/// Every participant's current join link (removed participants left out). The
/// same link each time: a link is a function of the participant's link version, so
/// asking again hands out no second valid link; `…/revoke` replaces one.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}/links",
    responses(
        (status = 200, description = "The join links", body = HearingLinks),
        HearingErrors,
    )
)]
pub(super) async fn hearing_links(
    _auth: AdminAuth,
    State(state): State<AdminState>,
    InPath(hearing): InPath<Hearing>,
) -> Result<Json<HearingLinks>, AdminError> {
    Ok(Json(links(&state, &hearing)?))
}

/// The hearing's audit trail, with the result of verifying its hash chain.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}/audit",
    responses(
        (status = 200, description = "The entries, the recorded head and the verification", body = AuditTrail),
        HearingErrors,
    )
)]
pub(super) async fn audit_trail(
    _auth: AdminAuth,
    State(state): State<AdminState>,
    InPath(HearingId(id)): InPath<HearingId>,
) -> Result<Json<AuditTrail>, AdminError> {
    let (entries, count, head) = state
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
    state
        .hearings
        .admin(id, op, auth.actor())
        .await
        .map_err(AdminError::from)
}

/// Applies `op` (see [`apply`]) and answers with the hearing as stored afterwards.
async fn change(
    state: &AdminState,
    auth: &AdminAuth,
    id: Uuid,
    op: AdminOp,
) -> Result<Json<HearingDetail>, AdminError> {
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
