//! `trunkctl tenant ...`: customer accounts, their dial plans and routing preferences.

use serde::Serialize;
use trunkline_api::convert::tenant_from_proto;
use trunkline_client::proto;

use crate::{
    commands::{
        check,
        kinds::{self, Key, Kind},
        view::{cell, cell_list, details_table},
    },
    context::{Context, Failure},
    output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a tenant (fails if it exists).
    Add {
        #[command(flatten)]
        key: Key<Tenant>,
        #[command(flatten)]
        flags: TenantFlags,
    },
    /// Change the given fields of a tenant; the others keep their values.
    Update {
        #[command(flatten)]
        key: Key<Tenant>,
        #[command(flatten)]
        flags: TenantFlags,
    },
    /// Clear every automatic action fraud alerts put on the tenant (`trunkctl alerts list`
    /// shows them).
    Unblock { name: String },
    #[command(flatten)]
    Common(kinds::Common<Tenant>),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add { key, flags } => {
            kinds::add(context, key, |name| {
                let mut tenant = proto::Tenant {
                    name,
                    strategy: proto::Strategy::LeastCost.into(),
                    ..Default::default()
                };
                flags.apply(&mut tenant).map(|()| tenant)
            })
            .await
        }
        Command::Update { key, flags } => {
            let empty = flags.is_empty();
            kinds::update(context, key, empty, || Ok(()), |tenant| flags.apply(tenant)).await
        }
        Command::Unblock { name } => super::alerts::unblock(context, name).await,
        Command::Common(command) => kinds::exec(context, command).await,
    }
}

pub struct Tenant;

impl Kind for Tenant {
    kinds::wire!(Tenant in ListRoutingResponse.tenants by name,
        checked by tenant_from_proto, put by PutTenantRequest.tenant with put_tenant);

    const NAME: &'static str = "tenant";
    const KEY_HELP: &'static str = "The tenant's name: letters, digits, '-', '_' or '.'";
    const KEY: &'static str = "tenant name";
    type View = TenantView;
    type Owner = kinds::Everything;
    const SHOW_ABOUT: &'static str = "One tenant's settings";
    const LIST_ABOUT: &'static str = "Every tenant";
    const REMOVE_ABOUT: &'static str = "Delete a tenant";

    fn view(tenant: &proto::Tenant, _: &Self::Listing) -> TenantView {
        TenantView::from(tenant)
    }

    fn table(tenants: &[TenantView]) -> String {
        output::columns(
            tenants,
            &[
                ("TENANT", &|tenant| tenant.name.clone()),
                ("STRATEGY", &|tenant| tenant.strategy.to_owned()),
                ("COUNTRY", &|tenant| {
                    let plan = tenant.dial_plan.as_ref();
                    plan.map_or("1".to_owned(), |plan| cell(&plan.country_code))
                }),
                ("HOME AREA", &|tenant| {
                    let plan = tenant.dial_plan.as_ref();
                    cell(
                        plan.and_then(|plan| plan.home_area_code.as_deref())
                            .unwrap_or(""),
                    )
                }),
                ("CARRIERS", &|tenant| {
                    cell_list(&tenant.allowed_carriers, "all")
                }),
                ("REQUIRES", &|tenant| {
                    cell_list(&tenant.required_capabilities, "-")
                }),
            ],
        )
    }

    fn details(tenant: &TenantView) -> String {
        let mut rows = vec![
            ("name", tenant.name.clone()),
            ("strategy", tenant.strategy.to_owned()),
            (
                "allowed carriers",
                cell_list(&tenant.allowed_carriers, "all"),
            ),
            (
                "required capabilities",
                cell_list(&tenant.required_capabilities, "none"),
            ),
        ];
        if let Some(plan) = &tenant.dial_plan {
            rows.extend([
                ("country code", cell(&plan.country_code)),
                (
                    "home area code",
                    plan.home_area_code
                        .clone()
                        .unwrap_or_else(|| "-".to_owned()),
                ),
                ("international prefix", cell(&plan.international_prefix)),
                ("national prefix", cell(&plan.national_prefix)),
                ("emergency numbers", cell_list(&plan.emergency_numbers, "-")),
                (
                    "extension digits",
                    format!(
                        "{} to {}",
                        plan.extension_min_digits, plan.extension_max_digits
                    ),
                ),
            ]);
        }
        details_table(rows)
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StrategyFlag {
    /// Cheapest rate first, then cheapest connect fee.
    LeastCost,
    /// The order of --allowed-carriers.
    Priority,
    /// Random by gateway weight among carriers of equal priority.
    Weighted,
}

impl From<StrategyFlag> for proto::Strategy {
    fn from(strategy: StrategyFlag) -> Self {
        match strategy {
            StrategyFlag::LeastCost => proto::Strategy::LeastCost,
            StrategyFlag::Priority => proto::Strategy::Priority,
            StrategyFlag::Weighted => proto::Strategy::Weighted,
        }
    }
}

/// The settings `add` and `update` take; each is optional. Lists are comma separated, and
/// an empty value (`''`) empties the list; an empty dial plan field takes the country's
/// default.
#[derive(clap::Args)]
pub struct TenantFlags {
    /// How eligible carriers are ordered.
    #[arg(long, value_enum)]
    strategy: Option<StrategyFlag>,
    /// Carriers the tenant may use, in its order of preference; '' for every carrier.
    #[arg(long, value_name = "CARRIER,...")]
    allowed_carriers: Option<String>,
    /// Capabilities every carrier used for the tenant must have (t38, tls, srtp); '' for
    /// none.
    #[arg(long, value_name = "CAPABILITY,...")]
    require: Option<String>,
    /// Country calling code of the dial plan (1 for NANP, the default). Changing it resets
    /// the dial plan fields not given to that country's defaults.
    #[arg(long)]
    country_code: Option<String>,
    /// NANP area code prepended to 7-digit numbers; '' for none (7-digit numbers refused).
    #[arg(long)]
    home_area_code: Option<String>,
    /// What users dial before a country code (011 in NANP, 00 elsewhere by default).
    #[arg(long)]
    international_prefix: Option<String>,
    /// What users dial before a national number (1 in NANP, 0 elsewhere by default).
    #[arg(long)]
    national_prefix: Option<String>,
    /// Emergency numbers (911,933 in NANP, 112 elsewhere by default; '' for the default).
    #[arg(long, value_name = "NUMBER,...")]
    emergency_numbers: Option<String>,
    /// Shortest internal extension, in digits (default 2).
    #[arg(long)]
    extension_min_digits: Option<u32>,
    /// Longest internal extension, in digits (default 6).
    #[arg(long)]
    extension_max_digits: Option<u32>,
}

impl TenantFlags {
    fn is_empty(&self) -> bool {
        self.strategy.is_none()
            && self.allowed_carriers.is_none()
            && self.require.is_none()
            && !self.changes_dial_plan()
    }

    fn changes_dial_plan(&self) -> bool {
        self.country_code.is_some()
            || self.home_area_code.is_some()
            || self.international_prefix.is_some()
            || self.national_prefix.is_some()
            || self.emergency_numbers.is_some()
            || self.extension_min_digits.is_some()
            || self.extension_max_digits.is_some()
    }

    /// Sets the fields given on `tenant`.
    fn apply(self, tenant: &mut proto::Tenant) -> Result<(), Failure> {
        if let Some(strategy) = self.strategy {
            tenant.strategy = proto::Strategy::from(strategy).into();
        }
        if let Some(carriers) = &self.allowed_carriers {
            tenant.allowed_carriers = check::parse_list(carriers);
        }
        if let Some(capabilities) = &self.require {
            tenant.required_capabilities = check::parse_capabilities("--require", capabilities)?;
        }
        if !self.changes_dial_plan() {
            return Ok(());
        }
        let plan = tenant.dial_plan.get_or_insert_with(Default::default);
        if let Some(country_code) = self.country_code {
            if country_code != plan.country_code {
                // Empty fields take the new country's defaults on the node.
                *plan = proto::DialPlan::default();
            }
            plan.country_code = country_code;
        }
        if let Some(area_code) = self.home_area_code {
            plan.home_area_code = area_code;
        }
        if let Some(prefix) = self.international_prefix {
            plan.international_prefix = prefix;
        }
        if let Some(prefix) = self.national_prefix {
            plan.national_prefix = prefix;
        }
        if let Some(numbers) = &self.emergency_numbers {
            plan.emergency_numbers = check::parse_list(numbers);
        }
        for (flag, digits, field) in [
            (
                "--extension-min-digits",
                self.extension_min_digits,
                &mut plan.extension_min_digits,
            ),
            (
                "--extension-max-digits",
                self.extension_max_digits,
                &mut plan.extension_max_digits,
            ),
        ] {
            match digits {
                Some(0) => return Err(check::usage(flag, "must be at least 1")),
                Some(digits) => *field = digits,
                None => {}
            }
        }
        Ok(())
    }
}

/// The name trunkctl uses for a routing strategy (the `--strategy` value).
pub fn strategy_name(strategy: i32) -> &'static str {
    match proto::Strategy::try_from(strategy) {
        Ok(proto::Strategy::Unspecified | proto::Strategy::LeastCost) => "least-cost",
        Ok(proto::Strategy::Priority) => "priority",
        Ok(proto::Strategy::Weighted) => "weighted",
        Err(_) => "unknown",
    }
}

#[derive(Serialize)]
pub struct DialPlan {
    pub country_code: String,
    pub home_area_code: Option<String>,
    pub international_prefix: String,
    pub national_prefix: String,
    pub emergency_numbers: Vec<String>,
    pub extension_min_digits: u32,
    pub extension_max_digits: u32,
}

#[derive(Serialize)]
pub struct TenantView {
    pub name: String,
    pub strategy: &'static str,
    /// Empty: every carrier.
    pub allowed_carriers: Vec<String>,
    pub required_capabilities: Vec<String>,
    /// Absent when the node sent none (NANP).
    pub dial_plan: Option<DialPlan>,
}

impl From<&proto::Tenant> for TenantView {
    fn from(tenant: &proto::Tenant) -> Self {
        TenantView {
            name: tenant.name.clone(),
            strategy: strategy_name(tenant.strategy),
            allowed_carriers: tenant.allowed_carriers.clone(),
            required_capabilities: tenant.required_capabilities.clone(),
            dial_plan: tenant.dial_plan.as_ref().map(|plan| DialPlan {
                country_code: plan.country_code.clone(),
                home_area_code: (!plan.home_area_code.is_empty())
                    .then(|| plan.home_area_code.clone()),
                international_prefix: plan.international_prefix.clone(),
                national_prefix: plan.national_prefix.clone(),
                emergency_numbers: plan.emergency_numbers.clone(),
                extension_min_digits: plan.extension_min_digits,
                extension_max_digits: plan.extension_max_digits,
            }),
        }
    }
}
