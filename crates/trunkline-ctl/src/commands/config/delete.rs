//! `trunkctl config delete KEY`.

use trunkline_client::{proto, Retry};

use crate::context::{Context, Failure};

#[derive(clap::Args)]
pub struct Args {
    key: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    super::validate_key(&args.key)?;
    let request = proto::DeleteSettingRequest {
        key: args.key.clone(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.delete_setting(request).await }
        })
        .await?;
    super::print_write(
        context,
        &args.key,
        response,
        &format!("key {:?} did not exist", args.key),
    )
}
