//! What an admin request can fail with, and how each failure answers: a status code
//! and the JSON [`ErrorBody`] `{"error": {"code": "...", "message": "..."}}`.
//!
//! One enum for the whole API, so every handler and extractor answers alike. A
//! change the database cannot take now (a full disk) answers 503
//! `store_unavailable`, whether the hearing refused it or the handler met the store
//! error itself: nothing was changed, and the same request may succeed later. The
//! `From` conversions for axum's rejections live here too: they are what makes the
//! extractors of [`super::extract`] reject with an `AdminError`, and they fix the
//! messages a bad path, query or body gets.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use openhearing_signaling::ErrorCode;
use uuid::Uuid;

use super::dto::{ErrorBody, ErrorDetail};
use super::MAX_BODY_BYTES;
use crate::auth::AuthError;
use crate::hearing::Refusal;
use crate::model::ValidationError;
use crate::store::StoreError;

/// Everything an admin request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("missing or wrong admin API key; send `Authorization: Bearer <key>`")]
    Unauthorized,
    /// This source address presented too many wrong keys (see [`super::guard`]).
    #[error("too many wrong admin API keys from this address; try again in {} s", .0.as_secs_f64().ceil() as u64)]
    TooManyAttempts(std::time::Duration),
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("no hearing with id {0}")]
    HearingNotFound(Uuid),
    #[error("participant {0} is not part of this hearing")]
    ParticipantNotFound(Uuid),
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    /// The hearing refused the change (its code is the protocol's error code).
    #[error("{}", .0.message)]
    Refused(Refusal),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    #[error("cannot issue join token: {0}")]
    Token(#[from] AuthError),
}

impl From<Refusal> for AdminError {
    fn from(r: Refusal) -> Self {
        AdminError::Refused(r)
    }
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            AdminError::BadRequest(_) | AdminError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            AdminError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::HearingNotFound(_) | AdminError::ParticipantNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            AdminError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::Refused(r) => match r.code {
                ErrorCode::InvalidTransition
                | ErrorCode::NotApplicable
                | ErrorCode::HearingClosed => StatusCode::CONFLICT,
                ErrorCode::ReasonRequired | ErrorCode::MalformedMessage => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                ErrorCode::HearingNotFound | ErrorCode::UnknownParticipant => StatusCode::NOT_FOUND,
                ErrorCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            AdminError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Store(_) | AdminError::Token(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> String {
        match self {
            AdminError::Unauthorized => "unauthorized".into(),
            AdminError::TooManyAttempts(_) => "too_many_attempts".into(),
            AdminError::BadRequest(_) => "bad_request".into(),
            AdminError::MalformedJson(_) => "malformed_json".into(),
            AdminError::Validation(_) => "validation_failed".into(),
            AdminError::HearingNotFound(_) => "hearing_not_found".into(),
            AdminError::ParticipantNotFound(_) => "unknown_participant".into(),
            AdminError::PayloadTooLarge => "payload_too_large".into(),
            AdminError::Refused(r) => r.code.to_string(),
            AdminError::Store(e) if e.is_unavailable() => ErrorCode::StoreUnavailable.to_string(),
            AdminError::Store(_) | AdminError::Token(_) => "internal".into(),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if matches!(self, AdminError::Store(_) | AdminError::Token(_)) {
            tracing::error!(error = %self, "admin API request failed");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                crate::hearing::Refusal::store_unavailable().message
            } else {
                "internal server error; see the server log".to_owned()
            }
        } else {
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::warn!(error = %self, "admin API request refused by the hearing");
            }
            self.to_string()
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let AdminError::TooManyAttempts(wait) = self {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A path that does not match the route's parameters.
impl From<PathRejection> for AdminError {
    fn from(rejection: PathRejection) -> Self {
        AdminError::BadRequest(format!("bad path: {}", rejection.body_text()))
    }
}

/// A query string that does not fit (e.g. an unknown parameter).
impl From<QueryRejection> for AdminError {
    fn from(rejection: QueryRejection) -> Self {
        AdminError::Validation(ValidationError::new("query", rejection.body_text()))
    }
}

/// A body that could not be read: too large, or broken off.
impl From<BytesRejection> for AdminError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AdminError::PayloadTooLarge
        } else {
            AdminError::BadRequest(rejection.body_text())
        }
    }
}
