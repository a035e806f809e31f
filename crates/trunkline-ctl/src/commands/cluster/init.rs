//! `trunkctl cluster init`: make one node the first voter of a new cluster.

use trunkline_client::{proto, Retry};

use crate::{
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {}

pub async fn exec(_args: Args, context: &Context) -> Result<(), Failure> {
    if context.client.endpoints().len() != 1 {
        return Err(Failure::Usage(
            "cluster init initialises exactly one node: give exactly one --endpoints address"
                .into(),
        ));
    }
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| async move {
            admin.init_cluster(proto::InitClusterRequest {}).await
        })
        .await?;
    #[derive(serde::Serialize)]
    struct Initialized {
        node_id: u64,
        cluster_name: String,
    }
    let initialized = Initialized {
        node_id: response.node_id,
        cluster_name: response.cluster_name,
    };
    output::emit(context.format, &initialized, |initialized| {
        format!(
            "Initialised cluster {:?} with node {} as its first voter.\nAdd nodes with `trunkctl cluster join --node-id N --peer-addr HOST:PORT --api-addr HOST:PORT`.",
            initialized.cluster_name, initialized.node_id
        )
    })
}
