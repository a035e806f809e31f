//! The error that replicated commands and queries return.
//!
//! It travels inside the Raft log's responses, so it is serialisable and owns its strings.
//! Each variant maps to one gRPC status code in the node (`InvalidField` to INVALID_ARGUMENT,
//! `NotFound` to NOT_FOUND, `AlreadyExists` to ALREADY_EXISTS, `FailedPrecondition` to FAILED_PRECONDITION, `LimitReached` to
//! RESOURCE_EXHAUSTED), so the message a user sees names what to fix.

use serde::{Deserialize, Serialize};

use crate::FieldError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Error {
    /// A field of the request is malformed; `field` is its name on the wire.
    #[error("{field}: {reason}")]
    InvalidField { field: String, reason: String },
    /// The named object does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound { kind: String, name: String },
    /// A create of an object that exists.
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: String, name: String },
    /// The request is well formed but the current state does not allow it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A bound on the size of the replicated state was reached.
    #[error("{0}")]
    LimitReached(String),
    /// The caller may not touch the object (it belongs to a tenant outside the caller's),
    /// found when the change applies; says nothing about the object's owner.
    #[error("{0}")]
    PermissionDenied(String),
}

impl From<FieldError> for Error {
    fn from(error: FieldError) -> Self {
        Error::invalid(error.field(), error.reason())
    }
}

impl Error {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn not_found(kind: &str, name: impl Into<String>) -> Self {
        Error::NotFound {
            kind: kind.to_owned(),
            name: name.into(),
        }
    }
}
