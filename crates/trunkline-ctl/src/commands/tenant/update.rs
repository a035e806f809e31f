//! `trunkctl tenant update NAME [flags]`: change some fields of a tenant.
//!
//! Reads the tenant as of every committed write, changes only the fields given and writes it
//! back whole. A concurrent update of the same tenant between the read and the write is
//! overwritten (routing objects have no version to compare yet).

use trunkline_client::{proto, Retry};

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The tenant's name.
    name: String,
    #[command(flatten)]
    flags: super::TenantFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("tenant name", &args.name)?;
    if args.flags.is_empty() {
        return Err(Failure::Usage(
            "nothing to change: give at least one flag (see `trunkctl tenant update --help`)"
                .into(),
        ));
    }
    let routing = objects::list_routing_latest(context).await?;
    let mut tenant = super::find(&routing, &args.name)
        .cloned()
        .ok_or_else(|| objects::not_found("tenant", &args.name))?;
    args.flags.apply(&mut tenant)?;
    let request = proto::PutTenantRequest {
        tenant: Some(tenant),
        mode: proto::PutMode::Replace.into(),
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
        "updated",
        response.applied_index,
    )
}
