//! Call detail records: one for every outbound call attempt, blocked and refused ones included.
//!
//! **Where a record comes from.** The node that answers a RouteOutbound queues a record of the
//! lookup: final at once when the call was blocked by a calling policy, refused by a limit or
//! had no route; [`Disposition::InProgress`] when the call was routed. The proxy's
//! `ReportCallEnd` (to any node) completes it: the route token carries everything the lookup
//! knew and every leg tried with its carrier, gateway and ending, so the end alone makes a whole
//! record even if the lookup's record was lost with its node. Records reach the log in batches
//! ([`MAX_PER_COMMAND`] to an entry); an end is acknowledged to the proxy only once applied.
//!
//! **What the replicated state holds** is bounded: the calls in progress ([`MAX_OPEN_CALLS`]),
//! the keys of recently ended calls ([`ENDED_MEMORY_MS`], at most [`MAX_ENDED_CALLS`]: so a
//! repeated end, or a lookup's record arriving after the end's, is not recorded twice) and a
//! count, in 4,096 shards copied on write, so applying a batch copies only what it touches. Finished records leave the state as they are
//! made: [`CdrBook::record`] hands them to the caller, and the store appends them to an archive
//! on disk in log order (see `trunkline-store`), never held in memory.
//!
//! **Every call ends.** A routed call whose end never comes is closed [`OPEN_CALL_MS`] after it
//! started, as [`Disposition::Unterminated`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::policy::SourceKind;
use crate::routing::{validate_name, DestinationClass};
use crate::settings::Settings;
use crate::FieldError;

/// Records in one command.
pub const MAX_PER_COMMAND: usize = 2_000;
/// Calls in progress the state holds; past it a routed call's record is archived as it is
/// (in progress) and completed by a second record at its end.
pub const MAX_OPEN_CALLS: usize = 200_000;
/// A routed call with no end reported is closed this long after it started.
pub const OPEN_CALL_MS: u64 = 4 * HOUR_MS;
/// How long the key of an ended call is remembered, against repeated ends and a lookup's
/// record arriving after its end.
pub const ENDED_MEMORY_MS: u64 = 2 * 60_000;
/// Ended calls remembered at most: past it (over 1,600 ends a second), a repeated end is
/// caught only within a shorter time.
pub const MAX_ENDED_CALLS: usize = 200_000;
/// Legs in one record: far more than any call tries.
pub const MAX_LEGS: usize = 64;
/// Longest text field (Call-ID, numbers, names, reason), in bytes.
pub const MAX_FIELD_BYTES: usize = 256;
/// The replicated setting that holds how many days records are kept.
pub const RETENTION_SETTING: &str = "cdr/retention_days";
/// Records are kept this many days when the setting says nothing.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;
const HOUR_MS: u64 = 3_600_000;

/// How a call attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Disposition {
    /// Routed, no end reported yet (a record of the lookup).
    InProgress,
    Answered,
    /// The callee was busy (486, 600).
    Busy,
    /// Nobody answered (408, 480, 487 after ringing).
    NoAnswer,
    /// Every leg failed some other way.
    Failed,
    /// The tenant's calling policy blocked it; `reason` names the rule and scope.
    Blocked,
    /// A usage limit refused it; `reason` names the limit.
    Refused,
    /// No carrier could take it.
    NoRoute,
    /// Routed, but no end was ever reported.
    Unterminated,
}

impl Disposition {
    pub const ALL: [Disposition; 9] = [
        Disposition::InProgress,
        Disposition::Answered,
        Disposition::Busy,
        Disposition::NoAnswer,
        Disposition::Failed,
        Disposition::Blocked,
        Disposition::Refused,
        Disposition::NoRoute,
        Disposition::Unterminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::InProgress => "in-progress",
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no-answer",
            Disposition::Failed => "failed",
            Disposition::Blocked => "blocked",
            Disposition::Refused => "refused",
            Disposition::NoRoute => "no-route",
            Disposition::Unterminated => "unterminated",
        }
    }

    pub fn parse(text: &str) -> Option<Disposition> {
        Disposition::ALL
            .into_iter()
            .find(|disposition| disposition.as_str() == text)
    }

    /// The ending of a routed call that was reported: answered, or read from the last leg's
    /// SIP code (0: the leg ended on a transport error).
    pub fn of_end(answered: bool, last_sip_code: Option<u16>) -> Disposition {
        if answered {
            return Disposition::Answered;
        }
        match last_sip_code {
            Some(486 | 600) => Disposition::Busy,
            Some(408 | 480 | 487) => Disposition::NoAnswer,
            _ => Disposition::Failed,
        }
    }

    /// A record of a call that was routed and not yet over.
    fn is_open(self) -> bool {
        self == Disposition::InProgress
    }

    /// A record made at a routed call's end.
    fn is_end(self) -> bool {
        matches!(
            self,
            Disposition::Answered | Disposition::Busy | Disposition::NoAnswer | Disposition::Failed
        )
    }
}

/// How a leg ended without a SIP reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegTransport {
    Timeout,
    Refused,
    Unreachable,
}

impl LegTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            LegTransport::Timeout => "timeout",
            LegTransport::Refused => "refused",
            LegTransport::Unreachable => "unreachable",
        }
    }
}

/// One leg of a call: where it went and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegRecord {
    pub carrier: String,
    pub gateway: String,
    /// The final SIP code; 0 when the leg ended on a transport error.
    pub sip_code: u16,
    pub transport: Option<LegTransport>,
}

/// The record of one call attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cdr {
    pub call_id: String,
    pub tenant: String,
    pub extension: Option<String>,
    pub source: SourceKind,
    pub from: String,
    /// The number as dialled, and as routed (E.164, or the emergency code as dialled).
    pub dialled: String,
    pub normalized: String,
    /// `None` when the number could not be classified (the lookup refused it first).
    pub class: Option<DestinationClass>,
    /// The node that answered the lookup.
    pub node: u64,
    /// Unix milliseconds: the lookup, the answer, the end.
    pub start_ms: u64,
    pub answer_ms: Option<u64>,
    pub end_ms: Option<u64>,
    pub disposition: Disposition,
    /// Why a call was blocked or refused, as the refusal reason reads (`policy-premium`,
    /// `limit-concurrent-calls`, `no-route`), with the policy scope when one set the rule.
    pub reason: String,
    /// The SIP code the caller got: the refusal's, or the last leg's; 0 when answered or not
    /// known.
    pub sip_code: u16,
    pub legs: Vec<LegRecord>,
    /// Talk time billed (per started second) and its cost, in micro-units of the deck's
    /// currency, at the answering carrier's rate.
    pub billed_ms: u64,
    pub cost_micros: u64,
}

impl Cdr {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("tenant", &self.tenant)?;
        for (field, value) in [
            ("call_id", self.call_id.as_str()),
            ("from", self.from.as_str()),
            ("dialled", self.dialled.as_str()),
            ("normalized", self.normalized.as_str()),
            ("reason", self.reason.as_str()),
            ("extension", self.extension.as_deref().unwrap_or("")),
        ] {
            if value.len() > MAX_FIELD_BYTES {
                return Err(FieldError::new(
                    field,
                    format!("is longer than {MAX_FIELD_BYTES} bytes"),
                ));
            }
        }
        if self.call_id.is_empty() {
            return Err(FieldError::new("call_id", "is required"));
        }
        if self.legs.len() > MAX_LEGS {
            return Err(FieldError::new(
                "legs",
                format!("holds more than {MAX_LEGS} legs"),
            ));
        }
        for (position, leg) in self.legs.iter().enumerate() {
            if leg.carrier.len() > MAX_FIELD_BYTES || leg.gateway.len() > MAX_FIELD_BYTES {
                return Err(FieldError::new(
                    format!("legs[{position}]"),
                    format!("has a name longer than {MAX_FIELD_BYTES} bytes"),
                ));
            }
        }
        if let (Some(answer), Some(end)) = (self.answer_ms, self.end_ms) {
            if end < answer {
                return Err(FieldError::new(
                    "end_ms",
                    format!("{end} is before answer_ms {answer}"),
                ));
            }
        }
        if self.answer_ms.is_some() && self.disposition != Disposition::Answered {
            return Err(FieldError::new(
                "answer_ms",
                format!("is set on a call that ended {}", self.disposition.as_str()),
            ));
        }
        Ok(())
    }

    fn key(&self) -> CallKey {
        Arc::new((self.tenant.clone(), self.call_id.clone()))
    }
}

/// What changes the book of records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CdrCommand {
    Record(Vec<Cdr>),
}

impl CdrCommand {
    pub fn validate(&self) -> Result<(), FieldError> {
        let CdrCommand::Record(records) = self;
        if records.is_empty() || records.len() > MAX_PER_COMMAND {
            return Err(FieldError::new(
                "records",
                format!("must hold 1 to {MAX_PER_COMMAND} records"),
            ));
        }
        for (position, record) in records.iter().enumerate() {
            record
                .validate()
                .map_err(|error| error.within(&format!("records[{position}]")))?;
        }
        Ok(())
    }
}

/// What became of each record of a [`CdrCommand::Record`], in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recorded {
    /// Archived, or held as a call in progress.
    Yes,
    /// The call's end was already recorded (a repeated report): nothing changed.
    Duplicate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CdrResponse {
    Recorded(Vec<Recorded>),
}

/// A call is known by its tenant and Call-ID. Shared: a shard holds each key twice (by call and
/// by when it is due), and applying a batch copies every shard it touches (readers hold the
/// previous state), tombstones of the last two minutes' calls included: a copy of a key is a
/// count, not two strings (serialised as the pair, as before).
type CallKey = Arc<(String, String)>;

/// Shards of the book: applying a batch copies only the shards it touches (readers hold the
/// previous state, so every change is a copy on write), a few dozen calls each at the bound.
const SHARDS: usize = 4_096;

/// A call the book knows: in progress (its lookup's record, until it closes), or ended (a
/// tombstone, until it is forgotten).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// Boxed: a tombstone (most entries at high rates) holds a pointer, not a whole record.
    record: Option<Box<Cdr>>,
    /// When the call closes as unterminated, or its tombstone is forgotten.
    until_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Shard {
    calls: BTreeMap<CallKey, Entry>,
    /// The calls by `until_ms`, for [`CdrBook::expire`].
    due: BTreeSet<(u64, CallKey)>,
}

impl Shard {
    fn first_due(&self) -> u64 {
        self.due.first().map_or(u64::MAX, |(until, _)| *until)
    }

    fn insert(&mut self, key: CallKey, entry: Entry) {
        if let Some(old) = self.calls.remove(&key) {
            self.due.remove(&(old.until_ms, key.clone()));
        }
        self.due.insert((entry.until_ms, key.clone()));
        self.calls.insert(key, entry);
    }

    fn remove(&mut self, key: &CallKey) -> Option<Entry> {
        let entry = self.calls.remove(key)?;
        self.due.remove(&(entry.until_ms, key.clone()));
        Some(entry)
    }
}

/// The shard of a call: FNV-1a of its key, the same on every node.
fn shard_of(key: &CallKey) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.0.bytes().chain([0xff]).chain(key.1.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % SHARDS as u64) as usize
}

/// The replicated book of call records: calls in progress, recently ended calls, and how many
/// records were archived. Finished records are not kept here (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrBook {
    shards: Vec<Arc<Shard>>,
    /// Each shard's first `until_ms` (`u64::MAX` when empty), so [`CdrBook::expiry_due`] reads
    /// no shard.
    first_due: Vec<u64>,
    open: usize,
    ended: usize,
    archived: u64,
}

impl Default for CdrBook {
    // Every shard starts as the one empty shard, shared: the first change to a shard copies it.
    #[allow(clippy::rc_clone_in_vec_init)]
    fn default() -> Self {
        CdrBook {
            shards: vec![Arc::new(Shard::default()); SHARDS],
            first_due: vec![u64::MAX; SHARDS],
            open: 0,
            ended: 0,
            archived: 0,
        }
    }
}

impl CdrBook {
    /// Applies records at log time `now_ms`; finished ones are pushed to `archive` in order.
    pub fn record(
        &mut self,
        now_ms: u64,
        records: &[Cdr],
        archive: &mut Vec<Cdr>,
    ) -> Vec<Recorded> {
        self.expire(now_ms, archive);
        records
            .iter()
            .map(|record| self.record_one(now_ms, record, archive))
            .collect()
    }

    fn shard(&self, key: &CallKey) -> (usize, &Shard) {
        let index = shard_of(key);
        (index, &self.shards[index])
    }

    fn shard_mut(&mut self, index: usize) -> &mut Shard {
        Arc::make_mut(&mut self.shards[index])
    }

    fn settle(&mut self, index: usize) {
        self.first_due[index] = self.shards[index].first_due();
    }

    fn record_one(&mut self, now_ms: u64, record: &Cdr, archive: &mut Vec<Cdr>) -> Recorded {
        let key = record.key();
        let (index, shard) = self.shard(&key);
        let known = shard.calls.get(&key).map(|entry| entry.record.is_some());
        if record.disposition.is_open() {
            if known.is_some() {
                // A repeated lookup of a call, or its lookup's record arriving after its end.
                return Recorded::Duplicate;
            }
            if self.open >= MAX_OPEN_CALLS {
                self.archive(record.clone(), archive);
                return Recorded::Yes;
            }
            let until_ms = record.start_ms.max(now_ms).saturating_add(OPEN_CALL_MS);
            self.shard_mut(index).insert(
                key,
                Entry {
                    record: Some(Box::new(record.clone())),
                    until_ms,
                },
            );
            self.open += 1;
            self.settle(index);
            return Recorded::Yes;
        }
        if record.disposition.is_end() {
            match known {
                Some(false) => return Recorded::Duplicate,
                Some(true) => {
                    self.shard_mut(index).remove(&key);
                    self.open = self.open.saturating_sub(1);
                }
                None => {}
            }
            // Remembered a while against repeated ends, within the bound.
            if self.ended < MAX_ENDED_CALLS {
                self.shard_mut(index).insert(
                    key,
                    Entry {
                        record: None,
                        until_ms: now_ms.saturating_add(ENDED_MEMORY_MS),
                    },
                );
                self.ended += 1;
            }
            self.settle(index);
        }
        self.archive(record.clone(), archive);
        Recorded::Yes
    }

    fn archive(&mut self, record: Cdr, archive: &mut Vec<Cdr>) {
        self.archived = self.archived.saturating_add(1);
        archive.push(record);
    }

    /// Whether [`CdrBook::expire`] has anything to do at `now_ms`.
    pub fn expiry_due(&self, now_ms: u64) -> bool {
        self.first_due.iter().any(|due| *due <= now_ms)
    }

    /// Closes the open calls whose end never came and forgets old ended calls.
    pub fn expire(&mut self, now_ms: u64, archive: &mut Vec<Cdr>) {
        for index in 0..SHARDS {
            if self.first_due[index] > now_ms {
                continue;
            }
            let shard = Arc::make_mut(&mut self.shards[index]);
            while let Some((until, key)) = shard.due.first().cloned() {
                if until > now_ms {
                    break;
                }
                let Some(entry) = shard.remove(&key) else {
                    shard.due.remove(&(until, key));
                    continue;
                };
                match entry.record {
                    Some(mut record) => {
                        self.open = self.open.saturating_sub(1);
                        record.disposition = Disposition::Unterminated;
                        self.archived = self.archived.saturating_add(1);
                        archive.push(*record);
                    }
                    None => self.ended = self.ended.saturating_sub(1),
                }
            }
            self.first_due[index] = shard.first_due();
        }
    }

    /// Calls in progress.
    pub fn open_calls(&self) -> impl Iterator<Item = &Cdr> {
        self.shards
            .iter()
            .flat_map(|shard| shard.calls.values())
            .filter_map(|entry| entry.record.as_deref())
    }

    pub fn open_count(&self) -> usize {
        self.open
    }

    /// Records archived since the cluster began.
    pub fn archived(&self) -> u64 {
        self.archived
    }

    /// Drops a deleted tenant's calls in progress, archiving them as they are.
    pub fn remove_tenant(&mut self, tenant: &str, archive: &mut Vec<Cdr>) {
        for index in 0..SHARDS {
            if !self.shards[index].calls.keys().any(|key| key.0 == tenant) {
                continue;
            }
            let shard = Arc::make_mut(&mut self.shards[index]);
            let keys: Vec<CallKey> = shard
                .calls
                .keys()
                .filter(|key| key.0 == tenant)
                .cloned()
                .collect();
            for key in keys {
                match shard.remove(&key).and_then(|entry| entry.record) {
                    Some(record) => {
                        self.open = self.open.saturating_sub(1);
                        self.archived = self.archived.saturating_add(1);
                        archive.push(*record);
                    }
                    None => self.ended = self.ended.saturating_sub(1),
                }
            }
            self.first_due[index] = shard.first_due();
        }
    }
}

/// The talk time billed for `talk_ms` (per started second) and its cost at a per-minute rate
/// and a connect fee (charged only when there was talk time).
pub fn bill(talk_ms: u64, rate_micros_per_minute: u64, connect_fee_micros: u64) -> (u64, u64) {
    if talk_ms == 0 {
        return (0, 0);
    }
    let billed_ms = talk_ms.div_ceil(1_000).saturating_mul(1_000);
    (
        billed_ms,
        connect_fee_micros.saturating_add(crate::usage::price(rate_micros_per_minute, billed_ms)),
    )
}

/// How long records are kept, from the replicated settings, in ms.
pub fn retention_ms(settings: &Settings) -> u64 {
    settings.days_ms(RETENTION_SETTING, DEFAULT_RETENTION_DAYS)
}

#[cfg(test)]
mod tests;
