//! `trunkctl device remove AOR`: delete a device (the node refuses while a DID rings it).

use trunkline_client::{proto, Retry};

use crate::{
    commands::{inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// Its address of record: sip:user@domain.
    aor: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    inbound::check_aor("AOR", &args.aor)?;
    let request = proto::DeleteDeviceRequest {
        aor: args.aor.clone(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.delete_device(request).await }
        })
        .await
        .map_err(inbound::or_not_found("device", &args.aor))?;
    objects::print_written(
        context,
        "device",
        &args.aor,
        "removed",
        response.applied_index,
    )
}
