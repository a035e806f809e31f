//! What a generic gRPC tool sees on the client listener: health, reflection (v1 and v1alpha)
//! listing the public services only, and no Raft service.

// Tests may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;
use tonic::transport::Channel;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

async fn reflected_services_v1(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    match response.message_response.unwrap() {
        MessageResponse::ListServicesResponse(list) => list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect(),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

async fn reflected_services_v1alpha(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    match response.message_response.unwrap() {
        MessageResponse::ListServicesResponse(list) => list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect(),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_describe_the_public_services_only() {
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(root.path(), 1, &[]);
    let channel = node.channel().await;

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "trunkline.v1.AdminService", "trunkline.v1.RouteService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "trunkline.v1.internal.RaftService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    for services in [
        reflected_services_v1(channel.clone()).await,
        reflected_services_v1alpha(channel.clone()).await,
    ] {
        for expected in [
            "trunkline.v1.AdminService",
            "trunkline.v1.RouteService",
            "grpc.health.v1.Health",
        ] {
            assert!(
                services.iter().any(|name| name == expected),
                "{expected} missing from {services:?}"
            );
        }
        assert!(
            !services.iter().any(|name| name.contains("internal")),
            "internal service exposed: {services:?}"
        );
    }

    // The Raft service is not served on the client listener at all.
    let mut raft =
        trunkline_api::v1::internal::raft_service_client::RaftServiceClient::new(channel);
    let error = raft
        .hello(trunkline_api::v1::internal::RaftPayload {
            cluster_name: "test".into(),
            payload: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unimplemented);
}
