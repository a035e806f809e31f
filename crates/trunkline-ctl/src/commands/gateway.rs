//! `trunkctl gateway ...`: the SIP endpoints of carriers, and draining them for maintenance;
//! and the probe override flags `gateway` and `edge` share.

use serde::Serialize;
use trunkline_api::convert::{gateway_from_proto, probe_overrides_from_proto};
use trunkline_client::{proto, Retry};

use crate::{
    commands::{
        check::{self, Optional},
        kinds::{self, Key, Kind},
        view::{details_table, probe_rows, ProbeOverrides},
    },
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a gateway of a carrier (fails if it exists).
    Add(AddArgs),
    /// Change the given fields of a gateway; the others keep their values.
    Update(UpdateArgs),
    #[command(flatten)]
    Common(kinds::Common<Gateway>),
    /// Maintenance: send no new calls to a gateway until it is undrained.
    Drain(Key<Gateway>),
    /// End maintenance: route to a drained gateway again.
    Undrain(Key<Gateway>),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add(args) => add(args, context).await,
        Command::Update(args) => update(args, context).await,
        Command::Common(command) => kinds::exec(context, command).await,
        Command::Drain(key) => set_drained(context, key.key, true).await,
        Command::Undrain(key) => set_drained(context, key.key, false).await,
    }
}

#[derive(clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    key: Key<Gateway>,
    /// The carrier it belongs to.
    #[arg(long)]
    carrier: String,
    /// sip:host[:port][;transport=udp|tcp|tls] or sips:host[:port].
    #[arg(long)]
    uri: String,
    /// Lower is tried first.
    #[arg(long, default_value_t = 0)]
    priority: u32,
    /// Share of calls among gateways of equal priority; 0 makes it a standby.
    #[arg(long, default_value_t = 1)]
    weight: u32,
    /// Most calls at once; no limit when left out.
    #[arg(long, value_name = "N")]
    max_calls: Option<u32>,
    /// Create it disabled: configured, but never routed to.
    #[arg(long)]
    disabled: bool,
    #[command(flatten)]
    probe: ProbeFlags,
}

async fn add(args: AddArgs, context: &Context) -> Result<(), Failure> {
    kinds::add(context, args.key, |name| {
        check::check_name("--carrier", &args.carrier)?;
        let max_concurrent_calls = match args.max_calls {
            Some(max_calls) => check_max_calls(max_calls, "leave it out for no limit")?,
            None => 0,
        };
        let mut gateway = proto::Gateway {
            name,
            carrier: args.carrier,
            uri: args.uri,
            priority: args.priority,
            weight: args.weight,
            max_concurrent_calls,
            disabled: args.disabled,
            drained: false,
            probe: None,
        };
        args.probe.apply(&mut gateway.probe, false)?;
        Ok(gateway)
    })
    .await
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    key: Key<Gateway>,
    /// Move the gateway to another carrier.
    #[arg(long)]
    carrier: Option<String>,
    /// sip:host[:port][;transport=udp|tcp|tls] or sips:host[:port].
    #[arg(long)]
    uri: Option<String>,
    /// Lower is tried first.
    #[arg(long)]
    priority: Option<u32>,
    /// Share of calls among gateways of equal priority; 0 makes it a standby.
    #[arg(long)]
    weight: Option<u32>,
    /// Most calls at once.
    #[arg(long, value_name = "N", conflicts_with = "no_max_calls")]
    max_calls: Option<u32>,
    /// Remove the limit on calls at once.
    #[arg(long)]
    no_max_calls: bool,
    #[command(flatten)]
    enable: EnableFlags,
    /// Drop every probe override first (probed with the cluster's policy); probe flags given
    /// with it are then set.
    #[arg(long)]
    probe_defaults: bool,
    #[command(flatten)]
    probe: ProbeFlags,
}

async fn update(args: UpdateArgs, context: &Context) -> Result<(), Failure> {
    let empty = args.carrier.is_none()
        && args.uri.is_none()
        && args.priority.is_none()
        && args.weight.is_none()
        && args.max_calls.is_none()
        && !args.no_max_calls
        && args.enable.is_empty()
        && !args.probe_defaults
        && args.probe.is_empty();
    let check = || {
        if let Some(carrier) = &args.carrier {
            check::check_name("--carrier", carrier)?;
        }
        if let Some(max_calls) = args.max_calls {
            check_max_calls(max_calls, "use --no-max-calls for no limit")?;
        }
        if let Some(uri) = &args.uri {
            check_uri(uri)?;
        }
        args.probe.check()
    };
    kinds::update(context, args.key, empty, check, |gateway| {
        set(&mut gateway.carrier, &args.carrier);
        set(&mut gateway.uri, &args.uri);
        set(&mut gateway.priority, &args.priority);
        set(&mut gateway.weight, &args.weight);
        set(&mut gateway.max_concurrent_calls, &args.max_calls);
        if args.no_max_calls {
            gateway.max_concurrent_calls = 0;
        }
        args.enable.apply(&mut gateway.disabled);
        args.probe.apply(&mut gateway.probe, args.probe_defaults)
    })
    .await
}

/// Sets `field` to `value` when one is given.
pub fn set<T: Clone>(field: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        *field = value.clone();
    }
}

/// `--max-calls`: 0 is refused, because on the wire it means "no limit".
fn check_max_calls(max_calls: u32, instead: &str) -> Result<u32, Failure> {
    if max_calls == 0 {
        Err(check::usage(
            "--max-calls",
            format!("must be at least 1; {instead}"),
        ))
    } else {
        Ok(max_calls)
    }
}

/// Checks a `--uri` given alone: where calls (or an edge's probes) go.
pub fn check_uri(uri: &str) -> Result<(), Failure> {
    trunkline_core::routing::SipUri::parse(uri)
        .map(drop)
        .map_err(|error| check::usage("--uri", error.reason()))
}

/// Drains or undrains a gateway.
async fn set_drained(context: &Context, name: String, drained: bool) -> Result<(), Failure> {
    Gateway::check_key(&name)?;
    let request = proto::DrainGatewayRequest {
        gateway: name.clone(),
        drained,
    };
    let response = context
        .admin(Retry::Write, request, |mut admin, request| async move {
            admin.drain_gateway(request).await
        })
        .await?;
    let action = if drained { "drained" } else { "undrained" };
    kinds::print_written(context, "gateway", &name, action, response.applied_index)
}

pub struct Gateway;

impl Kind for Gateway {
    kinds::wire!(Gateway in ListRoutingResponse.gateways by name,
        checked by gateway_from_proto, put by PutGatewayRequest.gateway with put_gateway);

    const NAME: &'static str = "gateway";
    const KEY_HELP: &'static str =
        "The gateway's name, unique across carriers: letters, digits, '-', '_' or '.'";
    const KEY: &'static str = "gateway name";
    type View = GatewayView;
    type Owner = kinds::ByOwner<Self>;
    const SHOW_ABOUT: &'static str = "One gateway's settings";
    const LIST_ABOUT: &'static str = "Every gateway, or a carrier's";
    const REMOVE_ABOUT: &'static str = "Delete a gateway";

    fn view(gateway: &proto::Gateway, _: &Self::Listing) -> GatewayView {
        GatewayView {
            name: gateway.name.clone(),
            carrier: gateway.carrier.clone(),
            uri: gateway.uri.clone(),
            priority: gateway.priority,
            weight: gateway.weight,
            max_concurrent_calls: (gateway.max_concurrent_calls != 0)
                .then_some(gateway.max_concurrent_calls),
            enabled: !gateway.disabled,
            drained: gateway.drained,
            probe: gateway.probe.as_ref().map(ProbeOverrides::from),
        }
    }

    fn table(gateways: &[GatewayView]) -> String {
        output::columns(
            gateways,
            &[
                ("GATEWAY", &|gateway| gateway.name.clone()),
                ("CARRIER", &|gateway| gateway.carrier.clone()),
                ("URI", &|gateway| gateway.uri.clone()),
                ("PRIORITY", &|gateway| gateway.priority.to_string()),
                ("WEIGHT", &|gateway| gateway.weight.to_string()),
                ("MAX CALLS", &GatewayView::max_calls),
                ("STATE", &GatewayView::state),
            ],
        )
    }

    fn details(gateway: &GatewayView) -> String {
        let mut rows = vec![
            ("name", gateway.name.clone()),
            ("carrier", gateway.carrier.clone()),
            ("uri", gateway.uri.clone()),
            ("priority", gateway.priority.to_string()),
            ("weight", gateway.weight.to_string()),
            ("max calls", gateway.max_calls()),
            ("state", gateway.state()),
        ];
        rows.extend(probe_rows(gateway.probe.as_ref()));
        details_table(rows)
    }
}

impl kinds::Owned for Gateway {
    const OWNER: &'static str = "carrier";
    const OWNER_HELP: &'static str = "Only this carrier's gateways";
    const OWNER_VALUE: &'static str = "CARRIER";

    fn owner(item: &proto::Gateway) -> &str {
        &item.carrier
    }
}

#[derive(Serialize)]
pub struct GatewayView {
    pub name: String,
    pub carrier: String,
    pub uri: String,
    pub priority: u32,
    pub weight: u32,
    /// Absent: no limit.
    pub max_concurrent_calls: Option<u32>,
    pub enabled: bool,
    pub drained: bool,
    /// How its probes differ from the cluster's health policy; absent: they don't.
    pub probe: Option<ProbeOverrides>,
}

impl GatewayView {
    fn state(&self) -> String {
        match (self.enabled, self.drained) {
            (false, true) => "disabled, drained",
            (false, false) => "disabled",
            (true, true) => "drained",
            (true, false) => "enabled",
        }
        .to_owned()
    }

    fn max_calls(&self) -> String {
        self.max_concurrent_calls
            .map_or("no limit".to_owned(), |calls| calls.to_string())
    }
}

/// `update`'s `--disabled` and `--enabled`, which gateways, edges and devices share.
#[derive(clap::Args)]
pub struct EnableFlags {
    /// Stop using it, keeping it configured: a gateway takes no calls, an edge is no longer
    /// probed (its health stays as it was), a device is not rung (its DIDs go straight to
    /// continuity).
    #[arg(long, conflicts_with = "enabled")]
    disabled: bool,
    /// Use it again after --disabled.
    #[arg(long)]
    enabled: bool,
}

impl EnableFlags {
    pub fn is_empty(&self) -> bool {
        !self.disabled && !self.enabled
    }

    pub fn apply(&self, disabled: &mut bool) {
        if !self.is_empty() {
            *disabled = self.disabled;
        }
    }
}

/// `--probe on|off`.
#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum Probing {
    On,
    Off,
}

/// How the OPTIONS probes of a gateway or an edge differ from the cluster's health policy
/// (`trunkctl health policy show`), shared by `gateway add|update` and `edge add|update`;
/// each flag is optional and an override left out takes the cluster's value.
#[derive(clap::Args, Default, PartialEq)]
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
    /// Sets the overrides given on `probe` (absent: none yet); the others are kept, unless
    /// `defaults` drops them first. No override left makes it absent.
    pub fn apply(
        &self,
        probe: &mut Option<proto::ProbeOverrides>,
        defaults: bool,
    ) -> Result<(), Failure> {
        let mut overrides = probe.take().filter(|_| !defaults).unwrap_or_default();
        if let Some(probing) = self.probe {
            overrides.disabled = matches!(probing, Probing::Off);
        }
        overrides.interval_ms = self.probe_interval.or(overrides.interval_ms);
        overrides.timeout_ms = self.probe_timeout.or(overrides.timeout_ms);
        overrides.down_after = self.down_after.or(overrides.down_after);
        overrides.up_after = self.up_after.or(overrides.up_after);
        if let Some(codes) = &self.alive_codes {
            overrides.alive_codes = check::parse_codes("--alive-codes", codes)?;
        }
        if overrides != proto::ProbeOverrides::default() {
            *probe = Some(overrides);
        }
        Ok(())
    }

    /// Checks the overrides given, on their own, before anything is sent: how they combine
    /// with the cluster's policy is settled when the object is probed.
    pub fn check(&self) -> Result<(), Failure> {
        let mut probe = None;
        self.apply(&mut probe, false)?;
        probe_overrides_from_proto(probe)
            .and_then(|overrides| overrides.validate().map_err(|error| error.within("probe")))
            .map_err(check::field_failure("", ""))
    }
}
