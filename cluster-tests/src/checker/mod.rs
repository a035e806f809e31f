//! The checkers that judge a recorded [`History`](crate::history::History), and the report of
//! a run.
//!
//! Each checker answers with a [`Verdict`] and the details a human needs to see why:
//!
//! - [`linearizable`]: the settings operations, key by key, against a register model
//!   (a WGL search as in porcupine);
//! - [`lost_writes`]: every last acknowledged write of a key is what every node reads once
//!   the faults have healed;
//! - [`convergence`]: every node ends with the same applied state;
//! - [`availability`]: lookups sent to a node the client could reach kept succeeding;
//! - [`limits`]: a tenant limited to N calls at once never had more admitted;
//! - [`cdrs`]: every call end a node acknowledged has its record on every node;
//! - [`report`]: the summary a run writes under `target/` (`report.json`, `report.txt`).
//!
//! A checker says `Unknown` rather than `Pass` when it could not look at everything it
//! needed (a truncated history, a search that hit its bound, nothing to check), so a run
//! that checked nothing never looks green.

use serde::{Deserialize, Serialize};

pub mod availability;
pub mod cdrs;
pub mod convergence;
pub mod limits;
pub mod linearizable;
pub mod lost_writes;
pub mod report;

#[cfg(test)]
pub(crate) mod test_history;

/// A checker's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// The checker found a violation; `reason` says which.
    Fail {
        reason: String,
    },
    /// The checker could not decide; `reason` says why.
    Unknown {
        reason: String,
    },
}

impl Verdict {
    pub fn is_pass(&self) -> bool {
        matches!(self, Verdict::Pass)
    }

    pub fn is_fail(&self) -> bool {
        matches!(self, Verdict::Fail { .. })
    }

    /// `pass`, `fail` or `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail { .. } => "fail",
            Verdict::Unknown { .. } => "unknown",
        }
    }

    /// The reason of a `Fail` or `Unknown`.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Pass => None,
            Verdict::Fail { reason } | Verdict::Unknown { reason } => Some(reason),
        }
    }

    /// The verdict of several named checks: `Fail` if any failed, else `Unknown` if any
    /// could not decide (or there were none), else `Pass`. Reasons are prefixed with the
    /// check's name and joined.
    pub fn combine<'a>(verdicts: impl IntoIterator<Item = (&'a str, &'a Verdict)>) -> Verdict {
        let mut failures = Vec::new();
        let mut unknowns = Vec::new();
        let mut any = false;
        for (name, verdict) in verdicts {
            any = true;
            match verdict {
                Verdict::Pass => {}
                Verdict::Fail { reason } => failures.push(format!("{name}: {reason}")),
                Verdict::Unknown { reason } => unknowns.push(format!("{name}: {reason}")),
            }
        }
        if !failures.is_empty() {
            Verdict::Fail {
                reason: failures.join("; "),
            }
        } else if !unknowns.is_empty() {
            Verdict::Unknown {
                reason: unknowns.join("; "),
            }
        } else if any {
            Verdict::Pass
        } else {
            Verdict::Unknown {
                reason: "no checks ran".to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_beats_unknown_beats_pass() {
        let pass = Verdict::Pass;
        let fail = Verdict::Fail {
            reason: "lost".into(),
        };
        let unknown = Verdict::Unknown {
            reason: "bound".into(),
        };
        assert_eq!(
            Verdict::combine([("a", &pass), ("b", &unknown), ("c", &fail)]),
            Verdict::Fail {
                reason: "c: lost".into()
            }
        );
        assert_eq!(
            Verdict::combine([("a", &pass), ("b", &unknown)]),
            Verdict::Unknown {
                reason: "b: bound".into()
            }
        );
        assert_eq!(Verdict::combine([("a", &pass)]), Verdict::Pass);
        assert!(!Verdict::combine([]).is_pass());
    }
}
