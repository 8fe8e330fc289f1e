"""Bench phase: the roles in their own processes, as they are deployed.

For each process count N: N forward-free enrich processes (the encoder's forward pass
replaced by stored vectors, everything else real: :mod:`.forward_free_worker`) join one
consumer group on topics of their own; once all hold partitions, a backlog is produced at
once with librdkafka and the clock runs until every document is enriched. Then one sink
process drains what the last run produced, from a backlog, into its own ClickHouse.

Figures, from each process's CPU time (``/proc/<pid>/stat``, Linux) and the wall clock:

- ``docs_per_s`` (all N processes) and ``docs_per_s_per_process``;
- ``enrich_cpu_us_per_doc``: the enrich processes' CPU from the first produce to the last
  enriched record, over the documents;
- ``sink_rows_per_s`` and ``sink_cpu_us_per_row``: rows ClickHouse acknowledged (every
  table: documents, classifications, entity mentions, item rows, dead letters) per second
  of the drain and per CPU µs of the sink process; ``sink_cpu_us_per_document`` too;
  ``sink_input_deleted_by_broker``: records of the backlog the broker had already deleted
  (its retention) when the drain began, 0 unless ``--roles-documents`` is too big for it.

Startup (imports, model load, joins) is excluded: CPU and rows are read when the processes
are ready, and again at the end.

On its own, without the rest of bench: ``python -m stream_aimass.tools.bench.roles
[--documents 6000] [--processes 1] [--rounds 1]`` prints one JSON line per round (the same
generated texts as bench, seed 101, under a tenant of the round), then the sink's drain of
the last round. For A/B runs: the code of another checkout on ``PYTHONPATH`` runs in every
process started.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from stream_aimass.kafka.clients import make_confluent_consumer, make_confluent_producer
from stream_aimass.kafka.embedded import EmbeddedBroker
from stream_aimass.settings import Settings

READY_TIMEOUT_S = 240.0
DRAIN_TIMEOUT_S = 600.0
PARTITIONS = 6
_TOPICS = ("documents", "events", "enriched", "recommendations", "dlq", "items", "item_vectors")


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples in a Prometheus text page whose labels include
    ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class RoleProcess:
    """One worker process of the phase, with its web port."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()

    def readyz(self) -> dict[str, Any]:
        try:
            status, body = self.get("/readyz")
        except (urllib.error.URLError, OSError):
            return {"ready": False}
        return dict(json.loads(body)) if status in (200, 503) else {"ready": False}

    def metric(self, name: str, **labels: str) -> float:
        return metric_sum(self.get("/metrics")[1], name, **labels)

    def cpu_s(self) -> float:
        return proc_cpu_s(self.process.pid)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"bench worker exited ({self.process.returncode}):\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def phase_env(settings: Settings, prefix: str, data_dir: Path) -> dict[str, str]:
    """Settings of one run's processes: its own topics and groups, recommendations off
    (the documents path only), the bench's batching and dtype."""
    env = {f"AIMASS_TOPIC_{t.upper()}": f"{prefix}.{t}" for t in _TOPICS}
    env.update(
        {
            "AIMASS_ENRICH_GROUP": f"{prefix}-enrich",
            "AIMASS_SINK_GROUP": f"{prefix}-sink",
            "AIMASS_RECS_ENABLED": "false",
            "AIMASS_API_AUTH_ENABLED": "false",
            "AIMASS_DATA_DIR": str(data_dir),
            "AIMASS_CLICKHOUSE_DSN": "",
            "AIMASS_DEVICE": settings.device,
            "AIMASS_DTYPE": settings.dtype,
            "AIMASS_BATCH_MAX_TOKENS": str(settings.batch_max_tokens),
            "AIMASS_BATCH_MAX_DOCUMENTS": str(settings.batch_max_documents),
            "AIMASS_LOG_LEVEL": "warning",
        }
    )
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(argv: list[str], env: dict[str, str], log: Path) -> RoleProcess:
    port = _free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "AIMASS_WEB_PORT": str(port)},
        )
    return RoleProcess(proc, port, log)


def _wait(what: str, done: Any, procs: Sequence[RoleProcess], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        for p in procs:
            p.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench roles phase: {what} after {timeout_s:.0f} s")
        time.sleep(0.05)


class TopicEnds:
    """The summed end offsets of topics, read by this process (the bench's), so that
    watching for the end of a run costs the measured processes nothing."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        group: str = "bench-ends",
        partitions: int = PARTITIONS,
    ) -> None:
        from confluent_kafka import TopicPartition

        # Never subscribes: it joins no group, it only reads offsets (``group``'s too).
        self._consumer = make_confluent_consumer(Settings(), bootstrap, group)
        self._tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]

    def total(self) -> int:
        return sum(self._consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in self._tps)

    def deleted(self) -> int:
        """Records the broker no longer holds (its retention: the embedded broker keeps about
        5 MiB per partition)."""
        return sum(self._consumer.get_watermark_offsets(tp, timeout=10)[0] for tp in self._tps)

    def committed(self) -> int:
        """The summed offsets ``group`` has committed on the topics."""
        return sum(max(0, tp.offset) for tp in self._consumer.committed(self._tps, timeout=10))

    def close(self) -> None:
        self._consumer.close()


def _produce(bootstrap: str, topic: str, docs: Sequence[dict[str, Any]]) -> None:
    producer = make_confluent_producer(Settings(), bootstrap, **{"linger.ms": 5})
    for doc in docs:
        key = f"{doc['tenant']}:{doc['id']}".encode()
        while True:
            try:
                producer.produce(topic, orjson.dumps(doc), key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("bench roles phase: documents not acknowledged")


ENRICH_STAGES = ("decode", "tokenize", "queue", "model", "produce", "commit")


def stage_seconds(procs: Sequence[RoleProcess]) -> dict[str, float]:
    """Seconds each enrich stage has taken so far, summed over ``procs`` (their /metrics)."""
    pages = [p.get("/metrics")[1] for p in procs]
    return {
        stage: sum(
            metric_sum(page, "aimass_stage_seconds_sum", role="enrich", stage=stage)
            for page in pages
        )
        for stage in ENRICH_STAGES
    }


def enrich_run(
    settings: Settings,
    broker: EmbeddedBroker,
    docs: Sequence[dict[str, Any]],
    processes: int,
    work_dir: Path,
    *,
    forward_free: bool = True,
    partitions: int = PARTITIONS,
    on_window: Callable[[float, float], None] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """N enrich processes over ``docs`` (forward-free, or ``forward_free=False``: the
    ordinary worker with its real forward pass on ``settings.device``); the figures and the
    run's env. ``stage_seconds``: each stage's time over the run, summed over the processes
    (``queue``: documents waiting for the model thread). ``on_window`` gets the measured
    window's ``time.monotonic()`` start and end."""
    prefix = f"bench-roles-{processes}" + ("" if forward_free else "-forward")
    env = phase_env(settings, prefix, work_dir / prefix)
    broker.create_topics((env[f"AIMASS_TOPIC_{t.upper()}"], partitions) for t in _TOPICS)
    argv = [sys.executable, "-m", "stream_aimass.tools.bench.forward_free_worker"]
    if not forward_free:
        argv = [sys.executable, "-m", "stream_aimass.cli", "worker", "--role", "enrich"]
    threads = max(1, (os.cpu_count() or 1) // processes) if settings.device != "cuda" else 0
    extra = {"AIMASS_KAFKA_BOOTSTRAP": broker.bootstrap}
    if threads:
        extra["AIMASS_TORCH_THREADS"] = str(threads)
    procs = [
        _start(
            argv,
            {**env, **extra, "AIMASS_FAUST_DIR": str(work_dir / prefix / f"faust-{i}")},
            work_dir / prefix / f"enrich-{i}.log",
        )
        for i in range(processes)
    ]
    try:

        def joined() -> bool:
            held = [int(p.readyz().get("assigned", {}).get("enrich", 0)) for p in procs]
            return sum(held) == partitions and min(held) > 0

        _wait(f"{processes} enrich processes not holding every partition", joined, procs,
              READY_TIMEOUT_S)  # fmt: skip
        # Each document ends as one enriched record or one dead letter.
        outputs = [env["AIMASS_TOPIC_ENRICHED"], env["AIMASS_TOPIC_DLQ"]]
        ends = TopicEnds(broker.bootstrap, outputs, partitions=partitions)
        try:
            stages0 = stage_seconds(procs)
            cpu0 = [p.cpu_s() for p in procs]
            started = time.perf_counter()
            _produce(broker.bootstrap, env["AIMASS_TOPIC_DOCUMENTS"], docs)
            _wait("documents not enriched", lambda: ends.total() >= len(docs), procs,
                  DRAIN_TIMEOUT_S)  # fmt: skip
            wall = time.perf_counter() - started
            cpu = sum(p.cpu_s() - c for p, c in zip(procs, cpu0, strict=True))
            stages = {k: round(v - stages0[k], 3) for k, v in stage_seconds(procs).items()}
            if on_window is not None:
                on_window(time.monotonic() - wall, time.monotonic())
        finally:
            ends.close()
    finally:
        for p in procs:
            p.stop()
    rate = len(docs) / wall
    return {
        "processes": processes,
        "documents": len(docs),
        "docs_per_s": round(rate, 1),
        "docs_per_s_per_process": round(rate / processes, 1),
        "enrich_cpu_us_per_doc": round(1e6 * cpu / len(docs), 1),
        "forward_free": forward_free,
        "wall_s": round(wall, 3),
        "stage_seconds": stages,
    }, env


def sink_run(
    broker: EmbeddedBroker, env: dict[str, str], docs: int, work_dir: Path
) -> dict[str, Any]:
    """One sink process draining a run's backlog (enriched records, item vectors)."""
    argv = [sys.executable, "-m", "stream_aimass.cli", "worker", "--role", "sink",
            "--bootstrap", broker.bootstrap]  # fmt: skip
    data = work_dir / "sink"
    sink = _start(argv, {**env, "AIMASS_DATA_DIR": str(data)}, data / "sink.log")
    try:

        def rows() -> float:
            return sink.metric("aimass_rows_inserted_total")

        # Ready means connected and assigned; CPU and rows from then on. The sink commits
        # an offset once ClickHouse has acknowledged the rows before it: drained when its
        # commits reach the ends of its input topics (read here, not from its /metrics).
        _wait("sink not ready", lambda: bool(sink.readyz().get("ready")), [sink], READY_TIMEOUT_S)
        inputs = [env[f"AIMASS_TOPIC_{t.upper()}"] for t in ("enriched", "dlq", "item_vectors")]
        offsets = TopicEnds(broker.bootstrap, inputs, group=env["AIMASS_SINK_GROUP"])
        try:
            rows0 = rows()
            cpu0, started = sink.cpu_s(), time.perf_counter()
            target = offsets.total()
            # A backlog over the broker's retention would be drained only in part: say so.
            deleted = offsets.deleted()
            _wait("sink not drained", lambda: offsets.committed() >= target, [sink],
                  DRAIN_TIMEOUT_S)  # fmt: skip
            wall = time.perf_counter() - started
            cpu = sink.cpu_s() - cpu0
        finally:
            offsets.close()
        stored = rows() - rows0
    finally:
        sink.stop()
    return {
        "sink_rows": int(stored),
        "sink_rows_per_s": round(stored / wall, 1),
        "sink_cpu_us_per_row": round(1e6 * cpu / max(1.0, stored), 1),
        "sink_cpu_us_per_document": round(1e6 * cpu / docs, 1),
        "sink_rows_before_ready": int(rows0),
        "sink_input_deleted_by_broker": deleted,
    }


def roles_phase(
    settings: Settings,
    broker: EmbeddedBroker,
    docs: Sequence[dict[str, Any]],
    process_counts: Sequence[int],
    work_dir: Path,
) -> dict[str, Any]:
    """Every process count's enrich run, then the sink drain of the last one."""
    if not Path("/proc/self/stat").exists():
        return {"skipped": "process CPU times need Linux /proc"}
    runs = []
    env: dict[str, str] = {}
    for n in process_counts:
        run, env = enrich_run(settings, broker, docs, n, work_dir)
        runs.append(run)
    result: dict[str, Any] = {"runs": runs}
    result.update(sink_run(broker, env, len(docs), work_dir))
    return result


def main() -> None:
    import argparse
    import tempfile

    from stream_aimass.tools.bench.runs import retag
    from stream_aimass.tools.corpus import generate_documents

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=6000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    settings = Settings()
    docs = generate_documents(args.documents, seed=101)
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            # A broker per round: a run's topics and groups are named by its process count.
            broker = EmbeddedBroker()
            tagged = retag(docs, f"bench-roles-{round_}", args.documents)
            work = Path(tmp) / f"round-{round_}"
            run, env = enrich_run(settings, broker, tagged, args.processes, work)
            print(json.dumps({"round": round_, **run}), flush=True)
            if round_ == args.rounds - 1:
                print(json.dumps(sink_run(broker, env, args.documents, work)), flush=True)
            broker.close()


if __name__ == "__main__":
    main()
