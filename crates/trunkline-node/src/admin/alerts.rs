//! Fraud alerts: listing them with the actions in force, acknowledging one, clearing a
//! tenant's actions, and the rules. Detection and the rules themselves live in the core
//! (`trunkline_core::alerts`), applied with the call records.

use tonic::Status;
use trunkline_api::{convert, v1 as proto};
use trunkline_core::{
    alerts::{AlertCommand, AlertResponse, AlertRule},
    auth::Principal,
    routing::validate_name,
    Command, Response,
};

use super::{domain, required, AdminApi};
use crate::auth::{require_tenant, sees};

/// The setting that names the webhook alerts are posted to.
pub const WEBHOOK_SETTING: &str = "alerts/webhook_url";

impl AdminApi {
    pub(super) async fn list_alerts(
        &self,
        request: proto::ListAlertsRequest,
        principal: &Option<Principal>,
    ) -> Result<proto::ListAlertsResponse, Status> {
        if !request.tenant.is_empty() {
            validate_name("tenant", &request.tenant).map_err(domain)?;
            require_tenant(principal, &request.tenant)?;
        }
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        let book = applied.state.alerts();
        let wanted = |tenant: &str| {
            sees(principal, tenant) && (request.tenant.is_empty() || request.tenant == tenant)
        };
        let alerts = book
            .alerts()
            .filter(|alert| wanted(&alert.tenant))
            .filter(|alert| !request.open_only || alert.acknowledged.is_none())
            .map(convert::alert_to_proto)
            .collect();
        let tenants: Vec<String> = applied
            .state
            .routing()
            .tenants()
            .map(|tenant| tenant.name.clone())
            .filter(|tenant| wanted(tenant))
            .collect();
        let actions = tenants
            .iter()
            .flat_map(|tenant| {
                book.actions(tenant)
                    .map(|(action, alert)| proto::TenantAction {
                        tenant: tenant.clone(),
                        action: action.to_string(),
                        alert_id: alert,
                    })
            })
            .collect();
        Ok(proto::ListAlertsResponse {
            alerts,
            actions,
            read_state: Some(read_state.into()),
        })
    }

    async fn write_alerts(&self, command: AlertCommand) -> Result<(AlertResponse, u64), Status> {
        let command = Command::Alerts(command);
        command.validate().map_err(domain)?;
        match self.cluster.write(command).await? {
            (Response::Alerts(response), index) => Ok((response, index)),
            (Response::Rejected(error), _) => Err(domain(error)),
            (other, _) => Err(Status::internal(format!(
                "unexpected reply to an alert command: {other:?}"
            ))),
        }
    }

    pub(super) async fn acknowledge_alert(
        &self,
        request: proto::AcknowledgeAlertRequest,
        principal: &Option<Principal>,
    ) -> Result<proto::AcknowledgeAlertResponse, Status> {
        let by = principal
            .as_ref()
            .map_or_else(|| "operator".to_owned(), |principal| principal.name.clone());
        let (_, applied_index) = self
            .write_alerts(AlertCommand::Acknowledge { id: request.id, by })
            .await?;
        Ok(proto::AcknowledgeAlertResponse { applied_index })
    }

    pub(super) async fn unblock_tenant(
        &self,
        request: proto::UnblockTenantRequest,
    ) -> Result<proto::UnblockTenantResponse, Status> {
        validate_name("tenant", &request.tenant).map_err(domain)?;
        let (response, applied_index) = self
            .write_alerts(AlertCommand::Unblock {
                tenant: request.tenant,
            })
            .await?;
        let cleared = match response {
            AlertResponse::Cleared(actions) => actions
                .into_iter()
                .map(|action| action.to_string())
                .collect(),
            AlertResponse::Done => Vec::new(),
        };
        Ok(proto::UnblockTenantResponse {
            cleared,
            applied_index,
        })
    }

    pub(super) async fn get_alert_policy(
        &self,
        request: proto::GetAlertPolicyRequest,
    ) -> Result<proto::GetAlertPolicyResponse, Status> {
        let (applied, _) = self.cluster.read(request.consistency.into()).await?;
        let book = applied.state.alerts();
        let tenant = request.tenant;
        if !tenant.is_empty() && applied.state.routing().tenant(&tenant).is_none() {
            return Err(domain(trunkline_core::Error::not_found("tenant", tenant)));
        }
        let policy = book.policy();
        Ok(proto::GetAlertPolicyResponse {
            rules: AlertRule::ALL
                .into_iter()
                .map(|rule| {
                    let own = policy.tenant_rule(&tenant, rule);
                    let config = own.cloned().unwrap_or_else(|| policy.rule(rule));
                    proto::AlertRuleConfig {
                        tenant_own: own.is_some(),
                        ..convert::rule_config_to_proto(rule, &config)
                    }
                })
                .collect(),
            webhook_url: applied
                .state
                .settings()
                .get(WEBHOOK_SETTING)
                .map(|setting| setting.value.clone())
                .unwrap_or_default(),
            webhook_delivered_through: book.delivered_through(),
        })
    }

    pub(super) async fn set_alert_rule(
        &self,
        request: proto::SetAlertRuleRequest,
    ) -> Result<proto::SetAlertRuleResponse, Status> {
        let config = required("config", request.config)?;
        // The command checks the name; applying it, that the tenant exists.
        let tenant = (!request.tenant.is_empty()).then_some(request.tenant);
        let command = if request.reset {
            AlertCommand::SetRule {
                tenant,
                rule: convert::alert_rule_from_text(&config.rule)
                    .map_err(|error| domain(error.within("config")))?,
                config: None,
            }
        } else {
            let (rule, config) = convert::rule_config_from_proto(&config)
                .map_err(|error| domain(error.within("config")))?;
            AlertCommand::SetRule {
                tenant,
                rule,
                config: Some(config),
            }
        };
        let (_, applied_index) = self.write_alerts(command).await?;
        Ok(proto::SetAlertRuleResponse { applied_index })
    }
}
