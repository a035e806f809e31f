//! `trunkctl did ...`: public numbers (DIDs), the device each rings, and where their calls go
//! when the device can't take them.

use serde::Serialize;
use trunkline_api::convert::did_from_proto;
use trunkline_client::proto;

use crate::{
    commands::{
        check,
        config::ReadFlags,
        continuity::{continuity_cell, continuity_rows, ContinuityFlags, ContinuityPlan},
        gateway::set,
        kinds::{self, Key, Kind, ShowArgs},
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
    /// One DID's settings.
    Show(ShowArgs<Did>),
    /// Every DID, or a tenant's.
    List {
        /// Only this tenant's DIDs.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        read: ReadFlags,
    },
    /// Delete a DID.
    Remove(Key<Did>),
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
        Command::Show(args) => kinds::show(context, args).await,
        Command::List { tenant, read } => list_of_tenant::<Did>(context, tenant, read).await,
        Command::Remove(key) => kinds::remove(context, key).await,
    }
}

/// `list [--tenant T]` of DIDs or devices.
pub async fn list_of_tenant<K: Kind>(
    context: &Context,
    tenant: Option<String>,
    read: ReadFlags,
) -> Result<(), Failure>
where
    K::Wire: OfTenant,
{
    if let Some(tenant) = &tenant {
        check::check_name("--tenant", tenant)?;
    }
    kinds::list::<K>(context, read, |item| {
        tenant.as_ref().is_none_or(|tenant| item.tenant() == tenant)
    })
    .await
}

/// An object that belongs to a tenant.
pub trait OfTenant {
    fn tenant(&self) -> &str;
}

impl OfTenant for proto::Did {
    fn tenant(&self) -> &str {
        &self.tenant
    }
}

impl OfTenant for proto::Device {
    fn tenant(&self) -> &str {
        &self.tenant
    }
}

pub struct Did;

impl Kind for Did {
    const NAME: &'static str = "did";
    const WRITTEN: &'static str = "DID";
    const VALUE_NAME: &'static str = "NUMBER";
    const KEY_HELP: &'static str = "The number, E.164 with '+' (e.g. +14155550100)";
    const KEY: &'static str = "NUMBER";
    const OBJECT_KIND: proto::ObjectKind = proto::ObjectKind::Did;
    type Wire = proto::Did;
    type Listing = proto::ListInboundResponse;
    type View = DidView;

    fn check_key(number: &str) -> Result<(), Failure> {
        check::check_number(Self::KEY, number)
    }

    fn items(listing: &Self::Listing) -> &[Self::Wire] {
        &listing.dids
    }

    fn key(did: &proto::Did) -> &str {
        &did.number
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

    fn check(did: &proto::Did) -> Result<(), Failure> {
        check::converts(&Some(did.clone()), did_from_proto, Self::KEY).map(drop)
    }

    kinds::put_rpc!(PutDidRequest, did, put_did);
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
