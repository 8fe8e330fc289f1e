"""Synthetic sample streams for demos, tests and benchmarks.

The generators in this module produce news-like documents (topic
``aimass.documents``), user interaction events (topic ``aimass.events``) and a
catalogue of malformed document messages that the pipeline must route to the
dead-letter queue. Everything is deterministic for a given seed and uses only
the standard library, so the same corpus can be rebuilt anywhere.

Texts are assembled from many sentence templates per category, filled with
randomly drawn names, places and numbers. The category a document was built
from is stored in ``meta["category_hint"]`` so that classifier output can be
checked against it. Many fillers name entities of the demo knowledge base
(``resources/kb/demo-kb.jsonl``), some through ambiguous aliases ("Milan",
"Jordan", "Mercury") that the sentence around them decides; their spans are
stored in ``meta["entity_hints"]`` so that entity linking can be checked too.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from stream_aimass.tools.corpus import vocabulary

CATEGORIES: tuple[str, ...] = (
    "sports",
    "business",
    "technology",
    "politics",
    "science",
    "health",
    "entertainment",
)


#: Default start of the generated stream: 2025-01-01T00:00:00Z in epoch ms.
DEFAULT_START_TS_MS = 1_735_689_600_000


_MIN_WORDS = 25


_MAX_WORDS = 90


_MAX_SENTENCES = 4


def _person(rng: random.Random) -> str:
    return f"{rng.choice(vocabulary.FIRST_NAMES)} {rng.choice(vocabulary.LAST_NAMES)}"


def _fillers(rng: random.Random) -> dict[str, str]:
    """Draw one value for every slot used by the templates."""
    team, team2 = rng.sample(vocabulary.TEAMS, 2)
    company, company2 = rng.sample(vocabulary.COMPANIES, 2)
    leader, leader2 = rng.sample(vocabulary.LEADERS, 2)
    country, country2 = rng.sample(vocabulary.COUNTRIES, 2)
    goals_a = rng.randint(1, 5)
    goals_b = rng.randint(0, goals_a - 1)
    level = rng.randint(0, 3)
    votes = rng.randint(180, 320)
    return {
        "team": team,
        "team2": team2,
        "athlete": _person(rng),
        "coach": _person(rng),
        "person": _person(rng),
        "politician": _person(rng),
        "tournament": rng.choice(vocabulary.TOURNAMENTS),
        "city": rng.choice(vocabulary.CITIES),
        "country": country,
        "country2": country2,
        "company": company,
        "company2": company2,
        "tech": rng.choice(vocabulary.TECH_COMPANIES),
        "chipco": rng.choice(vocabulary.CHIPMAKERS),
        "fund": rng.choice(vocabulary.FUNDS),
        "footballer": rng.choice(vocabulary.FOOTBALLERS),
        "tennis_player": rng.choice(vocabulary.TENNIS_PLAYERS),
        "business_leader": rng.choice(vocabulary.BUSINESS_LEADERS),
        "central_bank": rng.choice(vocabulary.CENTRAL_BANKS),
        "tech_leader": rng.choice(vocabulary.TECH_LEADERS),
        "leader": leader,
        "leader2": leader2,
        "bloc": rng.choice(vocabulary.BLOCS),
        "space_agency": rng.choice(vocabulary.SPACE_AGENCIES),
        "scientist": rng.choice(vocabulary.SCIENTISTS),
        "health_body": rng.choice(vocabulary.HEALTH_BODIES),
        "drugmaker": rng.choice(vocabulary.DRUGMAKERS),
        "regulator": rng.choice(vocabulary.REGULATORS),
        "star": rng.choice(vocabulary.STARS),
        "studio": rng.choice(vocabulary.STUDIOS),
        "product": rng.choice(vocabulary.PRODUCTS),
        "chip": rng.choice(vocabulary.CHIPS),
        "software": rng.choice(vocabulary.SOFTWARE),
        "party": rng.choice(vocabulary.PARTIES),
        "telescope": rng.choice(vocabulary.TELESCOPES),
        "institution": rng.choice(vocabulary.INSTITUTIONS),
        "lab": rng.choice(vocabulary.LABS),
        "field": rng.choice(vocabulary.FIELDS),
        "planet": rng.choice(vocabulary.PLANETS),
        "mission": rng.choice(vocabulary.MISSIONS),
        "disease": rng.choice(vocabulary.DISEASES),
        "chronic": rng.choice(vocabulary.CHRONIC),
        "vector_disease": rng.choice(vocabulary.VECTOR_DISEASES),
        "drug": rng.choice(vocabulary.DRUGS),
        "hospital": rng.choice(vocabulary.HOSPITALS),
        "film": rng.choice(vocabulary.FILMS),
        "show": rng.choice(vocabulary.SHOWS),
        "artist": rng.choice(vocabulary.ARTISTS),
        "band": rng.choice(vocabulary.BANDS),
        "album": rng.choice(vocabulary.ALBUMS),
        "festival": rng.choice(vocabulary.FESTIVALS),
        "venue": rng.choice(vocabulary.VENUES),
        "weekday": rng.choice(vocabulary.WEEKDAYS),
        "month": rng.choice(vocabulary.MONTHS),
        "ordinal": rng.choice(vocabulary.ORDINALS),
        "rank": rng.choice(vocabulary.RANKS),
        "score": f"{goals_a}-{goals_b}",
        "draw": f"{level}-{level}",
        "minute": str(rng.randint(4, 89)),
        "small": str(rng.randint(2, 9)),
        "medium": str(rng.randint(11, 48)),
        "money_m": str(rng.randint(12, 480)),
        "money_b": f"{rng.uniform(1.2, 68.0):.1f}",
        "pct": f"{rng.uniform(0.4, 14.9):.1f}",
        "pct2": str(rng.randint(21, 78)),
        "bps": str(rng.choice((25, 50, 75, 100))),
        "jobs": f"{rng.randint(3, 120) * 100:,}",
        "oil": f"{rng.uniform(58.0, 104.0):.2f}",
        "sprint": f"{rng.uniform(9.80, 10.35):.2f}",
        "nm": str(rng.choice((2, 3, 4, 5, 7))),
        "qubits": str(rng.choice((127, 256, 433, 1121, 2048))),
        "votes": str(votes),
        "votes2": str(rng.randint(90, votes - 10)),
        "seats": str(rng.randint(8, 96)),
        "ly": str(rng.randint(40, 1300)),
        "genes": f"{rng.randint(12, 640):,}",
        "temp": str(rng.randint(18, 260)),
        "animals": str(rng.randint(20, 180)),
        "neurons": f"{rng.randint(20, 140) * 1000:,}",
        "age": f"{rng.randint(3, 120) * 100:,}",
        "tb": str(rng.randint(40, 900)),
        "people": f"{rng.randint(2, 900) * 1000:,}",
        "patient_age": str(rng.randint(19, 78)),
        "wait": f"{rng.randint(150, 900) * 1000:,}",
        "beds": str(rng.randint(24, 160)),
        "performances": f"{rng.randint(400, 9000):,}",
    }


# Slots that name the story's protagonists stay fixed within one document so
# that title and sentences talk about the same teams, firms and places;
# people, numbers and the remaining slots are drawn afresh for every sentence.
_STORY_SLOTS = (
    "team",
    "team2",
    "coach",
    "city",
    "country",
    "country2",
    "company",
    "company2",
    "tech",
    "product",
    "party",
    "telescope",
    "institution",
    "field",
    "disease",
    "drug",
    "hospital",
    "film",
    "show",
    "artist",
    "band",
    "album",
    "festival",
)


def _compose_text(rng: random.Random, category: str, story: Mapping[str, str]) -> str:
    """Build a 1-4 sentence text of roughly 25-90 words for ``category``.

    The text still carries the ``[[surface|kb-id]]`` marks; see :func:`_unmark`.
    """
    templates = list(vocabulary.SENTENCES[category])
    rng.shuffle(templates)
    target = rng.randint(_MIN_WORDS, 75)
    sentences: list[str] = []
    words = 0
    for template in templates:
        slots = _fillers(rng)
        slots.update({key: story[key] for key in _STORY_SLOTS})
        sentence = template.format_map(slots)
        count = len(sentence.split())
        if sentences and words + count > _MAX_WORDS:
            continue
        sentences.append(sentence)
        words += count
        if len(sentences) >= _MAX_SENTENCES or words >= target:
            break
    return " ".join(sentences)


_MARK = re.compile(r"\[\[([^\[\]|]+)\|([a-z0-9][a-z0-9_./-]*)\]\]")


def _unmark(marked: str) -> tuple[str, list[dict[str, object]]]:
    """Drop the ``[[surface|kb-id]]`` marks; return the plain text and the marked spans.

    Each span is ``{"id": kb-id, "start": ..., "end": ...}`` with character offsets
    into the returned text, in text order.
    """
    parts: list[str] = []
    hints: list[dict[str, object]] = []
    length = 0
    last = 0
    for match in _MARK.finditer(marked):
        literal = marked[last : match.start()]
        surface, entity_id = match.group(1), match.group(2)
        parts += (literal, surface)
        length += len(literal)
        hints.append({"id": entity_id, "start": length, "end": length + len(surface)})
        length += len(surface)
        last = match.end()
    parts.append(marked[last:])
    return "".join(parts), hints


def generate_documents(
    n: int,
    *,
    seed: int = 7,
    tenants: Sequence[str] = ("acme", "globex", "initech"),
    start_ts_ms: int | None = None,
) -> list[dict[str, object]]:
    """Generate ``n`` news-like documents for topic ``aimass.documents``.

    Args:
        n: Number of documents to generate (``>= 0``).
        seed: Random seed; the same seed always yields the same documents.
        tenants: Tenant names the documents are spread over.
        start_ts_ms: Epoch milliseconds of the first document. Defaults to
            2025-01-01T00:00:00Z so that output is fully deterministic.

    Returns:
        A list of dicts with keys ``id``, ``tenant``, ``ts`` (strictly
        increasing epoch ms), ``text``, ``title``, ``lang`` and ``meta``:
        ``source``, ``category_hint`` (the category the text was built from)
        and ``entity_hints``, the knowledge-base entities named in ``text`` as
        ``{"id": kb-id, "start": ..., "end": ...}`` with ``text[start:end]``
        the surface form, in text order.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if not tenants:
        raise ValueError("tenants must not be empty")
    rng = random.Random(f"documents:{seed}")
    ts = DEFAULT_START_TS_MS if start_ts_ms is None else start_ts_ms
    documents: list[dict[str, object]] = []
    for i in range(n):
        if i:
            ts += rng.randint(1, 4_000)
        category = rng.choice(CATEGORIES)
        story = _fillers(rng)
        title, _ = _unmark(rng.choice(vocabulary.TITLES[category]).format_map(story))
        text, entity_hints = _unmark(_compose_text(rng, category, story))
        documents.append(
            {
                "id": f"doc-{seed}-{i:07d}",
                "tenant": rng.choice(tenants),
                "ts": ts,
                "title": title,
                "text": text,
                "lang": "en",
                "meta": {
                    "source": rng.choice(vocabulary.SOURCES),
                    "category_hint": category,
                    "entity_hints": entity_hints,
                },
            }
        )
    return documents


def _doc_fields(doc: Mapping[str, object]) -> tuple[str, str, int, str]:
    """Extract ``(id, tenant, ts, category)`` from a generated document."""
    doc_id = doc.get("id")
    tenant = doc.get("tenant")
    ts = doc.get("ts")
    if not isinstance(doc_id, str) or not isinstance(tenant, str):
        raise ValueError("document needs string 'id' and 'tenant'")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise ValueError(f"document {doc_id!r} needs an integer 'ts'")
    meta = doc.get("meta")
    category = ""
    if isinstance(meta, Mapping):
        hint = meta.get("category_hint")
        if isinstance(hint, str):
            category = hint
    return doc_id, tenant, ts, category


_EVENT_TYPES = ("view", "click", "like", "purchase")


_EVENT_WEIGHTS = (70, 18, 8, 4)


_PREFERRED_SHARE = 0.85


def generate_events(
    documents: Sequence[Mapping[str, object]],
    n: int,
    *,
    seed: int = 11,
    users_per_tenant: int = 50,
) -> list[dict[str, object]]:
    """Generate ``n`` user interaction events for topic ``aimass.events``.

    Every user (``u-0001`` ... per tenant) gets one or two preferred
    categories (taken from ``meta["category_hint"]``) and about 85% of their
    interactions target documents of those categories. Each event refers to a
    document of the same tenant and is never earlier than that document.

    Args:
        documents: Documents as produced by :func:`generate_documents`.
        n: Number of events to generate (``>= 0``).
        seed: Random seed; the same seed and documents give the same events.
        users_per_tenant: Number of distinct users in each tenant.

    Returns:
        Events sorted by ``ts`` with keys ``event_id``, ``tenant``,
        ``user_id``, ``item_id``, ``type`` and ``ts``.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if users_per_tenant < 1:
        raise ValueError("users_per_tenant must be >= 1")
    if n == 0:
        return []
    if not documents:
        raise ValueError("documents must not be empty")
    rng = random.Random(f"events:{seed}")

    by_tenant: dict[str, list[tuple[str, int]]] = {}
    by_tenant_cat: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for doc in documents:
        doc_id, tenant, ts, category = _doc_fields(doc)
        by_tenant.setdefault(tenant, []).append((doc_id, ts))
        by_tenant_cat.setdefault((tenant, category), []).append((doc_id, ts))

    tenants = sorted(by_tenant)
    tenant_weights = [len(by_tenant[t]) for t in tenants]
    preferences: dict[tuple[str, str], list[str]] = {}
    for tenant in tenants:
        available = sorted(c for (t, c) in by_tenant_cat if t == tenant)
        for u in range(1, users_per_tenant + 1):
            k = min(len(available), rng.choice((1, 1, 2)))
            preferences[(tenant, f"u-{u:04d}")] = rng.sample(available, k)

    raw: list[tuple[int, str, str, str, str]] = []
    for _ in range(n):
        tenant = rng.choices(tenants, weights=tenant_weights)[0]
        user_id = f"u-{rng.randint(1, users_per_tenant):04d}"
        if rng.random() < _PREFERRED_SHARE:
            category = rng.choice(preferences[(tenant, user_id)])
            pool = by_tenant_cat[(tenant, category)]
        else:
            pool = by_tenant[tenant]
        item_id, item_ts = rng.choice(pool)
        # Most interactions happen soon after publication, a few much later.
        delay_ms = int(rng.expovariate(1 / 600_000)) + rng.randint(50, 5_000)
        event_type = rng.choices(_EVENT_TYPES, weights=_EVENT_WEIGHTS)[0]
        raw.append((item_ts + delay_ms, tenant, user_id, item_id, event_type))

    raw.sort(key=lambda r: r[0])
    return [
        {
            "event_id": f"evt-{seed}-{i:07d}",
            "tenant": tenant,
            "user_id": user_id,
            "item_id": item_id,
            "type": event_type,
            "ts": ts,
        }
        for i, (ts, tenant, user_id, item_id, event_type) in enumerate(raw)
    ]


def bad_messages() -> list[tuple[bytes, str]]:
    """Return malformed ``aimass.documents`` messages and what is wrong with each.

    Every entry must be rejected by the decode/validate stage and end up in
    the dead-letter topic rather than crash the worker.
    """
    oversize = json.dumps(
        {"id": "oversize", "tenant": "acme", "ts": 1_735_689_600_000, "text": "a" * 300_000}
    ).encode()
    return [
        (b'{"id": "x", ', "invalid JSON (truncated object)"),
        (
            b'[{"id": "list-1", "tenant": "acme", "ts": 1, "text": "hello"}]',
            "JSON array, not an object",
        ),
        (b'"just a string"', "JSON string, not an object"),
        (
            b'{"id": "no-text", "tenant": "acme", "ts": 1735689600000}',
            "missing required field 'text'",
        ),
        (
            b'{"tenant": "acme", "ts": 1735689600000, "text": "no id here"}',
            "missing required field 'id'",
        ),
        (
            b'{"id": "num-tenant", "tenant": 42, "ts": 1735689600000, '
            b'"text": "tenant is a number"}',
            "wrong type: 'tenant' is a number",
        ),
        (
            b'{"id": "str-ts", "tenant": "acme", "ts": "yesterday", "text": "ts is not a number"}',
            "wrong type: 'ts' is a non-numeric string",
        ),
        (
            b'{"id": "empty-text", "tenant": "acme", "ts": 1735689600000, "text": ""}',
            "empty 'text'",
        ),
        (b'{"id":"bad-utf8","tenant":"acme","ts":1,"text":"\xff\xfe"}', "invalid UTF-8 bytes"),
        (oversize, "oversize 'text' (300,000 characters)"),
        (b"\x00\x00\x00\x00", "NUL bytes only"),
        (b"", "empty body"),
    ]


def write_jsonl(records: Iterable[Mapping[str, object]], path: Path) -> int:
    """Write ``records`` to ``path`` as JSON Lines and return how many were written.

    Parent directories are created when missing; text is written as UTF-8
    without ASCII escaping.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(dict(record), ensure_ascii=False))
            fh.write("\n")
            count += 1
    return count
