//! Linearizability of the settings operations: a Wing & Gong / Lowe (WGL) search, as in
//! porcupine, over a map of independent registers.
//!
//! A map of registers is linearizable when each register is (P-compositionality), so the
//! history is split by key and each key is searched on its own. The model is a register
//! holding `Option<String>`: a linearizable read must see the current value; a write sets
//! it; a delete clears it (its `succeeded` flag says whether the key existed); a
//! compare-and-set that succeeded saw `expected` and wrote `new`, one that failed saw
//! anything else and wrote nothing.
//!
//! What is judged: `Ok` writes, deletes and compare-and-sets; `Ok` linearizable reads; and
//! `Unknown` writes, which may take effect at any point after their invocation or not at all
//! (their completion is taken as +infinity: "not at all" is the same as "after everything
//! else", since nothing later observes it). `Fail` operations had no effect and are left
//! out, as are reads that may be stale (`min_applied_index` or stale reads are not meant to
//! be linearizable) and reads whose outcome is unknown (they constrain nothing).
//!
//! The search keeps the set of operations linearized so far as a bitset and remembers every
//! (set, register value) pair it has seen, so no configuration is explored twice; it stops
//! with an `Unknown` verdict after a bounded number of configurations instead of running
//! forever. Two reductions keep unknown writes (which stay candidates to the end of the
//! history) from multiplying the configurations: values no operation looks for are one
//! value to the search, and unknown operations with the same effect are placed in
//! invocation order only. A read of a value nothing wrote before it completed is reported
//! without a search.
//!
//! When a key is not linearizable, the violation is shrunk (delta debugging: drop
//! operations while what is left is still not linearizable, never dropping the write a
//! remaining read needs) to a handful of operations a human can read.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{
    checker::Verdict,
    history::{
        show_value, Consistency, History, OpKind, Operation, OperationId, Outcome, Returned,
    },
};

/// Most (linearized set, value) configurations explored for one key before giving up.
pub const MAX_STATES_PER_KEY: u64 = 2_000_000;
/// Most memory the explored-configuration cache of one key may take before giving up.
pub const MAX_CACHE_BYTES_PER_KEY: u64 = 512 << 20;
/// Most searches spent shrinking one violation to a small explanation.
pub const MAX_SHRINK_CHECKS: usize = 1_000;
/// Fewest configurations each of those searches may explore; it may explore twice as many
/// as the search that found the violation. A shrink step whose search gives up keeps the
/// operations it tried to drop.
pub const MIN_STATES_PER_SHRINK_CHECK: u64 = 50_000;
/// Most configurations all the searches shrinking one violation explore together.
pub const MAX_SHRINK_STATES: u64 = 10_000_000;
/// Most operations quoted in a violation.
pub const MAX_EXPLANATION_OPERATIONS: usize = 32;
/// How many of the last steps of the longest linearization found are quoted.
pub const LINEARIZATION_TAIL: usize = 8;
/// Most keys named in a verdict's reason.
const MAX_KEYS_IN_REASON: usize = 5;

/// Bounds on the search; [`Default`] uses the constants above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearizabilityOptions {
    pub max_states_per_key: u64,
    pub max_cache_bytes_per_key: u64,
    /// 0 turns shrinking off: a violation then quotes the operations around where the
    /// search got stuck.
    pub max_shrink_checks: usize,
}

impl Default for LinearizabilityOptions {
    fn default() -> Self {
        LinearizabilityOptions {
            max_states_per_key: MAX_STATES_PER_KEY,
            max_cache_bytes_per_key: MAX_CACHE_BYTES_PER_KEY,
            max_shrink_checks: MAX_SHRINK_CHECKS,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearizabilityResult {
    pub verdict: Verdict,
    /// One result per key, in key order.
    pub keys: Vec<KeyResult>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyResult {
    pub key: String,
    /// Operations the search had to place (see the module docs for which count).
    pub operations_checked: usize,
    pub explored_states: u64,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<Violation>,
}

/// Why a key is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// A sub-history of the key that is not linearizable on its own, in invocation order:
    /// no order of these operations, each placed between its invocation and completion,
    /// explains what they returned.
    pub operations: Vec<Operation>,
    /// True when dropping any one of `operations` leaves a linearizable history; false when
    /// the shrinking budget ran out first (or `operations` was cut at
    /// [`MAX_EXPLANATION_OPERATIONS`]).
    pub minimal: bool,
    /// True when the one operation quoted needs a value no operation invoked before it
    /// completed wrote: a read of a value never written (yet), a delete that found a key
    /// never created. Found without a search.
    pub needs_unwritten_value: bool,
    /// How many operations the longest linearization of the whole key history placed.
    pub longest_linearization: usize,
    /// Its last steps, oldest first.
    pub linearization_tail: Vec<OperationId>,
    /// The register after those steps (`None`: absent).
    pub value_when_stuck: Option<String>,
    /// The operation that completed before that linearization could place it.
    pub stuck_at: OperationId,
}

/// Checks every key of `history`. A history with dropped operations is at best `Unknown`: a
/// dropped write could explain a read.
pub fn check(history: &History, options: &LinearizabilityOptions) -> LinearizabilityResult {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, operation) in history.operations.iter().enumerate() {
        if let Some(key) = operation.kind.key() {
            by_key.entry(key).or_default().push(index);
        }
    }
    let keys: Vec<KeyResult> = by_key
        .into_iter()
        .map(|(key, indexes)| check_key(history, key, &indexes, options))
        .collect();
    let verdict = overall_verdict(history, &keys);
    LinearizabilityResult { verdict, keys }
}

fn overall_verdict(history: &History, keys: &[KeyResult]) -> Verdict {
    let failed: Vec<&KeyResult> = keys.iter().filter(|key| key.verdict.is_fail()).collect();
    let undecided: Vec<&KeyResult> = keys
        .iter()
        .filter(|key| matches!(key.verdict, Verdict::Unknown { .. }))
        .collect();
    let mut reasons = Vec::new();
    if !failed.is_empty() {
        let shown: Vec<String> = failed
            .iter()
            .take(MAX_KEYS_IN_REASON)
            .filter_map(|key| key.verdict.reason())
            .map(str::to_owned)
            .collect();
        reasons.push(format!(
            "{} of {} keys are not linearizable: {}",
            failed.len(),
            keys.len(),
            shown.join("; ")
        ));
    }
    if !undecided.is_empty() {
        let names: Vec<&str> = undecided
            .iter()
            .take(MAX_KEYS_IN_REASON)
            .map(|key| key.key.as_str())
            .collect();
        reasons.push(format!(
            "{} keys undecided ({}): {}",
            undecided.len(),
            names.join(", "),
            undecided[0].verdict.reason().unwrap_or_default()
        ));
    }
    if history.dropped_operations > 0 {
        reasons.push(format!(
            "the history is incomplete: {} operations were not recorded",
            history.dropped_operations
        ));
    }
    if keys.is_empty() {
        reasons.push("no settings operations to check".to_owned());
    }
    let reason = reasons.join("; ");
    if !failed.is_empty() && history.dropped_operations == 0 {
        Verdict::Fail { reason }
    } else if reasons.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Unknown { reason }
    }
}

fn check_key(
    history: &History,
    key: &str,
    indexes: &[usize],
    options: &LinearizabilityOptions,
) -> KeyResult {
    let mut values = Interner::default();
    let ops = match prepare(history, indexes, &mut values) {
        Ok(ops) => ops,
        Err(reason) => {
            return KeyResult {
                key: key.to_owned(),
                operations_checked: 0,
                explored_states: 0,
                verdict: Verdict::Unknown { reason },
                violation: None,
            }
        }
    };
    // A read of a value nothing wrote before the read completed (or a delete of a key
    // never created) needs no search, and is its own explanation.
    let unexplained = unsupported(&ops);
    if let Some(operation) = ops
        .iter()
        .find(|op| unexplained.contains(&op.history_index))
        .and_then(|op| history.operations.get(op.history_index))
    {
        let violation = Violation {
            operations: vec![operation.clone()],
            minimal: true,
            needs_unwritten_value: true,
            longest_linearization: 0,
            linearization_tail: Vec::new(),
            value_when_stuck: None,
            stuck_at: operation.id,
        };
        return KeyResult {
            key: key.to_owned(),
            operations_checked: ops.len(),
            explored_states: 0,
            verdict: Verdict::Fail {
                reason: violation_reason(key, &violation),
            },
            violation: Some(violation),
        };
    }
    let limits = Limits {
        max_states: options.max_states_per_key,
        max_cache_bytes: options.max_cache_bytes_per_key,
    };
    let search = search(&ops, limits);
    let (verdict, violation) = match search.outcome {
        SearchOutcome::Linearizable => (Verdict::Pass, None),
        SearchOutcome::GaveUp(reason) => (Verdict::Unknown { reason }, None),
        SearchOutcome::NotLinearizable(stuck) => {
            let violation = explain(history, &ops, &values, &stuck, search.explored, options);
            let reason = violation_reason(key, &violation);
            (Verdict::Fail { reason }, Some(violation))
        }
    };
    KeyResult {
        key: key.to_owned(),
        operations_checked: ops.len(),
        explored_states: search.explored,
        verdict,
        violation,
    }
}

/// Most operations quoted in a verdict's reason; the violation holds them all.
const MAX_OPERATIONS_IN_REASON: usize = 4;

fn violation_reason(key: &str, violation: &Violation) -> String {
    let count = violation.operations.len();
    let mut reason = format!("key {key}: {count} operations admit no legal order");
    if violation.needs_unwritten_value {
        reason = format!("key {key}: nothing written before it completed explains");
    }
    if count <= MAX_OPERATIONS_IN_REASON {
        let quoted: Vec<String> = violation
            .operations
            .iter()
            .map(ToString::to_string)
            .collect();
        reason = format!("{reason}: {}", quoted.join("; "));
    }
    reason
}

/// A register value as a small number: `None` is absent, `Some(i)` the `i`th distinct string
/// or [`ANONYMOUS`].
type Value = Option<u32>;

/// Every value no operation of the key looks for (no read saw it, no compare-and-set expects
/// it). States holding such values cannot be told apart by any operation, so they are one
/// value to the search: fewer configurations, and unknown writes of them interchangeable.
const ANONYMOUS: u32 = u32::MAX;

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    strings: Vec<String>,
}

impl Interner {
    fn intern(&mut self, value: Option<&str>, mentioned: &HashSet<&str>) -> Result<Value, String> {
        let Some(value) = value else {
            return Ok(None);
        };
        if !mentioned.contains(value) {
            return Ok(Some(ANONYMOUS));
        }
        if let Some(id) = self.ids.get(value) {
            return Ok(Some(*id));
        }
        let id = u32::try_from(self.strings.len())
            .ok()
            .filter(|id| *id != ANONYMOUS)
            .ok_or_else(|| "more distinct values than fit in u32".to_owned())?;
        self.ids.insert(value.to_owned(), id);
        self.strings.push(value.to_owned());
        Ok(Some(id))
    }

    fn show(&self, value: Value) -> Option<String> {
        match value {
            None => None,
            Some(ANONYMOUS) => Some("<a value no operation looked for>".to_owned()),
            Some(id) => self.strings.get(id as usize).cloned(),
        }
    }
}

/// What must hold of the register when an operation takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Precondition<V = Value> {
    Any,
    Equals(V),
    NotEquals(V),
}

/// What an operation does to the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Effect<V = Value> {
    Keep,
    Set(V),
    /// An unknown compare-and-set: writes `new` if the register holds `expected` when it
    /// takes effect.
    SetIfEquals {
        expected: V,
        new: V,
    },
}

/// One operation as the search sees it.
#[derive(Clone, Debug)]
struct ModelOp {
    /// Index into `History::operations`.
    history_index: usize,
    invoke: u64,
    /// `None`: +infinity (an unknown outcome).
    complete: Option<u64>,
    precondition: Precondition,
    effect: Effect,
}

impl ModelOp {
    /// The register after this operation takes effect on `state`, or `None` when it cannot
    /// take effect there.
    fn step(&self, state: Value) -> Option<Value> {
        let allowed = match self.precondition {
            Precondition::Any => true,
            Precondition::Equals(value) => state == value,
            Precondition::NotEquals(value) => state != value,
        };
        if !allowed {
            return None;
        }
        Some(match self.effect {
            Effect::Keep => state,
            Effect::Set(value) => value,
            Effect::SetIfEquals { expected, new } => {
                if state == expected {
                    new
                } else {
                    state
                }
            }
        })
    }

    /// Unknown operations that can take effect anywhere are interchangeable with every
    /// other such operation of the same effect: all can wait forever. The search places
    /// them in invocation order only (any order of them can be rearranged into that one).
    fn interchangeable(&self) -> Option<Effect> {
        (self.complete.is_none() && self.precondition == Precondition::Any).then_some(self.effect)
    }
}

/// An operation with its values still as strings.
struct RawOp<'h> {
    history_index: usize,
    invoke: u64,
    complete: Option<u64>,
    precondition: Precondition<Option<&'h str>>,
    effect: Effect<Option<&'h str>>,
}

/// Turns the operations of one key into model operations, in invocation order. An error
/// names an operation whose outcome does not fit what it asked (a harness bug).
fn prepare(
    history: &History,
    indexes: &[usize],
    values: &mut Interner,
) -> Result<Vec<ModelOp>, String> {
    let mut raw = Vec::with_capacity(indexes.len());
    for &index in indexes {
        let Some(operation) = history.operations.get(index) else {
            continue;
        };
        if let Some((precondition, effect, complete)) = model(operation)? {
            raw.push(RawOp {
                history_index: index,
                invoke: operation.invoke_nanos,
                complete,
                precondition,
                effect,
            });
        }
    }
    let mut mentioned: HashSet<&str> = HashSet::new();
    for op in &raw {
        if let Precondition::Equals(Some(value)) | Precondition::NotEquals(Some(value)) =
            op.precondition
        {
            mentioned.insert(value);
        }
        if let Effect::SetIfEquals {
            expected: Some(value),
            ..
        } = op.effect
        {
            mentioned.insert(value);
        }
    }
    let mut ops = Vec::with_capacity(raw.len());
    for op in raw {
        let mut intern = |value: Option<&str>| values.intern(value, &mentioned);
        let precondition = match op.precondition {
            Precondition::Any => Precondition::Any,
            Precondition::Equals(value) => Precondition::Equals(intern(value)?),
            Precondition::NotEquals(value) => Precondition::NotEquals(intern(value)?),
        };
        let effect = match op.effect {
            Effect::Keep => Effect::Keep,
            Effect::Set(value) => Effect::Set(intern(value)?),
            Effect::SetIfEquals { expected, new } => Effect::SetIfEquals {
                expected: intern(expected)?,
                new: intern(new)?,
            },
        };
        ops.push(ModelOp {
            history_index: op.history_index,
            invoke: op.invoke,
            complete: op.complete,
            precondition,
            effect,
        });
    }
    ops.sort_by_key(|op| (op.invoke, op.history_index));
    Ok(ops)
}

type RawModel<'h> = (
    Precondition<Option<&'h str>>,
    Effect<Option<&'h str>>,
    Option<u64>,
);

/// The register model of one operation: what must hold when it takes effect, what it
/// does, and its completion (`None`: unknown). `None` for operations left out.
fn model(operation: &Operation) -> Result<Option<RawModel<'_>>, String> {
    let malformed = |why: &str| format!("malformed history: {operation}: {why}");
    let returned = match &operation.outcome {
        Outcome::Fail { .. } => return Ok(None),
        Outcome::Ok { returned } => Some(returned),
        Outcome::Unknown { .. } => None,
    };
    let complete = match (returned, operation.complete_nanos) {
        (None, _) => None,
        (Some(_), None) => return Err(malformed("answered but never completed")),
        (Some(_), Some(complete)) if complete < operation.invoke_nanos => {
            return Err(malformed("completed before it was invoked"))
        }
        (Some(_), Some(complete)) => Some(complete),
    };
    let succeeded = match returned {
        None | Some(Returned::Read { .. }) => None,
        Some(Returned::Write { succeeded, .. }) => Some(*succeeded),
        Some(Returned::Lookup { .. } | Returned::Admission { .. }) => {
            return Err(malformed("a lookup's answer"))
        }
    };
    let (precondition, effect) = match &operation.kind {
        OpKind::Read { consistency, .. } => {
            if *consistency != Consistency::Linearizable {
                return Ok(None);
            }
            match returned {
                None => return Ok(None),
                Some(Returned::Read { value, .. }) => {
                    (Precondition::Equals(value.as_deref()), Effect::Keep)
                }
                Some(_) => return Err(malformed("a read with a write's answer")),
            }
        }
        OpKind::Write { value, .. } => match (returned, succeeded) {
            (None, _) | (_, Some(true)) => (Precondition::Any, Effect::Set(Some(value.as_str()))),
            // Refused (the key limit): no effect, nothing to place.
            (_, Some(false)) => return Ok(None),
            (Some(_), None) => return Err(malformed("a write with a read's answer")),
        },
        OpKind::Delete { .. } => match (returned, succeeded) {
            (None, _) => (Precondition::Any, Effect::Set(None)),
            (_, Some(true)) => (Precondition::NotEquals(None), Effect::Set(None)),
            (_, Some(false)) => (Precondition::Equals(None), Effect::Keep),
            (Some(_), None) => return Err(malformed("a delete with a read's answer")),
        },
        OpKind::Cas { expected, new, .. } => {
            let (expected, new) = (expected.as_deref(), new.as_deref());
            match (returned, succeeded) {
                (None, _) => (Precondition::Any, Effect::SetIfEquals { expected, new }),
                (_, Some(true)) => (Precondition::Equals(expected), Effect::Set(new)),
                (_, Some(false)) => (Precondition::NotEquals(expected), Effect::Keep),
                (Some(_), None) => return Err(malformed("a cas with a read's answer")),
            }
        }
        OpKind::RouteLookup { .. } | OpKind::Admit { .. } | OpKind::EndCall { .. } => {
            return Ok(None)
        }
    };
    Ok(Some((precondition, effect, complete)))
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    max_states: u64,
    max_cache_bytes: u64,
}

/// Where the deepest attempt got stuck.
#[derive(Clone, Debug)]
struct Stuck {
    /// Operations it had placed.
    depth: usize,
    /// The last of them (indexes into the searched ops), oldest first.
    tail: Vec<usize>,
    state: Value,
    /// The placed operation that wrote `state`, to name an anonymous value.
    writer: Option<usize>,
    /// The operation whose completion it reached without being able to place it.
    op: usize,
}

#[derive(Debug)]
enum SearchOutcome {
    Linearizable,
    NotLinearizable(Stuck),
    GaveUp(String),
}

struct SearchResult {
    outcome: SearchOutcome,
    explored: u64,
}

/// The set of operations linearized so far, one bit per op (ops in invocation order).
#[derive(Clone, Debug)]
struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    fn new(bits: usize) -> Bitset {
        Bitset {
            words: vec![0; bits.div_ceil(64)],
        }
    }

    fn set(&mut self, bit: usize) {
        self.words[bit / 64] |= 1 << (bit % 64);
    }

    fn clear(&mut self, bit: usize) {
        self.words[bit / 64] &= !(1 << (bit % 64));
    }

    /// A canonical, compact copy for the cache: operations are linearized roughly in
    /// invocation order, so the set is mostly a run of full words, a few mixed words and
    /// then zeros. Only the count of leading full words and the mixed words are kept, so a
    /// cache entry costs the width of the concurrency window, not of the whole history.
    fn compact(&self) -> (u32, Box<[u64]>) {
        let full = self
            .words
            .iter()
            .take_while(|word| **word == u64::MAX)
            .count();
        let end = self
            .words
            .iter()
            .rposition(|word| *word != 0)
            .map_or(full, |last| (last + 1).max(full));
        // At most 2^32 words: the search refuses more operations than that before starting.
        (full as u32, self.words[full..end].into())
    }
}

/// The call and return events of the ops in time order, as a doubly linked list that
/// entries can be lifted out of and put back (dancing links), with sentinels at both ends.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each entry: its op and whether it is the call (else the return).
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// For each call entry, its return entry.
    matching: Vec<usize>,
}

const HEAD: usize = 0;

impl Entries {
    fn new(ops: &[ModelOp]) -> Entries {
        // (time, class, op): at equal times calls come before returns, so operations that
        // touch are taken as concurrent (the lenient reading); unknown returns come last.
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            events.push((op.invoke, 0, index));
            match op.complete {
                Some(complete) => events.push((complete, 1, index)),
                None => events.push((u64::MAX, 2, index)),
            }
        }
        events.sort_unstable();
        let count = events.len() + 2;
        let tail = count - 1;
        let mut entries = Entries {
            next: (1..=count).collect(),
            prev: (0..count).map(|entry| entry.saturating_sub(1)).collect(),
            op: vec![usize::MAX; count],
            is_call: vec![false; count],
            matching: vec![tail; count],
        };
        let mut call_entry = vec![0; ops.len()];
        for (position, &(_, class, op)) in events.iter().enumerate() {
            let entry = position + 1;
            entries.op[entry] = op;
            entries.is_call[entry] = class == 0;
            if class == 0 {
                call_entry[op] = entry;
            } else {
                entries.matching[call_entry[op]] = entry;
            }
        }
        entries
    }

    fn tail(&self) -> usize {
        self.next.len() - 1
    }

    fn lift(&mut self, call: usize) {
        let ret = self.matching[call];
        let (before, after) = (self.prev[call], self.next[call]);
        self.next[before] = after;
        self.prev[after] = before;
        let (before, after) = (self.prev[ret], self.next[ret]);
        self.next[before] = after;
        self.prev[after] = before;
    }

    fn unlift(&mut self, call: usize) {
        let ret = self.matching[call];
        let (before, after) = (self.prev[ret], self.next[ret]);
        self.next[before] = ret;
        self.prev[after] = ret;
        let (before, after) = (self.prev[call], self.next[call]);
        self.next[before] = call;
        self.prev[after] = call;
    }
}

/// Bytes one cache entry costs beyond its words: the tuple, the box header and the hash
/// table's slot, roughly.
const CACHE_ENTRY_OVERHEAD_BYTES: u64 = 48;

/// The WGL search of one key's operations, starting from an absent key.
fn search(ops: &[ModelOp], limits: Limits) -> SearchResult {
    if u32::try_from(ops.len()).is_err() {
        return SearchResult {
            outcome: SearchOutcome::GaveUp(format!("{} operations on one key", ops.len())),
            explored: 0,
        };
    }
    let mut entries = Entries::new(ops);
    let tail = entries.tail();
    // For interchangeable unknown operations, their group and rank in it: one is a
    // candidate only once every earlier one of its group is placed.
    let mut group_ids: HashMap<Effect, usize> = HashMap::new();
    let mut group_sizes: Vec<u32> = Vec::new();
    let groups: Vec<Option<(usize, u32)>> = ops
        .iter()
        .map(|op| {
            let effect = op.interchangeable()?;
            let group = *group_ids.entry(effect).or_insert_with(|| {
                group_sizes.push(0);
                group_sizes.len() - 1
            });
            let rank = group_sizes[group];
            group_sizes[group] += 1;
            Some((group, rank))
        })
        .collect();
    let mut placed_in_group = vec![0u32; group_sizes.len()];
    let mut linearized = Bitset::new(ops.len());
    let mut cache: HashSet<(u32, Box<[u64]>, Value)> = HashSet::new();
    let mut cache_bytes: u64 = 0;
    // Calls placed so far, with the register (and its writer) before each.
    let mut calls: Vec<(usize, Value, Option<usize>)> = Vec::new();
    let mut state: Value = None;
    let mut writer: Option<usize> = None;
    let mut explored: u64 = 0;
    let mut deepest: Option<Stuck> = None;
    let mut entry = entries.next[HEAD];
    loop {
        if entry == tail {
            return SearchResult {
                outcome: SearchOutcome::Linearizable,
                explored,
            };
        }
        let op = entries.op[entry];
        if entries.is_call[entry] {
            if let Some((group, rank)) = groups[op] {
                if placed_in_group[group] != rank {
                    entry = entries.next[entry];
                    continue;
                }
            }
            let Some(new_state) = ops[op].step(state) else {
                entry = entries.next[entry];
                continue;
            };
            linearized.set(op);
            let (full, mixed) = linearized.compact();
            let entry_bytes = mixed.len() as u64 * 8 + CACHE_ENTRY_OVERHEAD_BYTES;
            if !cache.insert((full, mixed, new_state)) {
                // Seen before, and it led nowhere: try the next candidate instead.
                linearized.clear(op);
                entry = entries.next[entry];
                continue;
            }
            explored += 1;
            cache_bytes += entry_bytes;
            if explored > limits.max_states || cache_bytes > limits.max_cache_bytes {
                return SearchResult {
                    outcome: SearchOutcome::GaveUp(format!(
                        "gave up after {explored} configurations ({} MiB of cache) with \
                         {} of {} operations placed; the limits are {} configurations and \
                         {} MiB",
                        cache_bytes >> 20,
                        calls.len(),
                        ops.len(),
                        limits.max_states,
                        limits.max_cache_bytes >> 20
                    )),
                    explored,
                };
            }
            calls.push((entry, state, writer));
            if let Some((group, _)) = groups[op] {
                placed_in_group[group] += 1;
            }
            writer = match ops[op].effect {
                Effect::Set(_) => Some(op),
                Effect::SetIfEquals { expected, .. } if expected == state => Some(op),
                Effect::Keep | Effect::SetIfEquals { .. } => writer,
            };
            state = new_state;
            entries.lift(entry);
            entry = entries.next[HEAD];
        } else {
            if ops[op].complete.is_none() {
                // Only unknown operations are left: each can take effect after everything
                // else (or never), which always succeeds.
                return SearchResult {
                    outcome: SearchOutcome::Linearizable,
                    explored,
                };
            }
            if deepest
                .as_ref()
                .is_none_or(|stuck| calls.len() > stuck.depth)
            {
                let from = calls.len().saturating_sub(LINEARIZATION_TAIL);
                deepest = Some(Stuck {
                    depth: calls.len(),
                    tail: calls[from..]
                        .iter()
                        .map(|(call, _, _)| entries.op[*call])
                        .collect(),
                    state,
                    writer,
                    op,
                });
            }
            let Some((call, before, before_writer)) = calls.pop() else {
                let stuck = deepest.unwrap_or(Stuck {
                    depth: 0,
                    tail: Vec::new(),
                    state,
                    writer,
                    op,
                });
                return SearchResult {
                    outcome: SearchOutcome::NotLinearizable(stuck),
                    explored,
                };
            };
            state = before;
            writer = before_writer;
            let placed = entries.op[call];
            if let Some((group, _)) = groups[placed] {
                placed_in_group[group] -= 1;
            }
            linearized.clear(placed);
            entries.unlift(call);
            entry = entries.next[call];
        }
    }
}

/// What is left for shrinking one violation.
struct ShrinkBudget {
    checks: usize,
    states: u64,
    states_per_check: u64,
    max_cache_bytes: u64,
}

impl ShrinkBudget {
    fn exhausted(&self) -> bool {
        self.checks == 0 || self.states == 0
    }
}

/// True when `ops` is confirmed not linearizable within the budget.
fn is_violation(ops: &[ModelOp], budget: &mut ShrinkBudget) -> bool {
    if budget.exhausted() {
        return false;
    }
    budget.checks -= 1;
    let limits = Limits {
        max_states: budget.states_per_check.min(budget.states),
        max_cache_bytes: budget.max_cache_bytes,
    };
    let result = search(ops, limits);
    budget.states = budget.states.saturating_sub(result.explored);
    matches!(result.outcome, SearchOutcome::NotLinearizable(_))
}

/// What a precondition needs written first, beyond the key's initial absence.
enum Needs {
    Value(u32),
    AnyValue,
}

fn needs(op: &ModelOp) -> Option<Needs> {
    match op.precondition {
        Precondition::Equals(Some(value)) => Some(Needs::Value(value)),
        Precondition::NotEquals(None) => Some(Needs::AnyValue),
        Precondition::Any | Precondition::Equals(None) | Precondition::NotEquals(Some(_)) => None,
    }
}

fn writes(op: &ModelOp) -> Option<u32> {
    match op.effect {
        Effect::Set(value) | Effect::SetIfEquals { new: value, .. } => value,
        Effect::Keep => None,
    }
}

/// The operations (by history index) whose precondition no operation of `ops` invoked
/// before their completion could have made true. Shrinking must not add to them: dropping
/// the write a read saw would "explain" the violation as a read of a value never written,
/// which is true of the smaller history and useless to a human looking at the real one.
fn unsupported(ops: &[ModelOp]) -> HashSet<usize> {
    let mut earliest_write: HashMap<u32, u64> = HashMap::new();
    let mut earliest_any_write: Option<u64> = None;
    for op in ops {
        if let Some(value) = writes(op) {
            let earliest = earliest_write.entry(value).or_insert(op.invoke);
            *earliest = (*earliest).min(op.invoke);
            earliest_any_write = Some(earliest_any_write.map_or(op.invoke, |t| t.min(op.invoke)));
        }
    }
    ops.iter()
        .filter(|op| {
            let deadline = op.complete.unwrap_or(u64::MAX);
            match needs(op) {
                Some(Needs::Value(value)) => earliest_write
                    .get(&value)
                    .is_none_or(|&invoke| invoke > deadline),
                Some(Needs::AnyValue) => earliest_any_write.is_none_or(|invoke| invoke > deadline),
                None => false,
            }
        })
        .map(|op| op.history_index)
        .collect()
}

/// Drops chunks of operations, halving the chunk size, while what is left is still not
/// linearizable and every precondition that had a write to explain it still has one.
/// Returns the ops left and whether a last pass dropping single ops found nothing more to
/// drop (1-minimal).
fn shrink(mut current: Vec<ModelOp>, budget: &mut ShrinkBudget) -> (Vec<ModelOp>, bool) {
    let allowed_unsupported = unsupported(&current);
    let mut chunk = (current.len() / 2).max(1);
    loop {
        let mut dropped_any = false;
        let mut start = 0;
        while start < current.len() {
            if budget.exhausted() {
                return (current, false);
            }
            let end = (start + chunk).min(current.len());
            if end - start == current.len() {
                start = end;
                continue;
            }
            let candidate: Vec<ModelOp> = current[..start]
                .iter()
                .chain(&current[end..])
                .cloned()
                .collect();
            if unsupported(&candidate).is_subset(&allowed_unsupported)
                && is_violation(&candidate, budget)
            {
                current = candidate;
                dropped_any = true;
            } else {
                start = end;
            }
        }
        if chunk == 1 && !dropped_any {
            return (current, true);
        }
        chunk = (chunk / 2).max(1);
    }
}

fn explain(
    history: &History,
    ops: &[ModelOp],
    values: &Interner,
    stuck: &Stuck,
    explored: u64,
    options: &LinearizabilityOptions,
) -> Violation {
    let stuck_op = &ops[stuck.op];
    let mut budget = ShrinkBudget {
        checks: options.max_shrink_checks,
        states: MAX_SHRINK_STATES,
        states_per_check: explored.saturating_mul(2).clamp(
            MIN_STATES_PER_SHRINK_CHECK,
            options.max_states_per_key.max(MIN_STATES_PER_SHRINK_CHECK),
        ),
        max_cache_bytes: options.max_cache_bytes_per_key,
    };
    // Operations invoked after the stuck one completed cannot help place it: try without
    // them first, then the whole key.
    let deadline = stuck_op.complete.unwrap_or(u64::MAX);
    let window: Vec<ModelOp> = ops
        .iter()
        .filter(|op| op.invoke <= deadline)
        .cloned()
        .collect();
    let start = if unsupported(&window).is_subset(&unsupported(ops))
        && is_violation(&window, &mut budget)
    {
        Some(window)
    } else if window.len() < ops.len() && is_violation(ops, &mut budget) {
        Some(ops.to_vec())
    } else {
        None
    };
    let (mut chosen, mut minimal) = match start {
        Some(start) => shrink(start, &mut budget),
        None => {
            // No budget to confirm a smaller history: quote the end of the longest
            // linearization and the operations concurrent with the one it could not place.
            let mut around: Vec<usize> = stuck.tail.clone();
            around.extend((0..ops.len()).filter(|&index| {
                let op = &ops[index];
                op.invoke <= deadline && op.complete.is_none_or(|end| end >= stuck_op.invoke)
            }));
            around.sort_unstable();
            around.dedup();
            (
                around.into_iter().map(|index| ops[index].clone()).collect(),
                false,
            )
        }
    };
    chosen.sort_by_key(|op| (op.invoke, op.history_index));
    if chosen.len() > MAX_EXPLANATION_OPERATIONS {
        chosen.truncate(MAX_EXPLANATION_OPERATIONS);
        minimal = false;
    }
    let operation = |index: usize| history.operations.get(index).cloned();
    Violation {
        operations: chosen
            .iter()
            .filter_map(|op| operation(op.history_index))
            .collect(),
        minimal,
        needs_unwritten_value: false,
        longest_linearization: stuck.depth,
        linearization_tail: stuck
            .tail
            .iter()
            .filter_map(|&index| operation(ops[index].history_index))
            .map(|operation| operation.id)
            .collect(),
        value_when_stuck: match stuck.state {
            Some(ANONYMOUS) => stuck
                .writer
                .and_then(|writer| history.operations.get(ops[writer].history_index))
                .and_then(|writer| match &writer.kind {
                    OpKind::Write { value, .. } => Some(value.clone()),
                    OpKind::Cas { new, .. } => new.clone(),
                    _ => None,
                }),
            other => values.show(other),
        },
        stuck_at: operation(stuck_op.history_index).map_or(0, |operation| operation.id),
    }
}

impl Violation {
    /// The violation for humans, several lines.
    pub fn render(&self, key: &str) -> String {
        let mut text = format!(
            "no legal order of these {} operations on {key}{}:\n",
            self.operations.len(),
            if self.minimal {
                " (dropping any one makes it legal)"
            } else {
                ""
            }
        );
        for operation in &self.operations {
            text.push_str(&format!("  {operation}\n"));
        }
        if self.needs_unwritten_value {
            text.push_str(&format!(
                "no operation invoked before #{} completed wrote what it saw\n",
                self.stuck_at
            ));
            return text;
        }
        let tail: Vec<String> = self
            .linearization_tail
            .iter()
            .map(|id| format!("#{id}"))
            .collect();
        text.push_str(&format!(
            "the longest legal order found placed {} operations (ending {}), leaving {key} = {}, \
             and could not place #{} before it completed\n",
            self.longest_linearization,
            if tail.is_empty() {
                "nowhere".to_owned()
            } else {
                tail.join(" ")
            },
            show_value(self.value_when_stuck.as_deref()),
            self.stuck_at
        ));
        text
    }
}

#[cfg(test)]
mod tests;
