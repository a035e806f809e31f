//! The crate edges ARCHITECTURE.md promises, checked from `cargo metadata` so a new
//! dependency that breaks one fails a test instead of slipping in:
//!
//! - the core is sans-IO: nothing it depends on, directly or not, is an async runtime, gRPC,
//!   protobuf, a database or a clock;
//! - only the store crate depends on sled;
//! - trunkctl and the client library never depend on the node or the store.

// A test helper: a failure to run `cargo metadata` should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The workspace's packages and, for each, its normal (not dev, not build) dependencies.
struct Graph {
    /// Package name -> normal dependencies, by name, as resolved for this platform.
    normal: BTreeMap<String, BTreeSet<String>>,
    members: BTreeSet<String>,
}

fn graph() -> Graph {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let name_of: BTreeMap<String, String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            (
                package["id"].as_str().unwrap().to_owned(),
                package["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let members = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| name_of[id.as_str().unwrap()].clone())
        .collect();
    let mut normal: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().unwrap() {
        let name = name_of[node["id"].as_str().unwrap()].clone();
        let dependencies: BTreeSet<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|dependency| {
                dependency["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|kind| kind["kind"].is_null())
            })
            .map(|dependency| name_of[dependency["pkg"].as_str().unwrap()].clone())
            .collect();
        normal.entry(name).or_default().extend(dependencies);
    }
    Graph { normal, members }
}

impl Graph {
    /// Everything `package` depends on at run time, directly or not.
    fn closure(&self, package: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut pending = vec![package.to_owned()];
        while let Some(next) = pending.pop() {
            for dependency in self.normal.get(&next).into_iter().flatten() {
                if seen.insert(dependency.clone()) {
                    pending.push(dependency.clone());
                }
            }
        }
        seen
    }
}

/// The `forbidden` names found in `found`.
fn offenders<'a>(found: &'a BTreeSet<String>, forbidden: &[&str]) -> Vec<&'a String> {
    found
        .iter()
        .filter(|name| forbidden.contains(&name.as_str()))
        .collect()
}

#[test]
fn the_core_depends_on_no_runtime_transport_database_or_clock() {
    let graph = graph();
    let closure = graph.closure("trunkline-core");
    let found = offenders(
        &closure,
        &[
            "tokio",
            "tonic",
            "prost",
            "hyper",
            "sled",
            "openraft",
            "chrono",
            "time",
            "async-std",
            "mio",
        ],
    );
    assert!(found.is_empty(), "trunkline-core depends on {found:?}");
    // sha2 hashes token secrets: pure computation, no I/O. jiff turns a time given as an
    // input into a local time in a policy's time zone (with its built-in database, no files);
    // the core never asks it for the current time (checked below). serde_json reads and
    // writes a backup file's header (`backup.rs`), bytes in and out, no I/O.
    let expected: BTreeSet<String> = ["jiff", "rand", "serde", "serde_json", "sha2", "thiserror"]
        .map(str::to_owned)
        .into();
    assert_eq!(
        graph.normal["trunkline-core"], expected,
        "the core's direct dependencies changed"
    );
}

#[test]
fn the_core_never_reads_the_clock() {
    let mut pending = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    let mut offenders = Vec::new();
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for needle in [
                    "Timestamp::now",
                    "Zoned::now",
                    "SystemTime::now",
                    "Instant::now",
                ] {
                    if text.contains(needle) {
                        offenders.push(format!("{}: {needle}", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the core reads the clock: {offenders:?}"
    );
}

#[test]
fn only_the_store_depends_on_sled() {
    let graph = graph();
    let direct: Vec<&String> = graph
        .members
        .iter()
        .filter(|member| graph.normal[*member].contains("sled"))
        .collect();
    assert_eq!(direct, [&"trunkline-store".to_owned()]);
    // Not vacuous: the node does reach sled, through the store.
    assert!(graph.closure("trunkline-node").contains("sled"));
}

#[test]
fn trunkctl_and_the_client_know_neither_node_nor_store() {
    let graph = graph();
    for package in ["trunkline-ctl", "trunkline-client"] {
        let closure = graph.closure(package);
        let found = offenders(
            &closure,
            &["trunkline-node", "trunkline-store", "sled", "openraft"],
        );
        assert!(found.is_empty(), "{package} depends on {found:?}");
        assert!(
            closure.contains("tonic"),
            "{package}'s dependencies were not read"
        );
    }
}
