//! `trunkctl carrier ...`: the providers that terminate calls, their capabilities and how
//! they want numbers written.

mod add;
mod disable;
mod enable;
mod list;
mod remove;
mod show;
mod update;

use trunkline_client::{proto, Retry};

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a carrier (fails if it exists).
    Add(add::Args),
    /// Change the given fields of a carrier; the others keep their values.
    Update(update::Args),
    /// One carrier's settings and gateways.
    Show(show::Args),
    /// Every carrier.
    List(list::Args),
    /// Delete a carrier.
    Remove(remove::Args),
    /// Stop routing to a carrier; its configuration and deck are kept.
    Disable(disable::Args),
    /// Route to a disabled carrier again.
    Enable(enable::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add(args) => add::exec(args, context).await,
        Command::Update(args) => update::exec(args, context).await,
        Command::Show(args) => show::exec(args, context).await,
        Command::List(args) => list::exec(args, context).await,
        Command::Remove(args) => remove::exec(args, context).await,
        Command::Disable(args) => disable::exec(args, context).await,
        Command::Enable(args) => enable::exec(args, context).await,
    }
}

/// The settings `add` and `update` take; each is optional. Lists are comma separated, and
/// an empty value (`''`) empties the list.
#[derive(clap::Args)]
struct CarrierFlags {
    /// What the carrier can do: t38 (fax), tls, srtp; '' for none.
    #[arg(long, value_name = "CAPABILITY,...")]
    capabilities: Option<String>,
    /// Leading digits of the E.164 number to remove before sending (1 drops NANP's 1).
    #[arg(long, value_name = "N")]
    strip_digits: Option<u32>,
    /// Prepended to the number after stripping (digits, '#' and '*'); '' for none.
    #[arg(long, value_name = "PREFIX")]
    tech_prefix: Option<String>,
    /// Send numbers with a leading '+'.
    #[arg(long, conflicts_with = "no_plus")]
    plus: bool,
    /// Send numbers without a leading '+'.
    #[arg(long)]
    no_plus: bool,
    /// SIP codes (400 to 699) this carrier uses as the callee's final answer, so a call is
    /// not rerouted after them; '' for none.
    #[arg(long, value_name = "CODE,...")]
    final_codes: Option<String>,
}

impl CarrierFlags {
    fn is_empty(&self) -> bool {
        self.capabilities.is_none()
            && self.strip_digits.is_none()
            && self.tech_prefix.is_none()
            && !self.plus
            && !self.no_plus
            && self.final_codes.is_none()
    }

    /// Sets the fields given on `carrier`, then checks the result.
    fn apply(self, carrier: &mut proto::Carrier) -> Result<(), Failure> {
        if let Some(capabilities) = &self.capabilities {
            carrier.capabilities = objects::parse_capabilities("--capabilities", capabilities)?;
        }
        let translation = carrier.translation.get_or_insert_with(Default::default);
        if let Some(digits) = self.strip_digits {
            translation.strip_digits = digits;
        }
        if let Some(prefix) = self.tech_prefix {
            translation.tech_prefix = prefix;
        }
        if self.plus {
            translation.plus = true;
        }
        if self.no_plus {
            translation.plus = false;
        }
        if let Some(codes) = &self.final_codes {
            carrier.final_codes = objects::parse_codes("--final-codes", codes)?;
        }
        objects::check_carrier(carrier)
    }
}

fn find<'a>(routing: &'a proto::ListRoutingResponse, name: &str) -> Option<&'a proto::Carrier> {
    routing.carriers.iter().find(|carrier| carrier.name == name)
}

fn deck_rows(routing: &proto::ListRoutingResponse, name: &str) -> u64 {
    routing.deck_rows.get(name).copied().unwrap_or(0)
}

/// Reads a carrier as of every committed write, lets `change` alter it and writes it back.
async fn read_modify_write(
    context: &Context,
    name: &str,
    change: impl FnOnce(&mut proto::Carrier) -> Result<(), Failure>,
) -> Result<u64, Failure> {
    let routing = objects::list_routing_latest(context).await?;
    let mut carrier = find(&routing, name)
        .cloned()
        .ok_or_else(|| objects::not_found("carrier", name))?;
    change(&mut carrier)?;
    let request = proto::PutCarrierRequest {
        carrier: Some(carrier),
        mode: proto::PutMode::Replace.into(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_carrier(request).await }
        })
        .await?;
    Ok(response.applied_index)
}
