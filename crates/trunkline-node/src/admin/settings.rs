//! The replicated settings namespace: get, list, set, delete and compare-and-set. The
//! versioning and the compare-and-set rule live in the core's `Settings`.

use tonic::Status;
use trunkline_api::v1 as proto;
use trunkline_core::{
    settings::{validate_key, SettingsCommand, SettingsResponse},
    Command,
};

use super::AdminApi;
use crate::{convert, error::ClusterError, limits};

impl AdminApi {
    pub(super) async fn get_setting(
        &self,
        request: proto::GetSettingRequest,
    ) -> Result<proto::GetSettingResponse, Status> {
        validate_key(&request.key).map_err(ClusterError::from)?;
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        let setting = applied
            .state
            .settings()
            .get(&request.key)
            .map(|setting| convert::setting(&request.key, setting));
        Ok(proto::GetSettingResponse {
            setting,
            read_state: Some(read_state.into()),
        })
    }

    pub(super) async fn list_settings(
        &self,
        request: proto::ListSettingsRequest,
    ) -> Result<proto::ListSettingsResponse, Status> {
        let limit = match request.limit {
            0 => limits::MAX_LIST_SETTINGS,
            limit => (limit as usize).min(limits::MAX_LIST_SETTINGS),
        };
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        let settings = applied
            .state
            .settings()
            .list(&request.prefix, limit)
            .map(|(key, setting)| convert::setting(key, setting))
            .collect();
        Ok(proto::ListSettingsResponse {
            settings,
            read_state: Some(read_state.into()),
        })
    }

    pub(super) async fn set_setting(
        &self,
        request: proto::SetSettingRequest,
    ) -> Result<proto::SettingWriteResponse, Status> {
        self.write_setting(SettingsCommand::Set {
            key: request.key,
            value: request.value,
        })
        .await
    }

    pub(super) async fn delete_setting(
        &self,
        request: proto::DeleteSettingRequest,
    ) -> Result<proto::SettingWriteResponse, Status> {
        self.write_setting(SettingsCommand::Delete { key: request.key })
            .await
    }

    pub(super) async fn compare_and_set_setting(
        &self,
        request: proto::CompareAndSetSettingRequest,
    ) -> Result<proto::SettingWriteResponse, Status> {
        self.write_setting(SettingsCommand::CompareAndSet {
            key: request.key,
            expected: request.expected,
            value: request.value,
        })
        .await
    }

    /// Writes a settings command and answers whether it took effect, with the key after it.
    async fn write_setting(
        &self,
        command: SettingsCommand,
    ) -> Result<proto::SettingWriteResponse, Status> {
        let key = command.key().to_owned();
        let (response, log_index) = self.cluster.write(Command::Settings(command)).await?;
        let (succeeded, current) = match response {
            trunkline_core::Response::Settings(SettingsResponse::Written { current }) => {
                (true, current)
            }
            trunkline_core::Response::Settings(SettingsResponse::Absent) => (false, None),
            trunkline_core::Response::Settings(SettingsResponse::CompareFailed { current }) => {
                (false, current)
            }
            other => {
                return Err(Status::internal(format!(
                    "unexpected response to a settings write: {other:?}"
                )))
            }
        };
        Ok(proto::SettingWriteResponse {
            succeeded,
            current: current.map(|setting| convert::setting(&key, &setting)),
            applied_index: log_index,
        })
    }
}
