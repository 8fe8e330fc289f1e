"""Batched top-K scoring: one matrix multiply per tenant per batch of events.

For user u (unit profile vector) and item i of u's tenant, at the trigger event's time:

    score(u, i) = cos(u, i) + w_pop * popularity(i) + w_rec * freshness(i)

    popularity(i) = log1p(c_i) / log1p(max_j c_j)     c = decayed interaction weight, 0..1
    freshness(i)  = 0.5 ** (age_i / recency_half_life)                                 0..1

Popularity and freshness are read at the newest event time of the batch (one prior per
tenant per batch, not per event: O(items) work once instead of once per user).

Items the user touched recently (the profile's recent list) are excluded. A cold-start user
(no profile vector yet) gets the popular-in-tenant ranking: w_pop * popularity +
w_rec * freshness, with freshness alone breaking ties when nothing has been clicked yet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_aimass.recs.index import ItemIndex, TenantItems

MODEL_NAME = "aimass-recs"


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    k: int = 10
    weight_popularity: float = 0.5
    weight_recency: float = 0.05
    recency_half_life_s: float = 172800.0

    @property
    def version(self) -> str:
        """Changes whenever the formula's parameters change (written on every output)."""
        text = f"v1|{self.weight_popularity}|{self.weight_recency}|{self.recency_half_life_s}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(slots=True)
class ScoreRequest:
    tenant: str
    vector: np.ndarray | None  # unit profile vector; None: cold start
    exclude: Sequence[str] = ()
    now_ms: int = 0
    k: int | None = None  # default: the config's k


@dataclass(slots=True)
class ScoredItem:
    item_id: str
    score: float
    category: str = ""
    title: str = ""

    def to_dict(self, rank: int) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "score": self.score,
            "rank": rank,
            "category": self.category,
        }


@dataclass(slots=True)
class Scored:
    items: list[ScoredItem] = field(default_factory=list)
    cold_start: bool = False


class Scorer:
    """Scores batches of requests against an :class:`ItemIndex` (CPU numpy, or CUDA fp16)."""

    def __init__(self, index: ItemIndex, config: ScoringConfig, device: str = "cpu") -> None:
        self.index = index
        self.config = config
        self.device = device
        self._device_cache: dict[str, tuple[int, Any]] = {}  # tenant -> (version, tensor)

    def score(self, requests: Sequence[ScoreRequest]) -> list[Scored]:
        out = [Scored() for _ in requests]
        by_tenant: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            by_tenant.setdefault(request.tenant, []).append(i)
        for tenant, rows in by_tenant.items():
            items = self.index.tenant(tenant)
            if items is None:
                for i in rows:
                    out[i].cold_start = requests[i].vector is None
                continue
            with items.lock:
                self._score_tenant(
                    items, tenant, [requests[i] for i in rows], [out[i] for i in rows]
                )
        return out

    def prior(self, items: TenantItems, now_ms: int) -> np.ndarray:
        """The user-independent part: w_pop * popularity + w_rec * freshness."""
        c = self.config
        pop = items.popularity(now_ms)
        top = float(pop.max()) if pop.size else 0.0
        prior = np.zeros(len(items), dtype=np.float32)
        if top > 0 and c.weight_popularity:
            prior += np.float32(c.weight_popularity) * (np.log1p(pop) / np.log1p(top)).astype(
                np.float32
            )
        if c.weight_recency:
            prior += np.float32(c.weight_recency) * items.freshness(
                now_ms, c.recency_half_life_s
            ).astype(np.float32)
        return prior

    def _score_tenant(
        self,
        items: TenantItems,
        tenant: str,
        requests: list[ScoreRequest],
        out: list[Scored],
    ) -> None:
        n = len(items)
        if n == 0:
            for request, scored in zip(requests, out, strict=True):
                scored.cold_start = request.vector is None
            return
        now_ms = max(r.now_ms for r in requests)
        prior = self.prior(items, now_ms)
        scores = np.tile(prior, (len(requests), 1))
        warm = [i for i, r in enumerate(requests) if r.vector is not None]
        if warm:
            users = np.stack([requests[i].vector for i in warm]).astype(np.float32)  # type: ignore[misc]
            scores[warm] += self._similarity(items, tenant, users)
        for i, request in enumerate(requests):
            for item_id in request.exclude:
                row = items.rows.get(item_id)
                if row is not None:
                    scores[i, row] = -np.inf
        for i, request in enumerate(requests):
            k = min(request.k or self.config.k, n)
            row_scores = scores[i]
            top = np.argpartition(-row_scores, k - 1)[:k] if k < n else np.arange(n)
            top = top[np.argsort(-row_scores[top], kind="stable")]
            out[i].cold_start = request.vector is None
            out[i].items = [
                ScoredItem(
                    items.ids[j],
                    round(float(row_scores[j]), 5),
                    items.categories[j],
                    items.titles[j],
                )
                for j in top.tolist()
                if np.isfinite(row_scores[j])
            ]

    def _similarity(self, items: TenantItems, tenant: str, users: np.ndarray) -> np.ndarray:
        """users (b x d) @ items.T: the one matrix multiply of this tenant's batch."""
        if self.device == "cpu" or not self.device.startswith("cuda"):
            return users @ items.matrix.T  # type: ignore[no-any-return]
        import torch

        cached = self._device_cache.get(tenant)
        if cached is None or cached[0] != items.version:
            # fp16 on the GPU, refreshed when the tenant's items change.
            tensor = torch.from_numpy(items.matrix).to(self.device, dtype=torch.float16)
            self._device_cache[tenant] = cached = (items.version, tensor)
        user_t = torch.from_numpy(users).to(self.device, dtype=torch.float16, non_blocking=True)
        return (user_t @ cached[1].T).float().cpu().numpy()  # type: ignore[no-any-return]
