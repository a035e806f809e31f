//! `trunkctl config cas KEY (--expected V | --absent) (--value V | --delete)`.

use trunkline_client::{proto, Retry};

use crate::context::{Context, Failure};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("condition").required(true).args(["expected", "absent"])))]
#[command(group(clap::ArgGroup::new("change").required(true).args(["value", "delete"])))]
pub struct Args {
    key: String,
    /// The value the key must hold now.
    #[arg(long)]
    expected: Option<String>,
    /// The key must not exist now.
    #[arg(long)]
    absent: bool,
    /// The value to write.
    #[arg(long)]
    value: Option<String>,
    /// Delete the key instead of writing it.
    #[arg(long)]
    delete: bool,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    super::validate_key(&args.key)?;
    let request = proto::CompareAndSetSettingRequest {
        key: args.key.clone(),
        expected: args.expected.clone(),
        value: args.value.clone(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.compare_and_set_setting(request).await }
        })
        .await?;
    super::print_write(
        context,
        &args.key,
        response,
        "compare failed: the key does not hold the expected value; nothing was written",
    )
}
