//! `trunkctl config ...`: the replicated settings namespace.

use serde::Serialize;
use trunkline_client::{proto, Retry};

use crate::{
    commands::view,
    context::{Context, Failure},
    output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print a key's value.
    Get {
        key: String,
        #[command(flatten)]
        read: ReadFlags,
    },
    /// List keys under a prefix.
    List {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
        /// At most this many keys (the server caps it at 1000).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        #[command(flatten)]
        read: ReadFlags,
    },
    /// Set a key.
    Set { key: String, value: String },
    /// Delete a key.
    Delete { key: String },
    /// Set or delete a key only if it holds the expected value.
    Cas(CasArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("condition").required(true).args(["expected", "absent"])))]
#[command(group(clap::ArgGroup::new("change").required(true).args(["value", "delete"])))]
pub struct CasArgs {
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

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Get { key, read } => get(context, key, read).await,
        Command::List {
            prefix,
            limit,
            read,
        } => list(context, prefix, limit, read).await,
        Command::Set { key, value } => {
            let request = proto::SetSettingRequest {
                key: key.clone(),
                value,
            };
            write(
                context,
                key,
                "the write was not applied",
                request,
                |mut admin, request| async move { admin.set_setting(request).await },
            )
            .await
        }
        Command::Delete { key } => {
            let request = proto::DeleteSettingRequest { key: key.clone() };
            let failed = format!("key {key:?} did not exist");
            write(
                context,
                key,
                &failed,
                request,
                |mut admin, request| async move { admin.delete_setting(request).await },
            )
            .await
        }
        Command::Cas(args) => {
            let request = proto::CompareAndSetSettingRequest {
                key: args.key.clone(),
                expected: args.expected,
                value: args.value,
            };
            let failed =
                "compare failed: the key does not hold the expected value; nothing was written";
            write(
                context,
                args.key,
                failed,
                request,
                |mut admin, request| async move { admin.compare_and_set_setting(request).await },
            )
            .await
        }
    }
}

/// How fresh a read must be, shared by every command that reads.
#[derive(clap::Args, Clone, Copy)]
pub struct ReadFlags {
    /// Confirm with the leader that the answer includes every committed write.
    #[arg(long)]
    linearizable: bool,
    /// Wait until the node has applied at least this log index (read your writes).
    #[arg(long, default_value_t = 0)]
    min_index: u64,
    /// Refuse an answer from a node that has not heard from a leader for longer than this.
    #[arg(long, default_value_t = 0)]
    max_staleness_ms: u64,
}

impl From<ReadFlags> for proto::ReadConsistency {
    fn from(flags: ReadFlags) -> Self {
        proto::ReadConsistency {
            min_applied_index: flags.min_index,
            linearizable: flags.linearizable,
            max_staleness_ms: flags.max_staleness_ms,
        }
    }
}

/// As of every committed write, for a read-modify-write.
pub fn latest() -> proto::ReadConsistency {
    proto::ReadConsistency {
        linearizable: true,
        ..Default::default()
    }
}

/// Checks a key with the node's rule before anything is sent.
fn check_key(key: &str) -> Result<(), Failure> {
    trunkline_core::settings::validate_key(key)
        .map_err(|error| Failure::Usage(format!("key {key:?}: {}", error.reason())))
}

/// `config get KEY`: the value, or exit code 3 when the key does not exist.
async fn get(context: &Context, key: String, read: ReadFlags) -> Result<(), Failure> {
    check_key(&key)?;
    let request = proto::GetSettingRequest {
        key: key.clone(),
        consistency: Some(read.into()),
    };
    let response = context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.get_setting(request).await },
        )
        .await?;
    #[derive(Serialize)]
    struct Got {
        setting: Option<view::Setting>,
        read_state: view::ReadState,
    }
    let got = Got {
        setting: response.setting.as_ref().map(view::Setting::from),
        read_state: response.read_state.as_ref().into(),
    };
    output::emit(context.format, &got, |got| match &got.setting {
        Some(setting) => setting.value.clone(),
        None => String::new(),
    })?;
    match got.setting {
        Some(_) => Ok(()),
        None => Err(Failure::ConditionFailed(format!(
            "key {key:?} not found (node {} at applied index {})",
            got.read_state.node_id, got.read_state.applied_index
        ))),
    }
}

/// `config list [PREFIX]`.
async fn list(
    context: &Context,
    prefix: String,
    limit: u32,
    read: ReadFlags,
) -> Result<(), Failure> {
    let request = proto::ListSettingsRequest {
        prefix,
        limit,
        consistency: Some(read.into()),
    };
    let response = context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.list_settings(request).await },
        )
        .await?;
    let settings: Vec<view::Setting> = response.settings.iter().map(view::Setting::from).collect();
    output::emit(context.format, &settings, |settings| {
        output::columns(
            settings,
            &[
                ("KEY", &|setting| setting.key.clone()),
                ("VALUE", &|setting| setting.value.clone()),
                ("VERSION", &|setting| setting.version.to_string()),
                ("MODIFIED AT", &|setting| setting.modify_index.to_string()),
            ],
        )
    })
}

/// Sends a write of `key` with `call` and prints its outcome; a write whose condition failed
/// (`failed` says how) exits 3.
async fn write<R, F, Fut>(
    context: &Context,
    key: String,
    failed: &str,
    request: R,
    call: F,
) -> Result<(), Failure>
where
    R: Clone,
    F: Fn(crate::context::Admin, R) -> Fut,
    Fut: std::future::Future<
        Output = Result<tonic::Response<proto::SettingWriteResponse>, tonic::Status>,
    >,
{
    check_key(&key)?;
    let response = context.admin(Retry::Write, request, call).await?;
    #[derive(Serialize)]
    struct WriteResult {
        succeeded: bool,
        applied_index: u64,
        current: Option<view::Setting>,
    }
    let result = WriteResult {
        succeeded: response.succeeded,
        applied_index: response.applied_index,
        current: response.current.as_ref().map(view::Setting::from),
    };
    output::emit(context.format, &result, |result| {
        match (&result.current, result.succeeded) {
            (Some(setting), true) => format!(
                "{key} = {} (version {}, log index {})",
                setting.value, setting.version, result.applied_index
            ),
            (None, true) => format!("{key} deleted (log index {})", result.applied_index),
            (Some(setting), false) => format!(
                "{key} holds {:?} (version {})",
                setting.value, setting.version
            ),
            (None, false) => format!("{key} does not exist"),
        }
    })?;
    if result.succeeded {
        Ok(())
    } else {
        Err(Failure::ConditionFailed(failed.to_owned()))
    }
}
