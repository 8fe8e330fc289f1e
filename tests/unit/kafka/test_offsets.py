"""Unit tests for stream_aimass.kafka.OffsetTracker (at-least-once commit bookkeeping)."""

from __future__ import annotations

import random

from aiokafka import TopicPartition

from stream_aimass.kafka.offsets import OffsetTracker

TP0 = TopicPartition("aimass.documents", 0)
TP1 = TopicPartition("aimass.documents", 1)
TP_OTHER = TopicPartition("aimass.enriched", 0)


def tracker_with(tp: TopicPartition, offsets: range | list[int]) -> OffsetTracker:
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.add(tp, offset)
    return tracker


def test_empty_tracker() -> None:
    tracker = OffsetTracker()
    assert tracker.pending() == 0
    assert tracker.pending([TP0]) == 0
    assert tracker.take_committable() == {}
    assert tracker.take_committable([TP0]) == {}


def test_in_order_completion_commits_last_plus_one() -> None:
    tracker = tracker_with(TP0, range(10, 13))
    tracker.done(TP0, 10)
    assert tracker.take_committable() == {TP0: 11}
    tracker.done(TP0, 11)
    tracker.done(TP0, 12)
    assert tracker.take_committable() == {TP0: 13}


def test_out_of_order_completion_commits_only_the_finished_prefix() -> None:
    tracker = tracker_with(TP0, range(100, 105))
    tracker.done(TP0, 102)
    tracker.done(TP0, 104)
    assert tracker.take_committable() == {}  # 100 is unfinished: nothing may be committed
    tracker.done(TP0, 100)
    assert tracker.take_committable() == {TP0: 101}
    tracker.done(TP0, 101)
    assert tracker.take_committable() == {TP0: 103}  # 100..102 done; 103 still open
    tracker.done(TP0, 103)
    assert tracker.take_committable() == {TP0: 105}
    assert tracker.pending() == 0


def test_gaps_in_offsets_are_fine() -> None:
    # Compacted topics and transaction markers leave gaps: commit last finished + 1.
    tracker = tracker_with(TP0, [5, 9, 20])
    tracker.done(TP0, 9)
    tracker.done(TP0, 5)
    assert tracker.take_committable() == {TP0: 10}
    tracker.done(TP0, 20)
    assert tracker.take_committable() == {TP0: 21}


def test_random_completion_order_never_commits_past_an_unfinished_offset() -> None:
    rng = random.Random(1234)
    offsets = list(range(1000, 1200))
    tracker = tracker_with(TP0, offsets)
    order = offsets[:]
    rng.shuffle(order)
    finished: set[int] = set()
    committed = 1000
    for offset in order:
        tracker.done(TP0, offset)
        finished.add(offset)
        expected = 1000
        while expected in finished:
            expected += 1
        new = tracker.take_committable()
        if expected > committed:
            assert new == {TP0: expected}
            committed = expected
        else:
            assert new == {}
        assert tracker.pending() == 1200 - committed
    assert committed == 1200


def test_take_committable_returns_only_new_offsets() -> None:
    tracker = tracker_with(TP0, range(3))
    tracker.done(TP0, 0)
    assert tracker.take_committable() == {TP0: 1}
    assert tracker.take_committable() == {}
    tracker.done(TP0, 2)
    assert tracker.take_committable() == {}
    tracker.done(TP0, 1)
    assert tracker.take_committable() == {TP0: 3}
    assert tracker.take_committable() == {}


def test_take_committable_filters_by_tps() -> None:
    tracker = OffsetTracker()
    for tp in (TP0, TP1, TP_OTHER):
        tracker.add(tp, 7)
        tracker.done(tp, 7)
    assert tracker.take_committable([TP1]) == {TP1: 8}
    assert tracker.take_committable([TP1]) == {}
    assert tracker.take_committable([TopicPartition("nope", 9)]) == {}
    assert tracker.take_committable([TP0, TP0]) == {TP0: 8}
    assert tracker.take_committable(iter([TP_OTHER])) == {TP_OTHER: 8}
    assert tracker.take_committable() == {}


def test_take_committable_without_tps_takes_all_partitions() -> None:
    tracker = OffsetTracker()
    tracker.add(TP0, 1)
    tracker.add(TP1, 50)
    tracker.add(TP1, 51)
    tracker.done(TP1, 50)
    tracker.done(TP0, 1)
    assert tracker.take_committable() == {TP0: 2, TP1: 51}


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    tracker.add(TP0, 0)
    tracker.add(TP1, 0)
    tracker.add(TP1, 1)
    tracker.done(TP1, 1)
    assert tracker.take_committable() == {}  # TP1 blocked by its own 0, not by TP0
    tracker.done(TP1, 0)
    assert tracker.take_committable() == {TP1: 2}
    assert tracker.pending([TP0]) == 1


def test_pending_counts() -> None:
    tracker = OffsetTracker()
    for offset in range(4):
        tracker.add(TP0, offset)
    for offset in range(2):
        tracker.add(TP1, offset)
    assert tracker.pending() == 6
    assert tracker.pending([TP0]) == 4
    assert tracker.pending([TP1]) == 2
    assert tracker.pending([TP_OTHER]) == 0
    assert tracker.pending([TP0, TP1]) == 6
    tracker.done(TP0, 1)  # done but behind an open offset: still pending
    assert tracker.pending([TP0]) == 4
    tracker.done(TP0, 0)
    assert tracker.pending([TP0]) == 2
    assert tracker.pending() == 4


def test_done_for_unknown_offset_is_ignored() -> None:
    tracker = tracker_with(TP0, [1])
    tracker.done(TP0, 99)
    tracker.done(TP_OTHER, 1)
    assert tracker.pending() == 1
    assert tracker.take_committable() == {}


def test_done_twice_is_harmless() -> None:
    tracker = tracker_with(TP0, [1, 2])
    tracker.done(TP0, 1)
    tracker.done(TP0, 1)
    assert tracker.take_committable() == {TP0: 2}
    assert tracker.pending() == 1


def test_forget_drops_a_partition_and_later_done_is_ignored() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.add(TP0, offset)
        tracker.add(TP1, offset)
    tracker.done(TP0, 0)  # committable {TP0: 1}, dropped by forget
    tracker.forget([TP0])
    assert tracker.pending([TP0]) == 0
    assert tracker.pending() == 5
    assert tracker.take_committable() == {}
    for offset in range(5):
        tracker.done(TP0, offset)  # late completions of revoked work: ignored
    assert tracker.take_committable() == {}
    assert tracker.pending([TP0]) == 0
    tracker.done(TP1, 0)
    assert tracker.take_committable() == {TP1: 1}


def test_forget_unknown_partition_is_harmless() -> None:
    tracker = tracker_with(TP0, [3])
    tracker.forget([TP_OTHER])
    tracker.forget([])
    assert tracker.pending() == 1


def test_partition_can_be_reassigned_after_forget() -> None:
    tracker = tracker_with(TP0, range(3))
    tracker.forget([TP0])
    tracker.add(TP0, 2)  # re-assigned: fetching resumes from the last commit
    tracker.add(TP0, 3)
    tracker.done(TP0, 0)  # stale completion from before the revoke
    assert tracker.take_committable() == {}
    tracker.done(TP0, 2)
    tracker.done(TP0, 3)
    assert tracker.take_committable() == {TP0: 4}
    assert tracker.pending() == 0
