"""User profiles: a decayed, weighted sum of the embeddings of the items a user touched.

For events e_1..e_n of one user, with weight w(type) and event time t_i, the profile vector
at reference time T (the newest event time seen) is

    v = sum_i w(type_i) * 0.5 ** ((T - t_i) / half_life) * embedding(item_i)

It is kept incrementally: a newer event first decays v by 0.5 ** ((t - T) / half_life) and
moves T to t; an older (out-of-order) event is added already decayed to T. Either way the
result does not depend on arrival order. Scoring uses the direction of v only.

An event on an item the index does not hold yet (its vector is usually a moment behind:
the item was published just before the event) is remembered as pending and added, decayed
from its own event time, as soon as a later event of the user finds the vector.

A profile also keeps the most recent items (never recommended again), per-type counts,
first/last seen, and the last applied offset of each events partition with the newest Kafka
timestamp applied from it, so an event that Kafka delivers twice (at-least-once) is not
applied twice: a replay is at or below the last offset AND no newer than what was applied.
An event at an old offset with a newer timestamp comes from a new incarnation of the topic
(a restarted broker, a recreated topic: offsets start at 0 again) and is applied.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from stream_aimass.records import Event, record_key

# Events on not-yet-indexed items remembered per profile (the oldest are dropped first).
MAX_PENDING = 16


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    weights: Mapping[str, float]
    half_life_s: float = 604800.0
    recent_items: int = 100

    def weight(self, event_type: str) -> float:
        return float(self.weights.get(event_type, 0.0))


@dataclass(slots=True)
class Profile:
    tenant: str
    user_id: str
    vector: np.ndarray | None = None  # float32, not normalised; None until an item is known
    weight: float = 0.0  # decayed sum of the weights behind ``vector``
    ref_ms: int = 0  # T: the event time ``vector`` and ``weight`` are decayed to
    recent: list[str] = field(default_factory=list)  # oldest first, at most recent_items
    counts: dict[str, int] = field(default_factory=dict)
    events: int = 0
    first_seen_ms: int = 0
    last_seen_ms: int = 0
    offsets: dict[int, int] = field(default_factory=dict)  # events partition -> last offset
    # events partition -> the newest Kafka timestamp applied from it (ms)
    offset_ts: dict[int, int] = field(default_factory=dict)
    model_version: str = ""  # encoder version of the item vectors summed into ``vector``
    # Events on items not in the index yet: (item_id, weight, event time), newest last.
    pending: list[tuple[str, float, int]] = field(default_factory=list)

    @property
    def key(self) -> bytes:
        return profile_key(self.tenant, self.user_id)

    def applied(self, partition: int, offset: int, timestamp_ms: int | None = None) -> bool:
        """Whether the event at this partition/offset (with this Kafka timestamp) is already
        in the profile."""
        last = self.offsets.get(partition)
        if last is None or offset > last:
            return False
        newest = self.offset_ts.get(partition)
        # A replay was applied before, so it is no newer than the newest applied event; a
        # newer one at a reused offset belongs to a new incarnation of the topic.
        return newest is None or timestamp_ms is None or timestamp_ms <= newest

    def mark_applied(self, partition: int, offset: int, timestamp_ms: int) -> None:
        self.offsets[partition] = offset
        self.offset_ts[partition] = max(self.offset_ts.get(partition, timestamp_ms), timestamp_ms)

    def unit_vector(self) -> np.ndarray | None:
        if self.vector is None:
            return None
        norm = float(np.linalg.norm(self.vector))
        if norm <= 1e-12:
            return None
        return (self.vector / norm).astype(np.float32)

    def to_bytes(self) -> bytes:
        vector = None
        if self.vector is not None:
            vector = base64.b64encode(self.vector.astype("<f4").tobytes()).decode("ascii")
        return orjson.dumps(
            {
                "tenant": self.tenant,
                "user_id": self.user_id,
                "vector_f32_b64": vector,
                "weight": self.weight,
                "ref_ms": self.ref_ms,
                "recent": self.recent,
                "counts": self.counts,
                "events": self.events,
                "first_seen_ms": self.first_seen_ms,
                "last_seen_ms": self.last_seen_ms,
                "offsets": {str(p): o for p, o in self.offsets.items()},
                "offset_ts": {str(p): t for p, t in self.offset_ts.items()},
                "model_version": self.model_version,
                "pending": self.pending,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Profile:
        obj = orjson.loads(raw)
        vector = None
        if obj.get("vector_f32_b64"):
            vector = np.frombuffer(base64.b64decode(obj["vector_f32_b64"]), dtype="<f4").copy()
        return cls(
            tenant=obj["tenant"],
            user_id=obj["user_id"],
            vector=vector,
            weight=float(obj.get("weight", 0.0)),
            ref_ms=int(obj.get("ref_ms", 0)),
            recent=list(obj.get("recent", [])),
            counts={str(k): int(v) for k, v in obj.get("counts", {}).items()},
            events=int(obj.get("events", 0)),
            first_seen_ms=int(obj.get("first_seen_ms", 0)),
            last_seen_ms=int(obj.get("last_seen_ms", 0)),
            offsets={int(p): int(o) for p, o in obj.get("offsets", {}).items()},
            offset_ts={int(p): int(t) for p, t in obj.get("offset_ts", {}).items()},
            model_version=str(obj.get("model_version", "")),
            pending=[(str(i), float(w), int(t)) for i, w, t in obj.get("pending", [])],
        )

    def summary(self) -> dict[str, Any]:
        """What the HTTP endpoint shows about a profile (no vector)."""
        return {
            "events": self.events,
            "counts": self.counts,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
            "recent_items": self.recent[-10:][::-1],
            "has_vector": self.vector is not None,
        }


def profile_key(tenant: str, user_id: str) -> bytes:
    """The table key, which is also the events topic's message key: ``tenant:user_id``."""
    return record_key(tenant, user_id)


def _add(
    profile: Profile,
    item_vector: np.ndarray,
    weight: float,
    t: int,
    config: ProfileConfig,
    model_version: str,
) -> None:
    """Add ``weight`` x ``item_vector`` at event time ``t`` to the decayed sum."""
    if profile.vector is not None and model_version and profile.model_version != model_version:
        # Vectors of another encoder live in another space: start the sum again.
        profile.vector, profile.weight = None, 0.0
    if profile.vector is None:
        profile.vector = np.zeros_like(item_vector, dtype=np.float32)
        profile.ref_ms = t
    half_life_ms = config.half_life_s * 1000.0
    if t >= profile.ref_ms:
        decay = 0.5 ** ((t - profile.ref_ms) / half_life_ms)
        profile.vector *= np.float32(decay)
        profile.weight *= decay
        profile.ref_ms = t
        contribution = weight
    else:
        contribution = weight * 0.5 ** ((profile.ref_ms - t) / half_life_ms)
    profile.vector += np.float32(contribution) * item_vector.astype(np.float32)
    profile.weight += contribution
    profile.model_version = model_version or profile.model_version


def resolve_pending(
    profile: Profile,
    lookup: Callable[[str], np.ndarray | None],
    config: ProfileConfig,
    model_version: str = "",
) -> int:
    """Add the pending items whose vectors ``lookup`` now finds; returns how many."""
    if not profile.pending:
        return 0
    still: list[tuple[str, float, int]] = []
    added = 0
    for item_id, weight, t in profile.pending:
        vector = lookup(item_id)
        if vector is None:
            still.append((item_id, weight, t))
        else:
            _add(profile, vector, weight, t, config, model_version)
            added += 1
    profile.pending = still
    return added


def apply_event(
    profile: Profile | None,
    event: Event,
    item_vector: np.ndarray | None,
    config: ProfileConfig,
    model_version: str = "",
    lookup: Callable[[str], np.ndarray | None] | None = None,
) -> Profile | None:
    """The profile after ``event``, or None when the event was already applied (a replay).

    ``item_vector`` is the unit embedding of the event's item, or None when the item is not
    (yet) in the index: the event still counts and its item is still never recommended.
    ``lookup`` (item id -> vector in the user's tenant) first adds the pending items that
    have been indexed since. ``profile`` is updated in place when given.
    """
    if profile is None:
        profile = Profile(event.tenant, event.user_id)
    source = event.source
    if profile.applied(source.partition, source.offset, source.timestamp_ms):
        return None
    if lookup is not None:
        resolve_pending(profile, lookup, config, model_version)
    profile.mark_applied(source.partition, source.offset, source.timestamp_ms)
    t = event.ts_ms
    weight = config.weight(event.type)
    if weight > 0:
        if item_vector is not None:
            _add(profile, item_vector, weight, t, config, model_version)
        else:
            # Not indexed yet (its vector may be a moment behind the event): added later by
            # resolve_pending, still decayed from the event's own time.
            profile.pending.append((event.item_id, weight, t))
            del profile.pending[:-MAX_PENDING]
    if event.item_id in profile.recent:
        profile.recent.remove(event.item_id)
    profile.recent.append(event.item_id)
    del profile.recent[: -config.recent_items]
    profile.counts[event.type] = profile.counts.get(event.type, 0) + 1
    profile.events += 1
    profile.first_seen_ms = min(profile.first_seen_ms or t, t)
    profile.last_seen_ms = max(profile.last_seen_ms, t)
    return profile
