//! `trunkctl tenant add NAME [flags]`: create a tenant.

use trunkline_client::{proto, Retry};

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The tenant's name: letters, digits, '-', '_' or '.'.
    name: String,
    #[command(flatten)]
    flags: super::TenantFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("tenant name", &args.name)?;
    let mut tenant = proto::Tenant {
        name: args.name.clone(),
        strategy: proto::Strategy::LeastCost.into(),
        ..Default::default()
    };
    args.flags.apply(&mut tenant)?;
    let request = proto::PutTenantRequest {
        tenant: Some(tenant),
        mode: proto::PutMode::Create.into(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_tenant(request).await }
        })
        .await?;
    objects::print_written(
        context,
        "tenant",
        &args.name,
        "created",
        response.applied_index,
    )
}
