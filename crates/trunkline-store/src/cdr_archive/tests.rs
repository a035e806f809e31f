//! The archive's files: rolling by size and by day, a scan reading only the segments its range
//! can touch, and where the last sync reached deciding what is a torn tail and what is damage.

use trunkline_core::cdr::{Cdr, Disposition};
use trunkline_core::policy::SourceKind;

use super::*;
use crate::{Identity, Store};

const T0: u64 = 1_796_000_000_000;
const RETAIN_ALL_MS: u64 = u64::MAX;

fn record(call_id: &str) -> Cdr {
    Cdr {
        call_id: call_id.to_owned(),
        tenant: "acme".to_owned(),
        extension: None,
        source: SourceKind::Phone,
        from: "+12125550100".to_owned(),
        dialled: "9005551234".to_owned(),
        normalized: "+19005551234".to_owned(),
        class: None,
        node: 1,
        start_ms: T0,
        answer_ms: None,
        end_ms: None,
        disposition: Disposition::Blocked,
        reason: "policy-premium (tenant)".to_owned(),
        sip_code: 403,
        legs: Vec::new(),
        billed_ms: 0,
        cost_micros: 0,
    }
}

fn open(dir: &Path) -> Store {
    let identity = Identity {
        cluster_name: "segments".to_owned(),
        node_id: 1,
    };
    Store::open(dir, &identity).unwrap()
}

fn segment_files(archive: &CdrArchive) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(archive.folder())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn call_ids(archive: &CdrArchive, since_ms: u64, until_ms: u64) -> Vec<String> {
    archive
        .scan(since_ms, until_ms)
        .map(|item| item.unwrap().cdr.call_id)
        .collect()
}

#[test]
fn segments_roll_by_size_and_by_day_and_are_named_by_their_first_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let archive = store.cdr_archive();
    archive.set_segment_bytes(2_000);
    for index in 1..=20u64 {
        let records: Vec<Cdr> = (0..3).map(|n| record(&format!("{index}-{n}"))).collect();
        archive
            .append(T0 + index, index, &records, RETAIN_ALL_MS)
            .unwrap();
    }
    let next_day = (day_of(RecordKey::at(T0)) + 1) * DAY_MS;
    archive
        .append(next_day, 21, &[record("next-day")], RETAIN_ALL_MS)
        .unwrap();

    let files = segment_files(&archive);
    assert!(files.len() > 3, "{files:?}");
    for name in &files {
        let first = RecordKey::from_file_name(name).unwrap();
        let size = fs::metadata(archive.folder().join(name)).unwrap().len();
        assert!(size <= 2_000, "{name} is {size} bytes");
        let reader_first = FrameReader::open(&archive.folder().join(name), first, None)
            .unwrap()
            .next_frame()
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(reader_first, first, "{name}");
    }
    assert_eq!(
        files.last().unwrap(),
        &RecordKey {
            recorded_ms: next_day,
            log_index: 21,
            position: 0
        }
        .file_name(),
        "a new day starts a new segment"
    );
    let all = call_ids(&archive, 0, u64::MAX);
    assert_eq!(all.len(), 61);
    assert_eq!(all[0], "1-0");
    assert_eq!(all[60], "next-day");
    assert_eq!(
        call_ids(&archive, T0 + 7, T0 + 9),
        ["7-0", "7-1", "7-2", "8-0", "8-1", "8-2"]
    );
}

#[test]
fn a_scan_opens_only_the_segments_its_range_can_touch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let archive = store.cdr_archive();
    archive.set_segment_bytes(1_000);
    for index in 1..=30u64 {
        archive
            .append(
                T0 + index,
                index,
                &[record(&index.to_string())],
                RETAIN_ALL_MS,
            )
            .unwrap();
    }
    let files = segment_files(&archive);
    assert!(files.len() >= 3, "{files:?}");
    // Damage the first segment: a range after it never reads it; one over it says so.
    let first = archive.folder().join(&files[0]);
    let mut bytes = fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&first, bytes).unwrap();
    assert_eq!(call_ids(&archive, T0 + 29, u64::MAX), ["29", "30"]);
    assert!(archive.scan(0, u64::MAX).any(|item| item.is_err()));
}

#[tokio::test]
async fn damage_before_the_last_sync_is_not_taken_for_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let segment = {
        let store = open(dir.path());
        let archive = store.cdr_archive();
        for index in 1..=5u64 {
            archive
                .append(T0 + index, index, &[record("synced")], RETAIN_ALL_MS)
                .unwrap();
        }
        archive.sync().await.unwrap();
        let mark = read_synced_mark(&archive.inner.database).unwrap().unwrap();
        let files = segment_files(&archive);
        assert_eq!(files.len(), 1);
        let path = archive.folder().join(&files[0]);
        assert_eq!(mark.1, fs::metadata(&path).unwrap().len());
        archive.inner.database.flush_blocking().unwrap();
        path
    };
    // A byte flipped in the synced part: refused, the file left as it is.
    let mut bytes = fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    let identity = Identity {
        cluster_name: "segments".to_owned(),
        node_id: 1,
    };
    let error = Store::open(dir.path(), &identity).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert_eq!(fs::read(&segment).unwrap(), bytes);
}

#[tokio::test]
async fn the_snapshot_build_syncs_the_archive() {
    use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let archive = store.cdr_archive();
    archive
        .append(T0, 1, &[record("before-snapshot")], RETAIN_ALL_MS)
        .unwrap();
    assert_eq!(read_synced_mark(&archive.inner.database).unwrap(), None);
    let mut machine = store.state_machine();
    machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let bytes = archive.lock().open.as_ref().unwrap().bytes;
    let mark = read_synced_mark(&archive.inner.database).unwrap().unwrap();
    assert_eq!(mark, ((T0, 1, 0), bytes));
}
