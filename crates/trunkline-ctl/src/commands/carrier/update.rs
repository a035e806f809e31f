//! `trunkctl carrier update NAME [flags]`: change some fields of a carrier.
//!
//! Reads the carrier as of every committed write, changes only the fields given and writes
//! it back whole. A concurrent update of the same carrier between the read and the write is
//! overwritten (routing objects have no version to compare yet).

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The carrier's name.
    name: String,
    #[command(flatten)]
    flags: super::CarrierFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("carrier name", &args.name)?;
    if args.flags.is_empty() {
        return Err(Failure::Usage(
            "nothing to change: give at least one flag (see `trunkctl carrier update --help`)"
                .into(),
        ));
    }
    let flags = args.flags;
    let applied_index =
        super::read_modify_write(context, &args.name, |carrier| flags.apply(carrier)).await?;
    objects::print_written(context, "carrier", &args.name, "updated", applied_index)
}
