//! `trunkctl keys rotate`: after a new key is added to each node's key file (and the node
//! restarted with it), seals again with it every value the older keys sealed, node by node
//! (every `--endpoints` address in turn), printing progress; then the older keys can go.

use serde::Serialize;
use trunkline_client::{proto, Retry};

use crate::{
    context::{Context, Failure},
    output,
    progress::{Progress, Unit},
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Re-seal each node's stored data with its newest key, one node after another.
    Rotate,
}

/// One node's re-seal, as printed at its end.
#[derive(Serialize)]
struct Rotated {
    endpoint: String,
    key_id: u32,
    examined: u64,
    resealed: u64,
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    let Command::Rotate = command;
    for endpoint in context.client.endpoints() {
        let client = context
            .client
            .only(endpoint)
            .map_err(|error| Failure::Usage(error.to_string()))?;
        let mut stream = client
            .admin(Retry::NotSent, |mut admin| async move {
                admin.rotate_keys(proto::RotateKeysRequest {}).await
            })
            .await?;
        let mut bar = Progress::new(
            &format!("re-sealing {endpoint}"),
            0,
            Unit::Items("values"),
            true,
        );
        loop {
            let progress = stream.message().await.map_err(|status| {
                Failure::Request(format!(
                    "{endpoint}: {}: {}",
                    trunkline_client::code_name(status.code()),
                    status.message()
                ))
            })?;
            let Some(progress) = progress else {
                return Err(Failure::Request(format!(
                    "{endpoint}: the node stopped reporting before the re-seal ended; run it again"
                )));
            };
            if !progress.done {
                bar.set_total(progress.total);
                bar.set(progress.examined);
                continue;
            }
            bar.finish();
            let rotated = Rotated {
                endpoint: endpoint.clone(),
                key_id: progress.key_id,
                examined: progress.examined,
                resealed: progress.resealed,
            };
            output::emit_line(context.format, &rotated, |rotated| {
                format!(
                    "{}: every value is sealed with key {} ({} re-sealed of {} examined)",
                    rotated.endpoint, rotated.key_id, rotated.resealed, rotated.examined
                )
            })?;
            break;
        }
    }
    Ok(())
}
