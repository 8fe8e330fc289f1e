"""The item index: every recommendable item's unit vector, per tenant, in one matrix.

Fed by the compacted ``aimass.item-vectors`` topic (:class:`ItemVector` values, a null
value deletes the item) and by the events themselves (popularity). Each tenant's items sit
in their own matrix, so a score can only ever mix a user with their own tenant's items.

Versioned: an item keeps the version of the document it came from (``row_version``: the
document's own ``version``, else its Kafka timestamp, then offset), a tombstone its own
message's; a vector older than what the index holds (or deleted) is skipped, so a
re-delivered or reordered older version neither rolls an update back nor resurrects a
deleted item.

Bounded: at most ``max_items`` per tenant. A new item arriving at a full tenant evicts that
tenant's oldest item (smallest item ``ts``); an update of an indexed item evicts nothing.

Thread safety: the event loop writes (upserts, deletes, popularity) and the scoring thread
reads; both hold :attr:`TenantItems.lock` while they touch a tenant.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from stream_aimass.records import (
    ItemVector,
    ItemVectorError,
    row_version,
    split_key,
)

KINDS = ("document", "catalogue")
# Popularity uses forward decay: a weight w at time t adds w * 2 ** ((t - base) / half_life)
# and counts are read back decayed to "now". The base moves before the exponent grows large.
_MAX_EXPONENT = 60.0


class TenantItems:
    """One tenant's items: ids, unit vectors (rows of a matrix), times, popularity."""

    def __init__(self, dim: int, max_items: int, popularity_half_life_s: float) -> None:
        self.dim = dim
        self.max_items = max_items
        self.lock = threading.Lock()
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.categories: list[str] = []
        self.titles: list[str] = []
        self._matrix = np.zeros((16, dim), dtype=np.float32)
        self._ts = np.zeros(16, dtype=np.int64)
        self._pop = np.zeros(16, dtype=np.float64)  # forward-decayed interaction weight
        self._pop_base_ms: int | None = None
        self._half_life_ms = popularity_half_life_s * 1000.0
        self.version = 0  # bumped on every change of membership or vectors
        self.evicted = 0
        # Row versions (see ItemVector.row_version) of indexed items and of deleted ones.
        self.item_versions: dict[str, int] = {}
        self.deleted: dict[str, int] = {}

    def newer_than(self, item_id: str, version: int) -> bool:
        """Whether the index holds (or deleted) a version of the item above ``version``."""
        held = self.item_versions.get(item_id, self.deleted.get(item_id))
        return held is not None and held > version

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def matrix(self) -> np.ndarray:
        return self._matrix[: len(self.ids)]

    @property
    def ts(self) -> np.ndarray:
        return self._ts[: len(self.ids)]

    def _grow(self) -> None:
        capacity = min(max(16, 2 * self._matrix.shape[0]), self.max_items)
        for name in ("_matrix", "_ts", "_pop"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def upsert(self, item: ItemVector, version: int = 0) -> str | None:
        """Index ``item`` at row ``version``; returns the id of the item it evicted, if any."""
        evicted = None
        row = self.rows.get(item.item_id)
        if row is None:
            if len(self.ids) >= self.max_items:
                oldest = int(np.argmin(self.ts))
                if self._ts[oldest] > item.ts_ms:
                    return item.item_id  # older than everything kept: not indexed at all
                evicted = self.ids[oldest]
                self.remove(evicted)
                self.evicted += 1
            if len(self.ids) >= self._matrix.shape[0]:
                self._grow()
            row = len(self.ids)
            self.ids.append(item.item_id)
            self.categories.append(item.category)
            self.titles.append(item.title)
            self.rows[item.item_id] = row
            self._pop[row] = 0.0
        else:
            self.categories[row] = item.category
            self.titles[row] = item.title
        self._matrix[row] = item.vector
        self._ts[row] = item.ts_ms
        self.item_versions[item.item_id] = version
        self.deleted.pop(item.item_id, None)
        self.version += 1
        return evicted

    def delete(self, item_id: str, version: int) -> bool:
        """A tombstone at row ``version``: remembered, so that older vectors stay out."""
        self.deleted[item_id] = version
        return self.remove(item_id)

    def remove(self, item_id: str) -> bool:
        row = self.rows.pop(item_id, None)
        self.item_versions.pop(item_id, None)
        if row is None:
            return False
        last = len(self.ids) - 1
        if row != last:  # move the last row into the hole
            moved = self.ids[last]
            self.ids[row] = moved
            self.categories[row] = self.categories[last]
            self.titles[row] = self.titles[last]
            self.rows[moved] = row
            self._matrix[row] = self._matrix[last]
            self._ts[row] = self._ts[last]
            self._pop[row] = self._pop[last]
        self.ids.pop()
        self.categories.pop()
        self.titles.pop()
        self.version += 1
        return True

    def vector(self, item_id: str) -> np.ndarray | None:
        row = self.rows.get(item_id)
        return None if row is None else self._matrix[row].copy()

    def add_interaction(self, item_id: str, weight: float, ts_ms: int) -> None:
        row = self.rows.get(item_id)
        if row is None or weight <= 0:
            return
        if self._pop_base_ms is None:
            self._pop_base_ms = ts_ms
        exponent = (ts_ms - self._pop_base_ms) / self._half_life_ms
        if exponent > _MAX_EXPONENT:
            self._pop[: len(self.ids)] *= 2.0 ** (-exponent)
            self._pop_base_ms = ts_ms
            exponent = 0.0
        self._pop[row] += weight * 2.0**exponent

    def popularity(self, now_ms: int) -> np.ndarray:
        """Decayed interaction weight of every item at ``now_ms``."""
        pop = self._pop[: len(self.ids)]
        if self._pop_base_ms is None:
            return np.zeros(len(self.ids))
        # Clamped both ways: a read long before the base (now_ms 0, say) would overflow.
        exponent = min(
            _MAX_EXPONENT, max(-1000.0, (self._pop_base_ms - now_ms) / self._half_life_ms)
        )
        decayed: np.ndarray = pop * 2.0**exponent
        return decayed

    def freshness(self, now_ms: int, half_life_s: float) -> np.ndarray:
        """0.5 ** (age / half_life) per item, 1 for items newer than ``now_ms``."""
        age_ms = np.maximum(0, now_ms - self.ts).astype(np.float64)
        fresh: np.ndarray = np.power(0.5, age_ms / (half_life_s * 1000.0))
        return fresh


class ItemIndex:
    """Items of every tenant this worker serves (``tenants`` empty: all of them)."""

    def __init__(
        self,
        dim: int | None = None,
        max_items_per_tenant: int = 100_000,
        popularity_half_life_s: float = 86400.0,
        tenants: Iterable[str] = (),
    ) -> None:
        self.dim = dim
        self.max_items = max_items_per_tenant
        self.popularity_half_life_s = popularity_half_life_s
        self.only = frozenset(tenants)
        self.tenants: dict[str, TenantItems] = {}
        self._lock = threading.Lock()
        self.applied = 0
        self.rejected = 0
        self.stale = 0  # vectors skipped because a later version was indexed or deleted
        self.model_versions: set[str] = set()

    @property
    def model_version(self) -> str:
        """The encoder version of the indexed vectors; '' while there are none or several
        (a rollout): profiles then keep their sums instead of restarting them."""
        return next(iter(self.model_versions)) if len(self.model_versions) == 1 else ""

    def serves(self, tenant: str) -> bool:
        return not self.only or tenant in self.only

    def __len__(self) -> int:
        return sum(len(t) for t in self.tenants.values())

    def tenant(self, tenant: str) -> TenantItems | None:
        return self.tenants.get(tenant)

    def _tenant_for_write(self, tenant: str, dim: int) -> TenantItems:
        items = self.tenants.get(tenant)
        if items is None:
            with self._lock:
                items = self.tenants.get(tenant)
                if items is None:
                    items = TenantItems(dim, self.max_items, self.popularity_half_life_s)
                    self.tenants[tenant] = items
        return items

    def upsert(self, item: ItemVector, version: int | None = None) -> bool:
        """Index an item; False when it is not for this worker's tenants, too old to keep, or
        older than the version indexed (``version``: its row version, by default from its
        source)."""
        if not self.serves(item.tenant):
            return False
        if version is None:
            version = item.row_version()
        dim = int(item.vector.shape[0])
        if self.dim is None:
            self.dim = dim
        elif dim != self.dim:
            raise ItemVectorError(f"item vector has dim {dim}, the index holds dim {self.dim}")
        norm = float(np.linalg.norm(item.vector))
        if not math.isfinite(norm) or norm <= 1e-6:
            raise ItemVectorError("item vector is zero or not finite")
        if abs(norm - 1.0) > 1e-3:
            item = _with_vector(item, item.vector / norm)
        items = self._tenant_for_write(item.tenant, dim)
        with items.lock:
            if items.newer_than(item.item_id, version):
                self.stale += 1
                return False  # re-delivered or reordered: a later version is in the index
            if items.upsert(item, version) == item.item_id:
                return False  # older than everything a full tenant keeps: not indexed
        self.model_versions.add(item.model.version)
        self.applied += 1
        return True

    def delete(self, tenant: str, item_id: str, version: int | None = None) -> bool:
        """Delete an item by a tombstone at row ``version`` (None: after every version seen);
        False when it was not indexed, or is indexed at a later version (then it stays)."""
        items = self.tenants.get(tenant)
        if items is None:
            if not self.serves(tenant) or self.dim is None:
                return False
            # Remember the deletion: an older vector read later must not bring the item back.
            items = self._tenant_for_write(tenant, self.dim)
        with items.lock:
            if version is None:
                version = items.item_versions.get(item_id, items.deleted.get(item_id, 0))
            if items.newer_than(item_id, version):
                self.stale += 1
                return False
            return items.delete(item_id, version)

    def apply(
        self,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None = None,
        offset: int = 0,
    ) -> str:
        """Apply one ``aimass.item-vectors`` message: 'upserted', 'deleted' or 'skipped'.

        The message's Kafka ``timestamp_ms`` and ``offset`` order a tombstone (without them
        it deletes whatever version is indexed) and a vector record without a source.
        Raises ItemVectorError for a record that cannot be used.
        """
        if not value:
            parts = split_key(key)
            if parts is None:
                raise ItemVectorError("tombstone without a tenant:item_id key")
            version = None if timestamp_ms is None else row_version(None, timestamp_ms, offset)
            return "deleted" if self.delete(*parts, version) else "skipped"
        item = ItemVector.from_json(value)
        return "upserted" if self.upsert(item, item.row_version(offset)) else "skipped"

    def vector(self, tenant: str, item_id: str) -> np.ndarray | None:
        items = self.tenants.get(tenant)
        if items is None:
            return None
        with items.lock:
            return items.vector(item_id)

    def add_interaction(self, tenant: str, item_id: str, weight: float, ts_ms: int) -> None:
        items = self.tenants.get(tenant)
        if items is not None:
            with items.lock:
                items.add_interaction(item_id, weight, ts_ms)

    def describe(self) -> dict[str, Any]:
        return {
            "items": len(self),
            "tenants": {t: len(items) for t, items in sorted(self.tenants.items())},
            "evicted": sum(items.evicted for items in self.tenants.values()),
            "max_items_per_tenant": self.max_items,
            "dim": self.dim,
            "model_versions": sorted(self.model_versions),
        }


def _with_vector(item: ItemVector, vector: np.ndarray) -> ItemVector:
    return ItemVector(
        tenant=item.tenant,
        item_id=item.item_id,
        kind=item.kind,
        ts_ms=item.ts_ms,
        vector=vector.astype(np.float32),
        model=item.model,
        updated_at_ms=item.updated_at_ms,
        title=item.title,
        category=item.category,
        source=item.source,
        version=item.version,
    )
