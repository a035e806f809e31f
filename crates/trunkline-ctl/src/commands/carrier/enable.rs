//! `trunkctl carrier enable NAME`: route to a disabled carrier again.

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The carrier's name.
    name: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("carrier name", &args.name)?;
    let applied_index = super::read_modify_write(context, &args.name, |carrier| {
        carrier.disabled = false;
        Ok(())
    })
    .await?;
    objects::print_written(context, "carrier", &args.name, "enabled", applied_index)
}
