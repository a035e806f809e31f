//! `trunkctl did show NUMBER`: one DID's settings.

use crate::{
    commands::{config::ReadFlags, inbound, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// The number, E.164 with '+'.
    number: String,
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    inbound::check_number("NUMBER", &args.number)?;
    let configuration = inbound::list_inbound(context, args.read.into()).await?;
    let did = inbound::find_did(&configuration, &args.number)
        .map(view::Did::from)
        .ok_or_else(|| inbound::not_found("did", &args.number))?;
    output::emit(context.format, &did, view::did_details)
}
