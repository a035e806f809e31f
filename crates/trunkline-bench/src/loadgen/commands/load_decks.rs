//! `loadgen load-decks`: reads every rate deck from a running Trunkline node and writes the
//! same rows into Redis and PostgreSQL (the layouts in `decks.rs`), replacing what an earlier
//! load left, and draws the numbers every lookup run uses from the same rows.

use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::loadgen::{
    cli,
    decks::{self, DeckRow, REDIS_KEY_PREFIX, TABLE_COPY, TABLE_DDL},
    postgres::PgConnection,
    resp::{RedisConnection, Value},
};

/// Keys set by one MSET.
const KEYS_PER_MSET: usize = 1_000;
/// MSETs sent in one write before their replies are read.
const MSETS_PER_PIPELINE: usize = 16;
/// Most keys one SCAN of the old keys may return.
const SCAN_COUNT: &str = "1000";
/// Most numbers drawn.
const MAX_NUMBERS: u64 = 10_000_000;

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The node to export the decks from (`trunkline dev` seeds the demo's), `HOST:PORT`.
    #[arg(long, value_parser = cli::address)]
    pub from_trunkline: String,
    /// A Redis server to load, `HOST:PORT`.
    #[arg(long, value_parser = cli::address)]
    pub redis: Option<String>,
    /// A PostgreSQL server to load, `HOST:PORT` (trust authentication); its table `rates`
    /// is replaced.
    #[arg(long, value_parser = cli::address)]
    pub pg: Option<String>,
    #[arg(long, default_value = "postgres")]
    pub pg_user: String,
    #[arg(long, default_value = "postgres")]
    pub pg_db: String,
    /// Where to write the numbers to look up, one a line.
    #[arg(long)]
    pub numbers_out: Option<PathBuf>,
    /// How many numbers to draw.
    #[arg(long, default_value_t = 10_000, value_parser = count)]
    pub count: u64,
    /// The numbers' seed: the same seed and decks give the same numbers.
    #[arg(long, default_value_t = crate::NUMBERS_SEED)]
    pub seed: u64,
}

fn count(text: &str) -> Result<u64, String> {
    cli::count_between(text, 1, MAX_NUMBERS)
}

pub async fn exec(args: Args) -> anyhow::Result<()> {
    let rows = decks::export(&args.from_trunkline).await?;
    let prefixes = decks::redis_values(&rows);
    let carriers: std::collections::BTreeSet<&str> =
        rows.iter().map(|row| row.carrier.as_str()).collect();
    eprintln!(
        "exported {} rows, {} distinct prefixes, {} carriers from {}",
        rows.len(),
        prefixes.len(),
        carriers.len(),
        args.from_trunkline
    );
    if let Some(addr) = &args.redis {
        let (removed, set) = load_redis(addr, &prefixes).await?;
        eprintln!("Redis {addr}: removed {removed} old keys, set {set}");
    }
    if let Some(addr) = &args.pg {
        let copied = load_postgres(addr, &args.pg_user, &args.pg_db, &rows).await?;
        eprintln!("PostgreSQL {addr}: {copied} rows in table rates");
    }
    if let Some(path) = &args.numbers_out {
        let numbers = decks::dialled_numbers(&rows, args.count as usize, args.seed);
        let mut text = format!(
            "# {} numbers drawn from the decks of {} (seed {})\n",
            numbers.len(),
            args.from_trunkline,
            args.seed
        );
        for number in &numbers {
            text.push_str(number);
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("can't write {}", path.display()))?;
        eprintln!("{} numbers in {}", numbers.len(), path.display());
    }
    Ok(())
}

/// Deletes the keys of an earlier load, then sets one key per prefix; the keys removed and
/// set.
async fn load_redis(
    addr: &str,
    values: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<(usize, usize)> {
    let mut redis = RedisConnection::connect(addr)
        .await
        .with_context(|| format!("can't connect to Redis at {addr}"))?;
    let pattern = format!("{REDIS_KEY_PREFIX}*");
    let mut old_keys = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let reply = redis
            .command(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", SCAN_COUNT])
            .await?;
        let Value::Array(Some(mut parts)) = reply else {
            bail!("Redis answered SCAN with {reply:?}");
        };
        let (Some(Value::Array(Some(keys))), Some(Value::Bulk(Some(next)))) =
            (parts.pop(), parts.pop())
        else {
            bail!("Redis answered SCAN with an unexpected shape");
        };
        for key in keys {
            if let Value::Bulk(Some(key)) = key {
                old_keys.push(key);
            }
        }
        cursor = String::from_utf8_lossy(&next).into_owned();
        if cursor == "0" {
            break;
        }
    }
    for batch in old_keys.chunks(KEYS_PER_MSET) {
        let mut command: Vec<Vec<u8>> = vec![b"DEL".to_vec()];
        command.extend(batch.iter().cloned());
        redis.pipeline(&[command]).await?;
    }
    let entries: Vec<(&String, &String)> = values.iter().collect();
    let commands: Vec<Vec<Vec<u8>>> = entries
        .chunks(KEYS_PER_MSET)
        .map(|batch| {
            let mut command = vec![b"MSET".to_vec()];
            for (prefix, value) in batch {
                command.push(format!("{REDIS_KEY_PREFIX}{prefix}").into_bytes());
                command.push(value.as_bytes().to_vec());
            }
            command
        })
        .collect();
    for pipeline in commands.chunks(MSETS_PER_PIPELINE) {
        redis.pipeline(pipeline).await?;
    }
    Ok((old_keys.len(), values.len()))
}

/// Replaces table `rates` with `rows` (COPY, then ANALYZE so the planner knows its size);
/// the rows it holds after.
async fn load_postgres(
    addr: &str,
    user: &str,
    database: &str,
    rows: &[DeckRow],
) -> anyhow::Result<u64> {
    let mut pg = PgConnection::connect(addr, user, database)
        .await
        .with_context(|| format!("can't connect to PostgreSQL at {addr}"))?;
    pg.simple_query(TABLE_DDL)
        .await
        .context("can't create table rates")?;
    let copied = pg
        .copy_in(TABLE_COPY, decks::copy_text(rows).as_bytes())
        .await
        .context("can't copy the rows into rates")?;
    pg.simple_query("ANALYZE rates").await?;
    if copied != rows.len() as u64 {
        bail!("PostgreSQL copied {copied} rows of {}", rows.len());
    }
    pg.close().await?;
    Ok(copied)
}
