//! The admin REST API: the operator's view of hearings, their sites, participants,
//! join links, lifecycle and audit trail.
//!
//! Every route except the OpenAPI document requires `Authorization: Bearer <admin
//! key>` (see [`crate::auth::AdminKey`]). Changes to a hearing go through its actor
//! ([`Hearings::admin`]) so that connected participants see them at once and they are
//! audited with the actor `admin:<key name>`. Errors are JSON
//! `{"error": {"code": "...", "message": "..."}}`.
//!
//! | method & path | answer |
//! |---|---|
//! | `GET /api/v1/openapi.json` | 200 the OpenAPI 3.1 document (no key needed) |
//! | `POST /api/v1/hearings` | 201 [`HearingLinks`] |
//! | `GET /api/v1/hearings` | 200 [`HearingList`] |
//! | `GET /api/v1/hearings/{id}` | 200 [`HearingDetail`] |
//! | `PATCH /api/v1/hearings/{id}` | 200 [`HearingDetail`] |
//! | `POST /api/v1/hearings/{id}/state` | 200 [`HearingDetail`] |
//! | `GET /api/v1/hearings/{id}/sites` | 200 [`SiteList`] |
//! | `PUT /api/v1/hearings/{id}/sites/{name}` | 201 or 200 [`Site`] |
//! | `POST /api/v1/hearings/{id}/participants` | 201 [`IssuedLink`] |
//! | `GET /api/v1/hearings/{id}/participants/{pid}` | 200 [`Participant`] |
//! | `DELETE /api/v1/hearings/{id}/participants/{pid}` | 200 [`Participant`] (removed) |
//! | `POST /api/v1/hearings/{id}/participants/{pid}/revoke` | 200 [`IssuedLink`] |
//! | `GET /api/v1/hearings/{id}/links` | 200 [`HearingLinks`] with fresh tokens |
//! | `GET /api/v1/hearings/{id}/audit` | 200 [`AuditTrail`] |
//!
//! Layout, one concern a file: [`dto`] the wire types (shared with the command
//! line's client), [`error`] the failures and their answers, [`extract`] the
//! extractor ([`extract::Call`]) that checks the key and resolves the path and body
//! before a handler runs, `handlers` the operations (each naming its OpenAPI
//! operation in one line), [`routes`] the router, [`openapi`] the document: every
//! route's answers in one table, and what all routes share. Creating a
//! hearing is the domain's ([`crate::hearing::create_hearing`]), like every other
//! write: nothing here writes the audit trail.

pub mod dto;
pub mod error;
pub mod extract;
pub mod guard;
mod handlers;
pub mod openapi;
pub mod routes;

#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use crate::auth::{AdminKey, JoinTokens};
use crate::hearing::Hearings;
use crate::store::Store;

pub use dto::{
    AuditEntryView, AuditHead, AuditTrail, CreateHearingRequest, CreateParticipantRequest,
    ErrorBody, ErrorDetail, HearingDetail, HearingLinks, HearingList, IssuedLink, ParticipantLink,
    RemoveQuery, SiteKindRequest, SiteList, StateRequest, Verification,
};
pub use error::AdminError;
pub use extract::AdminAuth;
pub use handlers::join_url;
pub use openapi::ApiDoc;
pub use routes::routes;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<dyn Store>,
    /// Live hearings: changes to a hearing go through its actor.
    pub hearings: Arc<Hearings>,
    pub tokens: Arc<JoinTokens>,
    pub admin_key: Arc<AdminKey>,
    /// Wrong keys per source address: guessing is throttled.
    pub key_guard: Arc<guard::KeyGuard>,
    /// Base of join links, without a trailing slash.
    pub public_url: String,
}
