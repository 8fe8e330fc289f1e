"""Property-based fuzz: hostile bytes become valid records or dead letters with a reason.

Every message goes through the document, item and event decoders with the real limits, and
whatever comes out goes on through what enrich and the sink do with it (enriched record,
item vector, ClickHouse rows, dead-letter rows). The sink's row builders get hostile records
on the internal topics. Counts are small in CI; ``pytest --long`` runs the full ones.
"""

from __future__ import annotations

import base64
import gc
import time
import tracemalloc
from collections import Counter
from typing import Any

import numpy as np
import orjson
import pytest
from hostile_messages import (
    BIG_SHAPES,
    KAFKA_TIMESTAMPS,
    TS_MS,
    Hostile,
    Raw,
    assert_row_fits,
    attack_classes,
    collect,
    hostile_keys,
    hostile_messages,
    json_values,
    render,
)
from hypothesis import strategies as st

from stream_aimass.decode import (
    STAGE_DECODE,
    STAGE_VALIDATE,
    DocumentDecoder,
    EventDecoder,
    ItemDecoder,
)
from stream_aimass.records import (
    MAX_DLQ_RAW_BYTES,
    TENANT_RE,
    Category,
    DeadLetter,
    Document,
    EnrichedDocument,
    Event,
    ItemVector,
    ModelRef,
    Source,
)
from stream_aimass.settings import Settings
from stream_aimass.sink.item_rows import (
    ITEM_COLUMNS,
    RECOMMENDATION_COLUMNS,
    item_row,
    recommendation_row,
)
from stream_aimass.sink.rows import (
    CLASSIFICATION_COLUMNS,
    DEAD_LETTER_COLUMNS,
    DOCUMENT_COLUMNS,
    ENTITY_MENTION_COLUMNS,
    EVENT_COLUMNS,
    RowError,
    classification_rows,
    dead_letter_row,
    document_row,
    entity_mention_rows,
    event_row,
)

# (CI, --long) message counts per test: the --long total is well over 10,000.
COUNTS = {"decode": (500, 12_000), "rows": (300, 4_000), "memory": (1_500, 20_000)}
SETTINGS = Settings()
DOCUMENTS, ITEMS, EVENTS = SETTINGS.topic_documents, SETTINGS.topic_items, SETTINGS.topic_events
# Kafka's default max.message.bytes: a dead letter must fit whatever its input was.
MAX_DLQ_RECORD_BYTES = 1024 * 1024
# The last millisecond DateTime64(3) holds (2299-12-31T23:59:59.999Z).
MAX_TS_MS = 10_413_791_999_999
MODEL = ModelRef("all-MiniLM-L6-v2", "abc123")
NOW_MS = TS_MS + 5_000


def count(name: str, long_mode: bool) -> int:
    ci, full = COUNTS[name]
    return full if long_mode else ci


def decoders(max_bytes: int | None = None) -> list[tuple[str, Any, int]]:
    """(topic, decoder, byte limit) for the three input topics, with the settings' limits."""
    doc_limit = max_bytes or SETTINGS.max_document_bytes
    event_limit = max_bytes or SETTINGS.max_event_bytes
    return [
        (DOCUMENTS, DocumentDecoder(doc_limit), doc_limit),
        (ITEMS, ItemDecoder(doc_limit), doc_limit),
        (EVENTS, EventDecoder(event_limit), event_limit),
    ]


GOOD_TEXT = "Northbridge win the cup"
GOOD_DOC = {"id": "doc-1", "tenant": "acme", "ts": TS_MS, "text": GOOD_TEXT}
GOOD_EVENT = {
    "event_id": "e-1", "tenant": "acme", "user_id": "u-1", "item_id": "doc-1",
    "type": "click", "ts": TS_MS,
}  # fmt: skip
GOOD_SOURCE = Source(DOCUMENTS, 0, 1, TS_MS)


# ---------------------------------------------------------------------------- invariants


def check_dead(dead: DeadLetter, raw: bytes, source: Source, key: bytes | None) -> None:
    """A dead letter with a reason, whose record round-trips, is bounded and can be stored."""
    assert type(dead) is DeadLetter
    assert dead.stage in (STAGE_DECODE, STAGE_VALIDATE)
    assert isinstance(dead.reason, str) and dead.reason.strip()
    assert dead.error_type
    assert dead.raw == raw and dead.source == source and dead.key == key
    encoded = dead.to_json()
    assert len(encoded) <= MAX_DLQ_RECORD_BYTES, len(encoded)
    back = orjson.loads(encoded)
    assert back["stage"] == dead.stage and back["reason"].strip()
    assert base64.b64decode(back["raw_b64"], validate=True) == raw[:MAX_DLQ_RAW_BYTES]
    assert back["raw_bytes"] == len(raw)
    assert back["raw_truncated"] is (len(raw) > MAX_DLQ_RAW_BYTES)
    assert back["source"] == source.to_dict()
    # The sink stores every dead letter the enrich role publishes.
    assert_row_fits(dead_letter_row(encoded), "dead_letters", DEAD_LETTER_COLUMNS)


def check_document(doc: Document, source: Source, limit: int, catalogue: bool) -> None:
    """Right types within limits, and everything enrich and the sink build from it works."""
    assert type(doc) is Document
    assert type(doc.id) is str and 0 < len(doc.id) <= 256
    assert type(doc.tenant) is str and TENANT_RE.fullmatch(doc.tenant)
    assert type(doc.ts_ms) is int and 0 <= doc.ts_ms <= MAX_TS_MS
    assert type(doc.text) is str and doc.text.strip()
    assert len(doc.text.encode()) <= limit
    assert type(doc.title) is str and len(doc.title) <= 4096
    assert type(doc.lang) is str and len(doc.lang) <= 32
    assert type(doc.meta) is dict
    assert doc.source == source
    category = doc.meta.get("category", "")
    if catalogue:
        assert type(category) is str and len(category) <= 128
    enriched = EnrichedDocument(
        document=doc,
        tokens=3,
        categories=(Category("sports", 0.75), Category("health", 0.25)),
        embedding=np.zeros(4, dtype="<f2").tobytes(),
        embedding_dim=4,
        model=MODEL,
        timings_ms={"forward": 1.5},
        enriched_at_ms=NOW_MS,
    )
    value = enriched.to_json()
    assert_row_fits(document_row(value, "aimass.enriched", 0, 0), "documents", DOCUMENT_COLUMNS)
    vector = ItemVector(
        tenant=doc.tenant,
        item_id=doc.id,
        kind="catalogue" if catalogue else "document",
        ts_ms=doc.ts_ms,
        vector=np.full(4, 0.5, dtype=np.float32),
        model=MODEL,
        updated_at_ms=NOW_MS,
        title=doc.title,
        category=category if isinstance(category, str) else "",
        source=doc.source.to_dict(),
    )
    row = item_row(vector.key, vector.to_json(), "aimass.item-vectors", 0, 0, NOW_MS)
    assert_row_fits(row, "items", ITEM_COLUMNS)


def check_event(event: Event, source: Source) -> None:
    assert type(event) is Event
    for value in (event.event_id, event.user_id, event.item_id):
        assert type(value) is str and 0 < len(value) <= 256
    assert type(event.tenant) is str and TENANT_RE.fullmatch(event.tenant)
    assert event.type in ("view", "click", "like", "purchase")
    assert type(event.ts_ms) is int and 0 <= event.ts_ms <= MAX_TS_MS
    assert event.source == source
    assert_row_fits(event_row(event), "events", EVENT_COLUMNS)


def decode_and_check(
    raw: bytes | None,
    key: bytes | None,
    kafka_ts: int,
    topic_decoders: list[tuple[str, Any, int]],
    tally: Counter[str],
) -> None:
    """``raw`` through every decoder: each result is a checked record or dead letter."""
    for topic, decoder, limit in topic_decoders:
        source = Source(topic, 3, 42, kafka_ts)
        result = decoder.decode(raw, source, key)
        if isinstance(result, DeadLetter):
            check_dead(result, raw or b"", source, key)
            tally[f"{topic} dead letters"] += 1
        elif topic == EVENTS:
            check_event(result, source)
            tally[f"{topic} records"] += 1
        else:
            check_document(result, source, limit, catalogue=topic == ITEMS)
            tally[f"{topic} records"] += 1


def check_good_unaffected(topic_decoders: list[tuple[str, Any, int]]) -> None:
    """Good messages decode exactly as they should through decoders that saw hostile ones."""
    for topic, decoder, _ in topic_decoders:
        good = GOOD_EVENT if topic == EVENTS else GOOD_DOC
        result = decoder.decode(orjson.dumps(good), GOOD_SOURCE, b"acme:doc-1")
        if topic == EVENTS:
            assert result == Event("e-1", "acme", "u-1", "doc-1", "click", TS_MS, GOOD_SOURCE)
        else:
            assert result == Document("doc-1", "acme", TS_MS, GOOD_TEXT, GOOD_SOURCE)


def summary(name: str, tally: Counter[str], started: float) -> None:
    figures = ", ".join(f"{k}={v}" for k, v in sorted(tally.items()))
    print(f"RELIABILITY fuzz {name}: {figures}, crashes=0, {time.monotonic() - started:.1f}s")


# ---------------------------------------------------------------------------- decoding


def test_hostile_messages_become_valid_records_or_dead_letters(long_mode: bool) -> None:
    n = count("decode", long_mode)
    started = time.monotonic()
    topic_decoders = decoders()
    tally: Counter[str] = Counter()
    kafka_ts = st.sampled_from(KAFKA_TIMESTAMPS)

    def check(example: tuple[Hostile, int]) -> None:
        msg, ts = example
        decode_and_check(msg.raw, msg.key, ts, topic_decoders, tally)
        check_good_unaffected(topic_decoders)
        tally[f"kind {msg.kind}"] += 1

    drawn = collect(st.tuples(hostile_messages(), kafka_ts), n, check)
    assert len(drawn) == n
    # n draws of a sampled class may leave a rare one out (which, depends on hypothesis'
    # version: 6.170 left out nul_bytes in 500): each class left out gets draws of its own.
    for kind, values in attack_classes().items():
        if f"kind {kind}" not in tally:
            alone = st.builds(Hostile, st.just(kind), values, hostile_keys)
            drawn += collect(st.tuples(alone, kafka_ts), 20, check)
    tally["messages"] = len(drawn)
    summary("decode", tally, started)
    # Every attack class was drawn, and both outcomes happened on every topic.
    kinds = {k for k in tally if k.startswith("kind ")}
    assert len(kinds) == len(attack_classes())
    for topic in (DOCUMENTS, ITEMS, EVENTS):
        assert tally[f"{topic} dead letters"] > 0 and tally[f"{topic} records"] > 0, topic


@pytest.mark.parametrize("shape", sorted(BIG_SHAPES))
def test_ten_megabyte_payloads_are_dead_letters_or_records(shape: str, long_mode: bool) -> None:
    sizes = [1_000_000, 4_000_000, 10_000_000] if long_mode else [10_000_000]
    tally: Counter[str] = Counter()
    for size in sizes:
        raw = BIG_SHAPES[shape](size)
        # With the real limits: too large, before any parsing.
        decode_and_check(raw, b"k" * 1000, TS_MS, decoders(), tally)
        # With limits raised past the payload: parsed, and still a record or a dead letter.
        decode_and_check(raw, None, TS_MS, decoders(max_bytes=16 * 1024 * 1024), tally)
    assert tally[f"{DOCUMENTS} dead letters"] >= len(sizes)


# ---------------------------------------------------------------------------- memory


def test_decoding_hostile_streams_keeps_memory_bounded(long_mode: bool) -> None:
    """Memory after thousands of hostile messages is what it was after the first few.

    Each message is a fresh copy, so a decoder keeping any reference (the raw bytes, the
    parsed object, a dead letter) would keep megabytes: the leaky control run shows it.
    """
    n = count("memory", long_mode)
    started = time.monotonic()
    small_keys = st.none() | st.binary(max_size=16)
    messages = [(m.raw or b"", m.key) for m in collect(hostile_messages(small_keys), 300)]
    # A 10 MB payload every 100 messages: megabytes through the decoders per hundred.
    big = [(BIG_SHAPES[s](10_000_000), None) for s in sorted(BIG_SHAPES)]
    topic_decoders = decoders()

    def run(messages_to_decode: int, keep: list[Any] | None) -> int:
        seen = 0
        for i in range(messages_to_decode):
            template, key = big[i // 100 % len(big)] if i % 100 == 99 else messages[i % 300]
            raw = bytes(memoryview(template))  # a fresh copy: only a leak keeps it alive
            seen += len(raw)
            for topic, decoder, _ in topic_decoders:
                result = decoder.decode(raw, Source(topic, 0, i, TS_MS), key)
                if isinstance(result, DeadLetter):
                    result.to_json()
                if keep is not None:
                    keep.append(result)
        return seen

    tracemalloc.start()
    try:
        run(200, None)  # warm-up: caches, interned strings, the first big payloads
        gc.collect()
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        processed = run(n, None)
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        # The control: the same run keeping its results must show up as growth.
        kept: list[Any] = []
        run(300, kept)
        gc.collect()
        leaky, _ = tracemalloc.get_traced_memory()
        del kept
    finally:
        tracemalloc.stop()
    growth, leak = current - baseline, leaky - current
    bound = 4 * 1024 * 1024
    print(
        f"RELIABILITY fuzz memory: messages={n}, processed={processed / 1e6:.0f} MB, "
        f"growth={growth / 1e6:.2f} MB, peak_over_baseline={(peak - baseline) / 1e6:.1f} MB, "
        f"leaky_control_growth={leak / 1e6:.1f} MB, {time.monotonic() - started:.1f}s"
    )
    assert processed > 10 * bound
    assert growth < bound, f"memory grew {growth} bytes over {n} messages"
    # One message at a time: the peak is a few copies of the largest one, not the stream.
    assert peak - baseline < 3 * 10_000_000 + 16 * 1024 * 1024
    assert leak > 4 * bound, "the leaky control did not show: the measurement is blind"


# ---------------------------------------------------------------------------- row builders


def _enriched_template() -> dict[str, Any]:
    doc = Document("doc-7", "acme", TS_MS, "Acme buys Globex", GOOD_SOURCE, "t", "en", {"a": 1})
    enriched = EnrichedDocument(
        document=doc,
        tokens=5,
        categories=(Category("business", 0.9), Category("sports", 0.1)),
        embedding=np.zeros(4, dtype="<f2").tobytes(),
        embedding_dim=4,
        model=MODEL,
        timings_ms={"forward": 1.0},
        enriched_at_ms=NOW_MS,
        models={MODEL.name: MODEL.version},
    )
    rec: dict[str, Any] = orjson.loads(enriched.to_json())
    rec["classifications"] = [
        {
            "classifier": "intent", "model": {"name": "intent", "version": "v1"},
            "multi_label": False, "labels": ["buy", "sell"], "scores": [0.8, 0.2],
            "predicted": ["buy"], "top": "buy",
        }
    ]  # fmt: skip
    rec["entities"] = [
        {
            "start": 0, "end": 4, "text": "Acme", "label": "ORG", "entity_id": "Q1",
            "name": "Acme Corp", "score": 0.9,
        }
    ]  # fmt: skip
    rec["entities_model"] = {
        "ner": {"name": "ner", "version": "1"},
        "kb": {"name": "kb", "version": "2"},
    }
    return rec


def _dead_letter_template() -> dict[str, Any]:
    dead = DeadLetter("validate", "field 'text' is empty", b'{"text": ""}', GOOD_SOURCE, NOW_MS,
                      "InvalidDocument", b"acme:doc-1")  # fmt: skip
    rec: dict[str, Any] = orjson.loads(dead.to_json())
    return rec


def _item_vector_template() -> dict[str, Any]:
    vector = ItemVector("acme", "doc-7", "document", TS_MS, np.full(4, 0.5, dtype=np.float32),
                        MODEL, NOW_MS, "t", "sports", GOOD_SOURCE.to_dict())  # fmt: skip
    rec: dict[str, Any] = orjson.loads(vector.to_json())
    return rec


def _recommendation_template() -> dict[str, Any]:
    return {
        "tenant": "acme", "user_id": "u-1", "trigger_event_id": "e-1",
        "items": [{"item_id": "doc-1", "score": 0.8}, {"item_id": "doc-2", "score": 0.5}],
        "cold_start": False, "k": 10, "model": {"name": "recs", "version": "1"},
        "latency_ms": 12.5, "ts": NOW_MS, "event_ts": TS_MS,
    }  # fmt: skip


TEMPLATES: dict[str, dict[str, Any]] = {
    "aimass.enriched": _enriched_template(),
    "aimass.dlq": _dead_letter_template(),
    "aimass.item-vectors": _item_vector_template(),
    "aimass.recommendations": _recommendation_template(),
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a record (what a mutation can replace or delete)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


_RAW_VALUES = [
    b"1e400", b"1e39", b"-1e39", b"18446744073709551615", b"-1", b"2e308", b'"\\ud800"',
    b"[" * 1000 + b"]" * 1000, b'"' + b"x" * 300_000 + b'"', b'"' + b"\xff" + b'"',
]  # fmt: skip
_hostile_values: st.SearchStrategy[Any] = (
    json_values
    | st.sampled_from(_RAW_VALUES).map(Raw)
    | st.integers(-(2**63), 2**64 - 1)
    | st.sampled_from(["", "  ", "\x00", "9999-12-31T23:59:59Z"])
)


@st.composite
def internal_records(draw: st.DrawFn) -> tuple[str, bytes | None, bytes | None, int]:
    """(topic, value, key, Kafka timestamp) of a record on an internal topic."""
    topic = draw(st.sampled_from(sorted(TEMPLATES)))
    key = draw(st.none() | st.just(b"acme:doc-7") | hostile_keys)
    kafka_ts = draw(st.sampled_from(KAFKA_TIMESTAMPS))
    if draw(st.integers(0, 4)) == 0:
        return topic, draw(hostile_messages()).raw, key, kafka_ts  # any hostile bytes at all
    rec: Any = orjson.loads(orjson.dumps(TEMPLATES[topic]))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(rec)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = rec
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_hostile_values)
    if topic == "aimass.item-vectors" and key == b"acme:doc-7" and draw(st.booleans()):
        return topic, draw(st.sampled_from([None, b""])), key, kafka_ts  # a tombstone
    return topic, render(rec), key, kafka_ts


def build_rows(
    topic: str, value: bytes | None, key: bytes | None, kafka_ts: int
) -> list[tuple[str, list[str], list[Any]]]:
    """The rows the sink builds from one record: (table, columns, row); RowError if broken."""
    if topic == "aimass.enriched":
        raw = value or b""
        rows = [("documents", DOCUMENT_COLUMNS, document_row(raw, topic, 1, 2))]
        for row in classification_rows(raw, topic, 1, 2):
            rows.append(("classifications", CLASSIFICATION_COLUMNS, row))
        for row in entity_mention_rows(raw, topic, 1, 2):
            rows.append(("entity_mentions", ENTITY_MENTION_COLUMNS, row))
        return rows
    if topic == "aimass.dlq":
        return [("dead_letters", DEAD_LETTER_COLUMNS, dead_letter_row(value or b""))]
    if topic == "aimass.item-vectors":
        return [("items", ITEM_COLUMNS, item_row(key, value, topic, 1, 2, kafka_ts))]
    row = recommendation_row(value or b"", topic, 1, 2)
    return [("recommendations", RECOMMENDATION_COLUMNS, row)]


def test_row_builders_give_rows_or_row_errors_for_hostile_records(long_mode: bool) -> None:
    n = count("rows", long_mode)
    started = time.monotonic()
    tally: Counter[str] = Counter()

    def check(example: tuple[str, bytes | None, bytes | None, int]) -> None:
        topic, value, key, kafka_ts = example
        try:
            rows = build_rows(topic, value, key, kafka_ts)
        except RowError as exc:
            assert str(exc).strip()
            # What the sink does with it: a dead letter that fits, and its row.
            dead = DeadLetter("sink", str(exc), value or b"", Source(topic, 1, 2, kafka_ts),
                              NOW_MS, "RowError")  # fmt: skip
            encoded = dead.to_json()
            assert len(encoded) <= MAX_DLQ_RECORD_BYTES
            assert_row_fits(dead_letter_row(encoded), "dead_letters", DEAD_LETTER_COLUMNS)
            tally[f"{topic} row errors"] += 1
            return
        for table, columns, row in rows:
            assert_row_fits(row, table, columns)
        tally[f"{topic} rows"] += 1

    drawn = collect(internal_records(), n, check)
    tally["records"] = len(drawn)
    summary("rows", tally, started)
    assert len(drawn) == n
    for topic in TEMPLATES:
        assert tally[f"{topic} row errors"] > 0 and tally[f"{topic} rows"] > 0, topic


def test_templates_are_valid_records() -> None:
    # The mutations start from records every builder accepts: otherwise nothing is tested.
    for topic, rec in TEMPLATES.items():
        key = b"acme:doc-7" if topic == "aimass.item-vectors" else None
        for table, columns, row in build_rows(topic, orjson.dumps(rec), key, TS_MS):
            assert_row_fits(row, table, columns)
