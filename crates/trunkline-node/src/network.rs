//! The client side of the peer listener: how this node sends Raft messages, forwarded writes
//! and read-index requests to other members.
//!
//! Every call carries a deadline (openraft's TTL for Raft messages), so a hung peer can never
//! block Raft; connections are made lazily and re-made by tonic when a peer comes back.

use std::{sync::Arc, time::Duration};

use trunkline_tls::connect::Connector;

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

use crate::{limits, tls::NodeTls, wire};

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

/// How this node dials its peers: over TLS with its own certificate, expecting the target's
/// (or in plaintext, for a node run `--insecure` on loopback).
#[derive(Clone)]
pub struct Dialer {
    tls: Option<Arc<NodeTls>>,
}

impl Dialer {
    pub fn new(tls: Option<Arc<NodeTls>>) -> Dialer {
        Dialer { tls }
    }

    /// The node's TLS (`None`: `--insecure`).
    pub fn tls(&self) -> Option<&Arc<NodeTls>> {
        self.tls.as_ref()
    }

    /// A lazily connected client for node `target` at `peer_addr`.
    pub fn client(
        &self,
        target: NodeId,
        peer_addr: &str,
    ) -> Result<RaftServiceClient<Channel>, DialError> {
        let endpoint = endpoint(peer_addr)?;
        let channel = match self.connector(target)? {
            None => endpoint.connect_lazy(),
            Some(connector) => endpoint.connect_with_connector_lazy(connector),
        };
        Ok(raft_client(channel))
    }

    /// A client for node `target` at `peer_addr`, connected now: an error says the
    /// connection could not be made, so nothing was sent.
    pub async fn connect(
        &self,
        target: NodeId,
        peer_addr: &str,
    ) -> Result<RaftServiceClient<Channel>, DialError> {
        let endpoint = endpoint(peer_addr)?;
        let channel = match self.connector(target)? {
            None => endpoint.connect().await?,
            Some(connector) => endpoint.connect_with_connector(connector).await?,
        };
        Ok(raft_client(channel))
    }

    /// How to reach `target` over TLS (`None`: plaintext), expecting its certificate
    /// whatever address is dialled, with the configuration current at each connection.
    fn connector(&self, target: NodeId) -> Result<Option<Connector>, DialError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let name = trunkline_tls::node_name(tls.cluster_name(), target);
        let source = tls.clone();
        Connector::new(
            Arc::new(move || source.dial_config()),
            &name,
            limits::PEER_CONNECT_TIMEOUT,
            limits::TLS_HANDSHAKE_TIMEOUT,
        )
        .map(Some)
        .ok_or(DialError::Name(name))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error("{0} is not a name a certificate can carry")]
    Name(String),
}

fn endpoint(peer_addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{peer_addr}"))?
        .connect_timeout(limits::PEER_CONNECT_TIMEOUT)
        .tcp_nodelay(true))
}

fn raft_client(channel: Channel) -> RaftServiceClient<Channel> {
    RaftServiceClient::new(channel)
        .max_decoding_message_size(limits::RAFT_MAX_MESSAGE_BYTES)
        .max_encoding_message_size(limits::RAFT_MAX_MESSAGE_BYTES)
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
    if matches!(which, PeerCall::Forward) {
        // The leader's work on a forwarded request continues the caller's trace.
        crate::telemetry::inject(message.metadata_mut());
    }
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
    pub dialer: Dialer,
    /// The shortest deadline a Raft message gets: [`rpc_deadline`].
    pub min_deadline: Duration,
}

/// The deadline of one Raft message: openraft's TTL, but never less than `min_deadline`
/// (half the shortest election timeout).
///
/// openraft gives heartbeats, appends and the quorum round of a linearizable read the
/// heartbeat interval as their TTL. On a link whose round trip nears that interval (a WAN
/// link, or a new TLS connection's handshake) every reply came too late: the leader could not
/// confirm its leadership for a linearizable read and followers fell behind. A reply within
/// half an election timeout is still worth waiting for; one slower than that means the peer is
/// as good as gone for elections anyway.
pub fn rpc_deadline(ttl: Duration, min_deadline: Duration) -> Duration {
    ttl.max(min_deadline)
}

impl RaftNetworkFactory<TypeConfig> for PeerNetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        PeerNetwork {
            target,
            min_deadline: self.min_deadline,
            cluster_name: self.cluster_name.clone(),
            client: self
                .dialer
                .client(target, &node.peer_addr)
                .map_err(|error| error.to_string()),
        }
    }
}

pub struct PeerNetwork {
    target: NodeId,
    min_deadline: Duration,
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
            rpc_deadline(option.hard_ttl(), self.min_deadline),
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
