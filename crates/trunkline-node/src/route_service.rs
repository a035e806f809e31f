//! `trunkline.v1.RouteService`: the SIP proxies' API. Its methods arrive with the routing,
//! health and Service Continuity capabilities; the service is served from the start so
//! proxies and health checks can find it.

use std::sync::Arc;

use trunkline_api::v1::route_service_server::RouteService;

use crate::cluster::Cluster;

pub struct RouteApi {
    #[allow(dead_code)] // read by the routing methods that the next capability adds
    cluster: Arc<Cluster>,
}

impl RouteApi {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        RouteApi { cluster }
    }
}

#[tonic::async_trait]
impl RouteService for RouteApi {}
