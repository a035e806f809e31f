//! `trunkctl gateway ...`: the SIP endpoints of carriers, and draining them for maintenance;
//! and the probe override flags `gateway` and `edge` share.

mod add;
mod drain;
mod list;
mod remove;
mod show;
mod undrain;
mod update;

use trunkline_client::{proto, Retry};

use crate::{
    commands::objects,
    context::{Context, Failure},
    duration,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a gateway of a carrier (fails if it exists).
    Add(add::Args),
    /// Change the given fields of a gateway; the others keep their values.
    Update(update::Args),
    /// One gateway's settings.
    Show(show::Args),
    /// Every gateway, or a carrier's.
    List(list::Args),
    /// Delete a gateway.
    Remove(remove::Args),
    /// Maintenance: send no new calls to a gateway until it is undrained.
    Drain(drain::Args),
    /// End maintenance: route to a drained gateway again.
    Undrain(undrain::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add(args) => add::exec(args, context).await,
        Command::Update(args) => update::exec(args, context).await,
        Command::Show(args) => show::exec(args, context).await,
        Command::List(args) => list::exec(args, context).await,
        Command::Remove(args) => remove::exec(args, context).await,
        Command::Drain(args) => drain::exec(args, context).await,
        Command::Undrain(args) => undrain::exec(args, context).await,
    }
}

/// `--max-calls`: 0 is refused, because on the wire it means "no limit".
fn check_max_calls(max_calls: u32, instead: &str) -> Result<u32, Failure> {
    if max_calls == 0 {
        Err(objects::usage(
            "--max-calls",
            format!("must be at least 1; {instead}"),
        ))
    } else {
        Ok(max_calls)
    }
}

/// `--probe on|off`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Probing {
    On,
    Off,
}

/// How the OPTIONS probes of a gateway or an edge differ from the cluster's health policy
/// (`trunkctl health policy show`), shared by `gateway add|update` and `edge add|update`;
/// each flag is optional and an override left out takes the cluster's value.
#[derive(clap::Args)]
pub struct ProbeFlags {
    /// on: probe it (the default); off: never probe it (for peers that drop OPTIONS), so
    /// only the circuit breaker and operators decide its health.
    #[arg(long, value_enum, value_name = "on|off")]
    probe: Option<Probing>,
    /// Time between two of its probes (500ms, 2s, 1m; a bare number is ms).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
    probe_interval: Option<u64>,
    /// How long one of its probes waits for a reply; at most the interval.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
    probe_timeout: Option<u64>,
    /// Failed probes in a row that take it down.
    #[arg(long, value_name = "N")]
    down_after: Option<u32>,
    /// Alive probes in a row that bring it back.
    #[arg(long, value_name = "N")]
    up_after: Option<u32>,
    /// Final replies that count as alive for it (never 408); '' for the cluster's.
    #[arg(long, value_name = "CODE,...")]
    alive_codes: Option<String>,
}

impl ProbeFlags {
    pub fn is_empty(&self) -> bool {
        self.probe.is_none()
            && self.probe_interval.is_none()
            && self.probe_timeout.is_none()
            && self.down_after.is_none()
            && self.up_after.is_none()
            && self.alive_codes.is_none()
    }

    /// Sets the overrides given on `probe` (absent: none yet); the others are kept. No
    /// override left makes it absent.
    pub fn apply(&self, probe: &mut Option<proto::ProbeOverrides>) -> Result<(), Failure> {
        let mut overrides = probe.take().unwrap_or_default();
        if let Some(probing) = self.probe {
            overrides.disabled = matches!(probing, Probing::Off);
        }
        if let Some(interval_ms) = self.probe_interval {
            overrides.interval_ms = Some(interval_ms);
        }
        if let Some(timeout_ms) = self.probe_timeout {
            overrides.timeout_ms = Some(timeout_ms);
        }
        if let Some(down_after) = self.down_after {
            overrides.down_after = Some(down_after);
        }
        if let Some(up_after) = self.up_after {
            overrides.up_after = Some(up_after);
        }
        if let Some(codes) = &self.alive_codes {
            overrides.alive_codes = objects::parse_codes("--alive-codes", codes)?;
        }
        if overrides != proto::ProbeOverrides::default() {
            *probe = Some(overrides);
        }
        Ok(())
    }

    /// Checks the overrides given, on their own, before anything is sent.
    pub fn check(&self) -> Result<(), Failure> {
        let mut probe = None;
        self.apply(&mut probe)?;
        objects::check_probe_overrides(probe.as_ref()).map(drop)
    }
}

fn find<'a>(routing: &'a proto::ListRoutingResponse, name: &str) -> Option<&'a proto::Gateway> {
    routing.gateways.iter().find(|gateway| gateway.name == name)
}

async fn put(
    context: &Context,
    gateway: proto::Gateway,
    mode: proto::PutMode,
) -> Result<u64, Failure> {
    let request = proto::PutGatewayRequest {
        gateway: Some(gateway),
        mode: mode.into(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_gateway(request).await }
        })
        .await?;
    Ok(response.applied_index)
}

/// Drains or undrains a gateway.
async fn set_drained(context: &Context, name: String, drained: bool) -> Result<(), Failure> {
    objects::check_name("gateway name", &name)?;
    let request = proto::DrainGatewayRequest {
        gateway: name.clone(),
        drained,
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.drain_gateway(request).await }
        })
        .await?;
    let action = if drained { "drained" } else { "undrained" };
    objects::print_written(context, "gateway", &name, action, response.applied_index)
}
