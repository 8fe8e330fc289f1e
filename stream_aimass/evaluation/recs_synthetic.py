"""Synthetic users for the offline recommendation evaluation: each follows a few entities of
the demo corpus and a topic mix, and touches items accordingly (``eval recs --synthetic``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from stream_aimass.evaluation.recs import items_from_documents

_FOLLOWED_ENTITIES = 3  # entities (teams, firms, places...) a user follows


_REREAD = 0.1  # chance that a drawn item the user already touched is kept


_EVENT_TYPES = ("view", "click", "like", "purchase")


_TYPE_WEIGHTS = (70, 18, 8, 4)


_FIRST_EVENT_SPREAD_MS = 7 * 86_400_000  # a user's first event: uniform over a week


_MEAN_GAP_MS = 2 * 3_600_000  # then a few events a day


_START_AFTER_MS = 3_600_000  # events begin an hour after the newest document


def _dirichlet(rng: random.Random, size: int, alpha: float) -> list[float]:
    draws = [rng.gammavariate(alpha, 1.0) for _ in range(size)]
    total = sum(draws)
    if total <= 0:  # every draw underflowed: fall back to one category
        draws = [0.0] * size
        draws[rng.randrange(size)] = total = 1.0
    return [d / total for d in draws]


def _entities(doc: Mapping[str, Any]) -> frozenset[str]:
    meta = doc.get("meta")
    hints = (meta.get("entity_hints") if isinstance(meta, Mapping) else None) or []
    return frozenset(str(h["id"]) for h in hints if isinstance(h, Mapping) and "id" in h)


def _cumulative(members: Sequence[int], *weights: Sequence[float]) -> list[float]:
    """Cumulative products of ``weights`` over ``members`` (for ``random.choices``)."""
    total, out = 0.0, []
    for i in members:
        total += math.prod(w[i] for w in weights)
        out.append(total)
    return out


def synthetic_events(
    documents: Sequence[Mapping[str, Any]],
    *,
    users: int = 300,
    events_per_user: int = 30,
    seed: int = 13,
    concentration: float = 0.3,
    zipf_exponent: float = 0.5,
    explore_share: float = 0.12,
    follow_boost: float = 4.0,
) -> list[dict[str, Any]]:
    """Events (``aimass.events`` dicts, sorted by ts) of users with latent topic preferences.

    The generative model, over documents from :func:`~stream_aimass.corpus.generate_documents`
    (each has a tenant, a ``meta.category_hint`` and the KB entities it names):

    1. Item appeal. Within each (tenant, category), items are put in a random order and
       item r (1-based) gets appeal ``r ** -zipf_exponent`` (Zipf): a few hits and a long
       tail, so popularity is a real signal. Appeal is independent of the text. The default
       0.5 gives the top 10 of ~100 items in a category ~30% of its events; 1.0 gives them
       ~57%, where popularity explains most events (see README: Results).
    2. Users are spread over the tenants in turn. Each draws category preferences
       ``theta ~ Dirichlet(concentration)`` (0.3: one or two categories dominate) and
       follows 3 entities (a team, a firm, a city...) read off documents of categories
       drawn from ``theta``: the sub-topic they care about within their categories.
    3. Each event: with probability ``explore_share`` an exploratory event on the tenant's
       globally popular items (any category, by appeal); otherwise a category
       ``c ~ theta`` and an item of the tenant's category c by appeal, times
       ``follow_boost`` for items naming a followed entity. An item the user already
       touched is drawn again with probability 0.9 (re-reads happen, but rarely).
    4. Types: view, click, like, purchase with weights 70:18:8:4.
    5. Time: events start an hour after the newest document; a user's first event is
       uniform over the following week, then gaps are exponential with a mean of 2 hours.

    Nothing in the model looks at the texts or embeddings. The same documents, counts and
    seed always give the same events.
    """
    if users < 1 or events_per_user < 1:
        raise ValueError("users and events_per_user must be at least 1")
    if not documents:
        raise ValueError("documents must not be empty")
    rng = random.Random(f"recs-synthetic:{seed}")

    by_tenant: dict[str, list[int]] = {}
    by_category: dict[tuple[str, str], list[int]] = {}
    items = items_from_documents(documents)
    entities = [_entities(doc) for doc in documents]
    for i, item in enumerate(items):
        by_tenant.setdefault(item.tenant, []).append(i)
        by_category.setdefault((item.tenant, item.category), []).append(i)
    appeal = [0.0] * len(items)
    for key in sorted(by_category):
        members = list(by_category[key])
        rng.shuffle(members)
        for rank, i in enumerate(members, start=1):
            appeal[i] = rank**-zipf_exponent

    tenants = sorted(by_tenant)
    plain = [1.0] * len(items)
    explore = {t: _cumulative(by_tenant[t], plain, appeal) for t in tenants}
    newest = max(item.ts_ms for item in items)
    raw: list[tuple[int, int, str, str, str, str]] = []  # ts, order, tenant, user, item, type
    for u in range(users):
        tenant = tenants[u % len(tenants)]
        user_id = f"u-{u + 1:04d}"
        categories = sorted(c for (t, c) in by_category if t == tenant)
        theta = _dirichlet(rng, len(categories), concentration)
        followed: set[str] = set()
        for _ in range(_FOLLOWED_ENTITIES):
            category = rng.choices(categories, weights=theta)[0]
            doc = rng.choice(by_category[(tenant, category)])
            if entities[doc]:
                followed.add(rng.choice(sorted(entities[doc])))
        boost = [follow_boost if names & followed else 1.0 for names in entities]
        pools = {
            c: (by_category[(tenant, c)], _cumulative(by_category[(tenant, c)], boost, appeal))
            for c in categories
        }
        seen: set[int] = set()
        ts = newest + _START_AFTER_MS + rng.randrange(_FIRST_EVENT_SPREAD_MS)
        for _ in range(events_per_user):
            for _attempt in range(20):
                if rng.random() < explore_share:
                    members, cum = by_tenant[tenant], explore[tenant]
                else:
                    members, cum = pools[rng.choices(categories, weights=theta)[0]]
                pick = rng.choices(members, cum_weights=cum)[0]
                if pick not in seen or rng.random() < _REREAD:
                    break
            seen.add(pick)
            kind = rng.choices(_EVENT_TYPES, weights=_TYPE_WEIGHTS)[0]
            raw.append((ts, len(raw), tenant, user_id, items[pick].item_id, kind))
            ts += 1 + int(rng.expovariate(1.0 / _MEAN_GAP_MS))
    raw.sort()
    return [
        {
            "event_id": f"syn-{seed}-{n:07d}",
            "tenant": tenant,
            "user_id": user_id,
            "item_id": item_id,
            "type": kind,
            "ts": ts,
        }
        for n, (ts, _, tenant, user_id, item_id, kind) in enumerate(raw)
    ]
