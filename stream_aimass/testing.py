"""Helpers for testing pipelines on the embedded stack (used by the project's own tests).

Start a standalone broker and worker processes, produce and read topics, wait until the
roles have committed everything, and query a data dir from a fresh process (chdb allows
one data path per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition

from stream_aimass.kafka.clients import (
    group_lag,
    make_confluent_producer,
    make_consumer,
    make_producer,
)
from stream_aimass.settings import Settings

# Small batches make a stream of a few hundred documents span many batches, so a kill
# lands in the middle of real work.
# A tiny two-label intent set (text, category): enough for a classifier head to train on.
INTENT_ROWS = [
    ("my card has not arrived", "card"), ("where is my new visa card", "card"),
    ("the atm kept my card", "card"), ("card pin blocked", "card"),
    ("send money abroad", "transfer"), ("wire transfer to iban", "transfer"),
    ("how long does a transfer take", "transfer"), ("transfer failed", "transfer"),
]  # fmt: skip


def write_intent_csv(path: Path) -> Path:
    """:data:`INTENT_ROWS` as a ``text,category`` CSV at ``path``."""
    path.write_text("text,category\n" + "".join(f'"{t}",{c}\n' for t, c in INTENT_ROWS))
    return path


WORKER_ENV = {
    "AIMASS_BATCH_MAX_DOCUMENTS": "16",
    "AIMASS_BATCH_MAX_WAIT_MS": "20",
    "AIMASS_SINK_MAX_WAIT_MS": "100",
    "AIMASS_SINK_BATCH_ROWS": "50",
    "AIMASS_LOG_LEVEL": "info",
}


@dataclass
class BrokerProcess:
    process: subprocess.Popen[str]
    bootstrap: str

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_broker(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> BrokerProcess:
    """A standalone embedded broker in its own process (its address is its first line)."""
    proc = subprocess.Popen(
        cli("broker", "--data-dir", str(data_dir), *args),
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    bootstrap = proc.stdout.readline().strip()
    if not bootstrap:
        proc.kill()
        raise RuntimeError("broker printed no address")
    return BrokerProcess(proc, bootstrap)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports (``worker --processes`` takes port + i)."""
    for _ in range(100):
        first = free_port()
        if first + count > 65536:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream_aimass.cli", *args]


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path
    port: int

    def sigkill(self) -> None:
        self.process.kill()
        self.process.wait(30)

    def sigterm(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_worker(
    role: str,
    bootstrap: str,
    data_dir: Path,
    name: str,
    env: dict[str, str] | None = None,
    *,
    args: Sequence[str] = (),
    port: int | None = None,
) -> WorkerProcess:
    """A worker process of ``role``; ``args`` adds flags (e.g. ``--processes 2``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = data_dir / f"{name}.log"
    env = {**os.environ, **WORKER_ENV, **(env or {})}
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            cli(
                "worker", "--role", role, "--bootstrap", bootstrap,
                "--data-dir", str(data_dir), "--web-port", str(port), *args,
            ),
            stdout=fh, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    return WorkerProcess(proc, log, port)


def wait_ready(worker: WorkerProcess, timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{worker.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/readyz", timeout=2) as r:
                if json.loads(r.read())["ready"]:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"worker not ready after {timeout}s:\n{worker.tail()}")


@contextlib.contextmanager
def ready_worker(
    role: str, bootstrap: str, data_dir: Path, name: str, env: dict[str, str] | None = None,
    timeout: float = 180,
) -> Iterator[WorkerProcess]:  # fmt: skip
    """A worker started and ready; stopped by SIGTERM afterwards (and that must exit 0),
    killed if it is still there."""
    worker = start_worker(role, bootstrap, data_dir, name, env)
    try:
        wait_ready(worker, timeout)
        yield worker
        assert worker.sigterm() == 0, worker.tail()
    finally:
        if worker.process.poll() is None:
            worker.sigkill()


async def produce_async(
    bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None]
) -> None:
    """Produce from inside a running event loop (e.g. next to an in-process pipeline)."""
    producer = make_producer(Settings(), bootstrap)
    await producer.start()
    try:
        for value, key in zip(values, keys, strict=True):
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None]) -> None:
    asyncio.run(produce_async(bootstrap, topic, values, keys))


def produce_documents(
    bootstrap: str, docs: list[dict[str, Any]], bad: Sequence[bytes] = ()
) -> None:
    values = [orjson.dumps(d) for d in docs] + list(bad)
    keys: list[bytes | None] = [f"{d['tenant']}:{d['id']}".encode() for d in docs]
    keys += [None] * len(bad)
    produce(bootstrap, "aimass.documents", values, keys)


def produce_events(bootstrap: str, events: list[dict[str, Any]]) -> None:
    """User events, keyed ``tenant:user_id`` as the recommendation path expects."""
    values = [orjson.dumps(e) for e in events]
    keys: list[bytes | None] = [f"{e['tenant']}:{e['user_id']}".encode() for e in events]
    produce(bootstrap, "aimass.events", values, keys)


KAFKA_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def produce_with_librdkafka(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes | None]],
    *,
    codec: str = "none",
    partition: int | None = None,
    timestamps: Sequence[int] | None = None,
    **conf: Any,
) -> None:
    """Produce ``(key, value)`` pairs with librdkafka (confluent-kafka), as users' own
    producers do: its batching, its ``codec`` and its default partitioner (``conf`` adds
    librdkafka properties). Raises if any message is not acknowledged."""
    producer = make_confluent_producer(
        Settings(), bootstrap, **{"compression.type": codec, "linger.ms": 20, **conf}
    )
    failed: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    for i, (key, value) in enumerate(messages):
        extra: dict[str, Any] = {}
        if partition is not None:
            extra["partition"] = partition
        if timestamps is not None:
            extra["timestamp"] = timestamps[i]
        producer.produce(topic, value, key, on_delivery=report, **extra)
        producer.poll(0)
    left = producer.flush(30)
    if left or failed:
        raise AssertionError(f"librdkafka: {left} messages not flushed, errors {failed[:3]}")


def record_batch(values: Sequence[bytes], codec: str = "lz4", *, corrupt: bool = False) -> bytes:
    """A Kafka record batch (v2) of ``values``, compressed with ``codec``; ``corrupt``: with
    its compressed payload damaged and its CRC made to match (what no consumer can decode,
    and what the broker stores as sent)."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder
    from aiokafka.record.util import calc_crc32c

    codecs = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=codecs[codec], is_transactional=0, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=16 * 1024 * 1024,
    )  # fmt: skip
    now = time.time_ns() // 1_000_000
    for i, value in enumerate(values):
        builder.append(i, timestamp=now, key=None, value=value, headers=[])
    raw = bytearray(builder.build())
    if corrupt:
        header, attributes, crc_at = 61, 21, 17  # record batch v2 layout
        for i in range(header + 4, min(len(raw), header + 36)):
            raw[i] ^= 0x5A
        raw[crc_at : crc_at + 4] = calc_crc32c(raw[attributes:]).to_bytes(4, "big")
    return bytes(raw)


def produce_raw_batch(bootstrap: str, topic: str, partition: int, batch: bytes) -> int:
    """Write a record batch to ``topic``/``partition`` exactly as given (a Produce request
    carrying it); returns its base offset. For tests of batches clients cannot read."""
    from aiokafka.protocol.produce import ProduceRequest

    async def run() -> int:
        producer = make_producer(Settings(), bootstrap)
        await producer.start()
        try:
            client = producer.client
            await client.force_metadata_update()
            node = client.cluster.leader_for_partition(TopicPartition(topic, partition))
            request = ProduceRequest(
                required_acks=-1, timeout=10_000, topics=[(topic, [(partition, batch)])],
                transactional_id=None,
            )  # fmt: skip
            response = await client.send(node, request)
            ((_, partitions),) = response.topics
            _, error, offset, *_ = partitions[0]
            if error:
                raise AssertionError(f"the broker refused the batch: error {error}")
            return int(offset)
        finally:
            await producer.stop()

    return asyncio.run(run())


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[Any]:
    """Every record of ``topic`` from the start (a fresh group), until ``expected`` or timeout."""

    async def run() -> list[Any]:
        consumer = make_consumer(Settings(), bootstrap, f"test-{uuid.uuid4().hex}", topic)
        await consumer.start()
        records: list[Any] = []
        try:
            deadline = time.monotonic() + timeout
            while len(records) < expected and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    records.extend(messages)
            # Anything beyond the expected count would be a duplicate: look a little longer.
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(messages)
        finally:
            await consumer.stop()
        return records

    return asyncio.run(run())


def pipeline_lag(bootstrap: str) -> dict[str, int]:
    """Records not yet committed on their input topics, per group: enrich, sink, and the
    recommendation path's Faust group (which commits every few seconds)."""
    s = Settings()
    sink_topics = [
        s.topic_enriched, s.topic_dlq, s.topic_events, s.topic_item_vectors,
        s.topic_recommendations,
    ]  # fmt: skip
    groups = {
        s.enrich_group: [s.topic_documents],
        s.sink_group: sink_topics,
        s.app_id: [s.topic_events],
    }

    async def lag() -> dict[str, int]:
        return {
            group: sum((await group_lag(s, bootstrap, group, topics)).values())
            for group, topics in groups.items()
        }

    return asyncio.run(lag())


def committed(bootstrap: str, group: str, topic: str) -> int:
    """The sum over ``topic``'s partitions of ``group``'s committed offsets."""
    s = Settings()

    async def run() -> int:
        consumer = make_consumer(s, bootstrap, group)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            partitions = sorted(consumer.partitions_for_topic(topic) or ())
            offsets = [await consumer.committed(TopicPartition(topic, p)) for p in partitions]
            return sum(o or 0 for o in offsets)
        finally:
            await consumer.stop()

    return asyncio.run(run())


def wait_drained(bootstrap: str, timeout: float = 180, *, events: bool = False) -> None:
    """Until both roles have committed everything on their input topics.

    ``events``: the recommendation path's Faust group too.
    """
    faust_group = Settings().app_id

    def total() -> int:
        lag = pipeline_lag(bootstrap)
        return sum(v for group, v in lag.items() if events or group != faust_group)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if total() == 0:
            return
        time.sleep(1)
    raise AssertionError(f"pipeline not drained after {timeout}s (lag {pipeline_lag(bootstrap)})")


def query_data_dir(data_dir: Path, sql: str) -> list[list[Any]]:
    """Run SQL on a data dir no process holds, in a fresh process (chdb: one path each)."""
    code = (
        "import json, sys\n"
        "from stream_aimass.settings import Settings\n"
        "from stream_aimass.clickhouse.client import get_client\n"
        "c = get_client(Settings(data_dir=sys.argv[1]))\n"
        "print(json.dumps([list(r) for r in c.query(sys.argv[2]).result_rows], default=str))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir), sql],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    rows: list[list[Any]] = json.loads(out.stdout.strip().splitlines()[-1])
    return rows


def _copy_minilm_tokenizer(path: Path) -> None:
    """The bundled MiniLM tokenizer's files into ``path`` (created)."""
    import shutil

    from stream_aimass.settings import default_model_dir

    source = default_model_dir()
    path.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (source / name).exists():
            shutil.copy(source / name, path / name)


def make_tiny_encoder(path: Path, *, seed: int = 0, hidden: int = 32, layers: int = 1) -> Path:
    """A small randomly initialised BERT encoder with the bundled MiniLM tokenizer.

    It loads and runs like a real checkpoint in milliseconds: for tests of training code
    and model plumbing, not of model quality.
    """
    import torch
    from transformers import BertConfig, BertModel

    _copy_minilm_tokenizer(path)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
    )
    model = BertModel(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(str(path), safe_serialization=True)
    return path


def make_tiny_generator(path: Path, *, kind: str = "seq2seq", seed: int = 0) -> Path:
    """A small randomly initialised T5 (``seq2seq``) or GPT-2 (``causal``) with the bundled
    MiniLM tokenizer, for tests of the generative stage's mechanics (it writes noise)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    _copy_minilm_tokenizer(path)
    torch.manual_seed(seed)
    # [PAD] 0, [SEP] 102 (the end of a text), [CLS] 101 (T5's decoder start here).
    special: dict[str, Any] = {"pad_token_id": 0, "eos_token_id": 102}
    model: Any
    if kind == "seq2seq":
        config: Any = T5Config(
            vocab_size=30522, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
            **special, decoder_start_token_id=101,
        )  # type: ignore[call-arg]  # fmt: skip
        model = T5ForConditionalGeneration(config)
    else:
        config = GPT2Config(
            vocab_size=30522, n_embd=16, n_layer=1, n_head=2, n_positions=256,
            bos_token_id=101, **special,
        )  # fmt: skip
        model = GPT2LMHeadModel(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(str(path), safe_serialization=True)
    return path


def make_head_model(
    out: Path,
    encoder: Any,
    labels: list[str],
    *,
    seed: int = 0,
    multi_label: bool = False,
    thresholds: dict[str, float] | None = None,
    name: str = "intent",
) -> Path:
    """A published head-mode classifier with random weights, for tests of model plumbing."""
    import numpy as np
    from safetensors.numpy import save_file

    from stream_aimass.models.library import publish, staging_dir

    staging = staging_dir(out)
    rng = np.random.default_rng(seed)
    save_file(
        {
            "weight": rng.normal(size=(len(labels), encoder.dim)).astype(np.float32) * 5,
            "bias": rng.normal(size=len(labels)).astype(np.float32),
        },
        str(staging / "head.safetensors"),
    )
    meta: dict[str, Any] = {
        "name": name,
        "kind": "classifier",
        "mode": "head",
        "labels": labels,
        "multi_label": multi_label,
        "base_encoder": {"name": encoder.name, "version": encoder.version},
    }
    if thresholds:
        meta["thresholds"] = thresholds
    return publish(staging, meta).path
