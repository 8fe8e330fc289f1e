"""CPU per message of the two Kafka clients, producer and consumer, in every codec.

``python -m stream_aimass.tools.bench.clients [--messages N] [--rounds R] [--json]``: aiokafka
and confluent-kafka (librdkafka) each produce N messages of the size of an enriched record
(about 2.8 KB) in batches of 2,000 and wait for the acknowledgements, then consume them
(batches of up to 2,000), against a standalone embedded broker in its own process (its CPU
is not counted). CPU is ``time.process_time`` of this process: librdkafka's background
threads count. Every figure is the range over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict

from stream_aimass.kafka.clients import (
    make_confluent_consumer,
    make_confluent_producer,
    make_consumer,
    make_producer,
)
from stream_aimass.settings import Settings

BATCH = 2000
CODECS = ("none", "lz4", "zstd")
# About an enriched record: a text-like value, not compressible to nothing.
VALUE = os.urandom(700).hex().encode() + b'{"text": "' + b"lorem ipsum dolor " * 70 + b'"}'


async def _aiokafka_produce(settings: Settings, addr: str, topic: str, n: int) -> float:
    producer = make_producer(settings, addr)
    await producer.start()
    start = time.process_time()
    for first in range(0, n, BATCH):
        sent = [
            await producer.send(topic, VALUE, key=b"acme:%d" % i)
            for i in range(first, min(n, first + BATCH))
        ]
        await asyncio.gather(*sent)
    cpu = time.process_time() - start
    await producer.stop()
    return 1e6 * cpu / n


def _confluent_produce(settings: Settings, addr: str, topic: str, n: int) -> float:
    producer = make_confluent_producer(
        settings, addr, **{"compression.type": settings.compression_type, "linger.ms": 5}
    )
    start = time.process_time()
    for first in range(0, n, BATCH):
        for i in range(first, min(n, first + BATCH)):
            while True:
                try:
                    producer.produce(topic, VALUE, b"acme:%d" % i)
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush()
    return 1e6 * (time.process_time() - start) / n


async def _aiokafka_consume(settings: Settings, addr: str, topic: str, n: int) -> float:
    start = time.process_time()
    consumer = make_consumer(settings, addr, uuid.uuid4().hex, topic)
    await consumer.start()
    got = 0
    while got < n:
        batch = await consumer.getmany(timeout_ms=500, max_records=BATCH)
        got += sum(len([m.value for m in msgs]) for msgs in batch.values())
    cpu = time.process_time() - start
    await consumer.stop()
    return 1e6 * cpu / n


def _confluent_consume(settings: Settings, addr: str, topic: str, n: int) -> float:
    start = time.process_time()
    consumer = make_confluent_consumer(settings, addr, uuid.uuid4().hex)
    consumer.subscribe([topic])
    got = 0
    while got < n:
        got += len([m.value() for m in consumer.consume(num_messages=BATCH, timeout=0.5)])
    cpu = time.process_time() - start
    consumer.close()
    return 1e6 * cpu / n


def measure(messages: int = 5000, rounds: int = 2) -> dict[str, list[float]]:
    """``{"produce aiokafka lz4": [us per message, one per round], ...}``."""
    broker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stream_aimass.cli",
            "broker",
            "--data-dir",
            f"/tmp/aimass-clients-{uuid.uuid4().hex[:8]}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert broker.stdout is not None
    addr = broker.stdout.readline().strip()
    out: dict[str, list[float]] = defaultdict(list)
    try:
        for _ in range(rounds):
            for codec in CODECS:
                s = Settings(compression_type=codec)
                a, c = f"aio-{codec}-{uuid.uuid4().hex[:6]}", f"ck-{codec}-{uuid.uuid4().hex[:6]}"
                out[f"produce aiokafka {codec}"].append(
                    asyncio.run(_aiokafka_produce(s, addr, a, messages))
                )
                out[f"produce confluent {codec}"].append(_confluent_produce(s, addr, c, messages))
                # Each client reads the other's batches: both read what a real producer wrote.
                out[f"consume aiokafka {codec}"].append(
                    asyncio.run(_aiokafka_consume(s, addr, c, messages))
                )
                out[f"consume confluent {codec}"].append(_confluent_consume(s, addr, a, messages))
    finally:
        broker.terminate()
        broker.wait(10)
    return {k: [round(x, 1) for x in v] for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The embedded broker keeps about 5 MiB per partition: 5,000 messages of 2.8 KB fit.
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args.messages, args.rounds)
    if args.json:
        print(json.dumps(figures))
        return
    for name, values in figures.items():
        print(f"{name:28s} {min(values):6.1f}-{max(values):6.1f} us CPU/msg")


if __name__ == "__main__":
    main()
