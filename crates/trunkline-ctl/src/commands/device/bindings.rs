//! `trunkctl device bindings AOR`: where the edges have seen a device registered, live as of
//! the node's log time, most recently refreshed first.

use crate::{
    commands::{config::ReadFlags, inbound, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// Its address of record: sip:user@domain.
    aor: String,
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    inbound::check_aor("AOR", &args.aor)?;
    let response = super::list_bindings(context, &args.aor, args.read.into()).await?;
    let bindings = view::Bindings::new(&args.aor, &response);
    output::emit(context.format, &bindings, view::bindings_table)?;
    if bindings.bindings.is_empty() {
        output::note(&format!(
            "{} has no live registration: its DIDs go to continuity",
            args.aor
        ));
    }
    Ok(())
}
