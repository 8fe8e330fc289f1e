"""Offline replay of the recommender on a hand-built index (no encoder)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from stream_aimass.evaluation.recs import (
    METHODS,
    ReplayResult,
    events_from_dicts,
    items_from_documents,
    read_events,
    read_items,
    recs_png,
    recs_report,
    replay,
)
from stream_aimass.evaluation.recs_synthetic import synthetic_events
from stream_aimass.records import ItemVector, ModelRef
from stream_aimass.recs.index import ItemIndex
from stream_aimass.recs.profiles import ProfileConfig
from stream_aimass.recs.scoring import Scorer, ScoringConfig
from stream_aimass.tools.corpus import generate_documents

WEIGHTS = {"view": 1.0, "click": 2.0, "like": 3.0, "purchase": 5.0}
PROFILES = ProfileConfig(weights=WEIGHTS, half_life_s=1e9, recent_items=100)
COSINE_ONLY = ScoringConfig(k=2, weight_popularity=0.0, weight_recency=0.0)
NDCG_2 = 1 / math.log2(3)  # a single relevant item at rank 2


def _item(item_id: str, vector: list[float], ts_ms: int = 0, tenant: str = "t") -> ItemVector:
    v = np.asarray(vector, dtype=np.float32)
    return ItemVector(
        tenant=tenant, item_id=item_id, kind="document", ts_ms=ts_ms,
        vector=v / np.linalg.norm(v), model=ModelRef("hand", "v1"), updated_at_ms=ts_ms,
    )  # fmt: skip


ITEMS = [
    _item("a", [1, 0, 0]),
    _item("b", [0.8, 0.6, 0]),
    _item("c", [0, 1, 0]),
    _item("d", [0, 0, 1]),
    # Published after every event: it must never be recommended, though it matches u1 best.
    _item("late", [1, 0.05, 0], ts_ms=60_000),
]


def _event(n: int, user: str, item: str, ts: int, kind: str = "view") -> dict[str, object]:
    return {"event_id": f"e{n}", "tenant": "t", "user_id": user, "item_id": item,
            "type": kind, "ts": ts}  # fmt: skip


EVENTS = [
    _event(1, "u1", "a", 1000),  # u1's first event: no target
    _event(2, "u2", "c", 1500, "click"),  # u2's first event
    _event(3, "u1", "b", 2000),  # target; u1 = a
    _event(4, "u1", "d", 3000),  # target; u1 = a + b
    _event(5, "u1", "a", 4000),  # a repeat: skipped
    _event(6, "u1", "zzz", 5000),  # not in the index
    _event(7, "u1", "late", 6000),  # in the file, not published yet: unknown too
]


def _replay(
    events: list[dict[str, object]], config: ScoringConfig = COSINE_ONLY, k: int = 2, seed: int = 5
) -> ReplayResult:
    index = ItemIndex()
    return replay(
        events_from_dicts(events), ITEMS, index=index, scorer=Scorer(index, config),
        profiles=PROFILES, k=k, seed=seed,
    )  # fmt: skip


def test_hits_and_ndcg_match_a_hand_computation() -> None:
    result = _replay(EVENTS)
    assert (result.events, result.targets, result.users, result.items) == (7, 2, 2, 5)
    assert (result.skipped_repeats, result.unknown_items, result.cold_start_targets) == (1, 2, 0)
    # Event 3: u1 = a; cos(b) 0.8, c and d 0 -> b first.
    # Event 4: u1 = (a + b) / |a + b|; cos(c) 0.32, cos(d) 0 -> c, d: d second.
    assert result.ranks["recommender"] == [1, 2]
    # Popularity before event 3: c (click, 2) > a (excluded) > b = d (0, row order) -> c, b.
    # Before event 4: c 2 > b 1 (excluded) -> c, d.
    assert result.ranks["popularity"] == [2, 2]
    assert result.recall("recommender") == 1.0
    assert result.recall("recommender", 1) == 0.5
    assert result.ndcg("recommender") == pytest.approx((1 + NDCG_2) / 2)
    assert result.ndcg("popularity") == pytest.approx(NDCG_2)
    assert result.recall("popularity", 1) == 0.0


def test_events_are_replayed_in_time_order_whatever_the_input_order() -> None:
    shuffled = list(EVENTS)
    random.Random(3).shuffle(shuffled)
    # Offsets follow replay order, so no event looks like an at-least-once duplicate.
    assert _replay(shuffled).ranks == _replay(EVENTS).ranks


def test_baselines_are_deterministic_for_a_seed() -> None:
    many = [_event(n, f"u{n % 3}", "abcd"[n % 4], 1000 * n) for n in range(1, 40)]
    first, again = _replay(many, seed=7), _replay(many, seed=7)
    assert first.ranks == again.ranks
    assert first.targets > 0 and len(first.ranks["random"]) == first.targets


def test_users_without_a_profile_vector_take_the_cold_start_path() -> None:
    events = [_event(1, "u9", "zzz", 1000), _event(2, "u9", "c", 2000)]
    result = _replay(events, ScoringConfig(k=2, weight_popularity=0.1, weight_recency=0.05))
    assert (result.targets, result.cold_start_targets, result.unknown_items) == (1, 1, 1)


def test_an_event_before_its_item_was_indexed_counts_once_the_item_arrives() -> None:
    # As in the stream: the event is pending until a later event finds the item's vector.
    events = [_event(1, "u3", "late", 50_000), _event(2, "u3", "a", 70_000)]
    result = _replay(events)
    assert (result.targets, result.unknown_items, result.cold_start_targets) == (1, 1, 0)
    assert result.ranks["recommender"] == [1]  # u3 = late, whose nearest item is a


def test_report_has_the_documented_shape(tmp_path: Path) -> None:
    result = _replay(EVENTS)
    png = recs_png(result, tmp_path / "r" / "recs.png", "test")
    report = recs_report(
        result, synthetic=False, model={"name": "aimass-recs", "version": "x"},
        encoder={"name": "hand", "version": "v1"}, plot=str(png), seconds=0.123,
    )  # fmt: skip
    assert list(report) == [
        "k", "events", "targets", "skipped_repeats", "unknown_items", "users", "items",
        "recall@2", "ndcg@2", "popularity", "random", "recall_vs_popularity", "synthetic",
        "model", "encoder", "plot", "seconds",
    ]  # fmt: skip
    assert set(report["popularity"]) == set(report["random"]) == {"recall@2", "ndcg@2"}
    assert report["recall_vs_popularity"] == 1.0
    json.dumps(report)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ratio_is_null_when_popularity_never_hits() -> None:
    result = ReplayResult(k=2, ranks={m: [1] if m == "recommender" else [0] for m in METHODS})
    report = recs_report(result, synthetic=True, model={}, encoder={}, plot="", seconds=0)
    assert report["recall_vs_popularity"] is None


# -- files ---------------------------------------------------------------------------------


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_events_file_errors_name_the_line(tmp_path: Path) -> None:
    good = json.dumps(_event(1, "u1", "a", 1000))
    path = _write(tmp_path / "ev.jsonl", [good, "", json.dumps({"event_id": "x", "tenant": "t"})])
    with pytest.raises(ValueError, match=r"ev\.jsonl:3: missing required field 'user_id'"):
        read_events(path)
    with pytest.raises(ValueError, match=r"ev\.jsonl:2: not valid JSON"):
        read_events(_write(tmp_path / "ev.jsonl", [good, "{nope"]))
    bad_type = json.dumps(_event(1, "u1", "a", 1000, "share"))
    with pytest.raises(ValueError, match=r":1: field 'type' must be one of"):
        read_events(_write(tmp_path / "ev.jsonl", [bad_type]))
    with pytest.raises(ValueError, match="no events"):
        read_events(_write(tmp_path / "ev.jsonl", [""]))
    with pytest.raises(ValueError, match="cannot read"):
        read_events(tmp_path / "missing.jsonl")
    assert [e.item_id for e in read_events(_write(tmp_path / "ev.jsonl", [good]))] == ["a"]


SPORTS = {"category_hint": "sports"}


def test_items_file_reads_documents_with_optional_ts_and_category(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "i1", "tenant": "t", "text": "hello", "category": "news"}),
        json.dumps({"id": "i2", "tenant": "t", "text": "x", "ts": 5, "title": "T", "meta": SPORTS}),
    ]
    items = read_items(_write(tmp_path / "items.jsonl", lines))
    assert [(i.item_id, i.ts_ms, i.category, i.title) for i in items] == [
        ("i1", 0, "news", ""),
        ("i2", 5, "sports", "T"),
    ]
    with pytest.raises(ValueError, match=r"items\.jsonl:2: missing required field 'text'"):
        read_items(_write(tmp_path / "items.jsonl", [lines[0], '{"id": "i3", "tenant": "t"}']))


# -- synthetic users -----------------------------------------------------------------------


def test_synthetic_events_are_deterministic_and_well_formed() -> None:
    docs = generate_documents(120, seed=3)
    events = synthetic_events(docs, users=9, events_per_user=6, seed=4)
    assert events == synthetic_events(docs, users=9, events_per_user=6, seed=4)
    assert events != synthetic_events(docs, users=9, events_per_user=6, seed=5)
    assert len(events) == 54
    assert len({(e["tenant"], e["user_id"]) for e in events}) == 9
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    published = {d["id"]: (d["tenant"], d["ts"]) for d in docs}
    for event in events:
        tenant, ts = published[event["item_id"]]
        assert event["tenant"] == tenant and event["ts"] > ts
    assert {e.type for e in events_from_dicts(events)} <= {"view", "click", "like", "purchase"}
    assert len(items_from_documents(docs)) == 120


def test_synthetic_users_concentrate_on_few_categories() -> None:
    docs = generate_documents(700, seed=3)
    category = {d["id"]: d["meta"]["category_hint"] for d in docs}  # type: ignore[index]
    events = synthetic_events(docs, users=60, events_per_user=30, seed=4)
    shares = []
    for user in {e["user_id"] for e in events}:
        counts: dict[str, int] = {}
        for e in events:
            if e["user_id"] == user:
                counts[category[e["item_id"]]] = counts.get(category[e["item_id"]], 0) + 1
        shares.append(sum(sorted(counts.values())[-2:]) / 30)
    assert np.mean(shares) > 0.6  # two categories take most of a user's events (7 exist)
