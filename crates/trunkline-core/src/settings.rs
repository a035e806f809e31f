//! The replicated settings namespace: a small, versioned key-value map.
//!
//! Cluster-wide settings of later capabilities live here, and the replication and chaos tests
//! use it as their register: get, set, delete and compare-and-set, each change stamped with
//! the log index that made it (etcd's `mod_revision`) so readers can tell which write they see.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Error, FieldError};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest value, in bytes. Settings are configuration, not a blob store.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most keys the namespace holds; a set of a new key beyond it is refused.
pub const MAX_KEYS: usize = 100_000;
/// The operator's list of high-risk destination prefixes (E.164 digits, comma separated):
/// numbers under them are classed high-risk. Validated when written.
pub const HIGH_RISK_PREFIXES_KEY: &str = "routing/high-risk-prefixes";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub value: String,
    /// Log index of the write that created the key.
    pub create_index: u64,
    /// Log index of the write that last changed the key.
    pub modify_index: u64,
    /// How many times the key was written since it was created (1 after the first write).
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SettingsCommand {
    Set {
        key: String,
        value: String,
    },
    Delete {
        key: String,
    },
    /// Writes `value` (or deletes the key when `None`) only if the current value equals
    /// `expected` (`None`: the key must not exist).
    CompareAndSet {
        key: String,
        expected: Option<String>,
        value: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SettingsResponse {
    /// The key after the write, or `None` when it was deleted.
    Written { current: Option<Setting> },
    /// Delete of a key that did not exist.
    Absent,
    /// A compare-and-set whose comparison failed; `current` is what the key holds.
    CompareFailed { current: Option<Setting> },
}

impl SettingsCommand {
    pub fn key(&self) -> &str {
        match self {
            SettingsCommand::Set { key, .. }
            | SettingsCommand::Delete { key }
            | SettingsCommand::CompareAndSet { key, .. } => key,
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        validate_key(self.key())?;
        let value = match self {
            SettingsCommand::Set { value, .. } => Some(value),
            SettingsCommand::CompareAndSet { value, .. } => value.as_ref(),
            SettingsCommand::Delete { .. } => None,
        };
        if let (HIGH_RISK_PREFIXES_KEY, Some(value)) = (self.key(), value) {
            let prefixes = value
                .split(',')
                .map(str::trim)
                .filter(|prefix| !prefix.is_empty())
                .map(str::to_owned);
            crate::routing::HighRiskList::new(prefixes).map_err(|error| {
                Error::invalid("value", format!("{HIGH_RISK_PREFIXES_KEY}: {error}"))
            })?;
        }
        match self {
            SettingsCommand::Set { value, .. } => Ok(validate_value("value", value)?),
            SettingsCommand::Delete { .. } => Ok(()),
            SettingsCommand::CompareAndSet {
                expected, value, ..
            } => {
                if let Some(expected) = expected {
                    validate_value("expected", expected)?;
                }
                match value {
                    Some(value) => Ok(validate_value("value", value)?),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Keys are 1 to [`MAX_KEY_BYTES`] printable ASCII characters without spaces, so they print
/// and sort the same everywhere.
pub fn validate_key(key: &str) -> Result<(), FieldError> {
    if key.is_empty() {
        return Err(FieldError::new("key", "must not be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(FieldError::new(
            "key",
            format!("is {} bytes; the limit is {MAX_KEY_BYTES}", key.len()),
        ));
    }
    if let Some(bad) = key.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(FieldError::new(
            "key",
            format!("contains {bad:?}; use printable ASCII without spaces"),
        ));
    }
    Ok(())
}

fn validate_value(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(FieldError::new(
            field,
            format!("is {} bytes; the limit is {MAX_VALUE_BYTES}", value.len()),
        ));
    }
    Ok(())
}

/// Shards of the namespace: a write copies only its key's shard when the state it changes is
/// shared with readers (every applied batch), not the whole map. With the whole map in one
/// `BTreeMap`, a node holding 1,000 keys copied all of them for every batch of writes: a
/// tenth of a follower's CPU under a stream of SetSettings.
const SHARDS: usize = 256;

type Shard = BTreeMap<String, Setting>;

/// The namespace: every key in one of [`SHARDS`] shared maps by a hash of the key. Reads
/// come out in key order, and it serialises as one map in key order, as it always has.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "SettingsWire")]
pub struct Settings {
    shards: Box<[Arc<Shard>; SHARDS]>,
    len: usize,
}

/// How [`Settings`] is written in snapshots and backups.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SettingsWire {
    entries: BTreeMap<String, Setting>,
}

impl From<SettingsWire> for Settings {
    fn from(wire: SettingsWire) -> Settings {
        let mut settings = Settings::default();
        for (key, setting) in wire.entries {
            settings.shard_mut(&key).insert(key, setting);
            settings.len += 1;
        }
        settings
    }
}

impl Serialize for Settings {
    /// As [`SettingsWire`], borrowing every entry.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            entries: BTreeMap<&'a String, &'a Setting>,
        }
        Borrowed {
            entries: self.shards.iter().flat_map(|shard| shard.iter()).collect(),
        }
        .serialize(serializer)
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            shards: Box::new(std::array::from_fn(|_| Arc::new(Shard::new()))),
            len: 0,
        }
    }
}

/// The shard of `key`: FNV-1a, which needs no seed, so every node shards alike (not that it
/// matters beyond memory: only the order-independent contents are compared or written).
fn shard_of(key: &str) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % SHARDS as u64) as usize
}

impl Settings {
    // `shard_of` is below SHARDS, the array's length: the indexing can't fail.
    fn shard(&self, key: &str) -> &Shard {
        &self.shards[shard_of(key)]
    }

    fn shard_mut(&mut self, key: &str) -> &mut Shard {
        Arc::make_mut(&mut self.shards[shard_of(key)])
    }

    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.shard(key).get(key)
    }

    /// A number of days (a retention) the setting `key` holds, in ms; `default_days` when it
    /// is unset, not a number, or 0.
    pub fn days_ms(&self, key: &str, default_days: u64) -> u64 {
        self.get(key)
            .and_then(|setting| setting.value.trim().parse::<u64>().ok())
            .filter(|days| *days > 0)
            .unwrap_or(default_days)
            .saturating_mul(86_400_000)
    }

    /// Keys starting with `prefix`, in order, at most `limit` of them.
    pub fn list<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> impl Iterator<Item = (&'a String, &'a Setting)> + 'a {
        // The first `limit` of each shard hold the first `limit` of all.
        let mut found: Vec<(&String, &Setting)> = self
            .shards
            .iter()
            .flat_map(|shard| {
                shard
                    .range::<str, _>((
                        std::ops::Bound::Included(prefix),
                        std::ops::Bound::Unbounded,
                    ))
                    .take_while(move |(key, _)| key.starts_with(prefix))
                    .take(limit)
            })
            .collect();
        found.sort_unstable_by_key(|&(key, _)| key);
        found.truncate(limit);
        found.into_iter()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn remove(&mut self, key: &str) -> Option<Setting> {
        if !self.shard(key).contains_key(key) {
            return None;
        }
        let removed = self.shard_mut(key).remove(key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    pub(crate) fn apply(&mut self, log_index: u64, command: &SettingsCommand) -> SettingsResponse {
        match command {
            SettingsCommand::Set { key, value } => self.write(log_index, key, Some(value)),
            SettingsCommand::Delete { key } => match self.remove(key) {
                Some(_) => SettingsResponse::Written { current: None },
                None => SettingsResponse::Absent,
            },
            SettingsCommand::CompareAndSet {
                key,
                expected,
                value,
            } => {
                let current = self.get(key);
                if current.map(|setting| &setting.value) != expected.as_ref() {
                    return SettingsResponse::CompareFailed {
                        current: current.cloned(),
                    };
                }
                self.write(log_index, key, value.as_ref())
            }
        }
    }

    fn write(&mut self, log_index: u64, key: &str, value: Option<&String>) -> SettingsResponse {
        let Some(value) = value else {
            self.remove(key);
            return SettingsResponse::Written { current: None };
        };
        let exists = self.get(key).is_some();
        if !exists && self.len >= MAX_KEYS {
            return SettingsResponse::CompareFailed { current: None };
        }
        if !exists {
            self.len += 1;
        }
        let setting = self
            .shard_mut(key)
            .entry(key.to_owned())
            .and_modify(|setting| {
                setting.value.clone_from(value);
                setting.modify_index = log_index;
                setting.version += 1;
            })
            .or_insert_with(|| Setting {
                value: value.clone(),
                create_index: log_index,
                modify_index: log_index,
                version: 1,
            });
        SettingsResponse::Written {
            current: Some(setting.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        commands: &[SettingsCommand],
        expected_last: SettingsResponse,
        key: &str,
        expected: Option<&str>,
    ) {
        let mut settings = Settings::default();
        let mut last = SettingsResponse::Absent;
        for (index, command) in commands.iter().enumerate() {
            last = settings.apply(index as u64 + 1, command);
        }
        assert_eq!(last, expected_last);
        assert_eq!(settings.get(key).map(|s| s.value.as_str()), expected);
    }

    fn set(key: &str, value: &str) -> SettingsCommand {
        SettingsCommand::Set {
            key: key.into(),
            value: value.into(),
        }
    }

    fn cas(key: &str, expected: Option<&str>, value: Option<&str>) -> SettingsCommand {
        SettingsCommand::CompareAndSet {
            key: key.into(),
            expected: expected.map(Into::into),
            value: value.map(Into::into),
        }
    }

    fn written(
        value: &str,
        create_index: u64,
        modify_index: u64,
        version: u64,
    ) -> SettingsResponse {
        SettingsResponse::Written {
            current: Some(Setting {
                value: value.into(),
                create_index,
                modify_index,
                version,
            }),
        }
    }

    #[test]
    fn set_then_overwrite_counts_versions_and_indexes() {
        check(
            &[set("a", "1"), set("b", "x"), set("a", "2")],
            written("2", 1, 3, 2),
            "a",
            Some("2"),
        );
    }

    #[test]
    fn delete_of_a_missing_key_says_absent() {
        check(
            &[SettingsCommand::Delete { key: "a".into() }],
            SettingsResponse::Absent,
            "a",
            None,
        );
    }

    #[test]
    fn delete_then_set_starts_a_new_version_history() {
        check(
            &[
                set("a", "1"),
                SettingsCommand::Delete { key: "a".into() },
                set("a", "2"),
            ],
            written("2", 3, 3, 1),
            "a",
            Some("2"),
        );
    }

    #[test]
    fn compare_and_set_succeeds_only_on_the_expected_value() {
        check(
            &[set("a", "1"), cas("a", Some("1"), Some("2"))],
            written("2", 1, 2, 2),
            "a",
            Some("2"),
        );
        check(
            &[set("a", "1"), cas("a", Some("0"), Some("2"))],
            SettingsResponse::CompareFailed {
                current: Some(Setting {
                    value: "1".into(),
                    create_index: 1,
                    modify_index: 1,
                    version: 1,
                }),
            },
            "a",
            Some("1"),
        );
    }

    #[test]
    fn compare_and_set_on_absence_creates_once() {
        check(
            &[cas("a", None, Some("1"))],
            written("1", 1, 1, 1),
            "a",
            Some("1"),
        );
        check(
            &[cas("a", None, Some("1")), cas("a", None, Some("2"))],
            SettingsResponse::CompareFailed {
                current: Some(Setting {
                    value: "1".into(),
                    create_index: 1,
                    modify_index: 1,
                    version: 1,
                }),
            },
            "a",
            Some("1"),
        );
    }

    #[test]
    fn compare_and_set_to_none_deletes() {
        check(
            &[set("a", "1"), cas("a", Some("1"), None)],
            SettingsResponse::Written { current: None },
            "a",
            None,
        );
    }

    #[test]
    fn keys_are_validated_with_the_field_named() {
        for (key, needle) in [
            ("", "empty"),
            ("has space", "' '"),
            (&"k".repeat(MAX_KEY_BYTES + 1), "limit"),
        ] {
            let error = set(key, "v").validate().unwrap_err();
            let text = error.to_string();
            assert!(text.starts_with("key: ") && text.contains(needle), "{text}");
        }
        assert!(set("routing/default-strategy", "least-cost")
            .validate()
            .is_ok());
    }

    #[test]
    fn the_high_risk_list_is_validated_when_written() {
        assert!(set(HIGH_RISK_PREFIXES_KEY, "882, 883,53")
            .validate()
            .is_ok());
        let error = set(HIGH_RISK_PREFIXES_KEY, "882,88x")
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("88x"), "{error}");
    }

    #[test]
    fn oversized_values_are_refused() {
        let error = set("a", &"v".repeat(MAX_VALUE_BYTES + 1))
            .validate()
            .unwrap_err();
        assert!(error.to_string().starts_with("value: "), "{error}");
    }

    #[test]
    fn list_returns_only_the_prefix_in_order() {
        let mut settings = Settings::default();
        for (index, key) in ["b/2", "a/1", "b/1", "c"].iter().enumerate() {
            settings.apply(index as u64 + 1, &set(key, "v"));
        }
        let keys: Vec<_> = settings
            .list("b/", 10)
            .map(|(key, _)| key.as_str())
            .collect();
        assert_eq!(keys, ["b/1", "b/2"]);
        assert_eq!(settings.list("", 2).count(), 2);
    }

    /// Applying a write to a copy (as every applied batch does to the state readers hold)
    /// copies the key's shard and shares every other one.
    #[test]
    fn a_write_to_a_shared_copy_copies_one_shard() {
        let mut settings = Settings::default();
        for n in 0..1_000 {
            settings.apply(n, &set(&format!("key-{n}"), "v"));
        }
        let mut copy = settings.clone();
        copy.apply(1_001, &set("key-7", "changed"));
        let copied: Vec<usize> = (0..SHARDS)
            .filter(|&shard| !Arc::ptr_eq(&settings.shards[shard], &copy.shards[shard]))
            .collect();
        assert_eq!(copied, [shard_of("key-7")]);
        assert_eq!(settings.get("key-7").unwrap().value, "v");
        assert_eq!(copy.get("key-7").unwrap().value, "changed");
        assert_eq!((settings.len(), copy.len()), (1_000, 1_000));
    }

    /// Snapshots and backups hold the settings as one map in key order, as before the
    /// shards.
    #[test]
    fn settings_serialise_as_one_ordered_map() {
        let mut settings = Settings::default();
        let mut model = BTreeMap::new();
        for (n, key) in ["zeta", "alpha", "m/1", "m/0", "beta"].iter().enumerate() {
            settings.apply(n as u64 + 1, &set(key, "x"));
            model.insert(key.to_string(), settings.get(key).unwrap().clone());
        }
        let json = serde_json::to_string(&settings).unwrap();
        let wire = serde_json::to_string(&SettingsWire { entries: model }).unwrap();
        assert_eq!(json, wire);
        assert_eq!(serde_json::from_str::<Settings>(&json).unwrap(), settings);
    }

    proptest::proptest! {
        #[test]
        fn the_shards_read_like_one_ordered_map(
            writes in proptest::collection::vec(("[ab]{0,1}[/]?[a-c]{1,3}", proptest::bool::ANY), 0..80),
            prefix in "[ab]?/?",
            limit in 0..20_usize,
        ) {
            let mut settings = Settings::default();
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            for (n, (key, keep)) in writes.iter().enumerate() {
                if *keep {
                    settings.apply(n as u64 + 1, &set(key, &n.to_string()));
                    model.insert(key.clone(), n.to_string());
                } else {
                    settings.apply(n as u64 + 1, &SettingsCommand::Delete { key: key.clone() });
                    model.remove(key);
                }
            }
            proptest::prop_assert_eq!(settings.len(), model.len());
            let listed: Vec<(String, String)> = settings
                .list(&prefix, limit)
                .map(|(key, setting)| (key.clone(), setting.value.clone()))
                .collect();
            let expected: Vec<(String, String)> = model
                .range(prefix.clone()..)
                .take_while(|(key, _)| key.starts_with(&prefix))
                .take(limit)
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            proptest::prop_assert_eq!(listed, expected);
        }
    }
}
