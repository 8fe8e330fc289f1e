"""Unit tests for stream_aimass.recs.scoring: batched top-K over a real ItemIndex."""

from __future__ import annotations

import math
import os
import random

import numpy as np
import pytest

from stream_aimass.records import Event, ItemVector, ModelRef, Source
from stream_aimass.recs import scoring_config
from stream_aimass.recs.index import ItemIndex
from stream_aimass.recs.profiles import ProfileConfig, apply_event
from stream_aimass.recs.scoring import Scored, Scorer, ScoreRequest, ScoringConfig
from stream_aimass.settings import Settings

NOW = 1_735_689_600_000  # 2025-01-01T00:00:00Z
HALF_LIFE_MS = 100_000
DIM = 4
E = np.eye(DIM, dtype=np.float32)
COSINE_ONLY = ScoringConfig(k=10, weight_popularity=0.0, weight_recency=0.0)


def unit(v: object) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return (a / np.linalg.norm(a)).astype(np.float32)


def make_index(*tenants: dict[str, tuple[np.ndarray, int]]) -> ItemIndex:
    """An index from ``{item_id: (vector, ts_ms)}`` per tenant, named t0, t1, ..."""
    index = ItemIndex(popularity_half_life_s=HALF_LIFE_MS / 1000)
    for n, items in enumerate(tenants):
        for item_id, (vector, ts_ms) in items.items():
            index.upsert(
                ItemVector(
                    tenant=f"t{n}",
                    item_id=item_id,
                    kind="document",
                    ts_ms=ts_ms,
                    vector=vector,
                    model=ModelRef("minilm", "v1"),
                    updated_at_ms=ts_ms,
                    title=f"title {item_id}",
                    category=f"cat-{item_id}",
                )
            )
    return index


def ids(scored: Scored) -> list[str]:
    return [s.item_id for s in scored.items]


def request(
    vector: np.ndarray | None,
    tenant: str = "t0",
    exclude: tuple[str, ...] = (),
    k: int | None = None,
    now_ms: int = NOW,
) -> ScoreRequest:
    return ScoreRequest(tenant=tenant, vector=vector, exclude=exclude, now_ms=now_ms, k=k)


@pytest.fixture
def five_items() -> ItemIndex:
    # Cosines with E[0]: a 1.0, b 0.8, c 0.6, d 0.0, e -0.6.
    return make_index(
        {
            "c": (unit([0.6, 0.8, 0, 0]), NOW),
            "a": (E[0], NOW),
            "e": (unit([-0.6, 0, 0.8, 0]), NOW),
            "b": (unit([0.8, 0, 0.6, 0]), NOW),
            "d": (E[3], NOW),
        }
    )


def test_warm_user_gets_top_k_by_cosine(five_items: ItemIndex) -> None:
    (scored,) = Scorer(five_items, COSINE_ONLY).score([request(E[0], k=3)])
    assert not scored.cold_start
    assert ids(scored) == ["a", "b", "c"]
    assert [s.score for s in scored.items] == pytest.approx([1.0, 0.8, 0.6], abs=1e-5)
    assert scored.items[0].category == "cat-a"
    assert scored.items[0].title == "title a"
    assert scored.items[1].to_dict(rank=2) == {
        "item_id": "b",
        "score": scored.items[1].score,
        "rank": 2,
        "category": "cat-b",
    }


def test_config_k_is_the_default(five_items: ItemIndex) -> None:
    config = ScoringConfig(k=2, weight_popularity=0.0, weight_recency=0.0)
    scorer = Scorer(five_items, config)
    default, wider = scorer.score([request(E[0]), request(E[0], k=4)])
    assert ids(default) == ["a", "b"]
    assert ids(wider) == ["a", "b", "c", "d"]


def test_excluded_items_never_appear(five_items: ItemIndex) -> None:
    scorer = Scorer(five_items, COSINE_ONLY)
    (scored,) = scorer.score([request(E[0], exclude=("a", "c", "not-indexed"), k=2)])
    assert ids(scored) == ["b", "d"]
    for k in (1, 3, 5, 50):
        (scored,) = scorer.score([request(E[0], exclude=("a", "b"), k=k)])
        assert "a" not in ids(scored) and "b" not in ids(scored)
        assert len(scored.items) == min(k, 3)


def test_k_larger_than_the_tenant_returns_every_unseen_item(five_items: ItemIndex) -> None:
    (scored,) = Scorer(five_items, COSINE_ONLY).score([request(E[0], exclude=("b",), k=100)])
    assert ids(scored) == ["a", "c", "d", "e"]
    assert [s.score for s in scored.items] == pytest.approx([1.0, 0.6, 0.0, -0.6], abs=1e-5)
    (everything,) = Scorer(five_items, COSINE_ONLY).score(
        [request(E[0], exclude=tuple("abcde"), k=100)]
    )
    assert everything.items == []
    assert not everything.cold_start


def test_cold_start_ranks_popular_in_tenant_first() -> None:
    index = make_index({name: (E[n % DIM], NOW - HALF_LIFE_MS) for n, name in enumerate("wxyz")})
    index.add_interaction("t0", "y", 5.0, NOW)
    index.add_interaction("t0", "x", 1.0, NOW)
    index.add_interaction("t0", "x", 1.0, NOW)
    index.add_interaction("t0", "w", 1.0, NOW)
    config = ScoringConfig(k=10)
    (scored,) = Scorer(index, config).score([request(None)])
    assert scored.cold_start
    assert ids(scored) == ["y", "x", "w", "z"]
    fresh = config.weight_recency * 0.5 ** (HALF_LIFE_MS / (config.recency_half_life_s * 1000))
    expected = [
        config.weight_popularity * math.log1p(c) / math.log1p(5.0) + fresh for c in (5, 2, 1, 0)
    ]
    assert [s.score for s in scored.items] == pytest.approx(expected, abs=1e-5)


def test_cold_start_without_interactions_ranks_newest_first() -> None:
    ages = {"oldest": 30, "newest": 0, "mid": 3, "old": 9}  # in half-lives
    index = make_index({name: (E[0], NOW - age * HALF_LIFE_MS) for name, age in ages.items()})
    config = ScoringConfig(recency_half_life_s=HALF_LIFE_MS / 1000)
    (scored,) = Scorer(index, config).score([request(None, exclude=("mid",))])
    assert scored.cold_start
    assert ids(scored) == ["newest", "old", "oldest"]
    assert [s.score for s in scored.items] == pytest.approx(
        [config.weight_recency * 0.5**n for n in (0, 9, 30)], abs=1e-5
    )


def test_tenant_isolation_in_a_mixed_batch() -> None:
    # t1 holds an exact match for every user; t0 users must still only get t0 items.
    # "shared" exists in both tenants with different vectors.
    index = make_index(
        {
            "a1": (E[1], NOW),
            "a2": (unit([0.5, 0.5, 0.5, 0.5]), NOW),
            "shared": (unit([-0.6, 0, 0, 0.8]), NOW),
        },
        {"best": (E[0], NOW), "shared": (E[0], NOW), "b2": (E[2], NOW)},
    )
    t0_items = {"a1", "a2", "shared"}
    t1_items = {"best", "shared", "b2"}
    requests = [
        request(E[0], tenant="t0"),
        request(E[0], tenant="t1"),
        request(None, tenant="t0"),
        request(E[0], tenant="t0", k=1),
        request(None, tenant="t1"),
        request(unit([1, 1, 0, 0]), tenant="t0", exclude=("best",)),
    ]
    results = Scorer(index, COSINE_ONLY).score(requests)
    for req, scored in zip(requests, results, strict=True):
        own = t0_items if req.tenant == "t0" else t1_items
        assert set(ids(scored)) <= own, (req.tenant, ids(scored))
        assert scored.items
        assert scored.cold_start is (req.vector is None)
    assert ids(results[0]) == ["a2", "a1", "shared"]
    assert [s.score for s in results[0].items] == pytest.approx([0.5, 0.0, -0.6], abs=1e-5)
    assert ids(results[1])[:2] in (["best", "shared"], ["shared", "best"])
    assert ids(results[3]) == ["a2"]


def test_batch_gives_the_same_results_as_one_request_at_a_time() -> None:
    rng = random.Random(3)
    nprng = np.random.default_rng(3)

    def items(prefix: str, n: int) -> dict[str, tuple[np.ndarray, int]]:
        return {
            f"{prefix}{i}": (
                unit(nprng.normal(size=DIM)),
                NOW - rng.randrange(0, 10 * HALF_LIFE_MS),
            )
            for i in range(n)
        }

    index = make_index(items("a", 25), items("b", 18))
    for tenant, prefix, n in (("t0", "a", 25), ("t1", "b", 18)):
        for _ in range(40):
            index.add_interaction(
                tenant,
                f"{prefix}{rng.randrange(n)}",
                rng.choice([1.0, 2.0, 5.0]),
                NOW - rng.randrange(0, 5 * HALF_LIFE_MS),
            )
    requests = []
    for _ in range(40):
        tenant = rng.choice(["t0", "t1", "unknown"])
        prefix, n = ("a", 25) if tenant == "t0" else ("b", 18)
        requests.append(
            request(
                None if rng.random() < 0.25 else unit(nprng.normal(size=DIM)),
                tenant=tenant,
                exclude=tuple(f"{prefix}{rng.randrange(n)}" for _ in range(rng.randrange(6))),
                k=rng.choice([None, 1, 3, 30]),
            )
        )
    scorer = Scorer(index, ScoringConfig(k=5))
    batch = scorer.score(requests)
    assert len(batch) == len(requests)
    for req, together in zip(requests, batch, strict=True):
        (alone,) = scorer.score([req])
        assert ids(together) == ids(alone)
        assert [s.score for s in together.items] == pytest.approx(
            [s.score for s in alone.items], abs=2e-5
        )
        assert together.cold_start == alone.cold_start
        assert not set(ids(together)) & set(req.exclude)


def popularity_recency_index() -> ItemIndex:
    # x: cosine 1.0, two half-lives old, never touched.
    # y: cosine 0.8, brand new, the most popular (3).
    # z: cosine 0.6, one half-life old, popularity 1 (log1p(1) / log1p(3) = 0.5 exactly).
    index = make_index(
        {
            "x": (E[0], NOW - 2 * HALF_LIFE_MS),
            "y": (unit([0.8, 0.6, 0, 0]), NOW),
            "z": (unit([0.6, 0, 0.8, 0]), NOW - HALF_LIFE_MS),
        }
    )
    index.add_interaction("t0", "y", 3.0, NOW)
    index.add_interaction("t0", "z", 1.0, NOW)
    return index


@pytest.mark.parametrize(
    ("w_pop", "w_rec", "order"),
    [
        (0.0, 0.0, ["x", "y", "z"]),
        (0.3, 0.0, ["y", "x", "z"]),
        (0.0, 0.4, ["y", "x", "z"]),
        (1.0, 0.2, ["y", "z", "x"]),
        (0.0, 2.0, ["y", "z", "x"]),
    ],
)
def test_popularity_and_recency_weights_follow_the_formula(
    w_pop: float, w_rec: float, order: list[str]
) -> None:
    config = ScoringConfig(
        weight_popularity=w_pop, weight_recency=w_rec, recency_half_life_s=HALF_LIFE_MS / 1000
    )
    cosine = {"x": 1.0, "y": 0.8, "z": 0.6}
    popularity = {"x": 0.0, "y": 1.0, "z": math.log(2) / math.log(4)}
    freshness = {"x": 0.25, "y": 1.0, "z": 0.5}
    expected = {
        i: cosine[i] + w_pop * popularity[i] + w_rec * freshness[i] for i in ("x", "y", "z")
    }
    (scored,) = Scorer(popularity_recency_index(), config).score([request(E[0])])
    assert ids(scored) == order
    assert {s.item_id: s.score for s in scored.items} == pytest.approx(expected, abs=1e-5)

    # The cold-start ranking is the same formula without the cosine.
    (cold,) = Scorer(popularity_recency_index(), config).score([request(None)])
    assert {s.item_id: s.score for s in cold.items} == pytest.approx(
        {i: expected[i] - cosine[i] for i in expected}, abs=1e-5
    )


def test_prior_is_the_user_independent_part() -> None:
    index = popularity_recency_index()
    config = ScoringConfig(weight_popularity=0.5, weight_recency=0.25, recency_half_life_s=100.0)
    items = index.tenant("t0")
    assert items is not None
    prior = Scorer(index, config).prior(items, NOW)
    assert prior.dtype == np.float32
    by_id = dict(zip(items.ids, prior.tolist(), strict=True))
    assert by_id == pytest.approx(
        {"x": 0.25 * 0.25, "y": 0.5 + 0.25, "z": 0.5 * 0.5 + 0.25 * 0.5}, abs=1e-6
    )


def test_request_without_a_time_does_not_fail() -> None:
    # ScoreRequest.now_ms defaults to 0: popularity is then read long before its base.
    index = popularity_recency_index()
    (scored,) = Scorer(index, ScoringConfig()).score([ScoreRequest("t0", None)])
    assert ids(scored)[0] == "y"
    assert all(math.isfinite(s.score) for s in scored.items)
    assert len(scored.items) == 3


def test_version_changes_with_every_formula_weight() -> None:
    base = ScoringConfig()
    assert base.version == ScoringConfig().version
    assert len(base.version) == 12
    changed = [
        ScoringConfig(weight_popularity=0.2),
        ScoringConfig(weight_recency=0.06),
        ScoringConfig(recency_half_life_s=3600.0),
    ]
    versions = {base.version, *(c.version for c in changed)}
    assert len(versions) == 4


def test_scoring_config_builder_uses_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("AIMASS_"):
            monkeypatch.delenv(name)
    config = scoring_config(
        Settings(
            recs_k=7,
            recs_weight_popularity=0.3,
            recs_weight_recency=0.2,
            recs_recency_half_life_s=60.0,
        )
    )
    assert config == ScoringConfig(
        k=7, weight_popularity=0.3, weight_recency=0.2, recency_half_life_s=60.0
    )
    assert config.version != ScoringConfig().version


def test_unknown_tenant_gets_nothing(five_items: ItemIndex) -> None:
    cold, warm, known = Scorer(five_items, COSINE_ONLY).score(
        [request(None, tenant="nobody"), request(E[0], tenant="nobody"), request(E[0])]
    )
    assert cold.items == [] and cold.cold_start
    assert warm.items == [] and not warm.cold_start
    assert ids(known)[0] == "a"


def test_tenant_whose_items_were_all_deleted_gets_nothing() -> None:
    index = make_index({"a": (E[0], NOW)})
    assert index.delete("t0", "a")
    cold, warm = Scorer(index, COSINE_ONLY).score([request(None), request(E[0])])
    assert cold.items == [] and cold.cold_start
    assert warm.items == [] and not warm.cold_start


def test_profile_feeds_the_scorer(five_items: ItemIndex) -> None:
    # Events on a and b build the profile; a and b are then never recommended.
    profile_cfg = ProfileConfig(weights={"view": 1.0, "purchase": 5.0}, half_life_s=100.0)
    profile = None
    for offset, (item_id, type_) in enumerate([("a", "view"), ("b", "purchase")]):
        event = Event(
            f"e{offset}", "t0", "u1", item_id, type_, NOW, Source("aimass.events", 0, offset, NOW)
        )
        profile = apply_event(profile, event, five_items.vector("t0", item_id), profile_cfg)
    assert profile is not None
    vector = profile.unit_vector()
    assert vector is not None
    (scored,) = Scorer(five_items, COSINE_ONLY).score(
        [ScoreRequest("t0", vector, exclude=profile.recent, now_ms=NOW, k=2)]
    )
    assert ids(scored) == ["c", "d"]  # c leans towards both a and b; d is orthogonal to both


def test_cuda_similarity_matches_cpu(five_items: ItemIndex) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    users = [request(E[0]), request(unit([0, 1, 0.5, 0])), request(None)]
    cpu = Scorer(five_items, ScoringConfig()).score(users)
    gpu_scorer = Scorer(five_items, ScoringConfig(), device="cuda")
    gpu = gpu_scorer.score(users)
    for a, b in zip(cpu, gpu, strict=True):
        assert ids(a) == ids(b)
        assert [s.score for s in a.items] == pytest.approx([s.score for s in b.items], abs=2e-3)
    # A changed item reaches the cached device matrix.
    five_items.upsert(ItemVector("t0", "d", "document", NOW, E[0], ModelRef("minilm", "v1"), NOW))
    (after,) = gpu_scorer.score([request(E[0], k=2)])
    assert set(ids(after)) == {"a", "d"}
