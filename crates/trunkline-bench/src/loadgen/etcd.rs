//! etcd's v3 API over raw gRPC: `KV/Put` for the write anchor and `Maintenance/Status` to
//! find the leader, with only the protobuf fields used, declared by hand from etcd's
//! `rpc.proto` (etcd 3.4, as Debian's `etcd-server` ships it) instead of generating its
//! whole API. Fields left out are skipped when decoding, as protobuf intends.

use tonic::{client::Grpc, codegen::http::uri::PathAndQuery, transport::Channel};

/// `etcdserverpb.PutRequest`: the key and value (lease, prev_kv and the ignore flags unset).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `etcdserverpb.PutResponse`: only the header.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    #[prost(int64, tag = "3")]
    pub revision: i64,
    #[prost(uint64, tag = "4")]
    pub raft_term: u64,
}

/// `etcdserverpb.StatusRequest`: empty.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {}

/// `etcdserverpb.StatusResponse`: who answered and whom it follows.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(uint64, tag = "4")]
    pub leader: u64,
}

impl StatusResponse {
    /// Whether the member that answered leads.
    pub fn is_leader(&self) -> bool {
        self.leader != 0 && self.header.as_ref().map(|header| header.member_id) == Some(self.leader)
    }
}

const PUT_PATH: &str = "/etcdserverpb.KV/Put";
const STATUS_PATH: &str = "/etcdserverpb.Maintenance/Status";

/// One `KV/Put` on `grpc`'s connection.
pub async fn put(
    grpc: &mut Grpc<Channel>,
    key: Vec<u8>,
    value: Vec<u8>,
) -> Result<PutResponse, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let codec = tonic_prost::ProstCodec::<PutRequest, PutResponse>::default();
    let response = grpc
        .unary(
            tonic::Request::new(PutRequest { key, value }),
            PathAndQuery::from_static(PUT_PATH),
            codec,
        )
        .await?;
    Ok(response.into_inner())
}

/// `Maintenance/Status` of the member at the other end of `grpc`.
pub async fn status(grpc: &mut Grpc<Channel>) -> Result<StatusResponse, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let codec = tonic_prost::ProstCodec::<StatusRequest, StatusResponse>::default();
    let response = grpc
        .unary(
            tonic::Request::new(StatusRequest {}),
            PathAndQuery::from_static(STATUS_PATH),
            codec,
        )
        .await?;
    Ok(response.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn a_put_request_is_key_then_value() {
        let request = PutRequest {
            key: b"k".to_vec(),
            value: b"vv".to_vec(),
        };
        // Field 1, length-delimited (0x0a), then field 2 (0x12).
        assert_eq!(
            request.encode_to_vec(),
            [0x0a, 1, b'k', 0x12, 2, b'v', b'v']
        );
    }

    #[test]
    fn a_status_response_names_its_leader_and_skips_fields_not_declared() {
        let header = ResponseHeader {
            member_id: 7,
            ..Default::default()
        };
        let mut wire = StatusResponse {
            header: Some(header),
            version: "3.4.23".to_owned(),
            leader: 7,
        }
        .encode_to_vec();
        // dbSize (field 3, varint) and raftIndex (field 5) as etcd sends them.
        wire.extend_from_slice(&[0x18, 0x80, 0x40, 0x28, 9]);
        let status = StatusResponse::decode(wire.as_slice()).unwrap();
        assert!(status.is_leader());
        let follower = StatusResponse {
            leader: 8,
            ..status
        };
        assert!(!follower.is_leader());
    }
}
