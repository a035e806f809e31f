//! What can go wrong when the node serves a request, and the one place that turns it into a
//! gRPC status with the right code and a message a user can act on.

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};
use trunkline_api::v1::metadata::{FIELD_HEADER, LEADER_HEADER, RETRY_HEADER, RETRY_NOT_APPLIED};

/// An error from cluster operations. It also travels between nodes when a follower forwards a
/// write, so it is serialisable and owns its strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ClusterError {
    /// A domain error: a malformed field, a missing object, a refused state change.
    #[error(transparent)]
    Domain(#[from] trunkline_core::Error),
    /// The request is well formed but the cluster's state does not allow it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// No leader can be reached, or a peer is down; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The request was certainly not applied because no leader could be reached from this
    /// node; a client may send it to another node, preferably the leader named here.
    #[error("{message}")]
    NotApplied {
        message: String,
        leader_api_addr: Option<String>,
    },
    /// The request ran out of time; a write may or may not have been applied.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The node that received a forwarded request is not the leader (internal to forwarding:
    /// the request was not proposed, so it is safe to send it to the new leader).
    #[error("node is not the leader")]
    NotLeader { leader_id: Option<u64> },
    /// A resource this node keeps in reserve would be used up (the data disk's free space);
    /// the request was not applied.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A bug; the node logs it. Never a write whose outcome is unknown: that is
    /// `Unavailable` saying it may or may not have been applied.
    #[error("{0}")]
    Internal(String),
}

impl ClusterError {
    pub fn internal(error: impl std::fmt::Display) -> Self {
        ClusterError::Internal(error.to_string())
    }
}

impl From<trunkline_core::FieldError> for ClusterError {
    fn from(error: trunkline_core::FieldError) -> Self {
        ClusterError::Domain(error.into())
    }
}

impl From<ClusterError> for Status {
    fn from(error: ClusterError) -> Status {
        if let ClusterError::NotApplied {
            message,
            leader_api_addr,
        } = &error
        {
            let mut metadata = tonic::metadata::MetadataMap::new();
            metadata.insert(
                RETRY_HEADER,
                tonic::metadata::MetadataValue::from_static(RETRY_NOT_APPLIED),
            );
            if let Some(value) = leader_api_addr
                .as_deref()
                .and_then(|address| address.parse().ok())
            {
                metadata.insert(LEADER_HEADER, value);
            }
            return Status::with_metadata(Code::Unavailable, message.clone(), metadata);
        }
        use trunkline_core::Error as Domain;
        let code = match &error {
            ClusterError::Domain(Domain::InvalidField { .. }) => Code::InvalidArgument,
            ClusterError::Domain(Domain::NotFound { .. }) => Code::NotFound,
            ClusterError::Domain(Domain::AlreadyExists { .. }) => Code::AlreadyExists,
            ClusterError::Domain(Domain::FailedPrecondition(_)) => Code::FailedPrecondition,
            ClusterError::Domain(Domain::LimitReached(_)) => Code::ResourceExhausted,
            ClusterError::Domain(Domain::PermissionDenied(_)) => Code::PermissionDenied,
            ClusterError::FailedPrecondition(_) => Code::FailedPrecondition,
            ClusterError::Unavailable(_)
            | ClusterError::NotLeader { .. }
            | ClusterError::NotApplied { .. } => Code::Unavailable,
            ClusterError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ClusterError::ResourceExhausted(_) => Code::ResourceExhausted,
            ClusterError::Internal(message) => {
                tracing::error!(%message, "internal error");
                Code::Internal
            }
        };
        let mut status = Status::new(code, error.to_string());
        if let ClusterError::Domain(Domain::InvalidField { field, .. }) = &error {
            if let Ok(value) = field.parse() {
                status.metadata_mut().insert(FIELD_HEADER, value);
            }
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_never_internal() {
        let status = Status::from(ClusterError::Domain(trunkline_core::Error::invalid(
            "key",
            "must not be empty",
        )));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "key: must not be empty");
        let field = status.metadata().get(FIELD_HEADER);
        assert_eq!(field.and_then(|value| value.to_str().ok()), Some("key"));
        let status = Status::from(ClusterError::Domain(trunkline_core::Error::not_found(
            "member", "4",
        )));
        assert_eq!(status.code(), Code::NotFound);
    }

    #[test]
    fn a_request_not_applied_carries_the_retry_and_leader_hints() {
        let status = Status::from(ClusterError::NotApplied {
            message: "no leader".into(),
            leader_api_addr: Some("10.0.0.2:7400".into()),
        });
        assert_eq!(status.code(), Code::Unavailable);
        let header = |name| {
            status
                .metadata()
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        assert_eq!(header(RETRY_HEADER), Some(RETRY_NOT_APPLIED));
        assert_eq!(header(LEADER_HEADER), Some("10.0.0.2:7400"));
    }
}
