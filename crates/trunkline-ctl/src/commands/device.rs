//! `trunkctl device ...`: customers' phones and softphones, known by their address of record,
//! and where the edges have seen them registered.

use serde::Serialize;
use trunkline_api::convert::device_from_proto;
use trunkline_client::{proto, Retry};

use crate::{
    commands::{
        check,
        config::ReadFlags,
        continuity::{continuity_cell, continuity_rows, ContinuityFlags, ContinuityPlan},
        gateway::{set, EnableFlags},
        kinds::{self, Key, Kind},
        view::{cell, cell_list, details_table, enabled_word, ReadState},
    },
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a device (fails if it exists).
    Add {
        #[command(flatten)]
        key: Key<Device>,
        /// The tenant it belongs to.
        #[arg(long)]
        tenant: String,
        /// Create it disabled: its DIDs go straight to continuity.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        continuity: ContinuityFlags,
    },
    /// Change the given fields of a device; the others keep their values.
    Update {
        #[command(flatten)]
        key: Key<Device>,
        /// Move the device to another tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        enable: EnableFlags,
        #[command(flatten)]
        continuity: ContinuityFlags,
    },
    #[command(flatten)]
    Common(kinds::Common<Device>),
    /// A device's live registrations, most recently refreshed first.
    Bindings {
        #[command(flatten)]
        key: Key<Device>,
        #[command(flatten)]
        read: ReadFlags,
    },
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add {
            key,
            tenant,
            disabled,
            continuity,
        } => {
            kinds::add(context, key, |aor| {
                check::check_name("--tenant", &tenant)?;
                let mut device = proto::Device {
                    aor,
                    tenant,
                    disabled,
                    continuity: None,
                };
                continuity.apply(&mut device.continuity).map(|()| device)
            })
            .await
        }
        Command::Update {
            key,
            tenant,
            enable,
            continuity,
        } => {
            let empty = tenant.is_none() && enable.is_empty() && continuity.is_empty();
            let check = || {
                if let Some(tenant) = &tenant {
                    check::check_name("--tenant", tenant)?;
                }
                continuity.check()
            };
            kinds::update(context, key, empty, check, |device| {
                set(&mut device.tenant, &tenant);
                enable.apply(&mut device.disabled);
                continuity.apply(&mut device.continuity)
            })
            .await
        }
        Command::Common(command) => kinds::exec(context, command).await,
        Command::Bindings { key, read } => {
            Device::check_key(&key.key)?;
            let response = list_bindings(context, &key.key, read.into()).await?;
            let bindings = Bindings::new(&key.key, &response);
            output::emit(context.format, &bindings, bindings_table)?;
            if bindings.bindings.is_empty() {
                output::note(&format!(
                    "{} has no live registration: its DIDs go to continuity",
                    key.key
                ));
            }
            Ok(())
        }
    }
}

/// A device as `FIELD VALUE` rows, with the DIDs that ring it when they are known.
fn rows<'a>(device: &DeviceView, dids: Option<&[String]>) -> Vec<(&'a str, String)> {
    let mut rows = vec![
        ("aor", device.aor.clone()),
        ("tenant", device.tenant.clone()),
        ("state", enabled_word(device.enabled)),
    ];
    rows.extend(dids.map(|dids| ("dids", cell_list(dids, "none"))));
    rows.extend(continuity_rows(
        device.continuity.as_ref(),
        "none of its own (the tenant's plan applies)",
    ));
    rows
}

/// A device's live bindings.
async fn list_bindings(
    context: &Context,
    aor: &str,
    consistency: proto::ReadConsistency,
) -> Result<proto::ListBindingsResponse, Failure> {
    let request = proto::ListBindingsRequest {
        aor: aor.to_owned(),
        consistency: Some(consistency),
    };
    context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.list_bindings(request).await },
        )
        .await
        .map_err(kinds::or_not_found(Device::NAME, aor))
}

pub struct Device;

impl Kind for Device {
    kinds::wire!(Device in ListInboundResponse.devices by aor,
        checked by |device| device_from_proto(Some(device)), put by PutDeviceRequest.device with put_device);

    const NAME: &'static str = "device";
    const VALUE_NAME: &'static str = "AOR";
    const KEY_HELP: &'static str =
        "Its address of record: sip:user@domain, the domain in lower case";
    const KEY: &'static str = "AOR";
    type View = DeviceView;
    type Owner = kinds::ByOwner<Self>;
    const SHOW_ABOUT: &'static str =
        "One device's settings, the DIDs that ring it and its live registrations";
    const LIST_ABOUT: &'static str = "Every device, or a tenant's";
    const REMOVE_ABOUT: &'static str = "Delete a device";

    fn check_key(aor: &str) -> Result<(), Failure> {
        check::check_aor(Self::KEY, aor)
    }

    fn view(device: &proto::Device, _: &Self::Listing) -> DeviceView {
        DeviceView {
            aor: device.aor.clone(),
            tenant: device.tenant.clone(),
            enabled: !device.disabled,
            continuity: device.continuity.as_ref().map(ContinuityPlan::from),
        }
    }

    fn table(devices: &[DeviceView]) -> String {
        output::columns(
            devices,
            &[
                ("DEVICE", &|device| device.aor.clone()),
                ("TENANT", &|device| device.tenant.clone()),
                ("STATE", &|device| enabled_word(device.enabled)),
                ("CONTINUITY", &|device| {
                    continuity_cell(device.continuity.as_ref())
                }),
            ],
        )
    }

    fn details(device: &DeviceView) -> String {
        details_table(rows(device, None))
    }

    /// The device, the DIDs that ring it and its live bindings.
    async fn show(
        context: &Context,
        device: &proto::Device,
        configuration: &Self::Listing,
        mut consistency: proto::ReadConsistency,
    ) -> Result<(), Failure> {
        let dids = configuration
            .dids
            .iter()
            .filter(|did| did.device == device.aor)
            .map(|did| did.number.clone())
            .collect();
        // The same node answers both; at least the configuration's index, so both agree.
        consistency.min_applied_index = consistency.min_applied_index.max(
            configuration
                .read_state
                .as_ref()
                .map_or(0, |state| state.applied_index),
        );
        let bindings = list_bindings(context, &device.aor, consistency).await?;
        let details = DeviceDetails {
            device: Self::view(device, configuration),
            dids,
            bindings: Bindings::new(&device.aor, &bindings),
        };
        output::emit(context.format, &details, |details| {
            let mut text = details_table(rows(&details.device, Some(&details.dids)));
            if details.bindings.bindings.is_empty() {
                text.push_str("\nNot registered: no live bindings.\n");
            } else {
                text.push_str("\nLive bindings, most recently refreshed first:\n");
                text.push_str(&bindings_table(&details.bindings));
            }
            text
        })
    }
}

impl kinds::Owned for Device {
    const OWNER: &'static str = "tenant";
    const OWNER_HELP: &'static str = "Only this tenant's devices";
    const OWNER_VALUE: &'static str = "TENANT";

    fn owner(item: &proto::Device) -> &str {
        &item.tenant
    }
}

#[derive(Serialize)]
pub struct DeviceView {
    pub aor: String,
    pub tenant: String,
    pub enabled: bool,
    /// Absent: the tenant's plan applies.
    pub continuity: Option<ContinuityPlan>,
}

/// `trunkctl device show`: the device, the DIDs that ring it and its live bindings.
#[derive(Serialize)]
struct DeviceDetails {
    #[serde(flatten)]
    device: DeviceView,
    dids: Vec<String>,
    bindings: Bindings,
}

/// A device's live registrations as of the node's log time `now_ms`.
#[derive(Serialize)]
struct Bindings {
    aor: String,
    /// Log time (unix ms) the bindings were judged live at.
    now_ms: u64,
    bindings: Vec<Binding>,
    read_state: ReadState,
}

#[derive(Serialize)]
struct Binding {
    edge: String,
    contact: String,
    /// Log time, unix ms.
    expires_at_ms: u64,
    refreshed_at_ms: u64,
    path: Vec<String>,
    received: Option<String>,
}

impl Bindings {
    fn new(aor: &str, response: &proto::ListBindingsResponse) -> Self {
        Bindings {
            aor: aor.to_owned(),
            now_ms: response.now_ms,
            bindings: response
                .bindings
                .iter()
                .map(|binding| Binding {
                    edge: binding.edge.clone(),
                    contact: binding.contact.clone(),
                    expires_at_ms: binding.expires_at_ms,
                    refreshed_at_ms: binding.refreshed_at_ms,
                    path: binding.path.clone(),
                    received: (!binding.received.is_empty()).then(|| binding.received.clone()),
                })
                .collect(),
            read_state: response.read_state.as_ref().into(),
        }
    }
}

/// EXPIRES reads "in 3m12s" and REFRESHED "12s ago", both against the node's log time.
fn bindings_table(bindings: &Bindings) -> String {
    let now_ms = bindings.now_ms;
    output::columns(
        &bindings.bindings,
        &[
            ("EDGE", &|binding| binding.edge.clone()),
            ("CONTACT", &|binding| binding.contact.clone()),
            (
                "EXPIRES",
                &|binding| match binding.expires_at_ms.checked_sub(now_ms) {
                    Some(left_ms) if left_ms > 0 => format!("in {}", duration::format_age(left_ms)),
                    _ => "expired".to_owned(),
                },
            ),
            ("REFRESHED", &|binding| {
                let age_ms = now_ms.saturating_sub(binding.refreshed_at_ms);
                format!("{} ago", duration::format_age(age_ms))
            }),
            ("PATH", &|binding| cell_list(&binding.path, "-")),
            ("RECEIVED", &|binding| {
                cell(binding.received.as_deref().unwrap_or(""))
            }),
        ],
    )
}
