//! The audit log: every admin change (with who made it, from where, through which RPC, on
//! which object, and how it ended) and every refused or failed authentication, in replicated
//! state so every node holds the same record.
//!
//! Entries are made by applying log entries, so their order and contents are the same on
//! every node. Each carries the hash of the one before and its own hash over both
//! ([`entry_hash`]), so a changed, removed or reordered entry breaks the chain that
//! [`verify`] walks. Entries older than the retention (the replicated setting
//! [`RETENTION_SETTING`], default [`DEFAULT_RETENTION_DAYS`]) are dropped from the front, in
//! whole blocks, as are the oldest beyond [`MAX_AUDIT_ENTRIES`]; the first kept entry's
//! `prev_hash` then anchors the chain.

use std::{collections::VecDeque, sync::Arc};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    health::HealthCommand,
    inbound::InboundCommand,
    routing::RoutingCommand,
    settings::{Settings, SettingsCommand},
    Command, Error,
};

/// Entries kept at most, whatever the retention.
pub const MAX_AUDIT_ENTRIES: usize = 200_000;
/// The replicated setting that holds the retention in days.
pub const RETENTION_SETTING: &str = "audit/retention_days";
pub const DEFAULT_RETENTION_DAYS: u64 = 365;
/// The longest actor, source, RPC, object or result kept; longer ones are cut.
pub const MAX_FIELD_BYTES: usize = 256;
/// Records one `Record` command may carry.
pub const MAX_RECORDS_PER_COMMAND: usize = 1_000;
/// Entries per shared block: appending copies only the newest block.
const BLOCK_ENTRIES: usize = 256;

/// Who asked for something: what the node knows of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The token's name (`-` when the caller gave none that was valid).
    pub name: String,
    /// The caller's address.
    pub source: String,
    /// `Service/Method`.
    pub rpc: String,
}

/// Something recorded that changed nothing: a refused or failed authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub actor: Actor,
    pub result: String,
    /// Also raise a security alert on the event stream (a token locked, a source limited).
    pub alert: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditCommand {
    Record(Vec<AuditRecord>),
}

impl AuditCommand {
    pub fn validate(&self) -> Result<(), Error> {
        let AuditCommand::Record(records) = self;
        if records.is_empty() || records.len() > MAX_RECORDS_PER_COMMAND {
            return Err(Error::invalid(
                "records",
                format!("1 to {MAX_RECORDS_PER_COMMAND} records a command"),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its place in the chain: 1, 2, 3... with no gap.
    pub seq: u64,
    /// The log index of the entry that made it.
    pub index: u64,
    /// Log time, unix ms.
    pub time_ms: u64,
    pub actor: String,
    pub source: String,
    pub rpc: String,
    /// What it touched: `tenant acme`, `did +14155550100`, `setting greeting`.
    pub object: String,
    /// `ok`, or why it was refused or failed.
    pub result: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// The hash an entry must carry: SHA-256 over its fields and the previous entry's hash,
/// each field length-prefixed so no two entries encode alike.
#[allow(clippy::too_many_arguments)]
pub fn entry_hash(
    seq: u64,
    index: u64,
    time_ms: u64,
    actor: &str,
    source: &str,
    rpc: &str,
    object: &str,
    result: &str,
    prev_hash: &[u8; 32],
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"trunkline audit v1\0");
    for number in [seq, index, time_ms] {
        hasher.update(number.to_be_bytes());
    }
    for text in [actor, source, rpc, object, result] {
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    }
    hasher.update(prev_hash);
    hasher.finalize().into()
}

impl AuditEntry {
    pub fn expected_hash(&self) -> [u8; 32] {
        entry_hash(
            self.seq,
            self.index,
            self.time_ms,
            &self.actor,
            &self.source,
            &self.rpc,
            &self.object,
            &self.result,
            &self.prev_hash,
        )
    }
}

/// Walks entries oldest first and checks each one's hash and its link to the one before.
/// Returns how many were checked, or the first that breaks the chain and how.
pub fn verify<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> Result<u64, String> {
    let mut previous: Option<&AuditEntry> = None;
    let mut count = 0;
    for entry in entries {
        if entry.hash != entry.expected_hash() {
            return Err(format!(
                "entry {} (log index {}) does not match its hash: it was changed",
                entry.seq, entry.index
            ));
        }
        if let Some(previous) = previous {
            if entry.prev_hash != previous.hash {
                return Err(format!(
                    "entry {} does not follow entry {}: an entry between them was removed, or \
                     they were reordered",
                    entry.seq, previous.seq
                ));
            }
            if entry.seq != previous.seq + 1 {
                return Err(format!(
                    "entry {} follows entry {}: the numbering has a gap",
                    entry.seq, previous.seq
                ));
            }
        }
        previous = Some(entry);
        count += 1;
    }
    Ok(count)
}

/// What a command touched, for its audit entry.
pub fn object_of(command: &Command) -> String {
    match command {
        Command::Settings(
            SettingsCommand::Set { key, .. }
            | SettingsCommand::Delete { key }
            | SettingsCommand::CompareAndSet { key, .. },
        ) => format!("setting {key}"),
        Command::Routing(command) => match command {
            RoutingCommand::PutTenant { tenant, .. } => format!("tenant {}", tenant.name),
            RoutingCommand::PutCarrier { carrier, .. } => format!("carrier {}", carrier.name),
            RoutingCommand::PutGateway { gateway, .. } => format!("gateway {}", gateway.name),
            RoutingCommand::Delete { kind, name } => format!("{} {name}", kind.as_str()),
            RoutingCommand::SetDrained { gateway, .. } => format!("gateway {gateway}"),
            RoutingCommand::SetPolicy { tenant, scope, .. } => {
                format!("calling policy of tenant {tenant} ({})", scope.key())
            }
            RoutingCommand::StageRates { carrier, .. }
            | RoutingCommand::CommitRates { carrier, .. } => format!("rates of carrier {carrier}"),
            RoutingCommand::AbortRates { import_id, .. } => format!("rate import {import_id}"),
            RoutingCommand::SetRouteTokenKey { .. } => "route token key".to_owned(),
        },
        Command::Health(HealthCommand::SetPolicy(_)) => "health policy".to_owned(),
        Command::Health(HealthCommand::Transition { gateway, .. }) => format!("gateway {gateway}"),
        Command::Inbound(command) => match command {
            InboundCommand::PutDid { did, .. } => format!("did {}", did.number),
            InboundCommand::DeleteDid { number } => format!("did {number}"),
            InboundCommand::PutDevice { device, .. } => format!("device {}", device.aor),
            InboundCommand::DeleteDevice { aor } | InboundCommand::UnregisterEdge { aor, .. } => {
                format!("device {aor}")
            }
            InboundCommand::SetTenantContinuity { tenant, .. } => {
                format!("continuity of tenant {tenant}")
            }
            InboundCommand::Register { .. } => "registrations".to_owned(),
            InboundCommand::PutEdge { edge, .. } => format!("edge {}", edge.name),
            InboundCommand::DeleteEdge { name } => format!("edge {name}"),
        },
        Command::Tokens(crate::auth::tokens::TokenCommand::Create(record)) => {
            format!("token {} ({})", record.name, record.id)
        }
        Command::Tokens(crate::auth::tokens::TokenCommand::Revoke { token }) => {
            format!("token {token}")
        }
        Command::Audit(_) => "audit log".to_owned(),
        Command::Usage(_) => "usage".to_owned(),
        Command::Cdr(_) => "cdr".to_owned(),
        Command::Alerts(command) => match command {
            crate::alerts::AlertCommand::SetRule {
                tenant: None, rule, ..
            } => format!("alert rule {rule}"),
            crate::alerts::AlertCommand::SetRule {
                tenant: Some(tenant),
                rule,
                ..
            } => format!("alert rule {rule} of tenant {tenant}"),
            crate::alerts::AlertCommand::Acknowledge { id, .. } => format!("alert {id}"),
            crate::alerts::AlertCommand::Unblock { tenant } => format!("tenant {tenant}"),
            crate::alerts::AlertCommand::Delivered { .. } => "alert webhook".to_owned(),
        },
        Command::Tick => "clock".to_owned(),
        Command::Batch(writes) => format!("{} writes", writes.len()),
    }
}

/// The retention the settings give, in ms.
pub fn retention_ms(settings: &Settings) -> u64 {
    settings.days_ms(RETENTION_SETTING, DEFAULT_RETENTION_DAYS)
}

fn cut(text: &str) -> String {
    if text.len() <= MAX_FIELD_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_FIELD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLog {
    /// Oldest block first; every block but the last is full.
    blocks: VecDeque<Arc<Vec<AuditEntry>>>,
    len: usize,
    last_seq: u64,
    last_hash: [u8; 32],
}

impl AuditLog {
    /// Appends an entry made by the log entry at `index`, at log time `time_ms`.
    pub fn append(&mut self, index: u64, time_ms: u64, actor: &Actor, object: &str, result: &str) {
        let seq = self.last_seq + 1;
        let (actor, source, rpc, object, result) = (
            cut(&actor.name),
            cut(&actor.source),
            cut(&actor.rpc),
            cut(object),
            cut(result),
        );
        let hash = entry_hash(
            seq,
            index,
            time_ms,
            &actor,
            &source,
            &rpc,
            &object,
            &result,
            &self.last_hash,
        );
        let entry = AuditEntry {
            seq,
            index,
            time_ms,
            actor,
            source,
            rpc,
            object,
            result,
            prev_hash: self.last_hash,
            hash,
        };
        self.last_seq = seq;
        self.last_hash = hash;
        match self.blocks.back_mut() {
            Some(block) if block.len() < BLOCK_ENTRIES => Arc::make_mut(block).push(entry),
            _ => {
                let mut block = Vec::with_capacity(BLOCK_ENTRIES);
                block.push(entry);
                self.blocks.push_back(Arc::new(block));
            }
        }
        self.len += 1;
    }

    /// Drops whole blocks from the front whose newest entry is older than the retention at
    /// `now_ms`, or that hold the oldest entries beyond [`MAX_AUDIT_ENTRIES`].
    pub fn prune(&mut self, now_ms: u64, retention_ms: u64) {
        let horizon = now_ms.saturating_sub(retention_ms);
        while let Some(front) = self.blocks.front() {
            let expired = front.last().is_some_and(|entry| entry.time_ms < horizon);
            let over = self.len - front.len() >= MAX_AUDIT_ENTRIES;
            if !(expired || over) || self.blocks.len() == 1 {
                break;
            }
            self.len -= front.len();
            self.blocks.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Every entry kept, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &AuditEntry> {
        self.blocks.iter().flat_map(|block| block.iter())
    }

    /// Up to `limit` entries after `seq` that `keep` keeps, oldest first, copied.
    pub fn page_after(
        &self,
        seq: u64,
        limit: usize,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Vec<AuditEntry> {
        // Blocks hold consecutive seqs: skip those that end at or before `seq`.
        let start = self
            .blocks
            .partition_point(|block| block.last().is_some_and(|entry| entry.seq <= seq));
        self.blocks
            .range(start..)
            .flat_map(|block| block.iter())
            .filter(|entry| entry.seq > seq && keep(entry))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 24 * 60 * 60 * 1_000;

    fn actor(name: &str) -> Actor {
        Actor {
            name: name.into(),
            source: "192.0.2.1".into(),
            rpc: "trunkline.v1.AdminService/PutTenant".into(),
        }
    }

    fn log_of(count: u64) -> AuditLog {
        let mut log = AuditLog::default();
        for index in 1..=count {
            log.append(index, index * 1_000, &actor("ops"), "tenant acme", "ok");
        }
        log
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let log = log_of(600);
        assert_eq!(verify(log.iter()), Ok(600));
    }

    #[test]
    fn a_changed_removed_or_reordered_entry_is_found() {
        let log = log_of(5);
        let entries: Vec<AuditEntry> = log.iter().cloned().collect();

        let mut changed = entries.clone();
        changed[2].actor = "someone-else".into();
        assert!(verify(&changed).unwrap_err().contains("entry 3"));

        let mut removed = entries.clone();
        removed.remove(2);
        assert!(verify(&removed).unwrap_err().contains("removed"));

        let mut reordered = entries.clone();
        reordered.swap(1, 2);
        assert!(verify(&reordered).is_err());

        // Rewriting one entry's hash to match its change still breaks the next link.
        let mut rehashed = entries;
        rehashed[2].result = "denied".into();
        rehashed[2].hash = rehashed[2].expected_hash();
        assert!(verify(&rehashed).unwrap_err().contains("entry 4"));
    }

    #[test]
    fn retention_drops_whole_old_blocks_and_the_rest_still_verifies() {
        let mut log = log_of(1_000);
        // Entries are 1 s apart: keep the last ~300 s.
        log.prune(1_000_000, 300_000);
        assert!(log.len() < 1_000 && log.len() >= 300, "{}", log.len());
        assert_eq!(log.iter().next_back().map(|entry| entry.seq), Some(1_000));
        assert!(verify(log.iter()).is_ok());
        let first = log.iter().next().unwrap().seq;
        assert_eq!(log.page_after(first - 1, 10, |_| true).len(), 10);
        assert_eq!(log.page_after(995, 10, |_| true).len(), 5);
        assert!(log.page_after(0, 1, |_| true)[0].seq >= first);
    }

    #[test]
    fn long_fields_are_cut_on_a_character_boundary() {
        let mut log = AuditLog::default();
        log.append(1, 1, &actor(&"é".repeat(400)), &"x".repeat(1_000), "ok");
        let entry = log.iter().next().unwrap();
        assert!(entry.actor.len() <= MAX_FIELD_BYTES);
        assert_eq!(entry.object.len(), MAX_FIELD_BYTES);
        assert!(verify(log.iter()).is_ok());
    }

    #[test]
    fn retention_comes_from_the_setting() {
        let mut settings = Settings::default();
        assert_eq!(retention_ms(&settings), DEFAULT_RETENTION_DAYS * DAY_MS);
        settings.apply(
            1,
            &SettingsCommand::Set {
                key: RETENTION_SETTING.into(),
                value: "30".into(),
            },
        );
        assert_eq!(retention_ms(&settings), 30 * DAY_MS);
    }
}
