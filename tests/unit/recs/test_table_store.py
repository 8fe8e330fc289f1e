"""When a profile table's local store belongs to other data than its changelog."""

from __future__ import annotations

from pathlib import Path

from stream_aimass.recs.table_store import OFFSET_KEY, persisted_offsets, stale_reason


def test_a_store_of_another_cluster_is_stale() -> None:
    reason = stale_reason({"cluster_id": "mockCluster1"}, "mockCluster2", {0: 3}, {0: 10})
    assert reason is not None and "another cluster" in reason


def test_a_store_ahead_of_its_changelog_is_stale() -> None:
    # Faust raises ConsistencyError for 25 > 5, and silently keeps a store whose changelog is
    # empty (end 0): both are stale here.
    for ends in ({0: 5}, {0: 0}, {}):
        reason = stale_reason(None, "c", {0: 24}, ends)
        assert reason is not None and "changelog ends at" in reason


def test_a_store_behind_or_at_its_changelog_end_is_kept() -> None:
    assert stale_reason({"cluster_id": "c"}, "c", {0: 4, 3: 0}, {0: 5, 3: 1}) is None
    assert stale_reason(None, None, {}, {}) is None
    # The cluster could not be asked: only offsets decide.
    assert stale_reason({"cluster_id": "c"}, None, {0: 1}, {0: 9}) is None


def test_persisted_offsets_are_read_from_faust_rocksdb_stores(tmp_path: Path) -> None:
    from rocksdict import Options, Rdict

    for partition, offset in ((0, 41), (7, 3)):
        db = Rdict(str(tmp_path / f"profiles-{partition}.db"), Options(raw_mode=True))
        db.put(OFFSET_KEY, str(offset).encode())
        db.put(b"acme:u1", b"{}")
        db.close()
    Rdict(str(tmp_path / "other-0.db"), Options(raw_mode=True)).close()
    assert persisted_offsets(tmp_path, "profiles") == {0: 41, 7: 3}
