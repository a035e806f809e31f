//! The Trunkline node daemon as a library: the `trunkline` binary is a thin `main` over it,
//! and tests can start nodes in-process when they need to look inside.
//!
//! Codemap: `config` (options and validation), `server` (listeners, services, shutdown),
//! `cluster` (writes with forwarding, reads at a consistency, membership), `network` and
//! `peer_service` (the two sides of the peer listener), `peer_check` (what a peer message may
//! carry), `admin` (the operators' API, a file per area) and `route_service` (the client
//! API), `convert` (protobuf conversions), `error` (the one mapping to gRPC status codes),
//! `limits` (every bound), `streams` (the WatchEvents and ExportRates stream tasks),
//! `backfill` (fetching the call records a snapshot install skipped from peers, and serving
//! them).

pub mod admin;
pub mod auth;
pub mod backfill;
pub mod batch;
pub mod body_budget;
pub mod cdrs;
pub mod cluster;
pub mod config;
mod convert;
pub mod demo;
pub mod dev;
pub mod error;
pub mod group_commit;
pub mod health;
pub mod http1;
pub mod http_api;
pub mod limits;
pub mod listener;
pub mod liveness;
pub mod metrics;
pub mod network;
pub mod outbound;
pub mod peer_check;
pub mod peer_service;
pub mod registrar;
pub mod route_service;
pub mod route_stream;
pub mod route_token;
pub mod routing_view;
pub mod server;
pub mod sip_probe;
#[cfg(any(test, feature = "test-support"))]
pub mod sip_responder;
pub mod storage_guard;
pub mod streams;
pub mod successor;
pub mod telemetry;
pub mod ticker;
pub mod tls;
pub mod usage;
pub mod webhook;
mod wire;
