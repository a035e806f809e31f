//! Tokens: creating one (its secret returned this once), listing them (never a secret or a
//! hash) and revoking one. The rules (names, scopes, limits) live in the core's `Tokens`.

use tonic::Status;
use trunkline_api::v1 as proto;
use trunkline_core::{
    auth::{
        tokens::{certificate_token, SecretHash, TokenCommand, TokenRecord, TokenResponse},
        Principal, Role, Scope,
    },
    Command, Error, Response,
};

use super::{domain, AdminApi};
use crate::cluster::{new_token, now_ms};

/// The largest certificate a token may be bound to.
const MAX_CERTIFICATE_BYTES: usize = 16 * 1024;

impl AdminApi {
    /// The token id and hash of a client certificate a token is to be bound to, once it is
    /// known to be one the client listener accepts.
    fn bound_certificate(&self, der: &[u8]) -> Result<(String, SecretHash), Status> {
        if der.len() > MAX_CERTIFICATE_BYTES {
            return Err(domain(Error::invalid(
                "certificate",
                format!("{} bytes; at most {MAX_CERTIFICATE_BYTES}", der.len()),
            )));
        }
        let Some(tls) = self.cluster.dialer.tls() else {
            return Err(domain(Error::invalid(
                "certificate",
                "this node serves plaintext (--insecure): no client shows it a certificate",
            )));
        };
        tls.check_client_certificate(der).map_err(|reason| {
            domain(Error::invalid(
                "certificate",
                format!("not a client certificate of the cluster CA the nodes accept: {reason}"),
            ))
        })?;
        Ok(certificate_token(der))
    }

    pub(super) async fn create_token(
        &self,
        request: proto::CreateTokenRequest,
        principal: &Option<Principal>,
    ) -> Result<proto::CreateTokenResponse, Status> {
        let role = Role::parse(&request.role).ok_or_else(|| {
            domain(Error::invalid(
                "role",
                format!(
                    "{:?} is not a role: admin, operator, auditor, proxy or tenant",
                    request.role
                ),
            ))
        })?;
        let scope = match (request.all_tenants, request.tenants.is_empty()) {
            (true, false) => {
                return Err(domain(Error::invalid(
                    "all_tenants",
                    "give tenants or all_tenants, not both",
                )))
            }
            (true, true) if role != Role::Proxy => {
                return Err(domain(Error::invalid(
                    "all_tenants",
                    "only a proxy token may be for every tenant",
                )))
            }
            (false, false) => Scope::Tenants(request.tenants),
            (_, true) if role.is_tenant_scoped() && !request.all_tenants => {
                return Err(domain(Error::invalid(
                    "tenants",
                    "is required for a proxy token (or all_tenants) and a tenant token",
                )))
            }
            (_, true) => Scope::All,
        };
        let expires_ms = match request.expires_in_ms {
            0 => None,
            after => Some(now_ms().saturating_add(after)),
        };
        let created_by = principal
            .as_ref()
            .map(|principal| principal.name.clone())
            .unwrap_or_default();
        let certificate = (!request.certificate.is_empty())
            .then(|| self.bound_certificate(&request.certificate))
            .transpose()?;
        let (mut command, minted) = new_token(request.name, role, scope, expires_ms, created_by);
        if let Command::Tokens(TokenCommand::Create(record)) = &mut command {
            // No name given: the role and the start of the id.
            if record.name.is_empty() {
                record.name = format!("{}-{}", role.as_str(), &minted.id[..8]);
            }
            // Bound to a certificate: the id and hash come from it, and no secret exists.
            if let Some((id, hash)) = &certificate {
                record.id = id.clone();
                record.hash = *hash;
            }
        }
        command.validate().map_err(domain)?;
        let (response, applied_index) = self.cluster.write(command).await?;
        match response {
            Response::Tokens(TokenResponse::Created { id }) => Ok(proto::CreateTokenResponse {
                token: match certificate {
                    Some(_) => String::new(),
                    None => minted.text,
                },
                id,
                applied_index,
            }),
            other => Err(Status::internal(format!(
                "unexpected response to a token create: {other:?}"
            ))),
        }
    }

    pub(super) async fn list_tokens(
        &self,
        request: proto::ListTokensRequest,
    ) -> Result<proto::ListTokensResponse, Status> {
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        Ok(proto::ListTokensResponse {
            tokens: applied.state.tokens().iter().map(token_to_proto).collect(),
            read_state: Some(read_state.into()),
        })
    }

    pub(super) async fn revoke_token(
        &self,
        request: proto::RevokeTokenRequest,
    ) -> Result<proto::PutResponse, Status> {
        let command = Command::Tokens(TokenCommand::Revoke {
            token: request.token,
        });
        command.validate().map_err(domain)?;
        let (_, applied_index) = self.cluster.write(command).await?;
        Ok(proto::PutResponse {
            applied_index,
            replaced: true,
            warnings: Vec::new(),
        })
    }
}

fn token_to_proto(record: &TokenRecord) -> proto::TokenInfo {
    let (tenants, all_tenants) = match &record.scope {
        Scope::All => (Vec::new(), record.role == Role::Proxy),
        Scope::Tenants(tenants) => (tenants.clone(), false),
    };
    proto::TokenInfo {
        id: record.id.clone(),
        name: record.name.clone(),
        role: record.role.as_str().to_owned(),
        tenants,
        all_tenants,
        created_ms: record.created_ms,
        expires_ms: record.expires_ms.unwrap_or(0),
        revoked_ms: record.revoked_ms.unwrap_or(0),
        created_by: record.created_by.clone(),
    }
}
