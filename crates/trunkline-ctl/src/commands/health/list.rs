//! `trunkctl health [--carrier C]`: one line per gateway and per declared edge proxy (its
//! CARRIER `(edge)`): up or down (and drained or disabled), since when and why, and the live
//! result of its prober.
//!
//! The state, its reason and the operator states are replicated, the same on every node; the
//! round trip and last result come live from whichever node probes the gateway. When that
//! node can't be asked they show as `-`, and a note on standard error says which node.

use trunkline_client::{proto, Retry};

use crate::{
    commands::{check, config::ReadFlags, kinds, view},
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Args)]
pub struct Args {
    /// Only this carrier's gateways (no edges: they have no carrier).
    #[arg(long)]
    carrier: Option<String>,
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    if let Some(carrier) = &args.carrier {
        check::check_name("--carrier", carrier)?;
    }
    let request = proto::ListHealthRequest {
        consistency: Some(args.read.into()),
        carrier: args.carrier.clone().unwrap_or_default(),
    };
    let response = context
        .client
        .admin(Retry::Idempotent, |mut admin| {
            let request = request.clone();
            async move { admin.list_health(request).await }
        })
        .await
        .map_err(|error| match &args.carrier {
            Some(carrier) => kinds::or_not_found("carrier", carrier)(error),
            None => Failure::from(error),
        })?;
    let list = view::HealthList {
        gateways: response
            .gateways
            .iter()
            .map(view::GatewayHealth::from)
            .collect(),
        read_state: response.read_state.as_ref().into(),
        unreachable_probers: response.unreachable_probers,
    };
    let now_ms = duration::now_unix_ms();
    output::emit(context.format, &list, |list| {
        view::health_table(list, now_ms)
    })?;
    for prober in &list.unreachable_probers {
        output::note(&format!(
            "live probe results (RTT, LAST) are missing for the gateways and edges of {prober}"
        ));
    }
    Ok(())
}
