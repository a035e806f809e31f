//! The replicated event log: what operators watch with `trunkctl events`.
//!
//! Events are made by applying log entries, so every node holds the same events with the same
//! numbers (the log index of the entry that made them), and a watcher can move to another node
//! and resume after the last index it saw. The log keeps the most recent [`EVENT_LOG_CAPACITY`]
//! events; a watcher that falls further behind is told how many it missed.

use std::{collections::VecDeque, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::health::AppliedTransition;

/// Events kept for watchers that resume; older ones are dropped.
pub const EVENT_LOG_CAPACITY: usize = 4_096;
/// Events a watcher may ask to see from before it connected.
pub const MAX_RECENT_EVENTS: u32 = 1_000;
/// Events per shared block. Applying an event copies only the newest block (readers hold the
/// previous state, so the log is copied on write), not the whole log.
const BLOCK_EVENTS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Log index of the entry that made the event; increasing, not contiguous.
    pub index: u64,
    /// Log time of that entry, unix milliseconds.
    pub time_ms: u64,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A gateway went up or down.
    GatewayHealth(AppliedTransition),
    /// Authentication under attack: a token locked after wrong secrets, or a source address
    /// refused after too many failures.
    SecurityAlert(SecurityAlert),
    /// A fraud rule fired for a tenant (and its automatic action, if any, is in force).
    FraudAlert(crate::alerts::Alert),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityAlert {
    /// The address the failures came from.
    pub source: String,
    /// What happened and what it led to.
    pub what: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLog {
    /// Oldest block first; every block but the last is full.
    blocks: VecDeque<Arc<Vec<Event>>>,
    len: usize,
    /// Events dropped from the front so far.
    dropped: u64,
}

impl EventLog {
    pub fn push(&mut self, event: Event) {
        if self.len == EVENT_LOG_CAPACITY {
            // Capacity is a whole number of blocks: drop the oldest block at once.
            if let Some(oldest) = self.blocks.pop_front() {
                self.len -= oldest.len();
                self.dropped = self.dropped.saturating_add(oldest.len() as u64);
            }
        }
        match self.blocks.back_mut() {
            Some(block) if block.len() < BLOCK_EVENTS => Arc::make_mut(block).push(event),
            _ => {
                let mut block = Vec::with_capacity(BLOCK_EVENTS);
                block.push(event);
                self.blocks.push_back(Arc::new(block));
            }
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Index of the newest event, 0 when there is none.
    pub fn last_index(&self) -> u64 {
        self.iter().next_back().map_or(0, |event| event.index)
    }

    /// Every event kept, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Event> {
        self.blocks.iter().flat_map(|block| block.iter())
    }

    /// Events with an index above `after_index`, oldest first, and whether some events after
    /// `after_index` were already dropped (the watcher missed them).
    pub fn after(&self, after_index: u64) -> (impl Iterator<Item = &Event>, bool) {
        let missed = self.dropped > 0
            && self
                .iter()
                .next()
                .is_some_and(|oldest| oldest.index > after_index.saturating_add(1));
        (
            self.iter()
                .skip_while(move |event| event.index <= after_index),
            missed,
        )
    }

    /// The newest `count` events, oldest first.
    pub fn recent(&self, count: usize) -> impl Iterator<Item = &Event> {
        self.iter().skip(self.len.saturating_sub(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Liveness, TransitionSource};

    fn event(index: u64) -> Event {
        Event {
            index,
            time_ms: index * 10,
            kind: EventKind::GatewayHealth(AppliedTransition {
                gateway: "gw".into(),
                from: Liveness::Up,
                to: Liveness::Down,
                reason: "test".into(),
                source: TransitionSource::Probe,
                observer_node: 1,
                round_trip_ms: None,
            }),
        }
    }

    #[test]
    fn after_returns_only_newer_events_in_order() {
        let mut log = EventLog::default();
        for index in [3, 5, 9] {
            log.push(event(index));
        }
        let (events, missed) = log.after(4);
        let indexes: Vec<u64> = events.map(|event| event.index).collect();
        assert_eq!(indexes, vec![5, 9]);
        assert!(!missed);
        assert_eq!(log.after(9).0.count(), 0);
        assert_eq!(log.last_index(), 9);
    }

    #[test]
    fn a_watcher_behind_the_capacity_is_told_it_missed_events() {
        let mut log = EventLog::default();
        for index in 1..=(EVENT_LOG_CAPACITY as u64 + 10) {
            log.push(event(index));
        }
        assert!(log.len() <= EVENT_LOG_CAPACITY);
        assert!(log.len() > EVENT_LOG_CAPACITY - BLOCK_EVENTS);
        let oldest = log.iter().next().unwrap().index;
        let (events, missed) = log.after(2);
        assert!(missed);
        assert_eq!(events.map(|event| event.index).next(), Some(oldest));
        // Resuming right before the oldest kept event misses nothing.
        assert!(!log.after(oldest - 1).1);
        let newest: Vec<u64> = log
            .after(oldest + 5)
            .0
            .map(|event| event.index)
            .take(2)
            .collect();
        assert_eq!(newest, vec![oldest + 6, oldest + 7]);
    }

    #[test]
    fn a_copied_log_shares_all_but_the_newest_block() {
        let mut log = EventLog::default();
        for index in 1..=(3 * BLOCK_EVENTS as u64) {
            log.push(event(index));
        }
        let copy = log.clone();
        log.push(event(1_000));
        assert!(Arc::ptr_eq(&log.blocks[0], &copy.blocks[0]));
        assert_eq!(copy.len(), 3 * BLOCK_EVENTS);
        assert_eq!(copy.last_index(), 3 * BLOCK_EVENTS as u64);
        assert_eq!(log.last_index(), 1_000);
    }

    #[test]
    fn recent_returns_the_newest_events() {
        let mut log = EventLog::default();
        for index in 1..=5 {
            log.push(event(index));
        }
        let indexes: Vec<u64> = log.recent(2).map(|event| event.index).collect();
        assert_eq!(indexes, vec![4, 5]);
        assert_eq!(log.recent(50).count(), 5);
    }
}
