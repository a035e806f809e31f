//! `trunkctl health ...`: every gateway's and edge's health as the cluster sees it, and the
//! cluster's health policy (probes, circuit breaker, flapping limit).
//!
//! `trunkctl health [--carrier C]` lists one line per gateway and per declared edge proxy (its
//! CARRIER `(edge)`): up or down (and drained or disabled), since when and why, and the live
//! result of its prober. The state, its reason and the operator states are replicated, the
//! same on every node; the round trip and last result come live from whichever node probes
//! the gateway. When that node can't be asked they show as `-`, and a note on standard error
//! says which node. `trunkctl health policy show|set` reads and changes the policy.

mod set;

use serde::Serialize;
use trunkline_client::{proto, Retry};

use crate::{
    commands::{check, config::ReadFlags, kinds, view},
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
#[group(skip)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Only this carrier's gateways (no edges: they have no carrier).
    #[arg(long)]
    carrier: Option<String>,
    #[command(flatten)]
    read: ReadFlags,
}

#[derive(clap::Subcommand)]
enum Command {
    /// The cluster's health policy: probes, circuit breaker, flapping limit.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(clap::Subcommand)]
enum PolicyCommand {
    /// Every setting of the policy, with what it means, named as `health policy set` takes
    /// them.
    Show {
        #[command(flatten)]
        read: ReadFlags,
    },
    /// Change the given settings; the others keep their values.
    Set(set::Args),
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    match args.command {
        Some(Command::Policy(PolicyCommand::Show { read })) => show_policy(context, read).await,
        Some(Command::Policy(PolicyCommand::Set(args))) => set::exec(args, context).await,
        None => list(context, args.carrier, args.read).await,
    }
}

async fn list(context: &Context, carrier: Option<String>, read: ReadFlags) -> Result<(), Failure> {
    if let Some(carrier) = &carrier {
        check::check_name("--carrier", carrier)?;
    }
    let request = proto::ListHealthRequest {
        consistency: Some(read.into()),
        carrier: carrier.clone().unwrap_or_default(),
    };
    let response = context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.list_health(request).await },
        )
        .await
        .map_err(kinds::or_not_found_if("carrier", carrier.as_deref()))?;
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

/// The cluster's health policy, read as `consistency` says.
async fn policy(
    context: &Context,
    consistency: proto::ReadConsistency,
) -> Result<proto::GetHealthPolicyResponse, Failure> {
    let request = proto::GetHealthPolicyRequest {
        consistency: Some(consistency),
    };
    let response = context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.get_health_policy(request).await },
        )
        .await?;
    Ok(response)
}

async fn show_policy(context: &Context, read: ReadFlags) -> Result<(), Failure> {
    let response = policy(context, read.into()).await?;
    #[derive(Serialize)]
    struct Shown {
        policy: view::HealthPolicy,
        read_state: view::ReadState,
    }
    let shown = Shown {
        policy: view::HealthPolicy::from(&response.policy.unwrap_or_default()),
        read_state: response.read_state.as_ref().into(),
    };
    output::emit(context.format, &shown, |shown| {
        view::health_policy_table(&shown.policy)
    })
}
