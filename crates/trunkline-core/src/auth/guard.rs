//! Bounds on failed authentication, kept by each node for itself (failures are not written
//! to the log: an attacker must not be able to make the cluster write). A source address
//! with too many failures in a window is refused until the window ends; a token whose secret
//! was wrong [`TOKEN_FAILURES_TO_LOCK`] times in a row is locked for [`TOKEN_LOCK_MS`], even
//! to the right secret. Time comes in as a value.

use std::{collections::BTreeMap, net::IpAddr};

/// Wrong secrets in a row that lock a token.
pub const TOKEN_FAILURES_TO_LOCK: u32 = 10;
/// How long a locked token stays locked.
pub const TOKEN_LOCK_MS: u64 = 30 * 60 * 1_000;
/// Failures one source address may make per window before it is refused.
pub const SOURCE_FAILURES_PER_WINDOW: u32 = 20;
pub const SOURCE_WINDOW_MS: u64 = 60 * 1_000;
/// Sources and tokens tracked at once; the stalest entry makes room for a new one.
pub const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy, Debug, Default)]
struct SourceWindow {
    start_ms: u64,
    failures: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct TokenFailures {
    in_a_row: u32,
    last_ms: u64,
    locked_until_ms: Option<u64>,
}

/// What a failure led to, for the event it raises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Consequence {
    /// Nothing yet.
    Counted,
    /// This failure locked the token of this id.
    TokenLocked { id: String, until_ms: u64 },
    /// This failure made the source address go over its limit.
    SourceLimited { source: IpAddr, until_ms: u64 },
}

#[derive(Debug, Default)]
pub struct Guard {
    sources: BTreeMap<IpAddr, SourceWindow>,
    tokens: BTreeMap<String, TokenFailures>,
}

impl Guard {
    /// Whether `source` is over its failure limit at `now_ms`.
    pub fn source_limited(&self, source: IpAddr, now_ms: u64) -> bool {
        self.sources.get(&source).is_some_and(|window| {
            now_ms < window.start_ms.saturating_add(SOURCE_WINDOW_MS)
                && window.failures >= SOURCE_FAILURES_PER_WINDOW
        })
    }

    /// Whether the token of `id` is locked at `now_ms`.
    pub fn token_locked(&self, id: &str, now_ms: u64) -> bool {
        self.tokens
            .get(id)
            .and_then(|failures| failures.locked_until_ms)
            .is_some_and(|until| now_ms < until)
    }

    /// Counts a failed authentication from `source`, against the token of `id` when the
    /// client named one.
    pub fn failed(&mut self, source: IpAddr, id: Option<&str>, now_ms: u64) -> Consequence {
        let mut consequence = Consequence::Counted;
        if let Some(id) = id {
            let is_new = !self.tokens.contains_key(id);
            make_room(&mut self.tokens, is_new, |failures| failures.last_ms);
            let failures = self.tokens.entry(id.to_owned()).or_default();
            if failures
                .locked_until_ms
                .is_some_and(|until| now_ms >= until)
            {
                *failures = TokenFailures::default();
            }
            failures.in_a_row = failures.in_a_row.saturating_add(1);
            failures.last_ms = now_ms;
            if failures.in_a_row == TOKEN_FAILURES_TO_LOCK {
                let until_ms = now_ms.saturating_add(TOKEN_LOCK_MS);
                failures.locked_until_ms = Some(until_ms);
                consequence = Consequence::TokenLocked {
                    id: id.to_owned(),
                    until_ms,
                };
            }
        }
        let is_new = !self.sources.contains_key(&source);
        make_room(&mut self.sources, is_new, |window| window.start_ms);
        let window = self.sources.entry(source).or_default();
        if now_ms >= window.start_ms.saturating_add(SOURCE_WINDOW_MS) {
            *window = SourceWindow {
                start_ms: now_ms,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
        if window.failures == SOURCE_FAILURES_PER_WINDOW && consequence == Consequence::Counted {
            consequence = Consequence::SourceLimited {
                source,
                until_ms: window.start_ms.saturating_add(SOURCE_WINDOW_MS),
            };
        }
        consequence
    }

    /// A right secret for the token of `id`: its count of failures in a row starts again
    /// (a locked token stays locked).
    pub fn succeeded(&mut self, id: &str) {
        if let Some(failures) = self.tokens.get_mut(id) {
            if failures.locked_until_ms.is_none() {
                self.tokens.remove(id);
            }
        }
    }
}

/// Drops the stalest entry when the map is full and `key` is new.
fn make_room<K: Ord + Clone, V>(map: &mut BTreeMap<K, V>, is_new: bool, last: impl Fn(&V) -> u64) {
    if map.len() < MAX_TRACKED || !is_new {
        return;
    }
    if let Some(stalest) = map
        .iter()
        .min_by_key(|(_, value)| last(value))
        .map(|(key, _)| key.clone())
    {
        map.remove(&stalest);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn ten_wrong_secrets_lock_a_token_for_thirty_minutes() {
        let mut guard = Guard::default();
        for attempt in 1..TOKEN_FAILURES_TO_LOCK {
            let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, attempt as u8));
            assert_eq!(
                guard.failed(other, Some("abc"), 1_000),
                Consequence::Counted
            );
            assert!(!guard.token_locked("abc", 1_000));
        }
        let locked = guard.failed(SOURCE, Some("abc"), 2_000);
        assert_eq!(
            locked,
            Consequence::TokenLocked {
                id: "abc".into(),
                until_ms: 2_000 + TOKEN_LOCK_MS
            }
        );
        // A right secret does not unlock it.
        guard.succeeded("abc");
        assert!(guard.token_locked("abc", 2_000 + TOKEN_LOCK_MS - 1));
        assert!(!guard.token_locked("abc", 2_000 + TOKEN_LOCK_MS));
        assert!(!guard.token_locked("other", 2_000));
    }

    #[test]
    fn a_right_secret_resets_the_count() {
        let mut guard = Guard::default();
        for _ in 1..TOKEN_FAILURES_TO_LOCK {
            guard.failed(SOURCE, Some("abc"), 0);
        }
        guard.succeeded("abc");
        guard.failed(SOURCE, Some("abc"), 0);
        assert!(!guard.token_locked("abc", 0));
    }

    #[test]
    fn a_source_over_its_limit_waits_for_the_window_to_end() {
        let mut guard = Guard::default();
        for _ in 1..SOURCE_FAILURES_PER_WINDOW {
            assert_eq!(guard.failed(SOURCE, None, 500), Consequence::Counted);
        }
        assert!(!guard.source_limited(SOURCE, 500));
        assert!(matches!(
            guard.failed(SOURCE, None, 600),
            Consequence::SourceLimited { .. }
        ));
        assert!(guard.source_limited(SOURCE, 600));
        assert!(!guard.source_limited(IpAddr::V4(Ipv4Addr::LOCALHOST), 600));
        assert!(!guard.source_limited(SOURCE, 500 + SOURCE_WINDOW_MS));
    }

    #[test]
    fn tracking_is_bounded() {
        let mut guard = Guard::default();
        for index in 0..(MAX_TRACKED as u32 + 50) {
            let source = IpAddr::V4(Ipv4Addr::from(index));
            guard.failed(source, Some(&format!("{index:016x}")), u64::from(index));
        }
        assert_eq!(guard.sources.len(), MAX_TRACKED);
        assert_eq!(guard.tokens.len(), MAX_TRACKED);
    }
}
