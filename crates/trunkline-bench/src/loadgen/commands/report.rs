//! `loadgen report`: the runs' JSON lines (as `loadgen` printed them) made into the report
//! in docs/performance.md — the pairs (Trunkline against the anchor doing the same work,
//! and the ratio of their rates), every run in detail, the machine and the command — and the
//! same as one JSON document.
//!
//! The markdown goes between the `<!-- loadgen-report:begin -->` and `end` markers of the
//! file, so the prose around it is kept.

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::loadgen::driver::RunResult;

pub const BEGIN_MARKER: &str = "<!-- loadgen-report:begin -->";
pub const END_MARKER: &str = "<!-- loadgen-report:end -->";

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The runs, one JSON object a line.
    #[arg(long)]
    pub results: PathBuf,
    /// The markdown file whose report section to replace.
    #[arg(long)]
    pub markdown: PathBuf,
    /// Where to write the report as JSON.
    #[arg(long)]
    pub json: PathBuf,
    /// A row of the pairs table: `WHAT|TRUNKLINE RUN LABEL|ANCHOR RUN LABEL`.
    #[arg(long = "pair", value_parser = pair)]
    pub pairs: Vec<Pair>,
    /// The command that reproduces the report.
    #[arg(long)]
    pub command: String,
    /// When the runs were made.
    #[arg(long)]
    pub date: String,
    /// The commit measured.
    #[arg(long)]
    pub commit: String,
    /// The load average before the runs started (`/proc/loadavg`'s first three fields).
    #[arg(long)]
    pub load_before: String,
    /// A line for the report's list of what was measured with what (versions, settings).
    #[arg(long = "note")]
    pub notes: Vec<String>,
}

/// One row of the pairs table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    pub what: String,
    pub trunkline: String,
    pub anchor: String,
}

fn pair(text: &str) -> Result<Pair, String> {
    let mut parts = text.split('|').map(str::trim);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(what), Some(trunkline), Some(anchor), None)
            if !what.is_empty() && !trunkline.is_empty() && !anchor.is_empty() =>
        {
            Ok(Pair {
                what: what.to_owned(),
                trunkline: trunkline.to_owned(),
                anchor: anchor.to_owned(),
            })
        }
        _ => Err(format!(
            "{text:?} is not WHAT|TRUNKLINE RUN LABEL|ANCHOR RUN LABEL"
        )),
    }
}

/// The machine the runs were made on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub load_average_before: String,
}

impl Machine {
    fn this(load_before: &str) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |cores| cores.get()),
            cpu_model: cpuinfo
                .lines()
                .find_map(|line| line.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map_or_else(
                    || "unknown".to_owned(),
                    |(_, model)| model.trim().to_owned(),
                ),
            memory_gib: crate::loadgen::process::kib_field(&meminfo, "MemTotal:")
                .map_or(0.0, |kib| kib as f64 / (1024.0 * 1024.0)),
            load_average_before: load_before.to_owned(),
        }
    }
}

/// A pair as reported: the two runs' rates and their ratio.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairResult {
    #[serde(flatten)]
    pub pair: Pair,
    pub trunkline_per_second: Option<f64>,
    pub anchor_per_second: Option<f64>,
    /// Trunkline's rate over the anchor's.
    pub ratio: Option<f64>,
}

/// The whole report, as docs/performance.json holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub date: String,
    pub commit: String,
    pub command: String,
    pub machine: Machine,
    pub notes: Vec<String>,
    pub pairs: Vec<PairResult>,
    pub runs: Vec<RunResult>,
}

impl Report {
    pub fn new(args: &Args, machine: Machine, runs: Vec<RunResult>) -> Report {
        let by_label: BTreeMap<&str, &RunResult> =
            runs.iter().map(|run| (run.label.as_str(), run)).collect();
        let rate = |label: &str| by_label.get(label).map(|run| run.per_second);
        let pairs = args
            .pairs
            .iter()
            .map(|pair| {
                let (trunkline, anchor) = (rate(&pair.trunkline), rate(&pair.anchor));
                PairResult {
                    pair: pair.clone(),
                    trunkline_per_second: trunkline,
                    anchor_per_second: anchor,
                    ratio: trunkline
                        .zip(anchor)
                        .filter(|(_, anchor)| *anchor > 0.0)
                        .map(|(trunkline, anchor)| trunkline / anchor),
                }
            })
            .collect();
        Report {
            date: args.date.clone(),
            commit: args.commit.clone(),
            command: args.command.clone(),
            machine,
            notes: args.notes.clone(),
            pairs,
            runs,
        }
    }

    /// The markdown section.
    pub fn markdown(&self) -> String {
        let by_label: BTreeMap<&str, &RunResult> = self
            .runs
            .iter()
            .map(|run| (run.label.as_str(), run))
            .collect();
        let mut out = String::new();
        let machine = &self.machine;
        out.push_str(&format!(
            "Measured {} at commit `{}` on {} cores ({}) with {:.0} GiB of memory. Load \
             average before the runs: {}.\n\n",
            self.date,
            self.commit,
            machine.cores,
            machine.cpu_model,
            machine.memory_gib,
            machine.load_average_before
        ));
        out.push_str(&format!(
            "Reproduce with:\n\n```sh\n{}\n```\n\n",
            self.command
        ));
        for note in &self.notes {
            out.push_str(&format!("- {note}\n"));
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out.push_str(
            "### Trunkline against the anchors\n\n\
             Each cell with two values is Trunkline · anchor. Ratio: Trunkline's requests per \
             second over the anchor's. Server CPU and memory are those of all the server's \
             processes (every member of a cluster); memory is their PSS at the end of the run \
             (below: RSS too).\n\n\
             | what | Trunkline | anchor | ratio | p50 ms | p99 ms | p99.9 ms | server CPU µs/op | server memory MiB |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for pair in &self.pairs {
            let trunkline = by_label.get(pair.pair.trunkline.as_str()).copied();
            let anchor = by_label.get(pair.pair.anchor.as_str()).copied();
            let both = |value: &dyn Fn(&RunResult) -> String| {
                format!(
                    "{} · {}",
                    trunkline.map_or_else(|| "–".to_owned(), value),
                    anchor.map_or_else(|| "–".to_owned(), value)
                )
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                pair.pair.what,
                rate_cell(trunkline, &pair.pair.trunkline, false),
                rate_cell(anchor, &pair.pair.anchor, true),
                pair.ratio
                    .map_or_else(|| "–".to_owned(), |ratio| format!("{ratio:.2}")),
                both(&|run| format!("{:.3}", run.latency.p50_ms)),
                both(&|run| format!("{:.3}", run.latency.p99_ms)),
                both(&|run| format!("{:.3}", run.latency.p999_ms)),
                both(&|run| {
                    run.server_cpu_micros_per_op
                        .map_or_else(|| "–".to_owned(), |cpu| format!("{cpu:.1}"))
                }),
                both(&|run| {
                    run.server
                        .as_ref()
                        .map_or_else(|| "–".to_owned(), |server| mib(server.pss_kib))
                }),
            ));
        }
        out.push_str(
            "\n### Every run\n\n\
             In flight: connections × requests in flight on each (× the window of each stream). \
             PSS splits pages shared between a server's processes among them (RSS counts \
             PostgreSQL's shared buffers once per backend). Client CPU: the load generator's \
             own, on the same cores.\n\n\
             | run | backend | in flight | mode | requests/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | empty | errors | server CPU µs/op | RSS MiB | PSS MiB | client CPU s |\n\
             | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for run in &self.runs {
            let shape = &run.shape;
            let mut in_flight = format!("{} × {}", shape.connections, shape.streams_per_connection);
            if let Some(window) = shape.window_per_stream {
                in_flight.push_str(&format!(" × {window}"));
            }
            let mode = match run.target_per_second {
                Some(rate) => format!("open, {rate}/s"),
                None => run.mode.clone(),
            };
            let server = run.server.as_ref();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {:.2} |\n",
                run.label,
                shape.backend,
                in_flight,
                mode,
                run.per_second,
                run.latency.p50_ms,
                run.latency.p90_ms,
                run.latency.p99_ms,
                run.latency.p999_ms,
                run.latency.max_ms,
                run.empty,
                run.errors,
                run.server_cpu_micros_per_op
                    .map_or_else(|| "–".to_owned(), |cpu| format!("{cpu:.1}")),
                server.map_or_else(|| "–".to_owned(), |server| mib(server.rss_kib)),
                server.map_or_else(|| "–".to_owned(), |server| mib(server.pss_kib)),
                run.client_cpu_seconds,
            ));
        }
        let failed: Vec<&RunResult> = self.runs.iter().filter(|run| run.errors > 0).collect();
        if !failed.is_empty() {
            out.push_str("\nErrors:\n\n");
            for run in failed {
                for (kind, (count, message)) in &run.error_kinds {
                    out.push_str(&format!("- {}: {count} × {kind}: {message}\n", run.label));
                }
            }
        }
        out
    }
}

/// A run's rate, after the anchor's name when `named`.
fn rate_cell(run: Option<&RunResult>, label: &str, named: bool) -> String {
    match run {
        Some(run) if named => format!(
            "{} {:.0}/s",
            anchor_name(&run.shape.backend),
            run.per_second
        ),
        Some(run) => format!("{:.0}/s", run.per_second),
        None => format!("{label}: no result"),
    }
}

/// What an anchor's backend is called in the pairs table.
fn anchor_name(backend: &str) -> &str {
    match backend {
        "redis-lpm" => "Redis MGET",
        "postgres-lpm" => "PostgreSQL",
        "etcd-put" => "etcd Put",
        other => other,
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

/// `document` with the text between the report markers replaced by `section`.
pub fn splice(document: &str, section: &str) -> Result<String, String> {
    let begin = document
        .find(BEGIN_MARKER)
        .ok_or_else(|| format!("no {BEGIN_MARKER} line"))?;
    let end = document
        .find(END_MARKER)
        .filter(|end| *end > begin)
        .ok_or_else(|| format!("no {END_MARKER} line after {BEGIN_MARKER}"))?;
    Ok(format!(
        "{}{BEGIN_MARKER}\n{}{}",
        &document[..begin],
        section.trim_end().to_owned() + "\n",
        &document[end..]
    ))
}

/// Reads JSON lines of runs; a line that is not one is an error naming it.
pub fn parse_results(text: &str) -> Result<Vec<RunResult>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str(line).map_err(|error| format!("line {}: {error}", number + 1))
        })
        .collect()
}

pub async fn exec(args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("--results {}", args.results.display()))?;
    let runs = parse_results(&text)
        .map_err(|error| anyhow::anyhow!("--results {}: {error}", args.results.display()))?;
    let document = std::fs::read_to_string(&args.markdown)
        .with_context(|| format!("--markdown {}", args.markdown.display()))?;
    let report = Report::new(&args, Machine::this(&args.load_before), runs);
    let document = match splice(&document, &report.markdown()) {
        Ok(document) => document,
        Err(error) => bail!("--markdown {}: {error}", args.markdown.display()),
    };
    std::fs::write(&args.markdown, document)
        .with_context(|| format!("can't write {}", args.markdown.display()))?;
    let json = serde_json::to_string_pretty(&report)? + "\n";
    std::fs::write(&args.json, json)
        .with_context(|| format!("can't write {}", args.json.display()))?;
    eprintln!(
        "report: {} runs, {} pairs in {} and {}",
        report.runs.len(),
        report.pairs.len(),
        args.markdown.display(),
        args.json.display()
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn run(label: &str, per_second: f64) -> RunResult {
        RunResult {
            label: label.to_owned(),
            per_second,
            ..Default::default()
        }
    }

    fn args(pairs: &[&str]) -> Args {
        Args {
            results: PathBuf::new(),
            markdown: PathBuf::new(),
            json: PathBuf::new(),
            pairs: pairs.iter().map(|text| pair(text).unwrap()).collect(),
            command: "run.sh".to_owned(),
            date: "today".to_owned(),
            commit: "abc".to_owned(),
            load_before: "0.1 0.2 0.3".to_owned(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn pairs_take_three_parts() {
        assert_eq!(
            pair("lookup | route-1 | redis").unwrap(),
            Pair {
                what: "lookup".to_owned(),
                trunkline: "route-1".to_owned(),
                anchor: "redis".to_owned()
            }
        );
        assert!(pair("lookup|route-1").is_err());
        assert!(pair("a|b|c|d").is_err());
        assert!(pair("a||c").is_err());
    }

    #[test]
    fn the_ratio_is_trunkline_over_the_anchor_and_missing_runs_have_none() {
        let mut redis = run("redis", 23_000.0);
        redis.shape.backend = "redis-lpm".to_owned();
        let runs = vec![run("route", 11_500.0), redis];
        let report = Report::new(
            &args(&["lookup|route|redis", "writes|set|etcd"]),
            Machine::default(),
            runs,
        );
        assert_eq!(report.pairs[0].ratio, Some(0.5));
        assert_eq!(report.pairs[1].ratio, None);
        let markdown = report.markdown();
        assert!(
            markdown.contains("| lookup | 11500/s | Redis MGET 23000/s | 0.50 |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| writes | set: no result | etcd: no result | – |"),
            "{markdown}"
        );
    }

    #[test]
    fn the_report_replaces_only_what_is_between_the_markers() {
        let document =
            format!("# Performance\n\nprose\n\n{BEGIN_MARKER}\nold\n{END_MARKER}\n\nmore prose\n");
        let spliced = splice(&document, "new\n\n").unwrap();
        assert_eq!(
            spliced,
            format!("# Performance\n\nprose\n\n{BEGIN_MARKER}\nnew\n{END_MARKER}\n\nmore prose\n")
        );
        assert!(splice("no markers", "x").is_err());
        assert!(splice(&format!("{END_MARKER}\n{BEGIN_MARKER}\n"), "x").is_err());
    }

    #[test]
    fn results_are_read_back_as_printed() {
        let mut printed = run("redis", 37_000.0);
        printed.latency.p99_ms = 1.25;
        let text = serde_json::to_string(&printed).unwrap() + "\n\n";
        assert_eq!(parse_results(&text).unwrap(), [printed]);
        assert!(parse_results("{\"label\": 3}\n")
            .unwrap_err()
            .starts_with("line 1"));
    }
}
