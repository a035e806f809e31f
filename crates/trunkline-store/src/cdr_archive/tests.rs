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

// ---- Backfill: records a node missed by installing a snapshot, taken from a peer ----

/// Entries `indexes` at log time `T0 + index` (entry 31 shares the snapshot's millisecond),
/// two records each.
fn append_entries(archive: &CdrArchive, indexes: impl IntoIterator<Item = u64>) {
    for index in indexes {
        let time = if index == 31 { T0 + 30 } else { T0 + index };
        let records = [record(&format!("{index}-0")), record(&format!("{index}-1"))];
        archive
            .append(time, index, &records, RETAIN_ALL_MS)
            .unwrap();
    }
}

fn keys(archive: &CdrArchive) -> Vec<(u64, u64, u32, String)> {
    archive
        .scan(0, u64::MAX)
        .map(|item| {
            let item = item.unwrap();
            (
                item.recorded_ms,
                item.log_index,
                item.position,
                item.cdr.call_id,
            )
        })
        .collect()
}

/// What a peer's archive returns for a range, as a fetch hands it over.
fn fetched(peer: &CdrArchive, since_ms: u64, until_ms: u64) -> Vec<ArchivedCdr> {
    peer.scan(since_ms, until_ms)
        .map(|item| item.unwrap())
        .collect()
}

/// A node that applied entries 1-10, installed a snapshot ending at entry 30 (log time
/// T0 + 30), then applied 31-40; and a peer that applied all 40.
fn snapshot_installed(dir: &Path, peer_dir: &Path) -> (Store, Store) {
    let store = open(dir);
    let archive = store.cdr_archive();
    archive.set_segment_bytes(1_500);
    append_entries(&archive, 1..=10);
    archive.mark_incomplete(T0 + 30, 30).unwrap();
    append_entries(&archive, 31..=40);
    let peer = open(peer_dir);
    peer.cdr_archive().set_segment_bytes(1_000);
    append_entries(&peer.cdr_archive(), 1..=40);
    (store, peer)
}

#[test]
fn a_backfill_leaves_every_record_once_and_in_order_with_partial_and_post_install_ones() {
    let dir = tempfile::tempdir().unwrap();
    let peer_dir = tempfile::tempdir().unwrap();
    let (store, peer) = snapshot_installed(dir.path(), peer_dir.path());
    let archive = store.cdr_archive();
    assert_eq!(archive.complete_since_ms().unwrap(), T0 + 31);
    assert!(
        segment_files(&archive).len() > 2,
        "{:?}",
        segment_files(&archive)
    );

    let mut backfill = archive.begin_backfill(0).unwrap().unwrap();
    assert_eq!(backfill.until_ms(), T0 + 31);
    assert!(archive.begin_backfill(0).is_err(), "one backfill at a time");
    // In two chunks, as a fetch resumes; the range reaches into entry 31, this node's own.
    let records = fetched(&peer.cdr_archive(), 0, backfill.until_ms());
    let (first, rest) = records.split_at(7);
    backfill.add(first.to_vec()).unwrap();
    backfill.add(rest.to_vec()).unwrap();
    // Appends go on meanwhile, after the boundary.
    append_entries(&archive, 41..=42);
    let outcome = backfill.finish(0).unwrap();
    assert!(outcome.swapped);
    assert_eq!(outcome.records_added, 20 * 2, "entries 11-30");
    assert_eq!(outcome.complete_since_ms, 0);
    assert_eq!(archive.complete_since_ms().unwrap(), 0);

    append_entries(&peer.cdr_archive(), 41..=42);
    let expected = keys(&peer.cdr_archive());
    assert_eq!(expected.len(), 84);
    assert_eq!(keys(&archive), expected);
    assert!(segment_files(&archive)
        .iter()
        .all(|name| name.ends_with(".seg")));
    // Appends after the swap, and a reopen: the same records, readable.
    append_entries(&archive, 43..=43);
    append_entries(&peer.cdr_archive(), 43..=43);
    drop(archive);
    drop(store);
    let store = open(dir.path());
    assert_eq!(keys(&store.cdr_archive()), keys(&peer.cdr_archive()));
    assert_eq!(store.cdr_archive().complete_since_ms().unwrap(), 0);
}

#[test]
fn a_crash_before_the_swap_leaves_the_archive_as_it_was_and_the_fetch_is_done_again() {
    let dir = tempfile::tempdir().unwrap();
    let peer_dir = tempfile::tempdir().unwrap();
    let (store, peer) = snapshot_installed(dir.path(), peer_dir.path());
    let archive = store.cdr_archive();
    let before = keys(&archive);

    // Abandoned (the fetch failed): what it staged is gone, nothing changed.
    let mut backfill = archive.begin_backfill(0).unwrap().unwrap();
    backfill
        .add(fetched(&peer.cdr_archive(), 0, T0 + 20))
        .unwrap();
    assert!(segment_files(&archive)
        .iter()
        .any(|name| name.ends_with(".backfill.tmp")));
    drop(backfill);
    assert!(segment_files(&archive)
        .iter()
        .all(|name| name.ends_with(".seg")));
    assert_eq!(keys(&archive), before);
    assert_eq!(archive.complete_since_ms().unwrap(), T0 + 31);

    // A crash with every record staged, before the swap: the folder as the crash leaves it.
    let mut backfill = archive.begin_backfill(0).unwrap().unwrap();
    backfill
        .add(fetched(&peer.cdr_archive(), 0, T0 + 31))
        .unwrap();
    archive.inner.database.flush_blocking().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    copy_folder(dir.path(), crashed.path());
    drop(backfill);
    let reopened = open(crashed.path());
    let after_crash = reopened.cdr_archive();
    assert!(segment_files(&after_crash)
        .iter()
        .all(|name| name.ends_with(".seg")));
    assert_eq!(keys(&after_crash), before);
    assert_eq!(after_crash.complete_since_ms().unwrap(), T0 + 31);

    // A crash after the replaced segments were deleted and before the staged ones went in:
    // fewer records, still readable, completeness still only from T0 + 31.
    let replaced = after_crash.lock().firsts.clone();
    drop(after_crash);
    drop(reopened);
    for first in replaced.iter().filter(|first| first.log_index <= 10) {
        fs::remove_file(crashed.path().join(ARCHIVE_DIR).join(first.file_name())).unwrap();
    }
    let reopened = open(crashed.path());
    let after_crash = reopened.cdr_archive();
    let partial = keys(&after_crash);
    assert!(partial.len() < before.len());
    assert!(partial.iter().all(|key| before.contains(key)));
    assert_eq!(after_crash.complete_since_ms().unwrap(), T0 + 31);

    // The next backfill does it all again.
    let mut backfill = after_crash.begin_backfill(0).unwrap().unwrap();
    backfill
        .add(fetched(&peer.cdr_archive(), 0, backfill.until_ms()))
        .unwrap();
    assert_eq!(backfill.finish(0).unwrap().complete_since_ms, 0);
    assert_eq!(keys(&after_crash), keys(&peer.cdr_archive()));
}

#[test]
fn a_snapshot_installed_during_a_backfill_keeps_its_range_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let peer_dir = tempfile::tempdir().unwrap();
    let (store, peer) = snapshot_installed(dir.path(), peer_dir.path());
    let archive = store.cdr_archive();
    let mut backfill = archive.begin_backfill(0).unwrap().unwrap();
    backfill
        .add(fetched(&peer.cdr_archive(), 0, T0 + 31))
        .unwrap();
    archive.mark_incomplete(T0 + 60, 60).unwrap();
    let outcome = backfill.finish(0).unwrap();
    assert!(!outcome.swapped);
    assert_eq!(archive.complete_since_ms().unwrap(), T0 + 61);
    assert!(segment_files(&archive)
        .iter()
        .all(|name| name.ends_with(".seg")));
}

#[test]
fn records_from_an_incomplete_peer_move_completeness_back_only_as_far_as_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let peer_dir = tempfile::tempdir().unwrap();
    let (store, whole_peer) = snapshot_installed(dir.path(), peer_dir.path());
    let archive = store.cdr_archive();
    // A peer that installed a snapshot ending at entry 19 and applied 20-40 itself.
    let partial_dir = tempfile::tempdir().unwrap();
    let partial_peer = open(partial_dir.path());
    let partial = partial_peer.cdr_archive();
    partial.mark_incomplete(T0 + 19, 19).unwrap();
    append_entries(&partial, 20..=40);
    let covers_ms = partial.complete_since_ms().unwrap();
    assert_eq!(covers_ms, T0 + 20);

    let mut backfill = archive.begin_backfill(0).unwrap().unwrap();
    backfill
        .add(fetched(&partial, 0, backfill.until_ms()))
        .unwrap();
    let outcome = backfill.finish(covers_ms).unwrap();
    assert_eq!(outcome.complete_since_ms, T0 + 20);
    assert_eq!(archive.complete_since_ms().unwrap(), T0 + 20);
    let held = keys(&archive);
    assert_eq!(
        held.iter().filter(|key| key.1 > 10 && key.1 < 20).count(),
        0,
        "nobody had entries 11-19 yet"
    );

    // The rest from a whole peer, for what is still missing.
    let mut backfill = archive.begin_backfill(0).unwrap().unwrap();
    assert_eq!(backfill.until_ms(), T0 + 20);
    backfill
        .add(fetched(&whole_peer.cdr_archive(), 0, T0 + 20))
        .unwrap();
    assert_eq!(backfill.finish(0).unwrap().complete_since_ms, 0);
    assert_eq!(keys(&archive), keys(&whole_peer.cdr_archive()));
}

#[test]
fn a_backfill_refuses_records_out_of_order_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let peer_dir = tempfile::tempdir().unwrap();
    let (store, peer) = snapshot_installed(dir.path(), peer_dir.path());
    let archive = store.cdr_archive();
    let before = keys(&archive);
    let mut records = fetched(&peer.cdr_archive(), 0, T0 + 31);
    records.swap(3, 4);
    let mut backfill = archive.begin_backfill(0).unwrap().unwrap();
    let error = backfill.add(records).unwrap_err();
    assert!(matches!(error, StoreError::Backfill { .. }), "{error}");
    drop(backfill);
    assert_eq!(keys(&archive), before);
    assert_eq!(archive.complete_since_ms().unwrap(), T0 + 31);
    // An archive that is whole has nothing to take.
    assert!(peer.cdr_archive().begin_backfill(0).unwrap().is_none());
}

fn copy_folder(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir_all(&target).unwrap();
            copy_folder(&entry.path(), &target);
        } else if entry.file_name() != "trunkline.lock" {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}
