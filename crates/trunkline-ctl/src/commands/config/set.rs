//! `trunkctl config set KEY VALUE`.

use trunkline_client::{proto, Retry};

use crate::context::{Context, Failure};

#[derive(clap::Args)]
pub struct Args {
    key: String,
    value: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    super::validate_key(&args.key)?;
    let request = proto::SetSettingRequest {
        key: args.key.clone(),
        value: args.value,
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.set_setting(request).await }
        })
        .await?;
    super::print_write(context, &args.key, response, "the write was not applied")
}
