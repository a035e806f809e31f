//! `trunkctl gateway drain NAME`: maintenance; no new calls go to the gateway, calls in
//! progress are not touched.

use crate::context::{Context, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// The gateway's name.
    name: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    super::set_drained(context, args.name, true).await
}
