//! `trunkctl carrier add NAME [flags]`: create a carrier.

use trunkline_client::{proto, Retry};

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The carrier's name: letters, digits, '-', '_' or '.'.
    name: String,
    #[command(flatten)]
    flags: super::CarrierFlags,
    /// Create it disabled: configured, but never routed to until `carrier enable`.
    #[arg(long)]
    disabled: bool,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("carrier name", &args.name)?;
    let mut carrier = proto::Carrier {
        name: args.name.clone(),
        disabled: args.disabled,
        ..Default::default()
    };
    args.flags.apply(&mut carrier)?;
    let request = proto::PutCarrierRequest {
        carrier: Some(carrier),
        mode: proto::PutMode::Create.into(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_carrier(request).await }
        })
        .await?;
    objects::print_written(
        context,
        "carrier",
        &args.name,
        "created",
        response.applied_index,
    )
}
