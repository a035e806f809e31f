//! `trunkctl cluster members`: who is in the cluster.

use trunkline_client::{proto, Retry};

use crate::{
    commands::view,
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {}

pub async fn exec(_args: Args, context: &Context) -> Result<(), Failure> {
    let response = context
        .client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin.list_members(proto::ListMembersRequest {}).await
        })
        .await?;
    let members = view::members(&response.members);
    output::emit(context.format, &members, |members| {
        if members.is_empty() {
            "No members: the cluster is not initialised (run `trunkctl cluster init`).".to_owned()
        } else {
            view::members_table(members)
        }
    })
}
