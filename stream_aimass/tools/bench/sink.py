"""The sink role's loop without Kafka: how fast it turns enriched records into ClickHouse rows.

``python -m stream_aimass.tools.bench.sink [--documents N] [--copies K] [--json]`` builds N
enriched records (:func:`~.stages.enriched_records`), spreads K copies of them over six
partitions of a replay consumer (a fetch gives up to 370 records per partition, what 1 MiB
of a real fetch holds) and runs the real :meth:`SinkService.run` loop over them into a
fresh embedded ClickHouse (chdb), with every table and materialized view. Figures: rows/s
over the wall clock, and CPU microseconds per row (``time.process_time``: every thread of
this process, chdb's inserts and merges too), and the number of inserts. What a real
consumer adds (fetching and parsing, the broker) is not in them: bench's roles phase has
the whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import TopicPartition

from stream_aimass.pipeline import open_clickhouse
from stream_aimass.settings import Settings
from stream_aimass.sink.service import SinkService
from stream_aimass.tools.bench.stages import Message, enriched_records

PARTITIONS = 6
PER_FETCH = 370  # records of ~2.8 KB in one 1 MiB partition fetch


class ReplayConsumer:
    """Hands out pre-built messages like a consumer's fetches; asks the sink to stop once
    everything was handed out. Commits are kept, nothing else happens."""

    def __init__(self, logs: dict[TopicPartition, list[Message]], stop: Any) -> None:
        self.logs, self._stop = logs, stop
        self.position_of = dict.fromkeys(logs, 0)
        self.commits: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.logs[tp])

    async def committed(self, tp: TopicPartition) -> int | None:
        return None

    async def position(self, tp: TopicPartition) -> int:
        return self.position_of[tp]

    def pause(self, *tps: TopicPartition) -> None:
        return None

    def resume(self, *tps: TopicPartition) -> None:
        return None

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[Any, Any]:
        await asyncio.sleep(0)
        out, left = {}, max_records
        for tp, log in self.logs.items():
            at = self.position_of[tp]
            take = min(left, PER_FETCH, len(log) - at)
            if take > 0:
                out[tp] = log[at : at + take]
                self.position_of[tp] += take
                left -= take
        if not out:
            self._stop()
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.update(offsets)


def measure(documents: int = 2048, copies: int = 4) -> dict[str, float]:
    """Drain ``copies`` × ``documents`` enriched records through the sink loop."""
    records = enriched_records(documents)
    with tempfile.TemporaryDirectory(prefix="aimass-sink-bench-") as tmp:
        return drain(records * copies, Settings(data_dir=tmp))


def drain(records: Sequence[bytes], settings: Settings) -> dict[str, float]:
    tps = [TopicPartition(settings.topic_enriched, p) for p in range(PARTITIONS)]
    logs: dict[TopicPartition, list[Message]] = {tp: [] for tp in tps}
    for i, value in enumerate(records):
        log = logs[tps[i % PARTITIONS]]
        log.append(Message(value, len(log), 1_767_225_600_000 + i))
    sink = SinkService(settings, "replay", open_clickhouse(settings))
    replay = ReplayConsumer(logs, sink.stop)
    sink._new_consumer = lambda: replay  # type: ignore[method-assign]
    sink._subscribe = lambda consumer: None  # type: ignore[method-assign]

    cpu0, wall0 = time.process_time(), time.perf_counter()
    asyncio.run(sink.run())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    rows = sum(sink.stored(t) for t in ("documents", "classifications", "entity_mentions"))
    inserts = sink.metrics.value("aimass_stage_seconds_count", role="sink", stage="insert")
    committed = sum(replay.commits.values())
    return {
        "documents": len(records),
        "committed": committed,
        "rows": rows,
        "inserts": inserts,
        "rows_per_s": round(rows / wall, 1),
        "cpu_us_per_row": round(1e6 * cpu / max(1, rows), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2048)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args.documents, args.copies)
    if args.json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name:16s} {value:12,.1f}")


if __name__ == "__main__":
    main()
