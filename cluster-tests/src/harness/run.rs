//! Whether the chaos suites run, and where a run's report goes.
//!
//! The short suite runs on every `cargo test`; without Docker it fails with a message that
//! says what is missing, unless `TRUNKLINE_CHAOS=0` skips it explicitly (printed, never
//! silent). The long suite runs only with `TRUNKLINE_CHAOS_LONG=1`.
//!
//! Reports go under `$CARGO_TARGET_DIR/chaos/<suite>-<UTC timestamp>/<test>/` (the target
//! folder is found from the test executable when `CARGO_TARGET_DIR` is not set).

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use super::{docker, HarnessError, Result};

/// `TRUNKLINE_CHAOS=0` skips the chaos suites explicitly.
pub const CHAOS_ENV: &str = "TRUNKLINE_CHAOS";
/// `TRUNKLINE_CHAOS_LONG=1` runs the long suite too.
pub const LONG_ENV: &str = "TRUNKLINE_CHAOS_LONG";

/// Whether a suite runs: `Ok(true)` go, `Ok(false)` skipped explicitly (already printed),
/// `Err` Docker is needed and missing: the test must fail with that message.
pub async fn docker_gate(suite: &str) -> Result<bool> {
    if std::env::var(CHAOS_ENV).is_ok_and(|value| value.trim() == "0") {
        println!("chaos {suite} suite skipped: {CHAOS_ENV}=0");
        return Ok(false);
    }
    docker::check_available().await?;
    sweep_once();
    Ok(true)
}

/// Whether the long suite was asked for; prints why not when it wasn't.
pub fn long_suite_enabled(test: &str) -> bool {
    let enabled = std::env::var(LONG_ENV).is_ok_and(|value| value.trim() == "1");
    if !enabled {
        println!("chaos long suite: {test} not run; set {LONG_ENV}=1 to run it");
    }
    enabled
}

/// Report folders kept per suite (newest first) before older ones are deleted: a report
/// with its history is a few megabytes, and CI runs keep adding them.
pub const KEPT_REPORTS_PER_SUITE: usize = 20;

/// Removes leftovers of interrupted earlier runs and old reports, once per test process.
fn sweep_once() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let sweep = docker::sweep_leftovers();
        if !sweep.runs.is_empty() {
            println!(
                "chaos: removed leftovers of earlier runs: {}",
                sweep.runs.join(", ")
            );
        }
        prune_reports(&target_dir().join("chaos"), KEPT_REPORTS_PER_SUITE);
    });
}

/// Deletes all but the newest `keep` report folders of each suite under `root`
/// (`<suite>-<timestamp>`; the timestamps sort by time).
fn prune_reports(root: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut by_suite: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((suite, _)) = name.rsplit_once('-') {
            by_suite
                .entry(suite.to_owned())
                .or_default()
                .push(entry.path());
        }
    }
    for (_, mut folders) in by_suite {
        folders.sort();
        let old = folders.len().saturating_sub(keep);
        for folder in folders.into_iter().take(old) {
            let _ = std::fs::remove_dir_all(folder);
        }
    }
}

/// The cargo target folder: `CARGO_TARGET_DIR`, else the folder the test executable was
/// built in (`<target>/debug/deps/<test>`), else `target`.
pub fn target_dir() -> PathBuf {
    if let Some(folder) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(folder);
    }
    std::env::current_exe()
        .ok()
        .and_then(|executable| executable.ancestors().nth(3).map(Path::to_owned))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// `<target>/chaos/<suite>-<timestamp>`: one folder per suite and test process.
pub fn suite_dir(suite: &str) -> PathBuf {
    static STARTED: OnceLock<String> = OnceLock::new();
    let started = STARTED.get_or_init(|| utc_timestamp(docker::unix_seconds()));
    target_dir()
        .join("chaos")
        .join(format!("{suite}-{started}"))
}

/// The folder of one test's report; created.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn create(suite: &str, test: &str) -> Result<RunDir> {
        let path = suite_dir(suite).join(test);
        std::fs::create_dir_all(&path)
            .map_err(|error| HarnessError::io(format!("can't create {}", path.display()), error))?;
        Ok(RunDir { path })
    }

    /// Where container logs go when the run fails.
    pub fn logs_dir(&self) -> PathBuf {
        self.path.join("logs")
    }

    /// Writes `name` in the run folder.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<PathBuf> {
        let path = self.path.join(name);
        std::fs::write(&path, contents)
            .map_err(|error| HarnessError::io(format!("can't write {}", path.display()), error))?;
        Ok(path)
    }
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time.
pub fn utc_timestamp(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let seconds = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60
    )
}

/// Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (no dates before it).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_reports_of_each_suite_are_kept() {
        let root = tempfile::tempdir().unwrap();
        for name in [
            "short-20250101T000000Z",
            "short-20250102T000000Z",
            "short-20250103T000000Z",
            "long-20250101T000000Z",
        ] {
            std::fs::create_dir(root.path().join(name)).unwrap();
        }
        prune_reports(root.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "long-20250101T000000Z",
                "short-20250102T000000Z",
                "short-20250103T000000Z"
            ]
        );
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(0), "19700101T000000Z");
        assert_eq!(utc_timestamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_timestamp(1_735_689_599), "20241231T235959Z");
    }
}
