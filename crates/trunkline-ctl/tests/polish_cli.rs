//! trunkctl's shell completions, man pages and YAML output: generated from the same clap
//! definition the commands parse with, so a new command appears in each by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{check, start_node_with, trunkctl_as, trunkctl_command};

fn run(args: &[&str]) -> std::process::Output {
    trunkctl_command().args(args).output().unwrap()
}

#[test]
fn completions_for_each_shell_know_every_command() {
    for (shell, marker) in [
        ("bash", "_trunkctl()"),
        ("zsh", "#compdef trunkctl"),
        ("fish", "complete -c trunkctl"),
    ] {
        let stdout = check(run(&["completions", shell]), 0, &[marker], &[]);
        for command in ["doctor", "backup", "cluster", "rates"] {
            assert!(
                stdout.contains(command),
                "{shell} completions lack {command}"
            );
        }
    }
    check(run(&["completions", "tcsh"]), 2, &[], &["invalid value"]);
}

#[test]
fn the_man_page_documents_the_commands_and_one_page_per_command_is_written() {
    let stdout = check(run(&["man"]), 0, &[".TH trunkctl"], &[]);
    assert!(stdout.contains("doctor"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    check(
        run(&["man", "--out-dir", dir.path().to_str().unwrap()]),
        0,
        &[],
        &[],
    );
    for page in [
        "trunkctl.1",
        "trunkctl-backup.1",
        "trunkctl-doctor.1",
        "trunkctl-cluster-status.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|error| panic!("{page}: {error}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
    }
}

#[test]
fn output_yaml_is_the_json_answer_as_yaml() {
    let (node, token) = start_node_with(true);
    let json = check(
        trunkctl_as(&node, &token, &["-o", "json", "cluster", "status"]),
        0,
        &[],
        &[],
    );
    let yaml = check(
        trunkctl_as(&node, &token, &["-o", "yaml", "cluster", "status"]),
        0,
        &[
            "- applied_index: ",
            "  endpoint: \"",
            "  state: \"leader\"",
            "  node_id: 1",
        ],
        &[],
    );
    let answers: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    // Every top-level field of the JSON answer is a key of the YAML one.
    for key in answers[0].as_object().unwrap().keys() {
        assert!(
            yaml.contains(&format!("  {key}:")) || yaml.contains(&format!("- {key}:")),
            "{key} missing:\n{yaml}"
        );
    }
}
