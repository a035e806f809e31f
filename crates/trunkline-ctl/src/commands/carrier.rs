//! `trunkctl carrier ...`: the providers that terminate calls, their capabilities and how
//! they want numbers written.

use serde::Serialize;
use trunkline_api::convert::carrier_from_proto;
use trunkline_client::proto;

use crate::{
    commands::{
        check::{self, Optional},
        gateway::{Gateway, GatewayView},
        kinds::{self, Key, Kind},
        view::{cell, cell_list, details_table, enabled_word},
    },
    context::{Context, Failure},
    output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a carrier (fails if it exists).
    Add {
        #[command(flatten)]
        key: Key<Carrier>,
        #[command(flatten)]
        flags: CarrierFlags,
        /// Create it disabled: configured, but never routed to until `carrier enable`.
        #[arg(long)]
        disabled: bool,
    },
    /// Change the given fields of a carrier; the others keep their values.
    Update {
        #[command(flatten)]
        key: Key<Carrier>,
        #[command(flatten)]
        flags: CarrierFlags,
    },
    #[command(flatten)]
    Common(kinds::Common<Carrier>),
    /// Stop routing to a carrier; its configuration and deck are kept.
    Disable(Key<Carrier>),
    /// Route to a disabled carrier again.
    Enable(Key<Carrier>),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add {
            key,
            flags,
            disabled,
        } => {
            kinds::add(context, key, |name| {
                let mut carrier = proto::Carrier {
                    name,
                    disabled,
                    ..Default::default()
                };
                flags.apply(&mut carrier).map(|()| carrier)
            })
            .await
        }
        Command::Update { key, flags } => {
            let empty = flags.is_empty();
            kinds::update(
                context,
                key,
                empty,
                || Ok(()),
                |carrier| flags.apply(carrier),
            )
            .await
        }
        Command::Common(command) => kinds::exec(context, command).await,
        Command::Disable(key) => set_disabled(context, key, true).await,
        Command::Enable(key) => set_disabled(context, key, false).await,
    }
}

async fn set_disabled(context: &Context, key: Key<Carrier>, disabled: bool) -> Result<(), Failure> {
    let action = if disabled { "disabled" } else { "enabled" };
    kinds::read_modify_write::<Carrier>(context, &key.key, action, |carrier| {
        carrier.disabled = disabled;
        Ok(())
    })
    .await
}

pub struct Carrier;

impl Kind for Carrier {
    kinds::wire!(Carrier in ListRoutingResponse.carriers by name,
        checked by carrier_from_proto, put by PutCarrierRequest.carrier with put_carrier);

    const NAME: &'static str = "carrier";
    const KEY_HELP: &'static str = "The carrier's name: letters, digits, '-', '_' or '.'";
    const KEY: &'static str = "carrier name";
    type View = CarrierView;
    type Owner = kinds::Everything;
    const SHOW_ABOUT: &'static str = "One carrier's settings and gateways";
    const LIST_ABOUT: &'static str = "Every carrier";
    const REMOVE_ABOUT: &'static str = "Delete a carrier";

    fn view(carrier: &proto::Carrier, routing: &Self::Listing) -> CarrierView {
        let translation = carrier.translation.clone().unwrap_or_default();
        CarrierView {
            name: carrier.name.clone(),
            enabled: !carrier.disabled,
            capabilities: carrier.capabilities.clone(),
            translation: Translation {
                strip_digits: translation.strip_digits,
                tech_prefix: translation.tech_prefix,
                plus: translation.plus,
            },
            final_codes: carrier.final_codes.clone(),
            deck_rows: routing.deck_rows.get(&carrier.name).copied().unwrap_or(0),
        }
    }

    fn table(carriers: &[CarrierView]) -> String {
        output::columns(
            carriers,
            &[
                ("CARRIER", &|carrier| carrier.name.clone()),
                ("STATE", &|carrier| enabled_word(carrier.enabled)),
                ("CAPABILITIES", &|carrier| {
                    cell_list(&carrier.capabilities, "-")
                }),
                ("TRANSLATION", &CarrierView::translation_summary),
                ("FINAL CODES", &|carrier| {
                    cell_list(&carrier.final_codes, "-")
                }),
                ("DECK ROWS", &|carrier| carrier.deck_rows.to_string()),
            ],
        )
    }

    fn details(carrier: &CarrierView) -> String {
        let translation = &carrier.translation;
        details_table(vec![
            ("name", carrier.name.clone()),
            ("state", enabled_word(carrier.enabled)),
            ("capabilities", cell_list(&carrier.capabilities, "none")),
            ("strip digits", translation.strip_digits.to_string()),
            ("tech prefix", cell(&translation.tech_prefix)),
            (
                "plus",
                if translation.plus { "yes" } else { "no" }.to_owned(),
            ),
            ("final codes", cell_list(&carrier.final_codes, "none")),
            ("deck rows", carrier.deck_rows.to_string()),
        ])
    }

    /// The carrier, then its gateways.
    async fn show(
        context: &Context,
        carrier: &proto::Carrier,
        routing: &Self::Listing,
        _: proto::ReadConsistency,
    ) -> Result<(), Failure> {
        let shown = Shown {
            carrier: Self::view(carrier, routing),
            gateways: routing
                .gateways
                .iter()
                .filter(|gateway| gateway.carrier == carrier.name)
                .map(|gateway| Gateway::view(gateway, routing))
                .collect(),
        };
        output::emit(context.format, &shown, |shown| {
            let mut text = Self::details(&shown.carrier);
            if shown.gateways.is_empty() {
                text.push_str("\nNo gateways: add one with `trunkctl gateway add`.\n");
            } else {
                text.push('\n');
                text.push_str(&Gateway::table(&shown.gateways));
            }
            text
        })
    }
}

/// The settings `add` and `update` take; each is optional. Lists are comma separated, and
/// an empty value (`''`) empties the list.
#[derive(clap::Args, Default, PartialEq)]
pub struct CarrierFlags {
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
    /// Sets the fields given on `carrier`.
    fn apply(self, carrier: &mut proto::Carrier) -> Result<(), Failure> {
        if let Some(capabilities) = &self.capabilities {
            carrier.capabilities = check::parse_capabilities("--capabilities", capabilities)?;
        }
        let translation = carrier.translation.get_or_insert_with(Default::default);
        if let Some(digits) = self.strip_digits {
            translation.strip_digits = digits;
        }
        if let Some(prefix) = self.tech_prefix {
            translation.tech_prefix = prefix;
        }
        if self.plus || self.no_plus {
            translation.plus = self.plus;
        }
        if let Some(codes) = &self.final_codes {
            carrier.final_codes = check::parse_codes("--final-codes", codes)?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
pub struct Translation {
    pub strip_digits: u32,
    pub tech_prefix: String,
    pub plus: bool,
}

#[derive(Serialize)]
pub struct CarrierView {
    pub name: String,
    pub enabled: bool,
    pub capabilities: Vec<String>,
    pub translation: Translation,
    pub final_codes: Vec<u32>,
    /// Rows in the carrier's rate deck.
    pub deck_rows: u64,
}

impl CarrierView {
    /// The translation in a few characters: `strip 1, 1010#, +`.
    fn translation_summary(&self) -> String {
        let translation = &self.translation;
        let parts: Vec<String> = [
            (translation.strip_digits > 0).then(|| format!("strip {}", translation.strip_digits)),
            (!translation.tech_prefix.is_empty())
                .then(|| format!("prefix {}", translation.tech_prefix)),
            translation.plus.then(|| "+".to_owned()),
        ]
        .into_iter()
        .flatten()
        .collect();
        cell(&parts.join(", "))
    }
}

/// `carrier show`: the carrier and its gateways.
#[derive(Serialize)]
pub struct Shown {
    #[serde(flatten)]
    carrier: CarrierView,
    gateways: Vec<GatewayView>,
}
