//! `trunkctl gateway undrain NAME`: end maintenance; the gateway gets new calls again.

use crate::context::{Context, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// The gateway's name.
    name: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    super::set_drained(context, args.name, false).await
}
