//! `trunkctl health policy show`: the probe, breaker and flapping settings, named as
//! `health policy set` takes them.

use serde::Serialize;
use trunkline_client::{proto, Retry};

use crate::{
    commands::{config::ReadFlags, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    read: ReadFlags,
}

#[derive(Serialize)]
struct Shown {
    policy: view::HealthPolicy,
    read_state: view::ReadState,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    let request = proto::GetHealthPolicyRequest {
        consistency: Some(args.read.into()),
    };
    let response = context
        .client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin.get_health_policy(request).await
        })
        .await?;
    let shown = Shown {
        policy: view::HealthPolicy::from(&response.policy.unwrap_or_default()),
        read_state: response.read_state.as_ref().into(),
    };
    output::emit(context.format, &shown, |shown| {
        view::health_policy_table(&shown.policy)
    })
}
