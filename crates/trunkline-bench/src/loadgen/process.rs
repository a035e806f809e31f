//! What a server spent serving a run: CPU time and memory of its processes, read from
//! `/proc` before and after the measured window.
//!
//! A server is the processes given (`--server-pids`) and all their descendants, so
//! PostgreSQL's postmaster brings its backends. CPU is user + system time of every thread
//! (`/proc/PID/stat`, fields 14 and 15, in clock ticks); a process that started during the
//! window counts from zero. Memory is the sum of `VmRSS` (`/proc/PID/status`), which counts
//! pages shared between processes once in each (PostgreSQL's shared buffers in every backend
//! that touched them), and of `Pss` (`/proc/PID/smaps_rollup`), which splits shared pages
//! between their processes and so adds up to what the server really holds.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Clock ticks per second in `/proc/PID/stat`: Linux's `USER_HZ`, 100 on every architecture
/// a kernel exports it for (it is part of the ABI, whatever `CONFIG_HZ` is).
pub const TICKS_PER_SECOND: u64 = 100;

/// One process's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessSample {
    /// User + system time, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    pub pss_kib: u64,
}

/// Every process of a server at one moment, by pid.
#[derive(Clone, Debug, Default)]
pub struct ServerSample {
    pub processes: BTreeMap<u32, ProcessSample>,
}

/// What a server spent over a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    /// The pids given; their descendants were counted too.
    pub pids: Vec<u32>,
    /// Processes found at the end of the window.
    pub processes: usize,
    /// CPU seconds (user + system) spent in the window.
    pub cpu_seconds: f64,
    /// Summed over the processes at the end of the window.
    pub rss_kib: u64,
    pub pss_kib: u64,
}

impl ServerUsage {
    /// The CPU spent between `before` and `after`; memory as it was `after`.
    pub fn between(pids: &[u32], before: &ServerSample, after: &ServerSample) -> ServerUsage {
        let mut ticks = 0;
        for (pid, end) in &after.processes {
            let start = before.processes.get(pid).map_or(0, |start| start.cpu_ticks);
            ticks += end.cpu_ticks.saturating_sub(start);
        }
        ServerUsage {
            pids: pids.to_vec(),
            processes: after.processes.len(),
            cpu_seconds: ticks as f64 / TICKS_PER_SECOND as f64,
            rss_kib: after.processes.values().map(|sample| sample.rss_kib).sum(),
            pss_kib: after.processes.values().map(|sample| sample.pss_kib).sum(),
        }
    }
}

/// Samples `pids` and every descendant now. Processes that went away are left out; a pid
/// given that is not running is an error, so a mistyped pid is not measured as an idle server.
pub fn sample(pids: &[u32]) -> Result<ServerSample, String> {
    let mut processes = BTreeMap::new();
    for pid in descendants(pids, &parents()) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        let Some(cpu_ticks) = stat.ok().as_deref().and_then(cpu_ticks) else {
            if pids.contains(&pid) {
                return Err(format!("--server-pids: no process {pid}"));
            }
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        processes.insert(
            pid,
            ProcessSample {
                cpu_ticks,
                rss_kib: kib_field(&status, "VmRSS:").unwrap_or(0),
                pss_kib: kib_field(&rollup, "Pss:").unwrap_or(0),
            },
        );
    }
    Ok(ServerSample { processes })
}

/// This process's own CPU ticks (the load generator's cost), or 0 if `/proc` can't say.
pub fn own_cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(cpu_ticks)
        .unwrap_or(0)
}

/// utime + stime from a `/proc/PID/stat` line. The command name (field 2) is in parentheses
/// and may hold spaces and parentheses itself, so fields are counted after the last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // After the name: state is field 3, so field N is at N - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// The parent pid from a `/proc/PID/stat` line (field 4).
pub fn parent_pid(stat: &str) -> Option<u32> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    after_name.split_whitespace().nth(4 - 3)?.parse().ok()
}

/// A `Name:   1234 kB` line's number, from `/proc/PID/status` or `smaps_rollup`.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Every running process's parent, by pid.
fn parents() -> BTreeMap<u32, u32> {
    let mut parents = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return parents;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if let Some(parent) = parent_pid(&stat) {
            parents.insert(pid, parent);
        }
    }
    parents
}

/// `roots` and all their descendants, given each process's parent.
pub fn descendants(roots: &[u32], parents: &BTreeMap<u32, u32>) -> BTreeSet<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (child, parent) in parents {
        children.entry(*parent).or_default().push(*child);
    }
    let mut found: BTreeSet<u32> = roots.iter().copied().collect();
    let mut queue: Vec<u32> = roots.to_vec();
    while let Some(pid) = queue.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if found.insert(*child) {
                queue.push(*child);
            }
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A stat line of `postgres` whose name has a space and a parenthesis.
    const STAT: &str = "4242 (postgres: a) b) S 4200 4242 4242 0 -1 4194560 1077 0 0 0 \
                        731 265 0 0 20 0 1 0 4110 226947072 2466 18446744073709551615";

    #[test]
    fn cpu_ticks_are_user_plus_system_after_the_name() {
        assert_eq!(cpu_ticks(STAT), Some(731 + 265));
        assert_eq!(parent_pid(STAT), Some(4200));
    }

    #[test]
    fn a_truncated_stat_line_has_no_ticks() {
        assert_eq!(cpu_ticks("4242 (postgres) S 4200 4242"), None);
        assert_eq!(cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn kib_fields_are_read_by_name() {
        let status = "Name:\tredis-server\nVmHWM:\t   9000 kB\nVmRSS:\t   8124 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(8124));
        assert_eq!(kib_field(status, "Pss:"), None);
    }

    #[test]
    fn descendants_include_grandchildren_and_nothing_else() {
        // 1 ─ 10 ─ 11 ─ 12, 1 ─ 20.
        let parents = BTreeMap::from([(10, 1), (11, 10), (12, 11), (20, 1)]);
        let found: Vec<u32> = descendants(&[10], &parents).into_iter().collect();
        assert_eq!(found, [10, 11, 12]);
    }

    #[test]
    fn usage_counts_new_processes_from_zero_and_ignores_gone_ones() {
        let at = |entries: &[(u32, u64, u64)]| ServerSample {
            processes: entries
                .iter()
                .map(|&(pid, cpu_ticks, rss_kib)| {
                    let sample = ProcessSample {
                        cpu_ticks,
                        rss_kib,
                        pss_kib: rss_kib / 2,
                    };
                    (pid, sample)
                })
                .collect(),
        };
        let before = at(&[(1, 1_000, 0), (2, 50, 0)]);
        // 1 spent 250 ticks, 2 went away, 3 started and spent 30.
        let after = at(&[(1, 1_250, 4_000), (3, 30, 1_000)]);
        let usage = ServerUsage::between(&[1], &before, &after);
        assert_eq!(usage.processes, 2);
        assert!((usage.cpu_seconds - 2.8).abs() < 1e-9, "{usage:?}");
        assert_eq!((usage.rss_kib, usage.pss_kib), (5_000, 2_500));
    }
}
