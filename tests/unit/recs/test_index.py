"""Unit tests for stream_aimass.recs.index: item-vector records and the per-tenant item matrix."""

from __future__ import annotations

import base64
import os
import random
from typing import Any

import numpy as np
import orjson
import pytest

from stream_aimass.records import ItemVector, ItemVectorError, ModelRef, item_key
from stream_aimass.recs import item_index
from stream_aimass.recs.index import ItemIndex, TenantItems
from stream_aimass.settings import Settings

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
DIM = 4
MODEL = ModelRef("minilm", "v1")
E = np.eye(DIM, dtype=np.float32)


def unit(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return (a / np.linalg.norm(a)).astype(np.float32)


def item(
    item_id: str,
    vector: Any = None,
    *,
    tenant: str = "acme",
    ts_ms: int = T0,
    category: str = "",
    title: str = "",
    model: ModelRef = MODEL,
) -> ItemVector:
    return ItemVector(
        tenant=tenant,
        item_id=item_id,
        kind="document",
        ts_ms=ts_ms,
        vector=E[0] if vector is None else np.asarray(vector, dtype=np.float32),
        model=model,
        updated_at_ms=ts_ms + 1,
        title=title,
        category=category,
    )


def record(**overrides: Any) -> bytes:
    """A valid item-vector message with some fields replaced (None: removed)."""
    obj = orjson.loads(item("a", unit([1, 2, 3, 4])).to_json())
    for path, value in overrides.items():
        target = obj
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        if value is None:
            del target[leaf]
        else:
            target[leaf] = value
    return orjson.dumps(obj)


def assert_consistent(items: TenantItems, model: dict[str, np.ndarray]) -> None:
    """Every id maps to its own row, vector and nothing else; no stale rows are visible."""
    assert len(items) == len(model)
    assert sorted(items.ids) == sorted(model)
    assert items.rows == {item_id: row for row, item_id in enumerate(items.ids)}
    assert items.matrix.shape == (len(model), items.dim)
    assert len(items.categories) == len(items.titles) == len(model)
    for item_id, vector in model.items():
        row = items.rows[item_id]
        np.testing.assert_array_equal(items.matrix[row], vector, err_msg=item_id)
        assert items.categories[row] == f"cat-{item_id}"
        got = items.vector(item_id)
        assert got is not None
        np.testing.assert_array_equal(got, vector)


# ItemVector records


def test_item_vector_json_round_trip() -> None:
    vector = unit(np.random.default_rng(1).normal(size=16))
    original = ItemVector(
        tenant="acme",
        item_id="doc-7",
        kind="catalogue",
        ts_ms=T0,
        vector=vector,
        model=MODEL,
        updated_at_ms=T0 + 5,
        title="A title",
        category="sports",
        source={"topic": "aimass.documents", "partition": 2, "offset": 9},
    )
    restored = ItemVector.from_json(original.to_json())
    assert restored.key == original.key == item_key("acme", "doc-7") == b"acme:doc-7"
    for name in ("tenant", "item_id", "kind", "ts_ms", "model", "updated_at_ms", "title"):
        assert getattr(restored, name) == getattr(original, name), name
    assert restored.category == "sports"
    assert restored.source == original.source
    assert restored.vector.dtype == np.float32
    assert restored.vector.shape == (16,)
    # fp16 on the wire: exactly the half-precision rounding, within its relative error.
    np.testing.assert_array_equal(restored.vector, vector.astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(restored.vector, vector, rtol=1e-3, atol=1e-4)
    assert abs(float(np.linalg.norm(restored.vector)) - 1.0) < 1e-3


def test_item_vector_defaults_for_optional_fields() -> None:
    restored = ItemVector.from_json(
        record(kind=None, title=None, category=None, source=None, updated_at_ms=None)
    )
    assert restored.kind == "document"
    assert (restored.title, restored.category, restored.source, restored.updated_at_ms) == (
        "",
        "",
        {},
        0,
    )


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="bad-json"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(record(embedding__dtype="float32"), id="dtype-float32"),
        pytest.param(record(embedding__dtype=None), id="dtype-missing"),
        pytest.param(record(embedding__dim=5), id="dim-mismatch"),
        pytest.param(record(embedding__dim="four"), id="dim-not-int"),
        pytest.param(record(embedding__b64="***"), id="b64-garbage"),
        pytest.param(record(embedding__b64=base64.b64encode(b"abc").decode()), id="odd-byte-count"),
        pytest.param(record(embedding="float16"), id="embedding-not-object"),
        pytest.param(record(embedding=None), id="embedding-missing"),
        pytest.param(record(embedding__b64=None), id="b64-missing"),
        pytest.param(record(tenant=None), id="tenant-missing"),
        pytest.param(record(item_id=None), id="item-id-missing"),
        pytest.param(record(ts=None), id="ts-missing"),
        pytest.param(record(ts="yesterday"), id="ts-not-int"),
        pytest.param(record(model=None), id="model-missing"),
        pytest.param(record(model__version=None), id="model-version-missing"),
        pytest.param(record(model="minilm"), id="model-not-object"),
    ],
)
def test_item_vector_errors(raw: bytes) -> None:
    with pytest.raises(ItemVectorError):
        ItemVector.from_json(raw)
    if raw:  # an empty value is a tombstone to ItemIndex.apply
        with pytest.raises(ItemVectorError):
            ItemIndex().apply(b"acme:a", raw)


# ItemIndex.apply


def test_apply_upserts_and_tombstones_delete() -> None:
    index = ItemIndex()
    value = item("a", unit([1, 1, 0, 0])).to_json()
    assert index.apply(b"acme:a", value) == "upserted"
    assert index.apply(b"acme:b", item("b", E[1]).to_json()) == "upserted"
    assert len(index) == 2
    vector = index.vector("acme", "a")
    assert vector is not None
    np.testing.assert_allclose(vector, unit([1, 1, 0, 0]), rtol=1e-3)

    assert index.apply(b"acme:a", None) == "deleted"
    assert index.vector("acme", "a") is None
    assert index.apply(b"acme:a", b"") == "skipped"  # already gone
    assert index.apply(b"other:a", None) == "skipped"  # tenant never seen
    tenant = index.tenant("acme")
    assert tenant is not None and tenant.ids == ["b"]


def test_tombstone_key_with_colons_in_item_id() -> None:
    index = ItemIndex()
    index.upsert(item("url:https://x", E[0]))
    assert index.apply(b"acme:url:https://x", None) == "deleted"
    assert len(index) == 0


def versioned(item_id: str, vector: Any, ts_ms: int, offset: int, explicit: int | None = None):
    """An item vector of a document produced at Kafka time ``ts_ms`` and ``offset``."""
    v = item(item_id, vector)
    source = {"topic": "aimass.documents", "partition": 0, "offset": offset, "timestamp_ms": ts_ms}
    return ItemVector(**{**{f: getattr(v, f) for f in v.__slots__}, "source": source,
                         "version": explicit})  # fmt: skip


def test_an_older_version_read_later_does_not_replace_a_newer_one() -> None:
    """Re-delivery or batching can publish an older version after a newer one."""
    index = ItemIndex()
    assert index.apply(b"acme:a", versioned("a", E[1], T0 + 10, 7).to_json()) == "upserted"
    assert index.apply(b"acme:a", versioned("a", E[0], T0, 3).to_json()) == "skipped"
    np.testing.assert_allclose(index.vector("acme", "a"), E[1])
    assert index.stale == 1
    # Same millisecond: the later offset wins; an explicit version beats both.
    assert index.apply(b"acme:a", versioned("a", E[2], T0 + 10, 8).to_json()) == "upserted"
    assert index.apply(b"acme:a", versioned("a", E[3], T0, 0, explicit=T0 + 11).to_json()) == (
        "upserted"
    )
    np.testing.assert_allclose(index.vector("acme", "a"), E[3])


def test_a_re_delivered_vector_older_than_its_tombstone_stays_deleted() -> None:
    index = ItemIndex()
    index.apply(b"acme:b", versioned("b", E[1], T0, 1).to_json())
    index.apply(b"acme:a", versioned("a", E[0], T0 + 5, 2).to_json())
    assert index.apply(b"acme:a", None, T0 + 100, 40) == "deleted"
    assert index.apply(b"acme:a", versioned("a", E[0], T0 + 5, 2).to_json()) == "skipped"
    assert index.vector("acme", "a") is None
    # A newer document version brings the item back; an old tombstone cannot delete it again.
    assert index.apply(b"acme:a", versioned("a", E[2], T0 + 200, 3).to_json()) == "upserted"
    assert index.apply(b"acme:a", None, T0 + 100, 40) == "skipped"
    np.testing.assert_allclose(index.vector("acme", "a"), E[2])


@pytest.mark.parametrize("key", [None, b"", b"acme", b"acme:", b":a"])
def test_tombstone_without_usable_key_raises(key: bytes | None) -> None:
    index = ItemIndex()
    index.upsert(item("a"))
    with pytest.raises(ItemVectorError):
        index.apply(key, None)
    assert len(index) == 1


# Upserts, removals, consistency


def test_upsert_of_existing_item_replaces_it_without_growing() -> None:
    index = ItemIndex()
    index.upsert(item("a", E[0], category="old", title="Old"))
    index.upsert(item("b", E[1]))
    tenant = index.tenant("acme")
    assert tenant is not None
    version = tenant.version
    index.upsert(item("a", E[2], ts_ms=T0 + 10, category="new", title="New"))
    assert len(tenant) == 2
    assert tenant.ids == ["a", "b"]
    np.testing.assert_array_equal(tenant.matrix[0], E[2])
    np.testing.assert_array_equal(tenant.matrix[1], E[1])
    assert (tenant.categories[0], tenant.titles[0]) == ("new", "New")
    assert tenant.ts.tolist() == [T0 + 10, T0]
    assert tenant.version > version


def test_remove_moves_the_last_row_into_the_hole() -> None:
    index = ItemIndex()
    for n, name in enumerate("abcd"):
        index.upsert(item(name, E[n], category=f"cat-{name}", ts_ms=T0 + n))
    tenant = index.tenant("acme")
    assert tenant is not None
    index.add_interaction("acme", "d", 3.0, T0)
    assert index.delete("acme", "a")
    assert not index.delete("acme", "a")
    assert not index.delete("nobody", "a")
    assert tenant.ids == ["d", "b", "c"]
    assert tenant.ts.tolist() == [T0 + 3, T0 + 1, T0 + 2]
    assert tenant.popularity(T0).tolist() == [3.0, 0.0, 0.0]  # d's popularity moved with it
    assert_consistent(tenant, {"b": E[1], "c": E[2], "d": E[3]})


@pytest.mark.parametrize("seed", range(4))
def test_random_upserts_and_removes_match_a_dict(seed: int) -> None:
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    index = ItemIndex(dim=DIM)
    model: dict[str, np.ndarray] = {}
    ids = [f"i{n}" for n in range(60)]  # enough to grow the matrix past its first 16 rows
    for step in range(600):
        item_id = rng.choice(ids)
        if rng.random() < 0.35:
            assert index.delete("acme", item_id) == (item_id in model)
            model.pop(item_id, None)
        else:
            vector = unit(nprng.normal(size=DIM))
            index.upsert(item(item_id, vector, category=f"cat-{item_id}", ts_ms=T0 + step))
            model[item_id] = vector
        if step % 25 == 0:
            tenant = index.tenant("acme")
            assert tenant is not None
            assert_consistent(tenant, model)
    tenant = index.tenant("acme")
    assert tenant is not None
    assert_consistent(tenant, model)
    assert tenant.evicted == 0


def test_matrix_growth_keeps_contents() -> None:
    items = TenantItems(DIM, max_items=1000, popularity_half_life_s=100.0)
    vectors = {f"i{n}": unit(np.random.default_rng(n).normal(size=DIM)) for n in range(40)}
    for n, (item_id, vector) in enumerate(vectors.items()):
        items.upsert(item(item_id, vector, category=f"cat-{item_id}", ts_ms=T0 + n))
        items.add_interaction(item_id, float(n + 1), T0)
    assert items._matrix.shape[0] >= 40
    assert_consistent(items, vectors)
    assert items.ts.tolist() == [T0 + n for n in range(40)]
    assert items.popularity(T0).tolist() == [float(n + 1) for n in range(40)]


def test_matrix_growth_stops_at_the_bound() -> None:
    items = TenantItems(DIM, max_items=20, popularity_half_life_s=100.0)
    for n in range(30):
        items.upsert(item(f"i{n}", E[n % DIM], ts_ms=T0 + n))
    assert items._matrix.shape[0] == 20
    assert len(items) == 20
    assert sorted(items.ids) == sorted(f"i{n}" for n in range(10, 30))
    assert items.evicted == 10


# Bounds and eviction


def test_new_item_at_a_full_tenant_evicts_the_oldest() -> None:
    index = ItemIndex(max_items_per_tenant=3)
    index.upsert(item("mid", E[0], ts_ms=T0 + 20))
    index.upsert(item("old", E[1], ts_ms=T0 + 10))
    index.upsert(item("new", E[2], ts_ms=T0 + 30))
    index.upsert(item("newest", E[3], ts_ms=T0 + 40))
    tenant = index.tenant("acme")
    assert tenant is not None
    assert sorted(tenant.ids) == ["mid", "new", "newest"]
    assert index.vector("acme", "old") is None
    assert index.describe()["evicted"] == 1
    np.testing.assert_array_equal(index.vector("acme", "newest"), E[3])  # type: ignore[arg-type]

    # An update of an indexed item evicts nothing, even when it makes the item the oldest.
    index.upsert(item("new", E[1], ts_ms=T0))
    assert sorted(tenant.ids) == ["mid", "new", "newest"]
    assert tenant.evicted == 1


def test_item_older_than_everything_kept_is_not_indexed() -> None:
    items = TenantItems(DIM, max_items=2, popularity_half_life_s=100.0)
    items.upsert(item("a", E[0], ts_ms=T0 + 10))
    items.upsert(item("b", E[1], ts_ms=T0 + 20))
    assert items.upsert(item("ancient", E[2], ts_ms=T0)) == "ancient"
    assert sorted(items.ids) == ["a", "b"]
    assert items.vector("ancient") is None
    assert items.evicted == 0
    assert items.upsert(item("c", E[2], ts_ms=T0 + 30)) == "a"
    assert sorted(items.ids) == ["b", "c"]


def test_eviction_is_per_tenant() -> None:
    index = ItemIndex(max_items_per_tenant=2)
    for n in range(2):
        index.upsert(item(f"a{n}", E[n], tenant="alpha", ts_ms=T0 + n))
        index.upsert(item(f"b{n}", E[n], tenant="beta", ts_ms=T0 - 100 + n))
    index.upsert(item("a2", E[2], tenant="alpha", ts_ms=T0 + 2))
    assert index.describe()["tenants"] == {"alpha": 2, "beta": 2}
    beta = index.tenant("beta")
    assert beta is not None and sorted(beta.ids) == ["b0", "b1"]


# Validation and the tenants filter


def test_tenants_filter_skips_other_tenants() -> None:
    index = ItemIndex(tenants=["acme"])
    assert index.serves("acme") and not index.serves("globex")
    assert not index.upsert(item("a", tenant="globex"))
    assert index.apply(b"globex:a", item("a", tenant="globex").to_json()) == "skipped"
    assert index.apply(b"acme:a", item("a", tenant="acme").to_json()) == "upserted"
    assert list(index.tenants) == ["acme"]
    assert index.tenant("globex") is None
    assert index.vector("globex", "a") is None


def test_dim_mismatch_raises() -> None:
    index = ItemIndex()
    index.upsert(item("a", E[0]))
    assert index.dim == DIM
    with pytest.raises(ItemVectorError, match="dim"):
        index.upsert(item("b", unit([1, 2, 3])))
    with pytest.raises(ItemVectorError):
        ItemIndex(dim=8).upsert(item("a", E[0]))
    assert len(index) == 1


def test_non_unit_vector_is_normalised() -> None:
    index = ItemIndex()
    index.upsert(item("a", [3.0, 4.0, 0.0, 0.0]))
    vector = index.vector("acme", "a")
    assert vector is not None and vector.dtype == np.float32
    np.testing.assert_allclose(vector, [0.6, 0.8, 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize(
    "vector",
    [
        pytest.param([0.0, 0.0, 0.0, 0.0], id="zero"),
        pytest.param([1e-9, 0.0, 0.0, 0.0], id="almost-zero"),
        pytest.param([np.nan, 1.0, 0.0, 0.0], id="nan"),
        pytest.param([np.inf, 0.0, 0.0, 0.0], id="inf"),
    ],
)
def test_zero_or_non_finite_vector_raises(vector: list[float]) -> None:
    index = ItemIndex()
    with pytest.raises(ItemVectorError):
        index.upsert(item("a", vector))
    assert len(index) == 0


def test_describe_and_model_versions() -> None:
    index = ItemIndex(max_items_per_tenant=7)
    index.upsert(item("a", E[0], tenant="beta"))
    index.upsert(item("a", E[0], tenant="alpha", model=ModelRef("minilm", "v2")))
    assert index.describe() == {
        "items": 2,
        "tenants": {"alpha": 1, "beta": 1},
        "evicted": 0,
        "max_items_per_tenant": 7,
        "dim": DIM,
        "model_versions": ["v1", "v2"],
    }


def test_item_index_builder_uses_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("AIMASS_"):
            monkeypatch.delenv(name)
    settings = Settings(
        recs_max_items_per_tenant=5, recs_popularity_half_life_s=60.0, recs_tenants=["acme"]
    )
    index = item_index(settings)
    assert index.max_items == 5
    assert index.popularity_half_life_s == 60.0
    assert index.serves("acme") and not index.serves("globex")


# Popularity


def test_popularity_halves_per_half_life() -> None:
    index = ItemIndex(popularity_half_life_s=100.0)
    index.upsert(item("a", E[0]))
    index.upsert(item("b", E[1]))
    tenant = index.tenant("acme")
    assert tenant is not None
    np.testing.assert_array_equal(tenant.popularity(T0), [0.0, 0.0])  # nothing counted yet
    index.add_interaction("acme", "a", 2.0, T0)
    index.add_interaction("acme", "b", 1.0, T0 + 100_000)
    index.add_interaction("acme", "b", 0.0, T0)  # no weight: ignored
    index.add_interaction("acme", "ghost", 5.0, T0)  # not indexed: ignored
    index.add_interaction("nobody", "a", 5.0, T0)  # unknown tenant: ignored
    np.testing.assert_allclose(tenant.popularity(T0 + 100_000), [1.0, 1.0])
    np.testing.assert_allclose(tenant.popularity(T0 + 200_000), [0.5, 0.5])
    np.testing.assert_allclose(tenant.popularity(T0 + 300_000), [0.25, 0.25])
    # Read before the latest interaction, forward decay gives the formula's value as well.
    np.testing.assert_allclose(tenant.popularity(T0), [2.0, 2.0])


def test_popularity_stays_finite_across_huge_time_jumps() -> None:
    half_life_ms = 100_000
    items = TenantItems(DIM, max_items=10, popularity_half_life_s=half_life_ms / 1000)
    items.upsert(item("a", E[0]))
    items.upsert(item("b", E[1]))
    now = T0
    items.add_interaction("a", 1.0, now)
    for _ in range(50):  # 50 jumps of 100 half-lives: 2 ** 5000 without rebasing
        now += 100 * half_life_ms
        items.add_interaction("b", 1.0, now)
        items.add_interaction("a", 4.0, now - 2 * half_life_ms)
        pop = items.popularity(now)
        assert np.all(np.isfinite(pop))
        assert pop[1] == pytest.approx(1.0, rel=1e-9)
        assert pop[0] == pytest.approx(1.0, rel=1e-9)  # 4 * 0.5 ** 2
        assert items._pop_base_ms is not None and now - items._pop_base_ms <= 60 * half_life_ms
    # One more half-life later both halve, and their ratio is kept.
    later = items.popularity(now + half_life_ms)
    np.testing.assert_allclose(later, [0.5, 0.5], rtol=1e-9)


def test_popularity_rebase_keeps_ratios() -> None:
    half_life_ms = 1000
    items = TenantItems(DIM, max_items=10, popularity_half_life_s=1.0)
    for name in "abc":
        items.upsert(item(name, E[0]))
    items.add_interaction("a", 8.0, T0)
    items.add_interaction("b", 2.0, T0 + 3 * half_life_ms)
    jump = T0 + 70 * half_life_ms  # past the rebase point
    items.add_interaction("c", 1.0, jump)
    assert items._pop_base_ms == jump
    pop = items.popularity(jump)
    assert pop[2] == 1.0
    assert pop[0] == pytest.approx(8.0 * 2.0**-70, rel=1e-12)
    assert pop[1] == pytest.approx(2.0 * 2.0**-67, rel=1e-12)
    assert pop[0] / pop[1] == pytest.approx(0.5, rel=1e-12)


def test_popularity_far_before_its_base_is_finite() -> None:
    # A read at a time long before every interaction (e.g. a request without a time, 0)
    # must not overflow.
    items = TenantItems(DIM, max_items=10, popularity_half_life_s=86400.0)
    items.upsert(item("a", E[0]))
    items.upsert(item("b", E[1]))
    items.add_interaction("a", 3.0, T0)
    items.add_interaction("b", 1.0, T0)
    for now in (0, T0 - 2000 * 86_400_000):
        pop = items.popularity(now)
        assert np.all(np.isfinite(pop))
        assert pop[0] == pytest.approx(3 * pop[1])


def test_freshness_halves_per_half_life_and_caps_at_one() -> None:
    items = TenantItems(DIM, max_items=10, popularity_half_life_s=1.0)
    items.upsert(item("old", E[0], ts_ms=T0))
    items.upsert(item("new", E[1], ts_ms=T0 + 2000))
    items.upsert(item("future", E[2], ts_ms=T0 + 9000))
    np.testing.assert_allclose(items.freshness(T0 + 2000, half_life_s=1.0), [0.25, 1.0, 1.0])
