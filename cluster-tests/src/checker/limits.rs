//! "A limit is never exceeded": the calls a tenant limited to N concurrent calls had admitted
//! at once, as the clients saw them, never number more than N.
//!
//! A client knows a call was admitted from the answer, after the admission applied, and ends
//! it with a request sent before the end applies. So each call's client-side interval, from
//! the admission's completion to the end's invocation, lies inside the interval the cluster
//! held it: if more than N client-side intervals overlap, the cluster held more than N calls
//! at once. Admissions of unknown outcome, and calls whose end was never sent, only make the
//! cluster hold more than the clients know, so the check never cries wolf; a call never ended
//! is held to the end of the history.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Verdict;
use crate::history::{History, OpKind, Outcome, Returned};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimitsResult {
    pub verdict: Verdict,
    /// The concurrent-call limit the tenant had.
    pub limit: u64,
    /// Admissions answered: admitted and refused.
    pub admitted: u64,
    pub refused: u64,
    /// The most calls the clients knew admitted at once.
    pub most_at_once: u64,
}

/// Checks the `Admit`/`EndCall` operations of `history` against `limit`.
pub fn check(history: &History, limit: u64) -> LimitsResult {
    let mut ends: BTreeMap<&str, u64> = BTreeMap::new();
    for operation in &history.operations {
        if let OpKind::EndCall { call } = &operation.kind {
            let entry = ends.entry(call.as_str()).or_insert(u64::MAX);
            *entry = (*entry).min(operation.invoke_nanos);
        }
    }
    // A call admitted twice (a retry with the same Call-ID is idempotent) is one call, from
    // its first known admission.
    let mut starts: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut admitted, mut refused) = (0, 0);
    for operation in &history.operations {
        let OpKind::Admit { call } = &operation.kind else {
            continue;
        };
        let Outcome::Ok {
            returned: Returned::Admission {
                admitted: was_admitted,
            },
        } = &operation.outcome
        else {
            continue;
        };
        if !was_admitted {
            refused += 1;
            continue;
        }
        admitted += 1;
        let Some(complete) = operation.complete_nanos else {
            continue;
        };
        let start = starts.entry(call.as_str()).or_insert(complete);
        *start = (*start).min(complete);
    }
    // (time, +1 start / -1 end); at one time, ends first: the intervals are open at the end.
    let mut events: Vec<(u64, i64)> = Vec::new();
    for (call, start) in starts {
        let end = ends.get(call).copied().unwrap_or(u64::MAX);
        if end <= start {
            // Ended before the client saw the answer: the client can't have sent that.
            continue;
        }
        events.push((start, 1));
        if end != u64::MAX {
            events.push((end, -1));
        }
    }
    events.sort();
    let (mut current, mut most, mut worst_at) = (0i64, 0i64, 0u64);
    for (at, change) in events {
        current += change;
        if current > most {
            most = current;
            worst_at = at;
        }
    }
    let most_at_once = u64::try_from(most).unwrap_or(0);
    let verdict = if most_at_once > limit {
        Verdict::Fail {
            reason: format!(
                "{most_at_once} calls admitted at once at {:.3}s, over the limit of {limit}",
                worst_at as f64 / 1e9
            ),
        }
    } else if admitted == 0 {
        Verdict::Unknown {
            reason: "no call was admitted".to_owned(),
        }
    } else {
        Verdict::Pass
    };
    LimitsResult {
        verdict,
        limit,
        admitted,
        refused,
        most_at_once,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Recorder;

    /// Admits `call` over [start, answered] and, when given, ends it at `end`.
    fn call(recorder: &Recorder, call: &str, admitted: bool, end: Option<()>) {
        let admit = recorder.invoke(1, 1, OpKind::Admit { call: call.into() });
        recorder.complete(
            admit,
            Outcome::Ok {
                returned: Returned::Admission { admitted },
            },
        );
        if end.is_some() {
            let ended = recorder.invoke(1, 1, OpKind::EndCall { call: call.into() });
            recorder.complete(ended, Outcome::written(true));
        }
    }

    #[test]
    fn overlapping_admissions_past_the_limit_fail_and_sequential_ones_pass() {
        // Three calls held at once (none ended) against a limit of 2: a violation.
        let recorder = Recorder::new();
        for name in ["a", "b", "c"] {
            call(&recorder, name, true, None);
        }
        let result = check(&recorder.history(), 2);
        assert!(result.verdict.is_fail(), "{result:?}");
        assert_eq!(result.most_at_once, 3);
        // The same three, each ended before the next: one at a time.
        let recorder = Recorder::new();
        for name in ["a", "b", "c"] {
            call(&recorder, name, true, Some(()));
        }
        call(&recorder, "d", false, None);
        let result = check(&recorder.history(), 1);
        assert!(result.verdict.is_pass(), "{result:?}");
        assert_eq!(
            (result.admitted, result.refused, result.most_at_once),
            (3, 1, 1)
        );
        // One call admitted twice (an idempotent retry) is one call.
        let recorder = Recorder::new();
        call(&recorder, "a", true, None);
        call(&recorder, "a", true, None);
        let result = check(&recorder.history(), 1);
        assert!(result.verdict.is_pass(), "{result:?}");
        // Nothing admitted: nothing was checked.
        let recorder = Recorder::new();
        call(&recorder, "x", false, None);
        assert!(!check(&recorder.history(), 1).verdict.is_pass());
    }
}
