//! `loadgen deck-memory`: what a rate deck row costs in resident memory, in a Trunkline node
//! and in Redis, at deck sizes an operator runs (1M and 5M rows by default).
//!
//! For each size: a fresh `trunkline dev --no-auth` node is started, stopped and started
//! again (its resident memory then is the baseline: the demo's decks, no bulk deck); a deck of
//! that many rows with random 4 to 10 digit prefixes (distinct, fixed seed) is imported into
//! one carrier through the admin API as an operator's import goes (StageRates in chunks of
//! 5,000 rows, then CommitRates); once the node has compacted the import out of its log with
//! a snapshot (it does after every deck commit) it is stopped and started again, so what is
//! measured is the state it loads (snapshot, prefix index, sled's cache), not the import's
//! garbage; its `VmRSS` above the baseline, divided by the rows, is the cost of a row. Redis,
//! when given, gets the same rows as keys (`trunkline:rate:<prefix>` → `bulk,<rate>,0`, the
//! layout `load-decks` uses) after a FLUSHALL, and its `used_memory` and `used_memory_rss`
//! growth per row are reported beside.
//!
//! Prints a line per size for people on stderr and a JSON object on stdout.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use serde::Serialize;
use trunkline_api::v1::{self as proto, admin_service_client::AdminServiceClient};

use crate::{
    dev_node::Node,
    loadgen::{
        cli,
        decks::REDIS_KEY_PREFIX,
        process,
        resp::{RedisConnection, Value},
    },
};

/// Rows of one StageRates chunk (the API's most).
const ROWS_PER_CHUNK: usize = 5_000;
/// The carrier the bulk deck goes to.
const CARRIER: &str = "bulk";
/// The import's owner token (the API wants 32 to 64 hex digits).
const OWNER: &str = "0123456789abcdef0123456789abcdef";
/// Most rows one size may have.
const MAX_ROWS: u64 = 20_000_000;
/// After a start, how long the node is left to settle before its memory is read.
const SETTLE: Duration = Duration::from_secs(3);
/// How long a commit may take to show in the deck.
const COMMIT_WAIT: Duration = Duration::from_secs(300);
/// Keys set by one MSET, and MSETs in one pipeline.
const KEYS_PER_MSET: usize = 1_000;
const MSETS_PER_PIPELINE: usize = 16;

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The `trunkline` binary.
    #[arg(long, value_parser = cli::existing_file)]
    pub trunkline: PathBuf,
    /// A folder for the nodes' data folders and logs.
    #[arg(long)]
    pub root: PathBuf,
    /// Deck sizes to measure, in rows: `1000000,5000000`.
    #[arg(long, value_delimiter = ',', value_parser = rows, default_value = "1000000,5000000")]
    pub rows: Vec<u64>,
    /// A Redis server to measure the same rows in, `HOST:PORT` (FLUSHALL first: use a
    /// server of its own).
    #[arg(long, value_parser = cli::address)]
    pub redis: Option<String>,
    /// The prefixes' seed.
    #[arg(long, default_value_t = crate::NUMBERS_SEED)]
    pub seed: u64,
}

fn rows(text: &str) -> Result<u64, String> {
    cli::count_between(text, 1, MAX_ROWS)
}

/// One size's result.
#[derive(Debug, Serialize)]
struct Measured {
    label: String,
    rows: u64,
    trunkline_baseline_rss_kib: u64,
    trunkline_rss_kib: u64,
    trunkline_bytes_per_row: f64,
    trunkline_data_dir_bytes: u64,
    redis_used_memory_bytes_per_row: Option<f64>,
    redis_rss_bytes_per_row: Option<f64>,
}

pub async fn exec(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.root)
        .with_context(|| format!("can't create {}", args.root.display()))?;
    for &count in &args.rows {
        let deck = deck(count, args.seed);
        let (baseline, loaded, disk) = trunkline(&args.trunkline, &args.root, &deck).await?;
        let redis = match &args.redis {
            Some(addr) => Some(redis(addr, &deck).await?),
            None => None,
        };
        let measured = Measured {
            label: format!("deck-memory-{count}"),
            rows: count,
            trunkline_baseline_rss_kib: baseline,
            trunkline_rss_kib: loaded,
            trunkline_bytes_per_row: per_row(loaded.saturating_sub(baseline) * 1024, count),
            trunkline_data_dir_bytes: disk,
            redis_used_memory_bytes_per_row: redis.map(|(used, _)| per_row(used, count)),
            redis_rss_bytes_per_row: redis.map(|(_, rss)| per_row(rss, count)),
        };
        eprintln!(
            "{:<22} Trunkline {:.0} B/row (RSS {:.1} -> {:.1} MiB, data folder {:.1} MiB){}",
            measured.label,
            measured.trunkline_bytes_per_row,
            baseline as f64 / 1024.0,
            loaded as f64 / 1024.0,
            disk as f64 / (1024.0 * 1024.0),
            match (
                measured.redis_used_memory_bytes_per_row,
                measured.redis_rss_bytes_per_row
            ) {
                (Some(used), Some(rss)) =>
                    format!("; Redis {used:.0} B/row used_memory, {rss:.0} B/row RSS"),
                _ => String::new(),
            }
        );
        println!("{}", serde_json::to_string(&measured)?);
    }
    Ok(())
}

fn per_row(bytes: u64, rows: u64) -> f64 {
    bytes as f64 / rows.max(1) as f64
}

/// `count` rows with distinct random 4 to 10 digit prefixes, a rate each.
fn deck(count: u64, seed: u64) -> Vec<proto::Rate> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut seen = HashSet::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut rows = Vec::with_capacity(seen.capacity());
    while (rows.len() as u64) < count {
        let digits = rng.random_range(4..=10u32);
        let value = rng.random_range(10u64.pow(digits - 1)..10u64.pow(digits));
        if seen.insert(value) {
            rows.push(proto::Rate {
                prefix: value.to_string(),
                rate_micros_per_minute: rng.random_range(1_000..500_000),
                ..Default::default()
            });
        }
    }
    rows
}

/// Starts a node on `data_dir` and waits until it answers.
async fn started(
    trunkline: &Path,
    data_dir: &Path,
    log: &Path,
) -> anyhow::Result<(Node, AdminServiceClient<tonic::transport::Channel>)> {
    let node = tokio::task::block_in_place(|| Node::start(trunkline, data_dir, log, None))?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.api_addr))?
        .connect()
        .await
        .with_context(|| format!("can't connect to the node at {}", node.api_addr))?;
    Ok((node, AdminServiceClient::new(channel)))
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("can't read /proc/{pid}/status"))?;
    process::kib_field(&status, "VmRSS:").context("no VmRSS in the node's status")
}

/// The node's RSS (KiB) restarted without the deck and restarted with it, and its data
/// folder's size with it.
async fn trunkline(
    binary: &Path,
    root: &Path,
    deck: &[proto::Rate],
) -> anyhow::Result<(u64, u64, u64)> {
    let data_dir = root.join(format!("deck-{}", deck.len()));
    let log = root.join(format!("deck-{}.log", deck.len()));
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)
            .with_context(|| format!("can't clear {}", data_dir.display()))?;
    }
    // First start seeds the demo; the second is the baseline.
    let (mut node, _) = started(binary, &data_dir, &log).await?;
    tokio::task::block_in_place(|| node.stop());
    let (mut node, mut admin) = started(binary, &data_dir, &log).await?;
    tokio::time::sleep(SETTLE).await;
    let baseline = rss_kib(node.pid)?;

    admin
        .put_carrier(proto::PutCarrierRequest {
            carrier: Some(proto::Carrier {
                name: CARRIER.into(),
                translation: Some(proto::Translation {
                    plus: true,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: proto::PutMode::Unspecified as i32,
        })
        .await
        .context("PutCarrier")?;
    let import_id = format!("deck-memory-{}", deck.len());
    for (chunk_number, chunk) in deck.chunks(ROWS_PER_CHUNK).enumerate() {
        admin
            .stage_rates(proto::StageRatesRequest {
                carrier: CARRIER.into(),
                import_id: import_id.clone(),
                rates: chunk.to_vec(),
                first_line: (chunk_number * ROWS_PER_CHUNK + 2) as u64,
                owner: OWNER.into(),
            })
            .await
            .with_context(|| format!("StageRates, chunk {chunk_number}"))?;
    }
    let committed = admin
        .commit_rates(proto::CommitRatesRequest {
            carrier: CARRIER.into(),
            import_id,
            replace: true,
            expected_rows: deck.len() as u64,
            owner: OWNER.into(),
        })
        .await;
    match committed {
        Ok(_) => {}
        // A commit of millions of rows may take longer to apply than a write is waited
        // for; it is applied all the same: wait for the deck below.
        Err(status) if status.code() == tonic::Code::DeadlineExceeded => {
            eprintln!("CommitRates: {}; waiting for the deck", status.message());
        }
        Err(status) => bail!("CommitRates: {status}"),
    }
    let deadline = std::time::Instant::now() + COMMIT_WAIT;
    loop {
        let rows = admin
            .list_routing(proto::ListRoutingRequest::default())
            .await
            .context("ListRouting")?
            .into_inner()
            .deck_rows
            .get(CARRIER)
            .copied()
            .unwrap_or(0);
        if rows == deck.len() as u64 {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the deck holds {rows} rows {COMMIT_WAIT:?} after the commit, not {}",
                deck.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The node compacts a committed import out of its log with a snapshot; a node restarted
    // before that would measure the import staged again from the log, not the deck.
    let applied = admin
        .cluster_status(proto::ClusterStatusRequest {})
        .await
        .context("ClusterStatus")?
        .into_inner()
        .applied_index;
    loop {
        let snapshot = admin
            .cluster_status(proto::ClusterStatusRequest {})
            .await
            .context("ClusterStatus")?
            .into_inner()
            .snapshot_index;
        if snapshot >= applied {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("no snapshot covers the committed deck (at {applied}; latest at {snapshot})");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(admin);
    tokio::task::block_in_place(|| node.stop());

    let (mut node, _admin) = started(binary, &data_dir, &log).await?;
    tokio::time::sleep(SETTLE).await;
    let loaded = rss_kib(node.pid)?;
    tokio::task::block_in_place(|| node.stop());
    Ok((baseline, loaded, crate::folder_bytes(&data_dir)))
}

/// Redis's `used_memory` and `used_memory_rss` growth (bytes) for `deck` as keys.
async fn redis(addr: &str, deck: &[proto::Rate]) -> anyhow::Result<(u64, u64)> {
    let mut redis = RedisConnection::connect(addr)
        .await
        .with_context(|| format!("can't connect to Redis at {addr}"))?;
    redis.command(&["FLUSHALL"]).await?;
    let before = memory(&mut redis).await?;
    let commands: Vec<Vec<Vec<u8>>> = deck
        .chunks(KEYS_PER_MSET)
        .map(|batch| {
            let mut command = vec![b"MSET".to_vec()];
            for row in batch {
                command.push(format!("{REDIS_KEY_PREFIX}{}", row.prefix).into_bytes());
                command.push(format!("{CARRIER},{},0", row.rate_micros_per_minute).into_bytes());
            }
            command
        })
        .collect();
    for pipeline in commands.chunks(MSETS_PER_PIPELINE) {
        redis.pipeline(pipeline).await?;
    }
    let after = memory(&mut redis).await?;
    redis.command(&["FLUSHALL"]).await?;
    Ok((
        after.0.saturating_sub(before.0),
        after.1.saturating_sub(before.1),
    ))
}

/// `used_memory` and `used_memory_rss` from INFO memory.
async fn memory(redis: &mut RedisConnection) -> anyhow::Result<(u64, u64)> {
    let reply = redis.command(&["INFO", "memory"]).await?;
    let text = match reply {
        Value::Bulk(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        other => bail!("Redis answered INFO with {other:?}"),
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .with_context(|| format!("no {name} in Redis's INFO memory"))
    };
    Ok((field("used_memory")?, field("used_memory_rss")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deck_has_distinct_prefixes_of_4_to_10_digits_and_is_the_same_for_a_seed() {
        let deck = deck(20_000, 7);
        assert_eq!(deck.len(), 20_000);
        let prefixes: HashSet<&str> = deck.iter().map(|row| row.prefix.as_str()).collect();
        assert_eq!(prefixes.len(), 20_000);
        assert!(deck
            .iter()
            .all(|row| (4..=10).contains(&row.prefix.len()) && !row.prefix.starts_with('0')));
        assert_eq!(deck[..10], super::deck(10, 7)[..]);
        assert_ne!(deck[..10], super::deck(10, 8)[..]);
    }
}
