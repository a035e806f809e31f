//! What durability and verification cost: one log append made durable (sled's flush, then
//! the acknowledged record's fdatasync, as openraft waits for it before acknowledging), one
//! vote saved, and opening a data folder, which reads and checks every stored value once; the
//! append again with encryption at rest.
//!
//! Run: `cargo bench -p trunkline-store --bench durability`. The folders live in the system
//! temp dir; numbers depend on that disk's sync latency.

// A benchmark that cannot set up its inputs has nothing to measure: failing loudly with the
// reason is the right answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, Vote};
use trunkline_core::settings::SettingsCommand;
use trunkline_core::{Command, Request};
use trunkline_store::{Identity, Store, TypeConfig};

fn identity() -> Identity {
    Identity {
        cluster_name: "bench".to_owned(),
        node_id: 1,
    }
}

fn entry(index: u64, value_bytes: usize) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Request {
            idempotency: None,
            time_ms: index,
            actor: None,
            command: Command::Settings(SettingsCommand::Set {
                key: format!("key-{}", index % 100),
                value: "v".repeat(value_bytes),
            }),
        }),
    }
}

fn durability(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("append"), &identity()).unwrap();
    let mut log_store = store.log_store();
    let mut next_index = 0u64;
    let mut group = c.benchmark_group("store");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("append one 200-byte entry, durable and acknowledged", |b| {
        b.iter(|| {
            runtime.block_on(async {
                log_store
                    .blocking_append([entry(next_index, 200)])
                    .await
                    .unwrap();
            });
            next_index += 1;
        })
    });
    // The same append with encryption at rest: what sealing adds to the write path.
    let keys = trunkline_store::seal::KeyRing::parse(
        "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    )
    .unwrap();
    let sealed_store = Store::open_with_keys(
        &dir.path().join("append-sealed"),
        &identity(),
        Some(std::sync::Arc::new(keys)),
    )
    .unwrap();
    let mut sealed_log = sealed_store.log_store();
    let mut sealed_index = 0u64;
    group.bench_function(
        "append one 200-byte entry, encrypted, durable and acknowledged",
        |b| {
            b.iter(|| {
                runtime.block_on(async {
                    sealed_log
                        .blocking_append([entry(sealed_index, 200)])
                        .await
                        .unwrap();
                });
                sealed_index += 1;
            })
        },
    );
    drop(sealed_log);
    drop(sealed_store);
    let mut term = 1u64;
    group.bench_function("save a vote", |b| {
        b.iter(|| {
            term += 1;
            runtime.block_on(async { log_store.save_vote(&Vote::new(term, 1)).await.unwrap() });
        })
    });
    drop(log_store);
    drop(store);

    // A folder with 2,000 entries of 2 KiB (4 MB of log): what a restart reads and checks.
    let folder = dir.path().join("open");
    {
        let store = Store::open(&folder, &identity()).unwrap();
        let mut log_store = store.log_store();
        runtime.block_on(async {
            for start in (0..2_000u64).step_by(100) {
                let batch: Vec<_> = (start..start + 100).map(|i| entry(i, 2_048)).collect();
                log_store.blocking_append(batch).await.unwrap();
            }
        });
    }
    group.sample_size(20);
    group.bench_function("open and verify a folder of 2,000 entries (4 MB)", |b| {
        b.iter(|| drop(Store::open(&folder, &identity()).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, durability);
criterion_main!(benches);
