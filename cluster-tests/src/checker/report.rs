//! The report of one chaos run: what ran, how fast, what failed, and each checker's verdict.
//!
//! A run builds a [`Report`] from its history ([`Report::new`] counts operations by kind and
//! outcome and failures by kind, and copies the nemesis timeline), attaches the checkers'
//! results and any measurements (e.g. how long writes took to come back after a leader
//! kill), and writes it under `target/` with [`Report::write_to`]: `report.json` for
//! machines and `report.txt` for humans. [`write_history`] dumps the history itself
//! (`history.jsonl`, one operation a line) next to it, so a failing run can be re-checked
//! offline.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    io::{self, BufWriter, Write as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    checker::{
        availability::AvailabilityResult, convergence::ConvergenceResult,
        linearizable::LinearizabilityResult, lost_writes::LostWritesResult, Verdict,
    },
    history::{format_nanos, show_value, Fault, History},
};

/// File names inside the report folder.
pub const REPORT_JSON: &str = "report.json";
pub const REPORT_TEXT: &str = "report.txt";
pub const HISTORY_JSON_LINES: &str = "history.jsonl";
/// Most per-key results and failed operations spelled out in `report.txt`; `report.json`
/// has every one the checkers kept.
pub const MAX_TEXT_ITEMS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing {path}: {source}", path = path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("encoding the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// How many operations of one kind ended each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The suite and scenario, e.g. `short/leader-kill-3-nodes`.
    pub name: String,
    pub duration_nanos: u64,
    pub operations: u64,
    pub operations_per_second: f64,
    /// Operations the recorder had no room for.
    pub dropped_operations: u64,
    /// Operation kind (`read`, `write`, ...) → outcomes.
    pub counts: BTreeMap<String, OutcomeCounts>,
    /// `<kind> <outcome>/<error>` (e.g. `write unknown/timeout`) → count, over every
    /// operation.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// The nemesis timeline.
    pub faults: Vec<Fault>,
    /// Named numbers the harness measured, e.g. `write_recovery_p99_ms`.
    #[serde(default)]
    pub measurements: BTreeMap<String, f64>,
    /// Free text for humans: the seed, the cluster size, what was skipped and why.
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub linearizability: Option<LinearizabilityResult>,
    #[serde(default)]
    pub lost_writes: Option<LostWritesResult>,
    #[serde(default)]
    pub convergence: Option<ConvergenceResult>,
    #[serde(default)]
    pub availability: Option<AvailabilityResult>,
    #[serde(default)]
    pub limits: Option<super::limits::LimitsResult>,
    pub cdrs: Option<super::cdrs::CdrsResult>,
}

/// `report.json`: the overall verdict first, then the report.
#[derive(Serialize)]
struct ReportFile<'a> {
    #[serde(flatten)]
    verdict: Verdict,
    #[serde(flatten)]
    report: &'a Report,
}

impl Report {
    /// The statistics of `history`, with no checker results yet.
    pub fn new(name: impl Into<String>, history: &History) -> Report {
        let mut counts: BTreeMap<String, OutcomeCounts> = BTreeMap::new();
        let mut failures_by_kind: BTreeMap<String, u64> = BTreeMap::new();
        for operation in &history.operations {
            let kind = operation.kind.name();
            let count = counts.entry(kind.to_owned()).or_default();
            match operation.outcome.name() {
                "ok" => count.ok += 1,
                "fail" => count.fail += 1,
                _ => count.unknown += 1,
            }
            if let Some(error) = operation.outcome.error() {
                *failures_by_kind
                    .entry(format!(
                        "{kind} {}/{}",
                        operation.outcome.name(),
                        error.name()
                    ))
                    .or_default() += 1;
            }
        }
        let duration_nanos = history.duration_nanos();
        let operations = history.operations.len() as u64;
        let operations_per_second = if duration_nanos == 0 {
            0.0
        } else {
            operations as f64 / (duration_nanos as f64 / 1e9)
        };
        Report {
            name: name.into(),
            duration_nanos,
            operations,
            operations_per_second,
            dropped_operations: history.dropped_operations,
            counts,
            failures_by_kind,
            faults: history.faults.clone(),
            measurements: BTreeMap::new(),
            notes: Vec::new(),
            linearizability: None,
            lost_writes: None,
            convergence: None,
            availability: None,
            limits: None,
            cdrs: None,
        }
    }

    /// The run's verdict: `Fail` if any checker failed, else `Unknown` if any could not
    /// decide or none ran, else `Pass`.
    pub fn verdict(&self) -> Verdict {
        let mut verdicts: Vec<(&str, &Verdict)> = Vec::new();
        if let Some(result) = &self.linearizability {
            verdicts.push(("linearizability", &result.verdict));
        }
        if let Some(result) = &self.lost_writes {
            verdicts.push(("lost writes", &result.verdict));
        }
        if let Some(result) = &self.convergence {
            verdicts.push(("convergence", &result.verdict));
        }
        if let Some(result) = &self.availability {
            verdicts.push(("availability", &result.verdict));
        }
        if let Some(result) = &self.cdrs {
            verdicts.push(("cdrs", &result.verdict));
        }
        if let Some(result) = &self.limits {
            verdicts.push(("limits", &result.verdict));
        }
        Verdict::combine(verdicts)
    }

    /// Writes `report.json` and `report.txt` into `dir`, creating it if needed.
    pub fn write_to(&self, dir: &Path) -> Result<(), ReportError> {
        create_dir(dir)?;
        let json = serde_json::to_string_pretty(&ReportFile {
            verdict: self.verdict(),
            report: self,
        })?;
        write_file(&dir.join(REPORT_JSON), json.as_bytes())?;
        write_file(&dir.join(REPORT_TEXT), self.render_text().as_bytes())
    }

    /// The report for humans.
    pub fn render_text(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; the results of writeln! are ignored below.
        let out = &mut text;
        let verdict = self.verdict();
        let _ = writeln!(out, "Trunkline chaos run: {}", self.name);
        let _ = writeln!(
            out,
            "verdict: {}{}",
            verdict.name().to_uppercase(),
            verdict
                .reason()
                .map(|reason| format!(": {reason}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "{} operations in {} ({:.1} operations/s){}",
            self.operations,
            format_nanos(self.duration_nanos),
            self.operations_per_second,
            if self.dropped_operations > 0 {
                format!(", {} more not recorded", self.dropped_operations)
            } else {
                String::new()
            }
        );

        let _ = writeln!(out, "\noperations            ok      fail   unknown");
        for (kind, count) in &self.counts {
            let _ = writeln!(
                out,
                "  {kind:<14} {:>9} {:>9} {:>9}",
                count.ok, count.fail, count.unknown
            );
        }
        if !self.failures_by_kind.is_empty() {
            let _ = writeln!(out, "\nfailures by kind");
            for (kind, count) in &self.failures_by_kind {
                let _ = writeln!(out, "  {kind:<40} {count:>9}");
            }
        }
        if !self.faults.is_empty() {
            let _ = writeln!(out, "\nnemesis timeline");
            for fault in &self.faults {
                let end = fault
                    .end_nanos
                    .map_or("not healed".to_owned(), format_nanos);
                let unreachable: Vec<String> = fault
                    .unreachable_nodes
                    .iter()
                    .map(|node| format!("n{node}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "  {}..{end}  {}{}",
                    format_nanos(fault.start_nanos),
                    fault.name,
                    if unreachable.is_empty() {
                        String::new()
                    } else {
                        format!(" (unreachable: {})", unreachable.join(", "))
                    }
                );
            }
        }
        if !self.measurements.is_empty() {
            let _ = writeln!(out, "\nmeasurements");
            for (name, value) in &self.measurements {
                let _ = writeln!(out, "  {name:<40} {value:>12.3}");
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nnotes");
            for note in &self.notes {
                let _ = writeln!(out, "  {note}");
            }
        }
        let _ = writeln!(out, "\ncheckers");
        self.render_linearizability(out);
        self.render_lost_writes(out);
        self.render_convergence(out);
        self.render_availability(out);
        self.render_limits(out);
        self.render_cdrs(out);
        text
    }

    fn render_linearizability(&self, out: &mut String) {
        let Some(result) = &self.linearizability else {
            let _ = writeln!(out, "  linearizability: not run");
            return;
        };
        let explored: u64 = result.keys.iter().map(|key| key.explored_states).sum();
        let _ = writeln!(
            out,
            "  linearizability: {} ({} keys, {explored} configurations explored)",
            result.verdict.name(),
            result.keys.len()
        );
        let troubled = result.keys.iter().filter(|key| !key.verdict.is_pass());
        for key in troubled.take(MAX_TEXT_ITEMS) {
            let _ = writeln!(
                out,
                "    key {}: {}: {}",
                key.key,
                key.verdict.name(),
                key.verdict.reason().unwrap_or_default()
            );
            if let Some(violation) = &key.violation {
                for line in violation.render(&key.key).lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
    }

    fn render_lost_writes(&self, out: &mut String) {
        let Some(result) = &self.lost_writes else {
            let _ = writeln!(out, "  lost writes: not run");
            return;
        };
        let _ = writeln!(
            out,
            "  lost writes: {} ({} keys on {} nodes, {} acknowledged writes)",
            result.verdict.name(),
            result.keys_checked,
            result.nodes_checked,
            result.acknowledged_writes
        );
        if let Some(reason) = result.verdict.reason() {
            let _ = writeln!(out, "    {reason}");
        }
        for lost in result.lost.iter().take(MAX_TEXT_ITEMS) {
            let owed: Vec<String> = lost
                .expected
                .iter()
                .map(|expected| {
                    format!(
                        "#{} {}{}",
                        expected.operation,
                        show_value(expected.value.as_deref()),
                        if expected.unknown { " (unknown)" } else { "" }
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "    n{} {} = {}, expected one of: {}",
                lost.node,
                lost.key,
                show_value(lost.observed.as_deref()),
                owed.join(", ")
            );
        }
    }

    fn render_convergence(&self, out: &mut String) {
        let Some(result) = &self.convergence else {
            let _ = writeln!(out, "  convergence: not run");
            return;
        };
        let indexes: Vec<String> = result
            .applied_indexes
            .iter()
            .map(|(node, index)| format!("n{node}@{index}"))
            .collect();
        let _ = writeln!(
            out,
            "  convergence: {} ({} nodes: {}; {} keys)",
            result.verdict.name(),
            result.nodes,
            indexes.join(" "),
            result.keys
        );
        if let Some(reason) = result.verdict.reason() {
            let _ = writeln!(out, "    {reason}");
        }
        for difference in result.differences.iter().take(MAX_TEXT_ITEMS) {
            let held: Vec<String> = difference
                .values
                .iter()
                .map(|(node, value)| {
                    format!("n{node}: {}", value.as_deref().unwrap_or("(nothing)"))
                })
                .collect();
            let _ = writeln!(out, "    {}: {}", difference.what, held.join(", "));
        }
    }

    fn render_cdrs(&self, out: &mut String) {
        let Some(result) = &self.cdrs else {
            return;
        };
        let _ = writeln!(
            out,
            "  cdrs: {} ({} call ends acknowledged; {} nodes checked, {} caught up from a \
             snapshot; {} missing)",
            result.verdict.name(),
            result.acknowledged,
            result.nodes_checked,
            result.nodes_incomplete,
            result.missing
        );
        if let Some(reason) = result.verdict.reason() {
            let _ = writeln!(out, "    {reason}");
        }
    }

    fn render_limits(&self, out: &mut String) {
        let Some(result) = &self.limits else {
            return;
        };
        let _ = writeln!(
            out,
            "  limits: {} ({} calls admitted, {} refused; at most {} at once, limit {})",
            result.verdict.name(),
            result.admitted,
            result.refused,
            result.most_at_once,
            result.limit
        );
        if let Some(reason) = result.verdict.reason() {
            let _ = writeln!(out, "    {reason}");
        }
    }

    fn render_availability(&self, out: &mut String) {
        let Some(result) = &self.availability else {
            let _ = writeln!(out, "  availability: not run");
            return;
        };
        let _ = writeln!(
            out,
            "  availability: {} ({} lookups on reachable nodes, {} failed, {} during faults; \
             {} left out as unreachable; stalest answer {})",
            result.verdict.name(),
            result.considered,
            result.failed,
            result.considered_during_faults,
            result.excluded_unreachable,
            match result.max_staleness_ms {
                // The node's sentinel for "has not heard from a leader since it started".
                Some(u64::MAX) => "unbounded (a node had not yet heard from a leader)".to_owned(),
                Some(ms) => format!("{ms} ms"),
                None => "unknown".to_owned(),
            }
        );
        for (kind, count) in &result.failures_by_kind {
            let _ = writeln!(out, "    {kind:<38} {count:>9}");
        }
        for operation in result.failed_operations.iter().take(MAX_TEXT_ITEMS) {
            let _ = writeln!(out, "    {operation}");
        }
        let eventful: Vec<_> = result
            .windows
            .iter()
            .filter(|window| window.during_fault || window.failures > 0)
            .collect();
        if !eventful.is_empty() {
            let _ = writeln!(
                out,
                "    timeline (windows of {} with faults or failures): start, lookups, failed",
                format_nanos(result.window_nanos)
            );
            for window in eventful {
                let _ = writeln!(
                    out,
                    "      {:>14} {:>7} {:>7}{}",
                    format_nanos(window.start_nanos),
                    window.operations,
                    window.failures,
                    if window.during_fault { "  fault" } else { "" }
                );
            }
        }
    }
}

/// Writes `history.jsonl` into `dir`: the faults and then the operations, one JSON object a
/// line (`{"fault": ...}` or `{"operation": ...}`), so a long history streams.
pub fn write_history(dir: &Path, history: &History) -> Result<(), ReportError> {
    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Line<'a> {
        Fault(&'a Fault),
        Operation(&'a crate::history::Operation),
        Dropped { operations: u64, faults: u64 },
    }
    create_dir(dir)?;
    let path = dir.join(HISTORY_JSON_LINES);
    let io_error = |source| ReportError::Io {
        path: path.clone(),
        source,
    };
    let file = fs::File::create(&path).map_err(io_error)?;
    let mut out = BufWriter::new(file);
    let lines = history
        .faults
        .iter()
        .map(Line::Fault)
        .chain(history.operations.iter().map(Line::Operation))
        .chain(std::iter::once(Line::Dropped {
            operations: history.dropped_operations,
            faults: history.dropped_faults,
        }));
    for line in lines {
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n").map_err(io_error)?;
    }
    out.flush().map_err(io_error)
}

fn create_dir(dir: &Path) -> Result<(), ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_owned(),
        source,
    })
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    fs::write(path, contents).map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{
        availability::{self, AvailabilityOptions},
        convergence::{self, FinalNodeState, SettingEntry},
        linearizable::{self, LinearizabilityOptions},
        lost_writes::{self, FinalRead},
        test_history::parse,
    };

    const HISTORY: &str = "
        fault kill-n2 0..1000000000 unreachable 2
        p0 0..10 write x 1 -> ok
        p1@n2 0..2000000000 write x 2 -> unknown timeout
        p0 20..30 read x -> 1
        p2@n3 40..50 lookup 1415 -> ok
        p2@n3 60..70 lookup 1415 -> fail not_applied
        p3 2000000000..2000000010 read y -> nil
    ";

    fn report() -> Report {
        let history = parse(HISTORY);
        let mut report = Report::new("unit/everything", &history);
        report.linearizability = Some(linearizable::check(
            &history,
            &LinearizabilityOptions::default(),
        ));
        report.lost_writes = Some(lost_writes::check(
            &history,
            &[FinalRead {
                node: 1,
                key: "x".into(),
                value: Some("3".into()),
            }],
        ));
        let state = |node| FinalNodeState {
            node,
            applied_index: 7,
            settings: vec![SettingEntry {
                key: "x".into(),
                value: "1".into(),
                modify_index: 3,
            }],
            digests: BTreeMap::new(),
        };
        report.convergence = Some(convergence::check(&[state(1), state(2)]));
        report.availability = Some(availability::check(
            &history,
            &AvailabilityOptions::default(),
        ));
        report
            .measurements
            .insert("write_recovery_p50_ms".into(), 412.5);
        report
    }

    #[test]
    fn counts_come_from_the_history() {
        let report = report();
        assert_eq!(report.operations, 6);
        assert_eq!(
            report.counts["write"],
            OutcomeCounts {
                ok: 1,
                fail: 0,
                unknown: 1
            }
        );
        assert_eq!(report.failures_by_kind["route_lookup fail/not_applied"], 1);
        assert!((report.operations_per_second - 3.0).abs() < 1e-6);
    }

    #[test]
    fn the_verdict_is_the_worst_checker_verdict() {
        let report = report();
        let verdict = report.verdict();
        assert!(verdict.is_fail());
        let reason = verdict.reason().unwrap();
        assert!(reason.contains("lost writes:"), "{reason}");
        assert!(reason.contains("availability:"), "{reason}");
        assert!(!reason.contains("linearizability:"), "{reason}");
        assert!(Report::new("empty", &History::default())
            .verdict()
            .reason()
            .unwrap()
            .contains("no checks ran"));
    }

    #[test]
    fn the_text_report_names_what_failed() {
        let text = report().render_text();
        for needle in [
            "Trunkline chaos run: unit/everything",
            "verdict: FAIL",
            "6 operations in 2.000000s (3.0 operations/s)",
            "route_lookup fail/not_applied",
            "0.000000s..1.000000s  kill-n2 (unreachable: n2)",
            "write_recovery_p50_ms",
            "linearizability: pass",
            "n1 x = 3, expected one of: #0 1, #1 2 (unknown)",
            "convergence: pass (2 nodes: n1@7 n2@7; 1 keys)",
            "availability: fail (2 lookups on reachable nodes, 1 failed",
            "#4 p2 n3 lookup 1415 -> fail (not_applied)",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
    }

    #[test]
    fn the_report_and_the_history_are_written_and_read_back() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("run");
        let report = report();
        report.write_to(&dir).unwrap();
        write_history(&dir, &parse(HISTORY)).unwrap();

        let json = fs::read_to_string(dir.join(REPORT_JSON)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["verdict"], "fail");
        assert_eq!(value["operations"], 6);
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        let text = fs::read_to_string(dir.join(REPORT_TEXT)).unwrap();
        assert_eq!(text, report.render_text());
        let lines = fs::read_to_string(dir.join(HISTORY_JSON_LINES)).unwrap();
        assert_eq!(lines.lines().count(), 1 + 6 + 1);
        assert!(lines.starts_with("{\"fault\":"), "{lines}");
    }
}
