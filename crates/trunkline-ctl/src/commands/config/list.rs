//! `trunkctl config list [PREFIX]`.

use trunkline_client::{proto, Retry};

use crate::{
    commands::view,
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// Only keys starting with this.
    #[arg(default_value = "")]
    prefix: String,
    /// At most this many keys (the server caps it at 1000).
    #[arg(long, default_value_t = 1000)]
    limit: u32,
    #[command(flatten)]
    read: super::ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    let request = proto::ListSettingsRequest {
        prefix: args.prefix,
        limit: args.limit,
        consistency: Some(args.read.into()),
    };
    let response = context
        .client
        .admin(Retry::Idempotent, |mut admin| {
            let request = request.clone();
            async move { admin.list_settings(request).await }
        })
        .await?;
    let settings: Vec<view::Setting> = response.settings.iter().map(view::Setting::from).collect();
    output::emit(context.format, &settings, |settings| {
        let rows: Vec<Vec<String>> = settings
            .iter()
            .map(|setting| {
                vec![
                    setting.key.clone(),
                    setting.value.clone(),
                    setting.version.to_string(),
                    setting.modify_index.to_string(),
                ]
            })
            .collect();
        output::table(&["KEY", "VALUE", "VERSION", "MODIFIED AT"], &rows)
    })
}
