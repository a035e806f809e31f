//! Bearer tokens. A token is `tl1.<id>.<secret>`: a public id (8 random bytes, hex) that
//! names its record, and a 256-bit random secret (hex) of which replicated state keeps only a
//! SHA-256 hash. Checking one does the same work whether the id is known or not, and compares
//! hashes in constant time, so neither the answer nor its timing says which part was wrong.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Principal, Role, Scope};
use crate::{routing::validate_name, Error, FieldError};

const PREFIX: &str = "tl1";
/// Bytes of a token's id and of its secret.
pub const ID_BYTES: usize = 8;
pub const SECRET_BYTES: usize = 32;
/// The length of a token's text: anything longer is refused before it is parsed.
pub const TOKEN_LEN: usize = PREFIX.len() + 1 + 2 * ID_BYTES + 1 + 2 * SECRET_BYTES;
/// Tokens kept, revoked ones included (they stay for the audit trail).
pub const MAX_TOKENS: usize = 10_000;
/// Tenants one token may be limited to.
pub const MAX_TOKEN_TENANTS: usize = 256;

/// A hash of a secret; what replicated state holds instead of it.
pub type SecretHash = [u8; 32];

/// A new token: its text, shown once, and the id and hash its record keeps.
pub struct Minted {
    pub text: String,
    pub id: String,
    pub hash: SecretHash,
}

/// Makes a token from random bytes the caller drew (the core draws none).
pub fn mint(id: [u8; ID_BYTES], secret: [u8; SECRET_BYTES]) -> Minted {
    let id = hex(&id);
    Minted {
        text: format!("{PREFIX}.{id}.{}", hex(&secret)),
        hash: hash_secret(&secret),
        id,
    }
}

/// The id and hash of a token bound to a client certificate (its DER bytes) instead of a
/// secret: both come from the certificate, so the record is found from the certificate the
/// TLS handshake verified. Hashed apart from secrets: neither can stand for the other.
pub fn certificate_token(der: &[u8]) -> (String, SecretHash) {
    let mut hasher = Sha256::new();
    hasher.update(b"trunkline certificate v1\0");
    hasher.update(der);
    let hash: SecretHash = hasher.finalize().into();
    (hex(&hash[..ID_BYTES]), hash)
}

/// A token as a client presented it, parsed; not yet checked.
pub struct Presented {
    pub id: String,
    secret: [u8; SECRET_BYTES],
}

impl Presented {
    /// The hash replicated state would keep for this secret.
    pub fn hash(&self) -> SecretHash {
        hash_secret(&self.secret)
    }
}

/// Parses a token's text; `None` for anything malformed or oversized.
pub fn parse(text: &str) -> Option<Presented> {
    if text.len() != TOKEN_LEN {
        return None;
    }
    let mut parts = text.split('.');
    let (prefix, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if prefix != PREFIX || parts.next().is_some() || !is_id(id) {
        return None;
    }
    let mut bytes = [0u8; SECRET_BYTES];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(secret.get(2 * index..2 * index + 2)?, 16).ok()?;
    }
    if secret.chars().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    Some(Presented {
        id: id.to_owned(),
        secret: bytes,
    })
}

fn is_id(id: &str) -> bool {
    id.len() == 2 * ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn hash_secret(secret: &[u8; SECRET_BYTES]) -> SecretHash {
    let mut hasher = Sha256::new();
    hasher.update(b"trunkline token v1\0");
    hasher.update(secret);
    hasher.finalize().into()
}

/// Equal in time whatever the contents.
fn same_hash(a: &SecretHash, b: &SecretHash) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// One token, as replicated state keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    /// The operator's label; unique among tokens not revoked.
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    pub hash: SecretHash,
    /// Log time of its creation, unix ms.
    pub created_ms: u64,
    /// Unix ms after which it is refused; `None`: never.
    pub expires_ms: Option<u64>,
    /// Log time of its revocation; `None` while it is valid.
    pub revoked_ms: Option<u64>,
    /// Who created it (a token's name), empty for the first admin token.
    pub created_by: String,
}

impl TokenRecord {
    pub fn principal(&self) -> Principal {
        Principal {
            token_id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            scope: self.scope.clone(),
        }
    }

    /// Valid at `now_ms`: not revoked, not expired.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.revoked_ms.is_none() && self.expires_ms.is_none_or(|expires| now_ms < expires)
    }

    /// Checks the record before it is proposed or applied.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !is_id(&self.id) {
            return Err(FieldError::new("id", "is not a token id (16 hex digits)"));
        }
        validate_name("name", &self.name)?;
        match (&self.scope, self.role) {
            (Scope::Tenants(tenants), Role::Proxy | Role::Tenant) => {
                if tenants.is_empty() {
                    return Err(FieldError::new(
                        "tenants",
                        "a proxy or tenant token names at least one tenant",
                    ));
                }
                if self.role == Role::Tenant && tenants.len() != 1 {
                    return Err(FieldError::new(
                        "tenants",
                        "a tenant token names exactly one tenant",
                    ));
                }
                if tenants.len() > MAX_TOKEN_TENANTS {
                    return Err(FieldError::new(
                        "tenants",
                        format!("at most {MAX_TOKEN_TENANTS} tenants"),
                    ));
                }
                for tenant in tenants {
                    validate_name("tenants", tenant)?;
                }
                Ok(())
            }
            (Scope::All, Role::Tenant) => Err(FieldError::new(
                "tenants",
                "a tenant token names exactly one tenant",
            )),
            (Scope::All, _) => Ok(()),
            (Scope::Tenants(_), _) => Err(FieldError::new(
                "tenants",
                "only proxy and tenant tokens are limited to tenants",
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenCommand {
    Create(TokenRecord),
    /// Revokes the live token of this id or name.
    Revoke {
        token: String,
    },
}

impl TokenCommand {
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            TokenCommand::Create(record) => record.validate().map_err(Error::from),
            TokenCommand::Revoke { token } => {
                if token.is_empty() {
                    Err(Error::invalid("token", "is required: a token's id or name"))
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenResponse {
    Created { id: String },
    Revoked { id: String },
}

/// Every token, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    by_id: BTreeMap<String, TokenRecord>,
}

/// A hash no secret has, compared against when the id is unknown so the work is the same.
const NO_TOKEN: SecretHash = [0xa5; 32];

impl Tokens {
    /// Applies a command at log time `now_ms`; `tenant_exists` says whether a tenant a new
    /// token names exists.
    pub fn apply(
        &mut self,
        now_ms: u64,
        command: &TokenCommand,
        tenant_exists: impl Fn(&str) -> bool,
    ) -> Result<TokenResponse, Error> {
        match command {
            TokenCommand::Create(record) => {
                if self.by_id.len() >= MAX_TOKENS {
                    return Err(Error::LimitReached(format!(
                        "the cluster keeps at most {MAX_TOKENS} tokens, revoked ones included"
                    )));
                }
                if self.by_id.contains_key(&record.id) {
                    return Err(Error::AlreadyExists {
                        kind: "token".into(),
                        name: record.id.clone(),
                    });
                }
                if self.live_named(&record.name, now_ms).is_some() {
                    return Err(Error::AlreadyExists {
                        kind: "token".into(),
                        name: record.name.clone(),
                    });
                }
                if let Scope::Tenants(tenants) = &record.scope {
                    if let Some(missing) = tenants.iter().find(|tenant| !tenant_exists(tenant)) {
                        return Err(Error::NotFound {
                            kind: "tenant".into(),
                            name: missing.clone(),
                        });
                    }
                }
                let mut record = record.clone();
                record.created_ms = now_ms;
                record.revoked_ms = None;
                let id = record.id.clone();
                self.by_id.insert(id.clone(), record);
                Ok(TokenResponse::Created { id })
            }
            TokenCommand::Revoke { token } => {
                let id = match self.by_id.get(token) {
                    Some(record) if record.revoked_ms.is_none() => record.id.clone(),
                    _ => self
                        .live_named(token, now_ms)
                        .map(|record| record.id.clone())
                        .ok_or_else(|| Error::NotFound {
                            kind: "token".into(),
                            name: token.clone(),
                        })?,
                };
                if let Some(record) = self.by_id.get_mut(&id) {
                    record.revoked_ms = Some(now_ms);
                }
                Ok(TokenResponse::Revoked { id })
            }
        }
    }

    fn live_named(&self, name: &str, now_ms: u64) -> Option<&TokenRecord> {
        self.by_id
            .values()
            .find(|record| record.name == name && record.is_live(now_ms))
    }

    pub fn get(&self, id: &str) -> Option<&TokenRecord> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &TokenRecord> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Does the work of checking a token (parse, look up, hash, compare) and throws it away:
    /// for a token too malformed to check, so refusing it takes as long as refusing a wrong one.
    pub fn spend_a_check(&self) {
        if let Some(presented) = parse(std::hint::black_box(SPENT_TOKEN)) {
            std::hint::black_box(self.verify(&presented, 0).is_some());
        }
    }

    /// The record of a presented token if its secret is right and it is live at `now_ms`.
    pub fn verify(&self, presented: &Presented, now_ms: u64) -> Option<&TokenRecord> {
        let record = self.by_id.get(&presented.id);
        let expected = record.map_or(&NO_TOKEN, |record| &record.hash);
        let matches = same_hash(&hash_secret(&presented.secret), expected);
        record.filter(|record| matches && record.is_live(now_ms))
    }

    /// Whether the token of this id is live at `now_ms` (for what checked it once and goes
    /// on acting for it: an open stream).
    pub fn is_live(&self, id: &str, now_ms: u64) -> bool {
        self.by_id
            .get(id)
            .is_some_and(|record| record.is_live(now_ms))
    }

    /// The record of the token bound to a certificate (see [`certificate_token`]) if there
    /// is one and it is live at `now_ms`.
    pub fn verify_certificate(
        &self,
        id: &str,
        hash: &SecretHash,
        now_ms: u64,
    ) -> Option<&TokenRecord> {
        let record = self.by_id.get(id);
        let expected = record.map_or(&NO_TOKEN, |record| &record.hash);
        let matches = same_hash(hash, expected);
        record.filter(|record| matches && record.is_live(now_ms))
    }
}

/// A well-formed token no record holds: what [`Tokens::spend_a_check`] checks.
const SPENT_TOKEN: &str =
    "tl1.0000000000000000.0000000000000000000000000000000000000000000000000000000000000000";

/// Checks a presented secret against a single known hash (the node's bootstrap secret).
pub fn matches_hash(presented: &Presented, hash: &SecretHash) -> bool {
    same_hash(&hash_secret(&presented.secret), hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(minted: &Minted, name: &str, role: Role, scope: Scope) -> TokenRecord {
        TokenRecord {
            id: minted.id.clone(),
            name: name.into(),
            role,
            scope,
            hash: minted.hash,
            created_ms: 0,
            expires_ms: None,
            revoked_ms: None,
            created_by: String::new(),
        }
    }

    #[test]
    fn a_minted_token_verifies_and_a_changed_one_does_not() {
        let minted = mint([1; ID_BYTES], [2; SECRET_BYTES]);
        assert_eq!(minted.text.len(), TOKEN_LEN);
        let mut tokens = Tokens::default();
        tokens
            .apply(
                5,
                &TokenCommand::Create(record(&minted, "ops", Role::Admin, Scope::All)),
                |_| true,
            )
            .unwrap();
        let presented = parse(&minted.text).unwrap();
        assert_eq!(tokens.verify(&presented, 10).unwrap().name, "ops");

        let mut wrong = minted.text.clone();
        wrong.replace_range(TOKEN_LEN - 1.., "0");
        let wrong = parse(&wrong).unwrap();
        assert!(tokens.verify(&wrong, 10).is_none());

        let other = mint([3; ID_BYTES], [2; SECRET_BYTES]);
        assert!(tokens.verify(&parse(&other.text).unwrap(), 10).is_none());
    }

    #[test]
    fn a_certificate_token_verifies_by_its_certificate_only() {
        let (id, hash) = certificate_token(b"certificate A");
        let mut tokens = Tokens::default();
        let mut bound = record(
            &mint([0; ID_BYTES], [0; SECRET_BYTES]),
            "sbc",
            Role::Proxy,
            Scope::All,
        );
        bound.id = id.clone();
        bound.hash = hash;
        tokens
            .apply(5, &TokenCommand::Create(bound), |_| true)
            .unwrap();
        assert_eq!(
            tokens.verify_certificate(&id, &hash, 10).unwrap().name,
            "sbc"
        );
        let (other_id, other_hash) = certificate_token(b"certificate B");
        assert!(tokens
            .verify_certificate(&other_id, &other_hash, 10)
            .is_none());
        assert!(tokens.verify_certificate(&id, &other_hash, 10).is_none());
        // A bearer token naming the certificate token's id matches no secret.
        let forged = parse(&format!("{PREFIX}.{id}.{}", "0".repeat(2 * SECRET_BYTES))).unwrap();
        assert!(tokens.verify(&forged, 10).is_none());
        tokens
            .apply(
                20,
                &TokenCommand::Revoke {
                    token: "sbc".into(),
                },
                |_| true,
            )
            .unwrap();
        assert!(tokens.verify_certificate(&id, &hash, 30).is_none());
    }

    #[test]
    fn malformed_and_oversized_tokens_do_not_parse() {
        let minted = mint([1; ID_BYTES], [2; SECRET_BYTES]);
        for bad in [
            String::new(),
            "Bearer x".into(),
            format!("{}0", minted.text),
            minted.text.replace("tl1.", "tl2."),
            minted.text.replacen('.', "-", 1),
            minted.text.to_uppercase(),
            minted.text.replace('0', "g"),
            "x".repeat(10_000),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn revoked_and_expired_tokens_are_refused() {
        let minted = mint([1; ID_BYTES], [2; SECRET_BYTES]);
        let mut tokens = Tokens::default();
        let mut expiring = record(&minted, "ci", Role::Operator, Scope::All);
        expiring.expires_ms = Some(100);
        tokens
            .apply(5, &TokenCommand::Create(expiring), |_| true)
            .unwrap();
        let presented = parse(&minted.text).unwrap();
        assert!(tokens.verify(&presented, 99).is_some());
        assert!(tokens.verify(&presented, 100).is_none());

        let second = mint([9; ID_BYTES], [8; SECRET_BYTES]);
        tokens
            .apply(
                5,
                &TokenCommand::Create(record(&second, "proxy", Role::Proxy, Scope::All)),
                |_| true,
            )
            .unwrap();
        let revoked = tokens
            .apply(
                7,
                &TokenCommand::Revoke {
                    token: "proxy".into(),
                },
                |_| true,
            )
            .unwrap();
        assert_eq!(
            revoked,
            TokenResponse::Revoked {
                id: second.id.clone()
            }
        );
        assert!(tokens.verify(&parse(&second.text).unwrap(), 8).is_none());
        // The name is free again; the revoked record stays for the record.
        assert_eq!(tokens.len(), 2);
    }

    #[test]
    fn scopes_are_checked() {
        let minted = mint([1; ID_BYTES], [2; SECRET_BYTES]);
        let bad = [
            record(&minted, "t", Role::Tenant, Scope::All),
            record(
                &minted,
                "t",
                Role::Tenant,
                Scope::Tenants(vec!["a".into(), "b".into()]),
            ),
            record(&minted, "p", Role::Proxy, Scope::Tenants(vec![])),
            record(
                &minted,
                "o",
                Role::Operator,
                Scope::Tenants(vec!["a".into()]),
            ),
            record(&minted, "bad name", Role::Admin, Scope::All),
        ];
        for record in bad {
            assert!(record.validate().is_err(), "{record:?}");
        }
        let mut tokens = Tokens::default();
        let unknown_tenant = tokens.apply(
            1,
            &TokenCommand::Create(record(
                &minted,
                "t",
                Role::Tenant,
                Scope::Tenants(vec!["nope".into()]),
            )),
            |tenant| tenant == "acme",
        );
        assert!(matches!(unknown_tenant, Err(Error::NotFound { .. })));
    }
}
