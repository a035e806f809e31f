//! The option numbers this crate writes are the options mimalloc reads from its environment
//! by name: a child process of this test, which does not use the tuned allocator, is started
//! with `MIMALLOC_ARENA_EAGER_COMMIT` and `MIMALLOC_PURGE_DELAY` set, and must read them
//! back through the same numbers. A mimalloc upgrade that renumbers its options fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const CHILD: &str = "TRUNKLINE_ALLOC_OPTION_NUMBERS_CHILD";

#[test]
fn the_option_numbers_name_the_options_mimalloc_reads_from_its_environment() {
    if std::env::var_os(CHILD).is_some() {
        println!("child read {:?}", trunkline_alloc::options());
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_option_numbers_name_the_options_mimalloc_reads_from_its_environment",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("MIMALLOC_ARENA_EAGER_COMMIT", "2")
        .env("MIMALLOC_PURGE_DELAY", "123")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("child read Options { arena_eager_commit: 2, purge_delay_ms: 123 }"),
        "{stdout}"
    );
}
