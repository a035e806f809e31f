//! `trunkctl did remove NUMBER`: delete a DID.

use trunkline_client::{proto, Retry};

use crate::{
    commands::{inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The number, E.164 with '+'.
    number: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    inbound::check_number("NUMBER", &args.number)?;
    let request = proto::DeleteDidRequest {
        number: args.number.clone(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.delete_did(request).await }
        })
        .await
        .map_err(inbound::or_not_found("did", &args.number))?;
    objects::print_written(
        context,
        "DID",
        &args.number,
        "removed",
        response.applied_index,
    )
}
