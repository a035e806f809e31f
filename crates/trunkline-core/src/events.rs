//! The replicated event log: what operators watch with `trunkctl events`.
//!
//! Events are made by applying log entries, so every node holds the same events with the same
//! numbers (the log index of the entry that made them), and a watcher can move to another node
//! and resume after the last index it saw. The log keeps the most recent [`EVENT_LOG_CAPACITY`]
//! events; a watcher that falls further behind is told how many it missed.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::health::AppliedTransition;

/// Events kept for watchers that resume; older ones are dropped.
pub const EVENT_LOG_CAPACITY: usize = 4_096;

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
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLog {
    events: VecDeque<Event>,
    /// Events dropped from the front so far.
    dropped: u64,
}

impl EventLog {
    pub fn push(&mut self, event: Event) {
        if self.events.len() == EVENT_LOG_CAPACITY {
            self.events.pop_front();
            self.dropped = self.dropped.saturating_add(1);
        }
        self.events.push_back(event);
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Index of the newest event, 0 when there is none.
    pub fn last_index(&self) -> u64 {
        self.events.back().map_or(0, |event| event.index)
    }

    /// Events with an index above `after_index`, oldest first, and whether some of them were
    /// already dropped (the watcher missed events).
    pub fn after(&self, after_index: u64) -> (impl Iterator<Item = &Event>, bool) {
        let start = self
            .events
            .partition_point(|event| event.index <= after_index);
        let missed = start == 0
            && self.dropped > 0
            && self
                .events
                .front()
                .is_some_and(|oldest| oldest.index > after_index.saturating_add(1));
        (self.events.range(start..), missed)
    }

    /// The newest `count` events, oldest first.
    pub fn recent(&self, count: usize) -> impl Iterator<Item = &Event> {
        self.events.range(self.events.len().saturating_sub(count)..)
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
        assert_eq!(log.len(), EVENT_LOG_CAPACITY);
        let (events, missed) = log.after(2);
        assert!(missed);
        assert_eq!(events.map(|event| event.index).next(), Some(11));
        // Resuming right before the oldest kept event misses nothing.
        assert!(!log.after(10).1);
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
