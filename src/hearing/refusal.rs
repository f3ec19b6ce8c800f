//! Why a request to a hearing was not carried out: one [`Refusal`] (a protocol error
//! code and a message for the person who asked) and one [`JoinError`] (why a join
//! did not happen).
//!
//! Every layer that turns a "no" into wire text — the hearing core for court actions
//! and joins, the registry for a hearing that cannot be reached, the signaling
//! session before it even asks the hearing, the admin API — uses these two, so a code
//! and its message travel together and are written once. What the client finally
//! sees (code, message, and the close code derived from the code) is the `Refusal`.

use openhearing_signaling::ErrorCode;

/// A refused request: the error code and a message for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The store could not take the change (a full disk, ...): nothing changed.
    pub fn store_unavailable() -> Refusal {
        Refusal::new(
            ErrorCode::StoreUnavailable,
            "the server cannot store changes right now, so nothing changed; try again shortly",
        )
    }
}

/// Why a join did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The hearing does not exist.
    #[error("this hearing does not exist")]
    NotFound,
    /// The hearing could not be loaded, or its actor went away while answering.
    #[error("the hearing is restarting; try again")]
    Unavailable,
    /// The hearing's actor was stopping (idle) when the join arrived; the registry
    /// retries once on a fresh actor, so this never reaches a client as such.
    #[error("the hearing is restarting; try again")]
    Restarting,
    /// The hearing refused this participant (closed, removed, revoked link, ...).
    #[error("{0}")]
    Refused(Refusal),
}

impl JoinError {
    /// What the client is told.
    pub fn refusal(&self) -> Refusal {
        match self {
            JoinError::NotFound => Refusal::new(ErrorCode::HearingNotFound, self.to_string()),
            JoinError::Unavailable | JoinError::Restarting => {
                Refusal::new(ErrorCode::Internal, self.to_string())
            }
            JoinError::Refused(r) => r.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_errors_keep_their_wire_codes_and_messages() {
        assert_eq!(
            JoinError::NotFound.refusal(),
            Refusal::new(ErrorCode::HearingNotFound, "this hearing does not exist")
        );
        for e in [JoinError::Unavailable, JoinError::Restarting] {
            assert_eq!(
                e.refusal(),
                Refusal::new(ErrorCode::Internal, "the hearing is restarting; try again")
            );
        }
        let r = Refusal::new(
            ErrorCode::Removed,
            "the court removed you from this hearing",
        );
        assert_eq!(JoinError::Refused(r.clone()).refusal(), r);
        assert_eq!(
            JoinError::Refused(r).to_string(),
            "the court removed you from this hearing"
        );
    }
}
