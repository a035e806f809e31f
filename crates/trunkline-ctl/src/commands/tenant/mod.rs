//! `trunkctl tenant ...`: customer accounts, their dial plans and routing preferences.

mod add;
mod list;
mod remove;
mod show;
mod update;

use trunkline_client::proto;

use crate::{
    commands::{objects, view},
    context::{Context, Failure},
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a tenant (fails if it exists).
    Add(add::Args),
    /// Change the given fields of a tenant; the others keep their values.
    Update(update::Args),
    /// One tenant's settings.
    Show(show::Args),
    /// Every tenant.
    List(list::Args),
    /// Delete a tenant.
    Remove(remove::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add(args) => add::exec(args, context).await,
        Command::Update(args) => update::exec(args, context).await,
        Command::Show(args) => show::exec(args, context).await,
        Command::List(args) => list::exec(args, context).await,
        Command::Remove(args) => remove::exec(args, context).await,
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
struct TenantFlags {
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

    /// Sets the fields given on `tenant`, then checks the result.
    fn apply(self, tenant: &mut proto::Tenant) -> Result<(), Failure> {
        if let Some(strategy) = self.strategy {
            tenant.strategy = proto::Strategy::from(strategy).into();
        }
        if let Some(carriers) = &self.allowed_carriers {
            tenant.allowed_carriers = objects::parse_list(carriers);
        }
        if let Some(capabilities) = &self.require {
            tenant.required_capabilities = objects::parse_capabilities("--require", capabilities)?;
        }
        if self.changes_dial_plan() {
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
                plan.emergency_numbers = objects::parse_list(numbers);
            }
            if let Some(digits) = self.extension_min_digits {
                if digits == 0 {
                    return Err(objects::usage(
                        "--extension-min-digits",
                        "must be at least 1",
                    ));
                }
                plan.extension_min_digits = digits;
            }
            if let Some(digits) = self.extension_max_digits {
                if digits == 0 {
                    return Err(objects::usage(
                        "--extension-max-digits",
                        "must be at least 1",
                    ));
                }
                plan.extension_max_digits = digits;
            }
        }
        objects::check_tenant(tenant)
    }
}

/// Finds a tenant in the configuration.
fn find<'a>(routing: &'a proto::ListRoutingResponse, name: &str) -> Option<&'a proto::Tenant> {
    routing.tenants.iter().find(|tenant| tenant.name == name)
}

fn views(tenants: &[proto::Tenant]) -> Vec<view::Tenant> {
    tenants.iter().map(view::Tenant::from).collect()
}
