//! `trunkctl token ...`: the bearer tokens that let people and proxies use the cluster. A
//! token's secret is printed once, when it is made; the cluster keeps only a hash of it.

use clap::builder::PossibleValuesParser;
use serde::Serialize;
use trunkline_client::{proto, Retry};
use trunkline_core::{auth::Role, routing::format_unix_ms};

use crate::{
    commands::{config::ReadFlags, kinds::print_written, view::cell_list},
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Make a token; its secret is printed this once.
    Create {
        /// What it may do: admin (everything), operator (routing, carriers, rates, health,
        /// numbers), auditor (read everything), proxy (route calls), tenant (its own numbers).
        #[arg(long, value_parser = PossibleValuesParser::new(Role::ALL.map(Role::as_str)))]
        role: String,
        /// A tenant it is limited to; repeat for more. A proxy token names one or more (or
        /// --all-tenants), a tenant token exactly one.
        #[arg(long = "tenant", value_name = "TENANT")]
        tenants: Vec<String>,
        /// A proxy token for every tenant, present and future.
        #[arg(long, conflicts_with = "tenants")]
        all_tenants: bool,
        /// Refused after this long (12h, 90d); never when left out.
        #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
        expires: Option<u64>,
        /// A label for lists and the audit trail, unique among live tokens; default: the role
        /// and the start of its id.
        #[arg(long)]
        name: Option<String>,
        /// Bind the token to this client certificate (PEM, from the cluster CA: `trunkctl certs
        /// issue client`) instead of a secret: calls over TLS showing it are this token's.
        #[arg(long, value_name = "PEM_FILE")]
        certificate: Option<std::path::PathBuf>,
    },
    /// Every token with its role, tenants, expiry and state; never a secret.
    List(#[command(flatten)] ReadFlags),
    /// Revoke a token, by id or name: every node refuses it once it applies the change.
    Revoke {
        /// The token's id or name. (Not `token`: that is the global flag's id, and clap would
        /// take this value for it.)
        #[arg(value_name = "ID|NAME")]
        which: String,
    },
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Create {
            role,
            tenants,
            all_tenants,
            expires,
            name,
            certificate,
        } => {
            let certificate = match certificate {
                None => Vec::new(),
                Some(path) => trunkline_tls::read_certificates("--certificate", &path)
                    .map_err(|error| Failure::Usage(error.to_string()))?
                    .swap_remove(0)
                    .to_vec(),
            };
            let bound = !certificate.is_empty();
            let request = proto::CreateTokenRequest {
                name: name.unwrap_or_default(),
                role,
                tenants,
                all_tenants,
                expires_in_ms: expires.unwrap_or(0),
                certificate,
            };
            let response = context
                .admin(Retry::NotSent, request, |mut admin, request| async move {
                    admin.create_token(request).await
                })
                .await?;
            #[derive(Serialize)]
            struct Created {
                id: String,
                /// The bearer token, shown this once.
                token: String,
                applied_index: u64,
            }
            let created = Created {
                id: response.id,
                token: response.token,
                applied_index: response.applied_index,
            };
            output::emit(context.format, &created, |created| match bound {
                true => format!(
                    "Token {} created (log index {}), bound to the certificate: calls over TLS \
                     showing it need no secret.",
                    created.id, created.applied_index
                ),
                false => format!(
                    "Token {} created (log index {}). Its secret, shown this once:\n{}",
                    created.id, created.applied_index, created.token
                ),
            })
        }
        Command::List(read) => {
            let request = proto::ListTokensRequest {
                consistency: Some(read.into()),
            };
            let response = context
                .admin(
                    Retry::Idempotent,
                    request,
                    |mut admin, request| async move { admin.list_tokens(request).await },
                )
                .await?;
            let tokens: Vec<TokenView> = response.tokens.iter().map(TokenView::from).collect();
            output::emit(context.format, &tokens, |tokens| {
                output::columns(
                    tokens,
                    &[
                        ("ID", &|token| token.id.clone()),
                        ("NAME", &|token| token.name.clone()),
                        ("ROLE", &|token| token.role.clone()),
                        ("TENANTS", &TokenView::tenants_cell),
                        ("EXPIRES", &|token| {
                            token.expires.clone().unwrap_or_else(|| "never".into())
                        }),
                        ("STATE", &|token| token.state.to_owned()),
                    ],
                )
            })
        }
        Command::Revoke { which } => {
            let request = proto::RevokeTokenRequest {
                token: which.clone(),
            };
            let response = context
                .admin(Retry::NotSent, request, |mut admin, request| async move {
                    admin.revoke_token(request).await
                })
                .await
                .map_err(crate::commands::kinds::or_not_found("token", &which))?;
            print_written(context, "token", &which, "revoked", response.applied_index)
        }
    }
}

/// A token as `token list` shows it.
#[derive(Serialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub role: String,
    /// Empty: not limited to tenants (or, with all_tenants, a proxy of every tenant).
    pub tenants: Vec<String>,
    pub all_tenants: bool,
    /// RFC 3339 UTC; absent: never.
    pub expires: Option<String>,
    pub created: String,
    pub created_by: String,
    /// live, expired or revoked.
    pub state: &'static str,
}

impl From<&proto::TokenInfo> for TokenView {
    fn from(token: &proto::TokenInfo) -> Self {
        let now_ms = duration::now_unix_ms();
        let state = if token.revoked_ms != 0 {
            "revoked"
        } else if token.expires_ms != 0 && token.expires_ms <= now_ms {
            "expired"
        } else {
            "live"
        };
        TokenView {
            id: token.id.clone(),
            name: token.name.clone(),
            role: token.role.clone(),
            tenants: token.tenants.clone(),
            all_tenants: token.all_tenants,
            expires: (token.expires_ms != 0).then(|| format_unix_ms(token.expires_ms)),
            created: format_unix_ms(token.created_ms),
            created_by: token.created_by.clone(),
            state,
        }
    }
}

impl TokenView {
    fn tenants_cell(&self) -> String {
        if self.all_tenants {
            "(all)".to_owned()
        } else {
            cell_list(&self.tenants, "-")
        }
    }
}
