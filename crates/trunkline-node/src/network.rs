//! The client side of the peer listener: how this node sends Raft messages, forwarded writes
//! and read-index requests to other members.
//!
//! Every call carries a deadline (openraft's TTL for Raft messages), so a hung peer can never
//! block Raft; connections are made lazily and re-made by tonic when a peer comes back.

use std::time::Duration;

use openraft::{
    error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable},
    network::{RPCOption, RaftNetwork, RaftNetworkFactory},
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    },
};
use serde::{de::DeserializeOwned, Serialize};
use tonic::transport::{Channel, Endpoint};
use trunkline_api::v1::internal::{raft_service_client::RaftServiceClient, RaftPayload};
use trunkline_store::{Node, NodeId, TypeConfig};

use crate::{limits, wire};

/// Which peer RPC to call.
#[derive(Clone, Copy, Debug)]
pub enum PeerCall {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Forward,
    Hello,
    Ping,
    ProbeStatus,
}

/// A lazily connected client for one peer address.
pub fn peer_client(peer_addr: &str) -> Result<RaftServiceClient<Channel>, tonic::transport::Error> {
    let channel = Endpoint::from_shared(format!("http://{peer_addr}"))?
        .connect_timeout(limits::PEER_CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(RaftServiceClient::new(channel)
        .max_decoding_message_size(limits::RAFT_MAX_MESSAGE_BYTES)
        .max_encoding_message_size(limits::RAFT_MAX_MESSAGE_BYTES))
}

/// Sends one request to a peer and decodes its reply; `timeout` bounds the whole call.
pub async fn call<Req: Serialize, Reply: DeserializeOwned>(
    client: &mut RaftServiceClient<Channel>,
    cluster_name: &str,
    which: PeerCall,
    request: &Req,
    timeout: Duration,
) -> Result<Reply, tonic::Status> {
    let mut message = tonic::Request::new(RaftPayload {
        cluster_name: cluster_name.to_owned(),
        payload: wire::encode(request)?,
    });
    message.set_timeout(timeout);
    let call = async {
        match which {
            PeerCall::AppendEntries => client.append_entries(message).await,
            PeerCall::Vote => client.vote(message).await,
            PeerCall::InstallSnapshot => client.install_snapshot(message).await,
            PeerCall::Forward => client.forward(message).await,
            PeerCall::Hello => client.hello(message).await,
            PeerCall::Ping => client.ping(message).await,
            PeerCall::ProbeStatus => client.probe_status(message).await,
        }
    };
    // The client-side timer guards against a peer that accepts the connection and then
    // never answers, which the grpc-timeout header alone does not catch.
    let reply = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| tonic::Status::deadline_exceeded(format!("no reply within {timeout:?}")))??;
    wire::decode(&reply.into_inner().payload)
}

/// Makes a [`PeerNetwork`] per replication target; openraft calls it.
#[derive(Clone)]
pub struct PeerNetworkFactory {
    pub cluster_name: String,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        PeerNetwork {
            target,
            cluster_name: self.cluster_name.clone(),
            client: peer_client(&node.peer_addr).map_err(|error| error.to_string()),
        }
    }
}

pub struct PeerNetwork {
    target: NodeId,
    cluster_name: String,
    /// An address that can't make an endpoint stays an error, reported on every send.
    client: Result<RaftServiceClient<Channel>, String>,
}

impl PeerNetwork {
    async fn send<Req, Reply, E>(
        &mut self,
        which: PeerCall,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Reply, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Reply: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &mut self.client {
            Ok(client) => client,
            Err(message) => {
                return Err(RPCError::Unreachable(Unreachable::new(
                    &std::io::Error::other(message.clone()),
                )))
            }
        };
        let result: Result<Result<Reply, RaftError<NodeId, E>>, tonic::Status> = call(
            client,
            &self.cluster_name,
            which,
            request,
            option.hard_ttl(),
        )
        .await;
        match result {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(RPCError::RemoteError(RemoteError::new(self.target, error))),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                Err(RPCError::Unreachable(Unreachable::new(&status)))
            }
            Err(status) => Err(RPCError::Network(NetworkError::new(&status))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.send(PeerCall::AppendEntries, &request, &option).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.send(PeerCall::InstallSnapshot, &request, &option)
            .await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.send(PeerCall::Vote, &request, &option).await
    }
}
