"""Offline evaluation of the recommender: replay events in time order, predict the next item.

Events are replayed in time order (stable sort by ``ts``). For each event of a user who
already has an earlier event, whose item is in the index and not in the user's recent list
(a novel target), every method is asked for its top k *before* the event is applied:

- ``recommender``: :class:`~.scoring.Scorer` with the user's profile direction, exactly as
  the stream scores (users without a profile vector take the stream's cold-start path);
- ``popularity``: the tenant's most popular unseen items (the index's decayed popularity,
  no similarity; ties go to the newest item);
- ``random``: k unseen items of the tenant drawn uniformly (seeded).

A hit is the target in the top k; with one relevant item, NDCG@k is 1 / log2(rank + 1).
Then the event is applied as the stream applies it: :func:`~.profiles.resolve_pending` and
:func:`~.profiles.apply_event` to the profile, :meth:`~.index.ItemIndex.add_interaction`
with the event type's weight.

Items enter the index when their ``ts`` is reached, as they would arrive from
``aimass.item-vectors``: an item is never recommended before it was published, and an
event on an item the index does not hold (yet) counts as ``unknown_items``.

:func:`synthetic_events` generates users with latent topic preferences over the demo
corpus (its docstring gives the generative model).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from stream_aimass.decode import InvalidDocument, validate_document, validate_event
from stream_aimass.records import Event, ItemVector, ModelRef, Source
from stream_aimass.recs.index import ItemIndex, TenantItems
from stream_aimass.recs.profiles import Profile, ProfileConfig, apply_event, resolve_pending
from stream_aimass.recs.scoring import Scorer, ScoreRequest
from stream_aimass.training.data import DataError

if TYPE_CHECKING:
    from stream_aimass.models.encoder import Encoder


__all__ = [
    "METHODS",
    "EvalItem",
    "ReplayResult",
    "embed_items",
    "items_from_documents",
    "read_events",
    "read_items",
    "recs_png",
    "recs_report",
    "replay",
]


METHODS = ("recommender", "popularity", "random")


REPLAY_TOPIC = "replay"


class ReplayReporter(Protocol):
    """Where long steps report progress (the CLI draws progress bars)."""

    def start(self, stage: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


@dataclass(frozen=True, slots=True)
class EvalItem:
    """An item to recommend, before it is embedded."""

    tenant: str
    item_id: str
    ts_ms: int
    text: str
    title: str = ""
    category: str = ""


def _jsonl(path: Path) -> Iterable[tuple[int, str]]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line


def read_events(path: Path) -> list[Event]:
    """Events from a JSONL file in the ``aimass.events`` format; errors name file:line."""
    events = []
    for number, line in _jsonl(path):
        source = Source(path.name, 0, number, 0)
        try:
            events.append(validate_event(json.loads(line), source))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        except (InvalidDocument, RecursionError) as exc:
            raise DataError(f"{path}:{number}: {exc}") from None
    if not events:
        raise DataError(f"{path}: no events")
    return events


def events_from_dicts(records: Iterable[Mapping[str, Any]]) -> list[Event]:
    """Validated events from ``aimass.events`` dicts (e.g. :func:`synthetic_events`)."""
    return [
        validate_event(dict(obj), Source(REPLAY_TOPIC, 0, i, 0)) for i, obj in enumerate(records)
    ]


def _item(obj: Any) -> EvalItem:
    if not isinstance(obj, dict):
        raise InvalidDocument(f"item must be a JSON object, got {type(obj).__name__}")
    # The documents schema, with ``ts`` optional: an item without one is there from the start.
    doc = validate_document(
        {**obj, "ts": 0 if obj.get("ts") is None else obj["ts"]}, Source("", 0, 0, 0)
    )
    category = obj.get("category")
    if category is None:
        category = doc.meta.get("category_hint", "")
    if not isinstance(category, str):
        raise InvalidDocument(f"field 'category' must be a string, got {type(category).__name__}")
    return EvalItem(doc.tenant, doc.id, doc.ts_ms, doc.text, doc.title, category)


def read_items(path: Path) -> list[EvalItem]:
    """Items from a JSONL file in the documents format (``id, tenant, text``, optional
    ``title``, ``ts``, ``category`` or ``meta.category_hint``); errors name file:line."""
    items = []
    for number, line in _jsonl(path):
        try:
            items.append(_item(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        except (InvalidDocument, RecursionError) as exc:
            raise DataError(f"{path}:{number}: {exc}") from None
    if not items:
        raise DataError(f"{path}: no items")
    return items


def items_from_documents(documents: Iterable[Mapping[str, Any]]) -> list[EvalItem]:
    """Items from documents as :func:`~stream_aimass.corpus.generate_documents` makes them."""
    return [_item(dict(doc)) for doc in documents]


def embed_items(
    items: Sequence[EvalItem], encoder: Encoder, reporter: Any = None
) -> list[ItemVector]:
    """Item vectors as the stream publishes them: the document text's embedding, in fp16.

    ``reporter`` is a :class:`~stream_aimass.training.reporting.TrainingReporter`.
    """
    from stream_aimass.training.classifier import embed_texts
    from stream_aimass.training.reporting import SilentReporter

    vectors = embed_texts(encoder, [item.text for item in items], reporter or SilentReporter())
    # aimass.item-vectors carries float16: evaluate the vectors the index really holds.
    vectors = vectors.astype("<f2").astype(np.float32)
    model = ModelRef(encoder.name, encoder.version)
    return [
        ItemVector(
            tenant=item.tenant,
            item_id=item.item_id,
            kind="document",
            ts_ms=item.ts_ms,
            vector=vector,
            model=model,
            updated_at_ms=item.ts_ms,
            title=item.title,
            category=item.category,
        )
        for item, vector in zip(items, vectors, strict=True)
    ]


@dataclass(slots=True)
class ReplayResult:
    """Counts of a replay and, per method, the rank of every target (0: not in the top k)."""

    k: int
    events: int = 0
    targets: int = 0
    skipped_repeats: int = 0
    unknown_items: int = 0
    cold_start_targets: int = 0
    users: int = 0
    items: int = 0
    ranks: dict[str, list[int]] = field(default_factory=lambda: {m: [] for m in METHODS})

    def recall(self, method: str, k: int | None = None) -> float:
        k = self.k if k is None else k
        ranks = self.ranks[method]
        return sum(1 for r in ranks if 0 < r <= k) / len(ranks) if ranks else 0.0

    def ndcg(self, method: str, k: int | None = None) -> float:
        k = self.k if k is None else k
        ranks = self.ranks[method]
        gains = (1.0 / math.log2(r + 1) for r in ranks if 0 < r <= k)
        return sum(gains) / len(ranks) if ranks else 0.0


def _popular(items: TenantItems, exclude: Sequence[str], now_ms: int, k: int) -> list[str]:
    pop = items.popularity(now_ms).copy()
    for item_id in exclude:
        row = items.rows.get(item_id)
        if row is not None:
            pop[row] = -np.inf
    order = np.lexsort((-items.ts, -pop))[:k]  # by popularity, then newest first
    return [items.ids[j] for j in order.tolist() if np.isfinite(pop[j])]


def _random(
    items: TenantItems, exclude: Sequence[str], k: int, rng: np.random.Generator
) -> list[str]:
    excluded = set(exclude)
    candidates = [item_id for item_id in items.ids if item_id not in excluded]
    picks = rng.choice(len(candidates), size=min(k, len(candidates)), replace=False)
    return [candidates[j] for j in picks.tolist()]


def _rank(ranked: Sequence[str], target: str) -> int:
    for position, item_id in enumerate(ranked, start=1):
        if item_id == target:
            return position
    return 0


def replay(
    events: Sequence[Event],
    items: Sequence[ItemVector],
    *,
    index: ItemIndex,
    scorer: Scorer,
    profiles: ProfileConfig,
    k: int,
    seed: int = 13,
    reporter: ReplayReporter | None = None,
) -> ReplayResult:
    """Replay ``events`` in time order against ``index``; see the module docstring.

    ``items`` enter ``index`` (normally empty at the start) as their ``ts`` is reached;
    ``scorer`` must score against ``index``.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    reporter = reporter or _Silent()
    rng = np.random.default_rng(seed)
    ordered = sorted(events, key=lambda e: e.ts_ms)
    arriving = sorted(items, key=lambda item: item.ts_ms)
    next_item = 0
    users: dict[tuple[str, str], Profile] = {}
    result = ReplayResult(k=k)
    reporter.start("replay", len(ordered))
    for seq, event in enumerate(ordered):
        while next_item < len(arriving) and arriving[next_item].ts_ms <= event.ts_ms:
            index.upsert(arriving[next_item])
            next_item += 1
        # Replay order is the offset order: profiles skip offsets they have applied.
        event = dataclasses.replace(event, source=Source(REPLAY_TOPIC, 0, seq, event.ts_ms))
        key = (event.tenant, event.user_id)
        profile = users.get(key)
        tenant_items = index.tenant(event.tenant)
        if profile is not None:
            # As the stream does: earlier events on items indexed since then count now (before
            # the target is scored, like the profile a recommendation is made from).
            lookup = functools.partial(index.vector, event.tenant)
            resolve_pending(profile, lookup, profiles, index.model_version)
        vector = index.vector(event.tenant, event.item_id)
        if vector is None:
            result.unknown_items += 1
        elif profile is not None and event.item_id in profile.recent:
            result.skipped_repeats += 1
        elif profile is not None and tenant_items is not None:
            _score_target(result, scorer, tenant_items, profile, event, k, rng)
        applied = apply_event(profile, event, vector, profiles, index.model_version)
        if applied is not None:
            users[key] = applied
        if vector is not None:
            index.add_interaction(
                event.tenant, event.item_id, profiles.weight(event.type), event.ts_ms
            )
        result.events += 1
        reporter.advance()
    for item in arriving[next_item:]:
        index.upsert(item)
    result.users = len(users)
    result.items = len(index)
    return result


def _score_target(
    result: ReplayResult,
    scorer: Scorer,
    items: TenantItems,
    profile: Profile,
    event: Event,
    k: int,
    rng: np.random.Generator,
) -> None:
    exclude = list(profile.recent)
    user = profile.unit_vector()
    scored = scorer.score([ScoreRequest(event.tenant, user, exclude, event.ts_ms, k)])[0]
    result.targets += 1
    result.cold_start_targets += scored.cold_start
    with items.lock:
        popular = _popular(items, exclude, event.ts_ms, k)
        drawn = _random(items, exclude, k, rng)
    result.ranks["recommender"].append(_rank([s.item_id for s in scored.items], event.item_id))
    result.ranks["popularity"].append(_rank(popular, event.item_id))
    result.ranks["random"].append(_rank(drawn, event.item_id))


def recs_report(
    result: ReplayResult,
    *,
    synthetic: bool,
    model: Mapping[str, str],
    encoder: Mapping[str, str],
    plot: str,
    seconds: float,
) -> dict[str, Any]:
    """The ``eval recs --json`` report."""
    k = result.k
    recall, ndcg = f"recall@{k}", f"ndcg@{k}"
    base = result.recall("popularity")
    ours = result.recall("recommender")
    return {
        "k": k,
        "events": result.events,
        "targets": result.targets,
        "skipped_repeats": result.skipped_repeats,
        "unknown_items": result.unknown_items,
        "users": result.users,
        "items": result.items,
        recall: round(ours, 4),
        ndcg: round(result.ndcg("recommender"), 4),
        "popularity": {recall: round(base, 4), ndcg: round(result.ndcg("popularity"), 4)},
        "random": {
            recall: round(result.recall("random"), 4),
            ndcg: round(result.ndcg("random"), 4),
        },
        "recall_vs_popularity": round(ours / base, 3) if base > 0 else None,
        "synthetic": synthetic,
        "model": dict(model),
        "encoder": dict(encoder),
        "plot": plot,
        "seconds": round(seconds, 2),
    }


def recs_png(result: ReplayResult, path: Path, title: str) -> Path:
    """Recall@k and NDCG@k bars of the three methods, and recall@1..k curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    k = result.k
    labels = {"recommender": "recommender", "popularity": "popularity", "random": "random"}
    colours = {"recommender": "#1f77b4", "popularity": "#ff7f0e", "random": "#7f7f7f"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.27
    metrics = (f"recall@{k}", f"ndcg@{k}")
    top = 0.0
    for m, method in enumerate(METHODS):
        values = [result.recall(method), result.ndcg(method)]
        top = max(top, *values)
        xs = [i + (m - 1) * width for i in range(len(metrics))]
        bars = ax1.bar(xs, values, width, label=labels[method], color=colours[method])
        ax1.bar_label(bars, fmt="%.3f", fontsize=8)
    ax1.set_xticks(range(len(metrics)), metrics)
    ax1.set_ylim(0, max(0.05, top * 1.2))
    ax1.set_title(f"{result.targets} targets, {result.users} users, {result.items} items")
    ax1.legend(loc="upper right")
    ks = list(range(1, k + 1))
    for method in METHODS:
        ax2.plot(
            ks, [result.recall(method, j) for j in ks], marker="o", markersize=3,
            label=labels[method], color=colours[method],
        )  # fmt: skip
    ax2.set_xlabel("k")
    ax2.set_ylabel("recall@k")
    ax2.set_ylim(bottom=0)
    ax2.set_title(f"recall@k for k = 1..{k}")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
