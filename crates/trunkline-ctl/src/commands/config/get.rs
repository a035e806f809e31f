//! `trunkctl config get KEY`.

use trunkline_client::{proto, Retry};

use crate::{
    commands::view,
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    key: String,
    #[command(flatten)]
    read: super::ReadFlags,
}

#[derive(serde::Serialize)]
struct Got {
    setting: Option<view::Setting>,
    read_state: view::ReadState,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    super::validate_key(&args.key)?;
    let request = proto::GetSettingRequest {
        key: args.key.clone(),
        consistency: Some(args.read.into()),
    };
    let response = context
        .client
        .admin(Retry::Idempotent, |mut admin| {
            let request = request.clone();
            async move { admin.get_setting(request).await }
        })
        .await?;
    let got = Got {
        setting: response.setting.as_ref().map(view::Setting::from),
        read_state: response.read_state.as_ref().into(),
    };
    let found = got.setting.is_some();
    output::emit(context.format, &got, |got| match &got.setting {
        Some(setting) => setting.value.clone(),
        None => String::new(),
    })?;
    if found {
        Ok(())
    } else {
        Err(Failure::ConditionFailed(format!(
            "key {:?} not found (node {} at applied index {})",
            args.key, got.read_state.node_id, got.read_state.applied_index
        )))
    }
}
