//! `trunkctl did ...`: public numbers (DIDs), the device each rings, and where their calls go
//! when the device can't take them.

use serde::Serialize;
use trunkline_api::convert::did_from_proto;
use trunkline_client::proto;

use crate::{
    commands::{
        check,
        continuity::{continuity_cell, continuity_rows, ContinuityFlags, ContinuityPlan},
        gateway::set,
        kinds::{self, Key, Kind},
        view::{cell, details_table},
    },
    context::{Context, Failure},
    output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a DID (fails if it exists).
    Add {
        #[command(flatten)]
        key: Key<Did>,
        /// The tenant it belongs to.
        #[arg(long)]
        tenant: String,
        /// The address of record of the device it rings (sip:user@domain); left out: it only
        /// forwards to its continuity targets.
        #[arg(long, value_name = "AOR")]
        device: Option<String>,
        #[command(flatten)]
        continuity: ContinuityFlags,
    },
    /// Change the given fields of a DID; the others keep their values.
    Update {
        #[command(flatten)]
        key: Key<Did>,
        /// Move the DID to another tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Ring this device (sip:user@domain).
        #[arg(long, value_name = "AOR", conflicts_with = "no_device")]
        device: Option<String>,
        /// Ring no device: only forward to the continuity targets.
        #[arg(long)]
        no_device: bool,
        #[command(flatten)]
        continuity: ContinuityFlags,
    },
    #[command(flatten)]
    Common(kinds::Common<Did>),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add {
            key,
            tenant,
            device,
            continuity,
        } => {
            kinds::add(context, key, |number| {
                check::check_name("--tenant", &tenant)?;
                if let Some(device) = &device {
                    check::check_aor("--device", device)?;
                }
                let mut did = proto::Did {
                    number,
                    tenant,
                    device: device.unwrap_or_default(),
                    continuity: None,
                };
                continuity.apply(&mut did.continuity).map(|()| did)
            })
            .await
        }
        Command::Update {
            key,
            tenant,
            device,
            no_device,
            continuity,
        } => {
            let empty = tenant.is_none() && device.is_none() && !no_device && continuity.is_empty();
            let check = || {
                if let Some(tenant) = &tenant {
                    check::check_name("--tenant", tenant)?;
                }
                if let Some(device) = &device {
                    check::check_aor("--device", device)?;
                }
                continuity.check()
            };
            kinds::update(context, key, empty, check, |did| {
                set(&mut did.tenant, &tenant);
                set(&mut did.device, &device);
                if no_device {
                    did.device.clear();
                }
                continuity.apply(&mut did.continuity)
            })
            .await
        }
        Command::Common(command) => kinds::exec(context, command).await,
    }
}

pub struct Did;

impl Kind for Did {
    kinds::wire!(Did in ListInboundResponse.dids by number,
        checked by |did| did_from_proto(Some(did)), put by PutDidRequest.did with put_did);

    const NAME: &'static str = "did";
    const WRITTEN: &'static str = "DID";
    const VALUE_NAME: &'static str = "NUMBER";
    const KEY_HELP: &'static str = "The number, E.164 with '+' (e.g. +14155550100)";
    const KEY: &'static str = "NUMBER";
    type View = DidView;
    type Owner = kinds::ByOwner<Self>;
    const SHOW_ABOUT: &'static str = "One DID's settings";
    const LIST_ABOUT: &'static str = "Every DID, or a tenant's";
    const REMOVE_ABOUT: &'static str = "Delete a DID";

    fn check_key(number: &str) -> Result<(), Failure> {
        check::check_number(Self::KEY, number)
    }

    fn view(did: &proto::Did, _: &Self::Listing) -> DidView {
        DidView {
            number: did.number.clone(),
            tenant: did.tenant.clone(),
            device: (!did.device.is_empty()).then(|| did.device.clone()),
            continuity: did.continuity.as_ref().map(ContinuityPlan::from),
        }
    }

    fn table(dids: &[DidView]) -> String {
        output::columns(
            dids,
            &[
                ("DID", &|did| did.number.clone()),
                ("TENANT", &|did| did.tenant.clone()),
                ("DEVICE", &|did| cell(did.device.as_deref().unwrap_or(""))),
                ("CONTINUITY", &|did| {
                    continuity_cell(did.continuity.as_ref())
                }),
            ],
        )
    }

    fn details(did: &DidView) -> String {
        let mut rows = vec![
            ("number", did.number.clone()),
            ("tenant", did.tenant.clone()),
            (
                "device",
                did.device
                    .clone()
                    .unwrap_or_else(|| "none (forwards only)".to_owned()),
            ),
        ];
        rows.extend(continuity_rows(
            did.continuity.as_ref(),
            "none of its own (the device's plan applies, else the tenant's)",
        ));
        details_table(rows)
    }
}

impl kinds::Owned for Did {
    const OWNER: &'static str = "tenant";
    const OWNER_HELP: &'static str = "Only this tenant's DIDs";
    const OWNER_VALUE: &'static str = "TENANT";

    fn owner(item: &proto::Did) -> &str {
        &item.tenant
    }
}

#[derive(Serialize)]
pub struct DidView {
    pub number: String,
    pub tenant: String,
    /// Absent: it only forwards.
    pub device: Option<String>,
    /// Absent: the device's plan applies, else the tenant's.
    pub continuity: Option<ContinuityPlan>,
}
