"""Hostile messages interleaved with good ones through the whole pipeline, in one process.

The embedded broker and chdb, the real enrich, sink and recommendation services. Hostile
messages (sampled deterministically from the fuzz strategies in ``tests/hostile_messages.py``,
with hostile keys and Kafka timestamps, and a few multi-megabyte payloads) go to
``aimass.documents``, ``aimass.items`` and ``aimass.events`` between good documents and events.
Each must end up exactly once as a dead letter with a reason, or, where it happens to be
valid, as a record; every good message as it would alone; nothing crashes; memory stays flat.
Counts are small in CI; ``pytest --long`` runs the full ones.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import resource
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hostile_messages import BIG_SHAPES, KAFKA_TIMESTAMPS, Hostile, collect, hostile_messages
from hypothesis import strategies as st

from stream_aimass.decode import DocumentDecoder, EventDecoder, ItemDecoder
from stream_aimass.kafka.clients import group_lag, make_producer
from stream_aimass.pipeline import Pipeline, Stack, open_clickhouse
from stream_aimass.records import MAX_DLQ_RAW_BYTES, DeadLetter, Event, Source
from stream_aimass.settings import Settings
from stream_aimass.tools.corpus import generate_documents, generate_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# (CI, --long) counts.
COUNTS = {"hostile": (150, 2_000), "documents": (100, 400), "events": (60, 400)}
# The embedded broker keeps about 5 MiB per partition and silently drops the oldest data
# past that (a message over ~5 MiB is dropped at once, with its neighbour): so payloads stay
# at 4 MB at most, each alone on its partition, and each wave keeps every partition's new
# bytes (and the dead letters they make) well under the limit. The 10 MB case is covered by
# tests/unit/test_decode_fuzz.py.
BIG = [
    ("aimass.documents", 1, "text", 4_000_000),
    ("aimass.items", 2, "nesting", 4_000_000),
    ("aimass.events", 3, "bad_utf8", 1_000_000),
    ("aimass.documents", 4, "nul", 1_000_000),
]
WAVE_MESSAGES = 120
WAVE_BYTES = 3 * 1024 * 1024  # per partition, and of dead letters per wave
PARTITIONS = 6
# Memory after the warm-up wave. RSS holds the broker (its retention fills up: ~5 MiB per
# partition), chdb, the model and allocator arenas: a good-only stream of the --long size
# grows it by ~340 MB too, so this bound catches runaway growth only. The Python heap
# (tracemalloc) is the sharp check: keeping the hostile messages would add ~80 MB in --long.
RSS_GROWTH_BOUND = 512 * 1024 * 1024
HEAP_GROWTH_BOUND = 32 * 1024 * 1024
HOSTILE_TOPICS = ("aimass.documents", "aimass.items", "aimass.events")


@dataclass
class Sent:
    """One produced message, where it landed, and what the decoders say it must become."""

    topic: str
    value: bytes | None
    key: bytes | None
    timestamp_ms: int | None
    kind: str
    partition: int = 0
    offset: int = -1
    valid: Any = None  # the decoded record when valid, else None

    @property
    def where(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


def record_key(record: Any) -> tuple[str, str, str]:
    """(table, tenant, id): the key a decoded record is stored under."""
    if isinstance(record, Event):
        return ("events", record.tenant, record.event_id)
    table = "items" if record.source.topic == "aimass.items" else "documents"
    return (table, record.tenant, record.id)


@dataclass
class Memory:
    """RSS and Python heap after the warm-up wave, and how much they grew after it."""

    rss_warm: int = 0
    rss_growth: int = 0
    heap_growth: int = 0
    rss_series: list[int] = field(default_factory=list)


def rss() -> int:
    """Resident memory of this process now (the broker and chdb live here too)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def expected(sent: Sent, settings: Settings) -> Any:
    """The record the decoders make of ``sent``, or None for a dead letter."""
    decoder: Any
    if sent.topic == settings.topic_events:
        decoder = EventDecoder(settings.max_event_bytes)
    elif sent.topic == settings.topic_items:
        decoder = ItemDecoder(settings.max_document_bytes)
    else:
        decoder = DocumentDecoder(settings.max_document_bytes)
    now = int(time.time() * 1000)
    ts = now if sent.timestamp_ms is None else sent.timestamp_ms
    result = decoder.decode(sent.value, Source(sent.topic, 0, 0, ts), sent.key)
    return None if isinstance(result, DeadLetter) else result


def hostile_stream(n: int) -> list[Sent]:
    """``n`` hostile messages, the same every run, spread over the three input topics."""
    # Keys up to 100 KB: the megabyte keys of the unit fuzz would crowd the broker's retention.
    keys = st.none() | st.binary(max_size=32) | st.just(b"k" * 100_000)
    drawn: list[Hostile] = collect(hostile_messages(keys), n)
    timestamps = [None, None, None, *KAFKA_TIMESTAMPS]
    return [
        Sent(
            HOSTILE_TOPICS[i % 3],
            m.raw,
            # Kafka needs a key or a value: a tombstone gets an empty key.
            b"" if m.raw is None and m.key is None else m.key,
            timestamps[i % len(timestamps)],
            m.kind,
        )
        for i, m in enumerate(drawn)
    ]


def _dlq_bytes(sent: Sent) -> int:
    # A dead letter carries the raw message base64-encoded, truncated past the DLQ limit.
    return 4 * min(len(sent.value or b""), MAX_DLQ_RAW_BYTES) // 3 + 1024


def interleave(first: list[Sent], second: list[Sent]) -> list[Sent]:
    """Both lists merged evenly, each in its own order."""
    out: list[Sent] = []
    i = j = 0
    while i < len(first) or j < len(second):
        if j >= len(second) or (i < len(first) and i * len(second) <= j * len(first)):
            out.append(first[i])
            i += 1
        else:
            out.append(second[j])
            j += 1
    return out


def _least_loaded(load: Counter[tuple[str, int]], topic: str) -> int:
    return min(range(PARTITIONS), key=lambda p: (load[(topic, p)], p))


def waves(messages: list[Sent]) -> list[list[Sent]]:
    """Messages in waves, partitions assigned so no partition gets near the broker's limit."""
    out: list[list[Sent]] = []
    wave: list[Sent] = []
    load: Counter[tuple[str, int]] = Counter()
    dlq = 0
    for sent in messages:
        size = len(sent.value or b"") + len(sent.key or b"")
        partition = _least_loaded(load, sent.topic)
        if wave and (
            len(wave) >= WAVE_MESSAGES
            or load[(sent.topic, partition)] + size > WAVE_BYTES
            or dlq + _dlq_bytes(sent) > WAVE_BYTES
        ):
            out.append(wave)
            wave, load, dlq = [], Counter(), 0
            partition = _least_loaded(load, sent.topic)
        sent.partition = partition
        load[(sent.topic, partition)] += size
        dlq += _dlq_bytes(sent)
        wave.append(sent)
    if wave:
        out.append(wave)
    return out


async def produce(bootstrap: str, wave: list[Sent]) -> None:
    # Raised for this test producer only: the hostile payloads go up to 4 MB plus key.
    producer = make_producer(Settings(), bootstrap, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        futures = [
            await producer.send(
                s.topic, s.value, key=s.key, partition=s.partition, timestamp_ms=s.timestamp_ms
            )
            for s in wave
        ]
        for sent, future in zip(wave, futures, strict=True):
            metadata = await future
            sent.offset = metadata.offset
    finally:
        await producer.stop()


async def wait_drained(pipeline: Pipeline, bootstrap: str, timeout: float) -> None:
    """Until both roles have committed everything on every topic they read."""
    s = pipeline.settings
    sink_topics = [
        s.topic_enriched, s.topic_dlq, s.topic_events, s.topic_item_vectors,
        s.topic_recommendations,
    ]  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        # Enrich first: what it produced is then in the topics the sink's lag is read from.
        enrich = await group_lag(s, bootstrap, s.enrich_group, [s.topic_documents, s.topic_items])
        sink = await group_lag(s, bootstrap, s.sink_group, sink_topics)
        lag = sum(enrich.values()) + sum(sink.values())
        if lag == 0:
            return
        # A crashed service never drains: say so now rather than at the deadline.
        assert pipeline.ready, "a service stopped while messages flowed"
        assert time.monotonic() < deadline, f"not drained after {timeout}s: lag {lag}"
        await asyncio.sleep(0.3)


def test_hostile_messages_become_dead_letters_or_records_and_good_ones_flow(
    settings: Settings, enricher: Any, long_mode: bool
) -> None:
    started = time.monotonic()
    n_hostile = COUNTS["hostile"][long_mode]
    docs = generate_documents(COUNTS["documents"][long_mode], seed=41)
    events = generate_events(docs, COUNTS["events"][long_mode], seed=42)
    good = [
        Sent(settings.topic_documents, orjson.dumps(d), f"{d['tenant']}:{d['id']}".encode(),
             None, "good")
        for d in docs
    ] + [
        Sent(settings.topic_events, orjson.dumps(e), f"{e['tenant']}:{e['user_id']}".encode(),
             None, "good")
        for e in events
    ]  # fmt: skip
    hostile = hostile_stream(n_hostile)
    big = [
        Sent(topic, BIG_SHAPES[shape](size), b"big", None, f"big_{shape}", partition)
        for topic, partition, shape, size in BIG
    ]
    # Good messages spread through the hostile ones, so they share partitions and batches.
    mixed = interleave(hostile, good)
    stream = waves(mixed)
    for sent in mixed + big:
        sent.valid = expected(sent, settings)

    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)

        memory = Memory()

        async def run() -> bool:
            await pipeline.start()
            tracemalloc.start()
            try:
                deadline = time.monotonic() + 120
                while not pipeline.ready:  # from here on, not ready means a service stopped
                    assert time.monotonic() < deadline, "the pipeline never got ready"
                    await asyncio.sleep(0.1)
                # The big payloads first, alone on their partitions, then the mixed waves.
                await produce(stack.bootstrap, big)
                await wait_drained(pipeline, stack.bootstrap, 180)
                heap_warm = 0
                for i, wave in enumerate(stream):
                    await produce(stack.bootstrap, wave)
                    await wait_drained(pipeline, stack.bootstrap, 180)
                    gc.collect()
                    if i == 0:  # the first mixed wave warms up every path
                        memory.rss_warm = rss()
                        heap_warm = tracemalloc.get_traced_memory()[0]
                    memory.rss_series.append(rss())
                memory.rss_growth = rss() - memory.rss_warm
                memory.heap_growth = tracemalloc.get_traced_memory()[0] - heap_warm
                return pipeline.ready
            finally:
                tracemalloc.stop()
                # Also on failure: the recommendation path's Faust thread outlives the loop.
                await pipeline.stop_and_wait()  # raises what any service failed with

        alive = asyncio.run(run())
    finally:
        stack.close()

    sent_all = mixed + big
    hostile_all = hostile + big
    dead = {
        (r[0], r[1], r[2]): r[3:]
        for r in client.query(
            "SELECT source_topic, source_partition, source_offset, stage, reason, raw_bytes,"
            " raw_b64 FROM dead_letters FINAL"
        ).result_rows
    }
    # Tables are ReplacingMergeTree: hostile records sharing a key collapse to one row, so a
    # record is stored when its key's row came from one of the messages with that key.
    stored: dict[tuple[str, str, str], Any] = {}
    for table, ident in (("documents", "doc_id"), ("events", "event_id")):
        for tenant, key, *source in client.query(
            f"SELECT tenant, {ident}, source_topic, source_partition, source_offset"
            f" FROM {table} FINAL"
        ).result_rows:
            stored[(table, tenant, key)] = tuple(source)
    for tenant, item_id in client.query("SELECT tenant, item_id FROM items FINAL").result_rows:
        stored[("items", tenant, item_id)] = None
    senders: dict[tuple[str, str, str], set[tuple[str, int, int]]] = {}
    for sent in sent_all:
        if sent.valid is not None:
            senders.setdefault(record_key(sent.valid), set()).add(sent.where)

    problems: list[str] = []
    tally: Counter[str] = Counter()
    for sent in sent_all:
        where = sent.where
        assert sent.offset >= 0, sent
        if sent.valid is None:
            row = dead.get(where)
            if row is None:
                problems.append(f"no dead letter for {sent.kind} at {where}")
                continue
            stage, reason, raw_bytes, raw_b64 = row
            raw = sent.value or b""
            if stage not in ("decode", "validate") or not reason.strip():
                problems.append(f"dead letter at {where}: stage {stage!r}, reason {reason!r}")
            if raw_bytes != len(raw) or base64.b64decode(raw_b64) != raw[:MAX_DLQ_RAW_BYTES]:
                problems.append(f"dead letter at {where} does not keep the raw message")
            tally["dead letters"] += 1
            continue
        if where in dead:
            problems.append(f"valid {sent.kind} at {where} is also a dead letter: {dead[where]}")
        record = sent.valid
        key = record_key(record)
        found = key in stored and (key[0] == "items" or stored[key] in senders[key])
        if not found:
            problems.append(f"valid {sent.kind} at {where} is not stored: {record!r:.200}")
        tally["good records" if sent.kind == "good" else "hostile records"] += 1

    # Every good document exactly once, as itself; every good event stored.
    good_docs = {(d["tenant"], d["id"]) for d in docs}
    rows = client.query("SELECT tenant, doc_id, tokens FROM documents FINAL").result_rows
    stored_good = Counter((t, i) for t, i, tokens in rows if (t, i) in good_docs and tokens > 0)
    good_events = {e["event_id"] for e in events}
    stored_events = {
        r[0] for r in client.query("SELECT event_id FROM events FINAL").result_rows
    } & good_events
    sink_stage = client.query(
        "SELECT count() FROM dead_letters FINAL WHERE stage NOT IN ('decode', 'validate')"
    ).result_rows[0][0]
    kinds = Counter(s.kind for s in hostile_all)

    print(
        f"RELIABILITY hostile: messages={len(sent_all)} (hostile={len(hostile_all)}, "
        f"good={len(good)}, big={len(big)} up to {max(len(s.value or b'') for s in big) / 1e6:.1f}"
        f" MB), waves={len(stream)}, dead_letters={tally['dead letters']}, "
        f"hostile_records={tally['hostile records']}, good_records={tally['good records']}, "
        f"good_documents={len(stored_good)}/{len(docs)}, "
        f"good_events={len(stored_events)}/{len(events)}, "
        f"other_dead_letters={sink_stage}, crashes={0 if alive else 1}, "
        f"rss_after_warmup={memory.rss_warm / 1e6:.0f} MB, "
        f"rss_growth={memory.rss_growth / 1e6:.0f} MB, "
        f"python_heap_growth={memory.heap_growth / 1e6:.1f} MB, "
        f"kinds={len(kinds)}, {time.monotonic() - started:.0f}s, "
        f"rss_per_wave_mb={[round(r / 1e6) for r in memory.rss_series]}"
    )
    assert alive, "a service stopped while hostile messages flowed"
    assert not problems, f"{len(problems)} problems, first: {problems[:10]}"
    assert stored_good == dict.fromkeys(good_docs, 1)
    assert stored_events == good_events
    # Nothing valid was refused later on (by the model or by a row builder).
    assert sink_stage == 0
    assert tally["dead letters"] > 0 and tally["hostile records"] > 0
    assert memory.rss_growth < RSS_GROWTH_BOUND, f"RSS grew {memory.rss_growth / 1e6:.0f} MB"
    assert memory.heap_growth < HEAP_GROWTH_BOUND, f"heap grew {memory.heap_growth / 1e6:.1f} MB"
