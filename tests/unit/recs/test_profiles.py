"""Unit tests for stream_aimass.recs.profiles: the decayed, weighted profile sum and its state.

Item vectors are small hand-made unit vectors; no encoder is involved.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from stream_aimass.records import Event, Source
from stream_aimass.recs import profile_config
from stream_aimass.recs.profiles import (
    MAX_PENDING,
    Profile,
    ProfileConfig,
    apply_event,
    profile_key,
    resolve_pending,
)
from stream_aimass.settings import Settings

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
HALF_LIFE_S = 100.0
HALF_LIFE_MS = int(HALF_LIFE_S * 1000)
DIM = 4
E = np.eye(DIM, dtype=np.float32)  # E[i]: the unit vector along axis i


def config(recent_items: int = 100, **weights: float) -> ProfileConfig:
    return ProfileConfig(
        weights=weights or {"view": 1.0, "click": 2.0},
        half_life_s=HALF_LIFE_S,
        recent_items=recent_items,
    )


def event(
    item_id: str,
    ts_ms: int,
    *,
    type: str = "view",
    offset: int = 0,
    partition: int = 0,
    user_id: str = "u1",
) -> Event:
    return Event(
        event_id=f"e-{partition}-{offset}",
        tenant="acme",
        user_id=user_id,
        item_id=item_id,
        type=type,
        ts_ms=ts_ms,
        source=Source("aimass.events", partition, offset, ts_ms),
    )


def apply_all(
    events: list[tuple[Event, np.ndarray | None]], cfg: ProfileConfig, model_version: str = ""
) -> Profile:
    profile: Profile | None = None
    for ev, vector in events:
        profile = apply_event(profile, ev, vector, cfg, model_version)
        assert profile is not None
    assert profile is not None
    return profile


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Default settings, untouched by AIMASS_* variables of the outside environment."""
    for name in list(os.environ):
        if name.upper().startswith("AIMASS_"):
            monkeypatch.delenv(name)
    return Settings()


def test_first_event_creates_profile() -> None:
    profile = apply_event(None, event("a", T0), E[0], config())
    assert profile is not None
    assert (profile.tenant, profile.user_id) == ("acme", "u1")
    assert profile.key == profile_key("acme", "u1") == b"acme:u1"
    assert profile.vector is not None and profile.vector.dtype == np.float32
    np.testing.assert_array_equal(profile.vector, E[0])
    assert profile.weight == 1.0
    assert profile.ref_ms == T0


def test_one_half_life_later_halves_the_old_contribution() -> None:
    cfg = config()
    profile = apply_all(
        [
            (event("a", T0, offset=0), E[0]),
            (event("b", T0 + HALF_LIFE_MS, offset=1), E[1]),
        ],
        cfg,
    )
    assert profile.vector is not None
    np.testing.assert_array_equal(profile.vector, [0.5, 1.0, 0.0, 0.0])
    assert profile.weight == 1.5
    assert profile.ref_ms == T0 + HALF_LIFE_MS


def test_decay_by_hand_over_several_events() -> None:
    # view a at T0, click b at T0 + 2 half-lives, view a at T0 + 3 half-lives. At T = T0 + 3 hl:
    # a: 1 * 0.5**3 + 1 = 1.125; b: 2 * 0.5**1 = 1.0; weight 1.125 + 1.0.
    cfg = config()
    profile = apply_all(
        [
            (event("a", T0, offset=0), E[0]),
            (event("b", T0 + 2 * HALF_LIFE_MS, type="click", offset=1), E[1]),
            (event("a", T0 + 3 * HALF_LIFE_MS, offset=2), E[0]),
        ],
        cfg,
    )
    assert profile.vector is not None
    np.testing.assert_allclose(profile.vector, [1.125, 1.0, 0.0, 0.0], rtol=1e-6)
    assert profile.weight == pytest.approx(2.125)
    unit = profile.unit_vector()
    assert unit is not None and unit.dtype == np.float32
    np.testing.assert_allclose(unit, np.array([1.125, 1.0, 0, 0]) / np.hypot(1.125, 1.0), rtol=1e-6)


def test_out_of_order_event_is_added_already_decayed() -> None:
    cfg = config()
    profile = apply_all(
        [
            (event("b", T0 + HALF_LIFE_MS, offset=0), E[1]),
            (event("a", T0, offset=1), E[0]),  # one half-life older than the reference
        ],
        cfg,
    )
    assert profile.vector is not None
    np.testing.assert_array_equal(profile.vector, [0.5, 1.0, 0.0, 0.0])
    assert profile.weight == 1.5
    assert profile.ref_ms == T0 + HALF_LIFE_MS


def test_event_type_weights_from_settings(settings: Settings) -> None:
    cfg = profile_config(settings)
    assert cfg.half_life_s == settings.recs_profile_half_life_s
    assert cfg.recent_items == settings.recs_recent_items
    weights = [cfg.weight(t) for t in ("view", "click", "like", "purchase")]
    assert 0 < weights[0] < weights[1] < weights[2] < weights[3]
    for type_, expected in zip(("view", "click", "like", "purchase"), weights, strict=True):
        profile = apply_event(None, event("a", T0, type=type_), E[0], cfg)
        assert profile is not None and profile.vector is not None
        np.testing.assert_allclose(profile.vector, expected * E[0])
        assert profile.weight == pytest.approx(expected)


def test_heavier_event_type_pulls_the_profile_towards_its_item(settings: Settings) -> None:
    cfg = profile_config(settings)
    profile = apply_all(
        [
            (event("a", T0, type="view", offset=0), E[0]),
            (event("b", T0, type="purchase", offset=1), E[1]),
        ],
        cfg,
    )
    unit = profile.unit_vector()
    assert unit is not None
    assert unit @ E[1] > unit @ E[0] > 0
    expected = np.array([cfg.weight("view"), cfg.weight("purchase"), 0.0, 0.0])
    assert profile.vector is not None
    np.testing.assert_allclose(profile.vector, expected, rtol=1e-6)


def test_unweighted_event_type_counts_but_adds_no_vector() -> None:
    profile = apply_event(None, event("a", T0, type="share"), E[0], config())
    assert profile is not None
    assert profile.vector is None
    assert profile.unit_vector() is None
    assert profile.counts == {"share": 1}
    assert profile.recent == ["a"]


@pytest.mark.parametrize("seed", range(5))
def test_arrival_order_does_not_change_the_vector(seed: int) -> None:
    rng = random.Random(seed)
    cfg = config(view=1.0, click=2.0, like=3.0, purchase=5.0)
    vectors = {
        f"i{n}": _unit(np.random.default_rng(seed * 100 + n).normal(size=DIM)) for n in range(6)
    }
    raw = [
        (
            rng.choice(list(vectors)),
            T0 + rng.randrange(0, 5 * HALF_LIFE_MS),
            rng.choice(list(cfg.weights)),
        )
        for _ in range(30)
    ]

    def run(order: list[tuple[str, int, str]]) -> Profile:
        # Offsets follow arrival, as Kafka delivers them; event times do not.
        return apply_all(
            [
                (event(item, ts, type=type_, offset=n), vectors[item])
                for n, (item, ts, type_) in enumerate(order)
            ],
            cfg,
        )

    in_order = run(sorted(raw, key=lambda e: e[1]))
    shuffled = list(raw)
    rng.shuffle(shuffled)
    out_of_order = run(shuffled)

    ref = max(ts for _, ts, _ in raw)
    expected = sum(
        cfg.weight(type_) * 0.5 ** ((ref - ts) / HALF_LIFE_MS) * vectors[item].astype(np.float64)
        for item, ts, type_ in raw
    )
    expected_weight = sum(cfg.weight(t) * 0.5 ** ((ref - ts) / HALF_LIFE_MS) for _, ts, t in raw)
    for profile in (in_order, out_of_order):
        assert profile.ref_ms == ref
        assert profile.vector is not None
        np.testing.assert_allclose(profile.vector, expected, rtol=1e-5, atol=1e-6)
        assert profile.weight == pytest.approx(expected_weight, rel=1e-9)
        assert profile.counts == in_order.counts
        assert profile.first_seen_ms == min(ts for _, ts, _ in raw)
        assert profile.last_seen_ms == ref
    assert in_order.vector is not None and out_of_order.vector is not None
    np.testing.assert_allclose(in_order.vector, out_of_order.vector, rtol=1e-5, atol=1e-6)


def test_replayed_offset_is_not_applied_twice() -> None:
    cfg = config()
    # Kafka timestamps need not follow offsets (producers set them): 4 is newer than 5.
    profile = apply_event(None, event("b", T0 + 1, offset=4), E[1], cfg)
    assert profile is not None
    assert apply_event(profile, event("a", T0, offset=5), E[0], cfg) is profile
    before = profile.to_bytes()
    # The same deliveries again, in any order, change nothing.
    assert apply_event(profile, event("a", T0, offset=5), E[0], cfg) is None
    assert apply_event(profile, event("b", T0 + 1, offset=4), E[1], cfg) is None
    assert profile.to_bytes() == before
    assert profile.applied(0, 5) and profile.applied(0, 4) and not profile.applied(0, 6)


def test_reused_offsets_of_a_new_topic_incarnation_are_applied() -> None:
    """A restarted broker or a recreated topic starts at offset 0 again: its events carry
    later Kafka timestamps than anything applied, and must not pass for replays."""
    cfg = config()
    profile = apply_event(None, event("a", T0, offset=40), E[0], cfg)
    assert profile is not None
    after = apply_event(profile, event("b", T0 + 60_000, offset=0), E[1], cfg)
    assert after is profile and profile.events == 2
    # ... and that incarnation's own replays are still recognised.
    assert apply_event(profile, event("b", T0 + 60_000, offset=0), E[1], cfg) is None
    assert Profile.from_bytes(profile.to_bytes()).offset_ts == {0: T0 + 60_000}


def test_other_partition_offsets_are_independent() -> None:
    cfg = config()
    profile = apply_event(None, event("a", T0, offset=5, partition=0), E[0], cfg)
    assert profile is not None
    assert not profile.applied(1, 5)
    after = apply_event(profile, event("b", T0, offset=5, partition=1), E[1], cfg)
    assert after is profile
    assert profile.offsets == {0: 5, 1: 5}
    assert profile.events == 2
    np.testing.assert_array_equal(profile.vector, [1.0, 1.0, 0.0, 0.0])
    assert apply_event(profile, event("c", T0, offset=5, partition=1), E[2], cfg) is None
    assert apply_event(profile, event("c", T0, offset=6, partition=0), E[2], cfg) is profile


def test_recent_items_are_capped_and_deduplicated_most_recent_last() -> None:
    cfg = config(recent_items=3)
    items = ["a", "b", "c", "a", "d", "d"]
    profile = apply_all(
        [(event(item, T0 + n, offset=n), E[0]) for n, item in enumerate(items)], cfg
    )
    assert profile.recent == ["c", "a", "d"]
    assert profile.summary()["recent_items"] == ["d", "a", "c"]  # newest first
    assert profile.events == 6


def test_counts_and_first_last_seen() -> None:
    cfg = config()
    profile = apply_all(
        [
            (event("a", T0 + 50, type="view", offset=0), E[0]),
            (event("b", T0 + 90, type="click", offset=1), E[1]),
            (event("c", T0 + 10, type="view", offset=2), E[2]),  # late arrival, earliest time
            (event("d", T0 + 70, type="purchase", offset=3), E[3]),  # weight 0 in this config
        ],
        cfg,
    )
    assert profile.counts == {"view": 2, "click": 1, "purchase": 1}
    assert profile.events == 4
    assert profile.first_seen_ms == T0 + 10
    assert profile.last_seen_ms == T0 + 90
    summary = profile.summary()
    assert summary["events"] == 4
    assert summary["first_seen_ms"] == T0 + 10
    assert summary["last_seen_ms"] == T0 + 90
    assert summary["has_vector"] is True


def test_unknown_item_is_recorded_without_a_vector() -> None:
    cfg = config()
    profile = apply_event(None, event("ghost", T0, type="click"), None, cfg)
    assert profile is not None
    assert profile.vector is None
    assert profile.weight == 0.0
    assert profile.recent == ["ghost"]
    assert profile.counts == {"click": 1}
    assert profile.events == 1
    assert profile.first_seen_ms == profile.last_seen_ms == T0
    assert profile.summary()["has_vector"] is False

    # Once the profile has a vector, an unknown item leaves it (and its reference time) alone.
    apply_event(profile, event("a", T0 + 10, offset=1), E[0], cfg)
    assert profile.vector is not None
    vector = profile.vector.copy()
    apply_event(profile, event("ghost2", T0 + 10 * HALF_LIFE_MS, offset=2), None, cfg)
    np.testing.assert_array_equal(profile.vector, vector)
    assert profile.ref_ms == T0 + 10
    assert profile.recent == ["ghost", "a", "ghost2"]
    assert profile.last_seen_ms == T0 + 10 * HALF_LIFE_MS


def test_model_version_change_restarts_the_vector() -> None:
    cfg = config()
    profile = apply_event(None, event("a", T0, offset=0), E[0], cfg, "enc-v1")
    assert profile is not None and profile.model_version == "enc-v1"
    apply_event(profile, event("b", T0 + HALF_LIFE_MS, offset=1), E[1], cfg, "enc-v1")
    np.testing.assert_array_equal(profile.vector, [0.5, 1.0, 0.0, 0.0])

    apply_event(
        profile, event("c", T0 + 2 * HALF_LIFE_MS, type="click", offset=2), E[2], cfg, "enc-v2"
    )
    np.testing.assert_array_equal(profile.vector, [0.0, 0.0, 2.0, 0.0])
    assert profile.weight == 2.0
    assert profile.ref_ms == T0 + 2 * HALF_LIFE_MS
    assert profile.model_version == "enc-v2"
    # The history other than the vector is kept.
    assert profile.recent == ["a", "b", "c"]
    assert profile.events == 3


def test_no_model_version_keeps_the_vector() -> None:
    cfg = config()
    profile = apply_event(None, event("a", T0, offset=0), E[0], cfg, "enc-v1")
    assert profile is not None
    apply_event(profile, event("b", T0, offset=1), E[1], cfg)
    np.testing.assert_array_equal(profile.vector, [1.0, 1.0, 0.0, 0.0])
    assert profile.model_version == "enc-v1"


def test_bytes_round_trip_is_exact() -> None:
    cfg = config()
    rng = np.random.default_rng(7)
    profile: Profile | None = None
    for n in range(12):
        ts = T0 + int(rng.integers(0, 3 * HALF_LIFE_MS))
        profile = apply_event(
            profile,
            event(
                f"i{n % 5}", ts, type=("view", "click", "like")[n % 3], offset=n, partition=n % 3
            ),
            _unit(rng.normal(size=DIM)),
            cfg,
            "enc-v1",
        )
    assert profile is not None and profile.vector is not None
    restored = Profile.from_bytes(profile.to_bytes())
    assert restored.vector is not None
    assert restored.vector.dtype == np.float32
    assert restored.vector.tobytes() == profile.vector.tobytes()
    restored.vector[0] += 1  # a writable copy, not a view of the message bytes
    for name in (
        "tenant",
        "user_id",
        "weight",
        "ref_ms",
        "recent",
        "counts",
        "events",
        "first_seen_ms",
        "last_seen_ms",
        "offsets",
        "model_version",
    ):
        assert getattr(restored, name) == getattr(profile, name), name
    assert restored.offsets == {0: 9, 1: 10, 2: 11}
    assert restored.to_bytes() != profile.to_bytes()  # the vector edit above is visible


def test_bytes_round_trip_without_vector() -> None:
    profile = apply_event(None, event("ghost", T0, offset=3), None, config())
    assert profile is not None
    restored = Profile.from_bytes(profile.to_bytes())
    assert restored.vector is None
    assert restored.to_bytes() == profile.to_bytes()
    assert restored.applied(0, 3)


def _unit(v: np.ndarray) -> np.ndarray:
    unit: np.ndarray = (v / np.linalg.norm(v)).astype(np.float32)
    return unit


def test_pending_item_is_added_decayed_from_its_own_time_once_indexed() -> None:
    cfg = config()
    profile = apply_event(None, event("late", T0, type="click"), None, cfg)
    assert profile is not None and profile.pending == [("late", 2.0, T0)]
    apply_event(profile, event("a", T0 + HALF_LIFE_MS, offset=1), E[0], cfg)
    # Still unknown: nothing to add, the entry stays.
    assert resolve_pending(profile, lambda item: None, cfg) == 0
    assert profile.pending == [("late", 2.0, T0)]
    index = {"late": E[1]}
    assert resolve_pending(profile, index.get, cfg) == 1
    assert profile.pending == []
    # The same vector as if the item had been known when the click happened.
    expected = apply_all([(event("late", T0, type="click"), E[1]),
                          (event("a", T0 + HALF_LIFE_MS, offset=1), E[0])], cfg)  # fmt: skip
    assert expected.vector is not None and profile.vector is not None
    np.testing.assert_allclose(profile.vector, expected.vector, rtol=1e-6)
    assert profile.weight == pytest.approx(expected.weight)


def test_pending_items_are_bounded_and_survive_the_round_trip() -> None:
    cfg = config()
    profile: Profile | None = None
    for i in range(MAX_PENDING + 5):
        profile = apply_event(profile, event(f"x{i}", T0 + i, offset=i), None, cfg)
    assert profile is not None
    assert [p[0] for p in profile.pending] == [f"x{i}" for i in range(5, MAX_PENDING + 5)]
    assert Profile.from_bytes(profile.to_bytes()).pending == profile.pending


def test_apply_event_adds_pending_items_its_lookup_now_finds() -> None:
    cfg = config()
    profile = apply_event(None, event("late", T0, type="click"), None, cfg)
    assert profile is not None
    index = {"late": E[1]}
    apply_event(profile, event("a", T0 + HALF_LIFE_MS, offset=1), E[0], cfg, lookup=index.get)
    assert profile.pending == []
    expected = apply_all([(event("late", T0, type="click"), E[1]),
                          (event("a", T0 + HALF_LIFE_MS, offset=1), E[0])], cfg)  # fmt: skip
    assert expected.vector is not None and profile.vector is not None
    np.testing.assert_allclose(profile.vector, expected.vector, rtol=1e-6)
    # A replayed event changes nothing, pending items included.
    profile.pending.append(("late2", 1.0, T0))
    replay = apply_event(
        profile, event("a", T0 + HALF_LIFE_MS, offset=1), E[0], cfg, lookup={"late2": E[2]}.get
    )
    assert replay is None and profile.pending == [("late2", 1.0, T0)]
