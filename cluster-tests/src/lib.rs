//! Chaos tests of Trunkline against containers of the real binary (issue 4).
//!
//! The library holds what a run records and how it is judged, with no Docker and no I/O
//! beyond writing a report: [`history`] is the recorded history of a workload (operations,
//! their outcomes, the nemesis timeline) and [`checker`] the checkers that can say no
//! (linearizability, lost writes, convergence, availability) and the run's report.

pub mod checker;
pub mod history;
pub mod sip_e2e;
// `pub mod harness;` goes here: containers, nemeses and workloads (cluster-tests/src/harness/).
pub mod harness;
