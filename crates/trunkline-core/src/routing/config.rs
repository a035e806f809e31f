//! The replicated outbound-routing configuration: tenants, carriers, gateways, operator
//! drains and rate decks, and the commands that change them.
//!
//! Rate decks arrive in bounded chunks staged under an import id and become the deck only at
//! commit, so the old deck serves until the new one is complete, a failed import changes
//! nothing, and no single Raft entry is large. Staged imports that are never committed expire
//! by log time.
//!
//! An import belongs to the client that staged its first chunk: that chunk carries an owner
//! token the client chose (128 random bits, in hex), and every later chunk, the commit and an
//! abort must carry the same token, so knowing an import id (`ListImports` shows them) is not
//! enough to commit or abort someone else's import. Staging slots are few
//! ([`MAX_STAGED_IMPORTS`]); so that abandoned imports can't hold them for the whole
//! [`STAGED_IMPORT_TTL_MS`], a new import may evict one that has had no chunk for
//! [`STAGED_IMPORT_IDLE_MS`] of log time when the slots (or the staged rows) are full, and
//! one owner token holds at most [`MAX_STAGED_IMPORTS_PER_OWNER`] imports.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use super::{
    model::validate_name, Capability, Carrier, Deck, DeckBuilder, DeckRow, Gateway, GatewayHealth,
    Rate, Tenant,
};
use crate::policy::{PolicyRules, PolicyScope};
use crate::{Error, FieldError};

/// Rows in one staged chunk: about 250 KiB of log entry.
pub const MAX_ROWS_PER_CHUNK: usize = 5_000;
/// Rows staged across all imports at once.
pub const MAX_STAGED_ROWS: usize = 10_000_000;
/// Imports staged at once.
pub const MAX_STAGED_IMPORTS: usize = 16;
/// Rows in one carrier's deck.
pub const MAX_DECK_ROWS: usize = 10_000_000;
/// A staged import not committed within this long (log time) is dropped.
pub const STAGED_IMPORT_TTL_MS: u64 = 30 * 60 * 1000;
/// Tenants, carriers and gateways, each.
pub const MAX_OBJECTS: usize = 100_000;
/// Longest import id.
pub const MAX_IMPORT_ID_BYTES: usize = 64;
/// An import with no chunk for this long (log time) may be evicted by a new import when the
/// staging slots or rows are full. A live import sends a chunk every few hundred
/// milliseconds; a minute covers a slow link or a pause without letting unused ids block
/// imports for long.
pub const STAGED_IMPORT_IDLE_MS: u64 = 60 * 1000;
/// Imports one owner token may have staged at once, so one client reusing a token can't
/// take every slot.
pub const MAX_STAGED_IMPORTS_PER_OWNER: usize = 4;
/// Hex digits of an owner token: 128 bits at least, 256 at most.
pub const MIN_OWNER_TOKEN_CHARS: usize = 32;
pub const MAX_OWNER_TOKEN_CHARS: usize = 64;

/// Whether a put may create, replace, or both. The inbound puts (DIDs, devices, edges) take
/// it too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutMode {
    #[default]
    Upsert,
    Create,
    Replace,
}

impl PutMode {
    /// Refuses a put of the `kind` object `name` this mode does not allow: a create of one
    /// that `exists` (AlreadyExists), a replace of one that does not (NotFound).
    pub(crate) fn check(self, kind: &str, name: &str, exists: bool) -> Result<(), Error> {
        match (self, exists) {
            (PutMode::Create, true) => Err(Error::AlreadyExists {
                kind: kind.to_owned(),
                name: name.to_owned(),
            }),
            (PutMode::Replace, false) => Err(Error::not_found(kind, name)),
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectKind {
    Tenant,
    Carrier,
    Gateway,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Tenant => "tenant",
            ObjectKind::Carrier => "carrier",
            ObjectKind::Gateway => "gateway",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RoutingCommand {
    PutTenant {
        /// Boxed: a tenant with its calling policy is the largest command by far.
        tenant: Box<Tenant>,
        mode: PutMode,
    },
    PutCarrier {
        carrier: Carrier,
        mode: PutMode,
    },
    PutGateway {
        gateway: Gateway,
        mode: PutMode,
    },
    Delete {
        kind: ObjectKind,
        name: String,
    },
    /// Sets (or with `None` removes) one scope of a tenant's calling policy, leaving the
    /// others as they are. The whole policy is checked against the tenant's dial plan when it
    /// applies, so two writers of different scopes can't together store a contradiction.
    SetPolicy {
        tenant: String,
        scope: PolicyScope,
        rules: Option<PolicyRules>,
    },
    /// Operator maintenance: a drained gateway takes no new calls.
    SetDrained {
        gateway: String,
        drained: bool,
    },
    StageRates {
        import_id: String,
        /// The import's owner token: set by the first chunk, required on every later one.
        owner: String,
        carrier: String,
        /// File line of the chunk's first row, for error messages.
        first_line: u64,
        rates: Vec<Rate>,
    },
    CommitRates {
        import_id: String,
        owner: String,
        carrier: String,
        replace: bool,
        expected_rows: u64,
    },
    /// Drops a staged import now, freeing its slot; only its owner may.
    AbortRates {
        import_id: String,
        owner: String,
    },
    /// The cluster's secret for authenticating route tokens; set once, at initialisation.
    SetRouteTokenKey {
        key: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoutingResponse {
    /// `warnings`: what the configuration now gets wrong without being invalid (a tenant
    /// whose emergency calls have no carrier); the admin API passes them on to the operator.
    Put {
        replaced: bool,
        warnings: Vec<String>,
    },
    Deleted,
    Drained,
    Staged {
        staged_rows: u64,
    },
    Committed {
        deck_rows: u64,
    },
    Aborted {
        staged_rows: u64,
    },
    KeySet,
}

/// Rows of one import waiting for their commit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StagedImport {
    pub carrier: String,
    /// Each chunk's rows, packed, with their lines in the imported file. Chunks are shared,
    /// so copying the configuration on apply never copies staged rows.
    pub chunks: Vec<Arc<StagedChunk>>,
    pub rows: u64,
    pub started_ms: u64,
    /// Log time of the last chunk: an import idle for [`STAGED_IMPORT_IDLE_MS`] may be evicted.
    pub last_chunk_ms: u64,
    /// The token the first chunk carried; never shown by reads.
    pub owner: String,
}

/// One StageRates chunk: its rows packed (in the file's order) and the file line of the
/// first; row `n` is on line `first_line + n`. Serialised as the `(line, Rate)` pairs it once
/// was, so snapshots taken during an import keep loading.
#[derive(Clone, Debug, PartialEq)]
pub struct StagedChunk {
    first_line: u64,
    rows: Deck,
}

impl StagedChunk {
    fn line(&self, row: usize) -> u64 {
        self.first_line.saturating_add(row as u64)
    }
}

impl Serialize for StagedChunk {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.rows.len()))?;
        for (offset, row) in self.rows.rows().enumerate() {
            seq.serialize_element(&(self.line(offset), row.to_rate()))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for StagedChunk {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs = Vec::<(u64, Rate)>::deserialize(deserializer)?;
        let first_line = pairs.first().map_or(0, |(line, _)| *line);
        let rows = Deck::from_rates(pairs.iter().map(|(_, rate)| rate))
            .map_err(serde::de::Error::custom)?;
        Ok(StagedChunk { first_line, rows })
    }
}

impl StagedImport {
    /// How long no chunk has arrived, at log time `now_ms`.
    pub fn idle_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_chunk_ms)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutingConfig {
    tenants: BTreeMap<String, Tenant>,
    carriers: BTreeMap<String, Carrier>,
    gateways: BTreeMap<String, Gateway>,
    drained: BTreeSet<String>,
    /// Each carrier's deck sorted by prefix, then effective_from.
    decks: BTreeMap<String, Arc<Deck>>,
    staged: BTreeMap<String, StagedImport>,
    /// Bumped whenever any deck changes, so the node knows when to rebuild the prefix index.
    decks_version: u64,
    route_token_key: Option<Vec<u8>>,
}

/// Length of the route token key, bytes.
pub const ROUTE_TOKEN_KEY_BYTES: usize = 32;

impl RoutingCommand {
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            RoutingCommand::PutTenant { tenant, .. } => Ok(tenant.validate()?),
            RoutingCommand::PutCarrier { carrier, .. } => Ok(carrier.validate()?),
            RoutingCommand::PutGateway { gateway, .. } => Ok(gateway.validate()?),
            RoutingCommand::Delete { name, .. } => Ok(validate_name("name", name)?),
            RoutingCommand::SetDrained { gateway, .. } => Ok(validate_name("gateway", gateway)?),
            RoutingCommand::SetPolicy {
                tenant,
                scope,
                rules,
            } => {
                validate_name("tenant", tenant)?;
                scope.validate()?;
                if let Some(rules) = rules {
                    rules.validate()?;
                }
                Ok(())
            }
            RoutingCommand::StageRates {
                import_id,
                owner,
                carrier,
                rates,
                first_line,
            } => {
                validate_import_id(import_id)?;
                validate_owner(owner)?;
                validate_name("carrier", carrier)?;
                if rates.len() > MAX_ROWS_PER_CHUNK {
                    return Err(Error::invalid(
                        "rates",
                        format!(
                            "{} rows in one chunk; the limit is {MAX_ROWS_PER_CHUNK}",
                            rates.len()
                        ),
                    ));
                }
                for (offset, rate) in rates.iter().enumerate() {
                    rate.validate().map_err(|error| {
                        let line = first_line.saturating_add(offset as u64);
                        Error::invalid("rates", format!("line {line}: {error}"))
                    })?;
                }
                Ok(())
            }
            RoutingCommand::CommitRates {
                import_id,
                owner,
                carrier,
                ..
            } => {
                validate_import_id(import_id)?;
                validate_owner(owner)?;
                Ok(validate_name("carrier", carrier)?)
            }
            RoutingCommand::AbortRates { import_id, owner } => {
                validate_import_id(import_id)?;
                Ok(validate_owner(owner)?)
            }
            RoutingCommand::SetRouteTokenKey { key } => {
                if key.len() == ROUTE_TOKEN_KEY_BYTES {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        "key",
                        format!("must be {ROUTE_TOKEN_KEY_BYTES} bytes"),
                    ))
                }
            }
        }
    }
}

fn validate_import_id(import_id: &str) -> Result<(), FieldError> {
    let valid = !import_id.is_empty()
        && import_id.len() <= MAX_IMPORT_ID_BYTES
        && import_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            "import_id",
            format!("must be 1 to {MAX_IMPORT_ID_BYTES} letters, digits or '-'"),
        ))
    }
}

/// An owner token: [`MIN_OWNER_TOKEN_CHARS`] to [`MAX_OWNER_TOKEN_CHARS`] hex digits.
pub fn validate_owner(owner: &str) -> Result<(), FieldError> {
    let valid = (MIN_OWNER_TOKEN_CHARS..=MAX_OWNER_TOKEN_CHARS).contains(&owner.len())
        && owner.bytes().all(|byte| byte.is_ascii_hexdigit());
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            "owner",
            format!(
                "must be {MIN_OWNER_TOKEN_CHARS} to {MAX_OWNER_TOKEN_CHARS} hex digits (a random \
                 token the client chose when it staged the import's first chunk)"
            ),
        ))
    }
}

impl RoutingConfig {
    /// Imports staged now, by import id.
    pub fn staged_imports(&self) -> impl Iterator<Item = (&String, &StagedImport)> {
        self.staged.iter()
    }

    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name)
    }

    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    /// Carriers in name order.
    pub fn carriers(&self) -> impl Iterator<Item = &Carrier> {
        self.carriers.values()
    }

    pub fn carrier(&self, name: &str) -> Option<&Carrier> {
        self.carriers.get(name)
    }

    /// Gateways in name order.
    pub fn gateways(&self) -> impl Iterator<Item = &Gateway> {
        self.gateways.values()
    }

    pub fn gateway(&self, name: &str) -> Option<&Gateway> {
        self.gateways.get(name)
    }

    pub fn is_drained(&self, gateway: &str) -> bool {
        self.drained.contains(gateway)
    }

    /// Every gateway's health for selection: drained (set by operators) wins over the
    /// replicated probe and breaker health in `health`; absent gateways are up.
    pub fn health(&self, health: &crate::health::HealthTable) -> BTreeMap<String, GatewayHealth> {
        let mut combined: BTreeMap<String, GatewayHealth> = health
            .down()
            .map(|gateway| {
                let by_breaker = health
                    .gateway(gateway)
                    .is_some_and(|state| state.source == crate::health::TransitionSource::Breaker);
                let state = if by_breaker {
                    GatewayHealth::BreakerOpen
                } else {
                    GatewayHealth::Down
                };
                (gateway.clone(), state)
            })
            .collect();
        for gateway in &self.drained {
            combined.insert(gateway.clone(), GatewayHealth::Drained);
        }
        combined
    }

    pub fn deck(&self, carrier: &str) -> Option<&Arc<Deck>> {
        self.decks.get(carrier)
    }

    pub fn decks(&self) -> impl Iterator<Item = (&String, &Arc<Deck>)> {
        self.decks.iter()
    }

    pub fn decks_version(&self) -> u64 {
        self.decks_version
    }

    /// The carriers that can take an emergency call: enabled, with the `emergency`
    /// capability and at least one enabled gateway.
    pub fn emergency_carriers(&self) -> Vec<&str> {
        let with_gateway: BTreeSet<&str> = self
            .gateways
            .values()
            .filter(|gateway| gateway.enabled)
            .map(|gateway| gateway.carrier.as_str())
            .collect();
        self.carriers
            .values()
            .filter(|carrier| {
                carrier.enabled
                    && carrier.capabilities.contains(&Capability::Emergency)
                    && with_gateway.contains(carrier.name.as_str())
            })
            .map(|carrier| carrier.name.as_str())
            .collect()
    }

    /// Why `tenant`'s emergency calls may fail or leave its carriers, if they may: no carrier
    /// can take them at all, or none of the tenant's allowed carriers can.
    pub fn emergency_warning(&self, tenant: &Tenant) -> Option<String> {
        let capable = self.emergency_carriers();
        let codes: Vec<&str> = tenant
            .dial_plan
            .emergency_numbers
            .iter()
            .map(String::as_str)
            .collect();
        if capable.is_empty() {
            return Some(format!(
                "WARNING: tenant {:?} has no emergency-capable carrier: its emergency calls ({}) \
                 have nowhere to go. Give a carrier with an enabled gateway the emergency \
                 capability (trunkctl carrier update NAME --capabilities ...,emergency)",
                tenant.name,
                codes.join(", ")
            ));
        }
        if !tenant.allowed_carriers.is_empty()
            && !capable.iter().any(|carrier| tenant.allows_carrier(carrier))
        {
            return Some(format!(
                "WARNING: none of tenant {:?}'s allowed carriers is emergency-capable: its \
                 emergency calls ({}) go to {} outside its list",
                tenant.name,
                codes.join(", "),
                capable.join(", ")
            ));
        }
        None
    }

    /// After a carrier or gateway changes: whether tenants are left with no emergency-capable
    /// carrier at all.
    fn emergency_coverage_warning(&self) -> Option<String> {
        if self.tenants.is_empty() || !self.emergency_carriers().is_empty() {
            return None;
        }
        Some(format!(
            "WARNING: no enabled carrier with an enabled gateway has the emergency capability: \
             the emergency calls of all {} tenants have nowhere to go. Give a carrier the \
             emergency capability (trunkctl carrier update NAME --capabilities ...,emergency)",
            self.tenants.len()
        ))
    }

    pub fn route_token_key(&self) -> Option<&[u8]> {
        self.route_token_key.as_deref()
    }

    pub(crate) fn apply(
        &mut self,
        time_ms: u64,
        command: &RoutingCommand,
    ) -> Result<RoutingResponse, Error> {
        self.expire_staged(time_ms);
        match command {
            RoutingCommand::PutTenant { tenant, mode } => {
                for carrier in &tenant.allowed_carriers {
                    if !self.carriers.contains_key(carrier) {
                        return Err(Error::not_found("carrier", carrier.clone()));
                    }
                }
                let response = put(
                    &mut self.tenants,
                    ObjectKind::Tenant,
                    &tenant.name,
                    tenant,
                    *mode,
                )?;
                Ok(with_warnings(response, self.emergency_warning(tenant)))
            }
            RoutingCommand::PutCarrier { carrier, mode } => {
                let response = put(
                    &mut self.carriers,
                    ObjectKind::Carrier,
                    &carrier.name,
                    carrier,
                    *mode,
                )?;
                Ok(with_warnings(response, self.emergency_coverage_warning()))
            }
            RoutingCommand::PutGateway { gateway, mode } => {
                if !self.carriers.contains_key(&gateway.carrier) {
                    return Err(Error::not_found("carrier", gateway.carrier.clone()));
                }
                if let Some(existing) = self.gateways.get(&gateway.name) {
                    if existing.carrier != gateway.carrier {
                        return Err(Error::FailedPrecondition(format!(
                            "gateway {:?} belongs to carrier {:?}; gateway names are unique \
                             across carriers: remove it first to move it",
                            gateway.name, existing.carrier
                        )));
                    }
                }
                let response = put(
                    &mut self.gateways,
                    ObjectKind::Gateway,
                    &gateway.name,
                    gateway,
                    *mode,
                )?;
                Ok(with_warnings(response, self.emergency_coverage_warning()))
            }
            RoutingCommand::Delete { kind, name } => self.delete(*kind, name),
            RoutingCommand::SetPolicy {
                tenant,
                scope,
                rules,
            } => {
                let Some(current) = self.tenants.get(tenant) else {
                    return Err(Error::not_found("tenant", tenant.clone()));
                };
                let mut policy = current.policy.clone();
                let replaced = policy.set(scope, rules.clone());
                policy.validate(&current.dial_plan)?;
                if let Some(current) = self.tenants.get_mut(tenant) {
                    current.policy = policy;
                }
                Ok(RoutingResponse::Put {
                    replaced,
                    warnings: Vec::new(),
                })
            }
            RoutingCommand::SetDrained { gateway, drained } => {
                if !self.gateways.contains_key(gateway) {
                    return Err(Error::not_found("gateway", gateway.clone()));
                }
                if *drained {
                    self.drained.insert(gateway.clone());
                } else {
                    self.drained.remove(gateway);
                }
                Ok(RoutingResponse::Drained)
            }
            RoutingCommand::StageRates {
                import_id,
                owner,
                carrier,
                first_line,
                rates,
            } => self.stage(time_ms, import_id, owner, carrier, *first_line, rates),
            RoutingCommand::CommitRates {
                import_id,
                owner,
                carrier,
                replace,
                expected_rows,
            } => {
                self.owned(import_id, owner)?;
                self.commit(import_id, carrier, *replace, *expected_rows)
            }
            RoutingCommand::AbortRates { import_id, owner } => {
                let staged_rows = self.owned(import_id, owner)?.rows;
                self.staged.remove(import_id);
                Ok(RoutingResponse::Aborted { staged_rows })
            }
            RoutingCommand::SetRouteTokenKey { key } => {
                if self.route_token_key.is_none() {
                    self.route_token_key = Some(key.clone());
                }
                Ok(RoutingResponse::KeySet)
            }
        }
    }

    fn delete(&mut self, kind: ObjectKind, name: &str) -> Result<RoutingResponse, Error> {
        match kind {
            ObjectKind::Tenant => {
                self.tenants
                    .remove(name)
                    .ok_or_else(|| Error::not_found("tenant", name))?;
            }
            ObjectKind::Carrier => {
                if !self.carriers.contains_key(name) {
                    return Err(Error::not_found("carrier", name));
                }
                let gateways: Vec<&str> = self
                    .gateways
                    .values()
                    .filter(|gateway| gateway.carrier == name)
                    .map(|gateway| gateway.name.as_str())
                    .collect();
                if !gateways.is_empty() {
                    return Err(Error::FailedPrecondition(format!(
                        "carrier {name:?} still has gateways {}: remove them first",
                        gateways.join(", ")
                    )));
                }
                let tenants: Vec<&str> = self
                    .tenants
                    .values()
                    .filter(|tenant| {
                        tenant
                            .allowed_carriers
                            .iter()
                            .any(|allowed| allowed == name)
                    })
                    .map(|tenant| tenant.name.as_str())
                    .collect();
                if !tenants.is_empty() {
                    return Err(Error::FailedPrecondition(format!(
                        "carrier {name:?} is allowed for tenants {}: update them first",
                        tenants.join(", ")
                    )));
                }
                self.carriers.remove(name);
                if self.decks.remove(name).is_some() {
                    self.decks_version += 1;
                }
                self.staged.retain(|_, staged| staged.carrier != name);
            }
            ObjectKind::Gateway => {
                self.gateways
                    .remove(name)
                    .ok_or_else(|| Error::not_found("gateway", name))?;
                self.drained.remove(name);
            }
        }
        Ok(RoutingResponse::Deleted)
    }

    fn expire_staged(&mut self, time_ms: u64) {
        self.staged
            .retain(|_, staged| time_ms.saturating_sub(staged.started_ms) < STAGED_IMPORT_TTL_MS);
    }

    /// The staged import `import_id`, if `owner` is its owner.
    fn owned(&self, import_id: &str, owner: &str) -> Result<&StagedImport, Error> {
        let staged = self
            .staged
            .get(import_id)
            .ok_or_else(|| Error::not_found("import", import_id))?;
        if staged.owner != owner {
            return Err(Error::invalid(
                "owner",
                format!(
                    "is not the owner token of import {import_id:?}: only the client that \
                     started an import may add to, commit or abort it"
                ),
            ));
        }
        Ok(staged)
    }

    /// Makes room for a chunk of `rows` rows of a new import (`new_import`) or of an existing
    /// one, evicting imports idle for [`STAGED_IMPORT_IDLE_MS`], longest idle first, only as
    /// far as needed. Changes nothing when even that is not enough.
    fn make_room(&mut self, time_ms: u64, new_import: bool, rows: u64) -> Result<(), Error> {
        let staged_rows: u64 = self.staged.values().map(|staged| staged.rows).sum();
        let fits = |imports: usize, staged_rows: u64| {
            (!new_import || imports < MAX_STAGED_IMPORTS)
                && staged_rows.saturating_add(rows) <= MAX_STAGED_ROWS as u64
        };
        if fits(self.staged.len(), staged_rows) {
            return Ok(());
        }
        let mut idle: Vec<(u64, &String, u64)> = self
            .staged
            .iter()
            .filter(|(_, staged)| staged.idle_ms(time_ms) >= STAGED_IMPORT_IDLE_MS)
            .map(|(id, staged)| (staged.last_chunk_ms, id, staged.rows))
            .collect();
        idle.sort();
        let (mut imports, mut remaining_rows) = (self.staged.len(), staged_rows);
        let mut evict = Vec::new();
        for (_, id, rows) in idle {
            if fits(imports, remaining_rows) {
                break;
            }
            evict.push(id.clone());
            imports -= 1;
            remaining_rows -= rows;
        }
        if !fits(imports, remaining_rows) {
            let idle_seconds = STAGED_IMPORT_IDLE_MS / 1000;
            return Err(if new_import && self.staged.len() >= MAX_STAGED_IMPORTS {
                Error::LimitReached(format!(
                    "{MAX_STAGED_IMPORTS} imports are in progress and none has been idle for \
                     {idle_seconds} s; wait, or abort one (trunkctl rates imports lists them)"
                ))
            } else {
                Error::LimitReached(format!(
                    "{MAX_STAGED_ROWS} rows are staged across imports and no idle import frees \
                     enough; commit, abort or let them expire"
                ))
            });
        }
        for id in evict {
            self.staged.remove(&id);
        }
        Ok(())
    }

    fn stage(
        &mut self,
        time_ms: u64,
        import_id: &str,
        owner: &str,
        carrier: &str,
        first_line: u64,
        rates: &[Rate],
    ) -> Result<RoutingResponse, Error> {
        if !self.carriers.contains_key(carrier) {
            return Err(Error::not_found("carrier", carrier));
        }
        let new_import = match self.staged.get(import_id) {
            Some(staged) => {
                self.owned(import_id, owner)?;
                if staged.carrier != carrier {
                    return Err(Error::invalid(
                        "import_id",
                        format!("is an import for carrier {:?}", staged.carrier),
                    ));
                }
                false
            }
            None => {
                let owned = self
                    .staged
                    .values()
                    .filter(|staged| staged.owner == owner)
                    .count();
                if owned >= MAX_STAGED_IMPORTS_PER_OWNER {
                    return Err(Error::LimitReached(format!(
                        "{MAX_STAGED_IMPORTS_PER_OWNER} imports are staged under this owner \
                         token; commit or abort one first"
                    )));
                }
                true
            }
        };
        self.make_room(time_ms, new_import, rates.len() as u64)?;
        let staged = self
            .staged
            .entry(import_id.to_owned())
            .or_insert_with(|| StagedImport {
                carrier: carrier.to_owned(),
                chunks: Vec::new(),
                rows: 0,
                started_ms: time_ms,
                last_chunk_ms: time_ms,
                owner: owner.to_owned(),
            });
        // `validate` checked every row.
        staged.chunks.push(Arc::new(StagedChunk {
            first_line,
            rows: Deck::from_rates(rates)?,
        }));
        staged.rows += rates.len() as u64;
        staged.last_chunk_ms = time_ms;
        Ok(RoutingResponse::Staged {
            staged_rows: staged.rows,
        })
    }

    fn commit(
        &mut self,
        import_id: &str,
        carrier: &str,
        replace: bool,
        expected_rows: u64,
    ) -> Result<RoutingResponse, Error> {
        let staged = self
            .staged
            .get(import_id)
            .ok_or_else(|| Error::not_found("import", import_id))?;
        if staged.carrier != carrier {
            return Err(Error::invalid(
                "carrier",
                format!("import {import_id:?} is for carrier {:?}", staged.carrier),
            ));
        }
        if staged.rows != expected_rows {
            let staged_rows = staged.rows;
            self.staged.remove(import_id);
            return Err(Error::FailedPrecondition(format!(
                "{staged_rows} rows were staged but {expected_rows} were sent: a chunk was lost; \
                 nothing was applied, run the import again"
            )));
        }
        let Some(staged) = self.staged.remove(import_id) else {
            return Err(Error::not_found("import", import_id));
        };
        // Every staged row as (its line, the row), sorted into deck order without copying.
        let mut incoming: Vec<(u64, DeckRow<'_>)> = staged
            .chunks
            .iter()
            .flat_map(|chunk| {
                chunk
                    .rows
                    .rows()
                    .enumerate()
                    .map(|(offset, row)| (chunk.line(offset), row))
            })
            .collect();
        incoming.sort_by(|(line_a, a), (line_b, b)| {
            a.prefix
                .cmp_digits(b.prefix)
                .then(a.effective_from_ms.cmp(&b.effective_from_ms))
                .then(line_a.cmp(line_b))
        });
        check_overlaps(&incoming)?;
        let mut builder = DeckBuilder::with_capacity(incoming.len());
        for (_, row) in incoming {
            builder.push(row);
        }
        let incoming = builder.finish();
        let deck = match self.decks.get(carrier) {
            // Merge: every prefix in the import replaces all rows of that prefix.
            Some(current) if !replace => current.merged(&incoming),
            _ => incoming,
        };
        if deck.len() > MAX_DECK_ROWS {
            return Err(Error::LimitReached(format!(
                "the deck would have {} rows; the limit is {MAX_DECK_ROWS}",
                deck.len()
            )));
        }
        let deck_rows = deck.len() as u64;
        self.decks.insert(carrier.to_owned(), Arc::new(deck));
        self.decks_version += 1;
        Ok(RoutingResponse::Committed { deck_rows })
    }
}

/// Rows sorted by prefix then start: two rows of one prefix whose effective windows overlap
/// are a duplicate.
fn check_overlaps(rows: &[(u64, DeckRow<'_>)]) -> Result<(), Error> {
    for pair in rows.windows(2) {
        let [(first_line, first), (second_line, second)] = pair else {
            continue;
        };
        if first.prefix != second.prefix {
            continue;
        }
        let first_ends = first.effective_until_ms.unwrap_or(u64::MAX);
        let second_starts = second.effective_from_ms.unwrap_or(0);
        if second_starts < first_ends {
            return Err(Error::invalid(
                "prefix",
                format!(
                    "line {second_line}: duplicate prefix {} (also on line {first_line}) with an \
                     overlapping effective period",
                    second.prefix.digits()
                ),
            ));
        }
    }
    Ok(())
}

fn put<T: Clone>(
    map: &mut BTreeMap<String, T>,
    kind: ObjectKind,
    name: &str,
    value: &T,
    mode: PutMode,
) -> Result<RoutingResponse, Error> {
    let exists = map.contains_key(name);
    mode.check(kind.as_str(), name, exists)?;
    if !exists && map.len() >= MAX_OBJECTS {
        return Err(Error::LimitReached(format!(
            "{MAX_OBJECTS} {}s exist; the limit is reached",
            kind.as_str()
        )));
    }
    map.insert(name.to_owned(), value.clone());
    Ok(RoutingResponse::Put {
        replaced: exists,
        warnings: Vec::new(),
    })
}

fn with_warnings(response: RoutingResponse, warning: Option<String>) -> RoutingResponse {
    match response {
        RoutingResponse::Put {
            replaced,
            mut warnings,
        } => {
            warnings.extend(warning);
            RoutingResponse::Put { replaced, warnings }
        }
        other => other,
    }
}
