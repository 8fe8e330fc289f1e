"""Bench for a machine with an accelerator but no ClickHouse: what the device can do and how
much of it the enrich role uses.

``python -m stream_aimass.tools.bench.device [--processes 1,4,8] [--documents 40000]
[--forward real,free] [--out DIR]`` runs, on ``AIMASS_DEVICE`` (``cuda`` where torch sees
one), over the bench's generated texts (seed 101, the same texts in every phase):

1. ``encoder``: the forward pass alone (ids tokenized beforehand, token states returned as
   the entity stage needs them, results copied back to the host) at several batch budgets:
   the device's ceiling for this model. Then ``model_docs_per_s_standalone``: tokenize +
   forward + heads + entities in one thread, as bench's model ceiling.
2. ``runs``: for each process count N, N ordinary ``worker --role enrich`` processes
   (``real``: their forward pass on the device; ``free``: forward-free, the Python side
   alone) share the device and an embedded broker; a backlog is produced at once and the
   clock runs until every document is enriched (Kafka in, enriched records and item vectors
   out). Each run says its docs/s, CPU µs per document, ``cpu_cores_busy`` (the processes'
   CPU seconds per second of the run), where their time went (``stage_share``: each busy
   stage's seconds over N × wall; ``stage_seconds`` also has ``queue``, documents waiting
   for the model thread), and the GPU's utilisation over the run (``nvidia-smi``, sampled
   every 200 ms; absent without it).

The roles' batch budget is the best of the encoder sweep's. The sink is left out: its
ClickHouse work runs on the CPU wherever it is deployed (bench's roles phase measures it).
Prints one JSON line per figure and writes ``device.json`` and ``device.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from stream_aimass.batching import TokenBudgetBatcher
from stream_aimass.models.encoder import Encoder
from stream_aimass.settings import Settings

BUDGETS = ((4096, 128), (16384, 512), (32768, 1024))  # (tokens, documents) per batch


class GpuSampler:
    """``nvidia-smi``'s utilisation and memory every 200 ms, on a thread, until closed."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []  # (monotonic s, util %, MiB)
        self._proc: subprocess.Popen[str] | None = None
        if shutil.which("nvidia-smi") is None:
            return
        self._proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
             "--format=csv,noheader,nounits", "-lms", "200"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            try:
                self.samples.append((time.monotonic(), float(parts[0]), float(parts[1])))
            except (IndexError, ValueError):
                continue

    def window(self, start: float, end: float) -> dict[str, float] | None:
        """Mean and peak utilisation, peak memory, between two ``time.monotonic()`` reads."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if not inside:
            return None
        util = [s[1] for s in inside]
        return {
            "gpu_util_mean_pct": round(sum(util) / len(util), 1),
            "gpu_util_peak_pct": max(util),
            "gpu_memory_peak_mib": max(s[2] for s in inside),
            "gpu_samples": len(inside),
        }

    def close(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)


def encoder_ceiling(
    encoder: Encoder, ids: list[list[int]], max_tokens: int, max_docs: int
) -> float:
    """Docs/s of the forward pass alone over ``ids`` in the pipeline's batching."""
    batcher: TokenBudgetBatcher[int] = TokenBudgetBatcher(max_tokens, max_docs, 0.0)
    for row, seq in enumerate(ids):
        batcher.add(row, len(seq))
    batches = [[ids[r] for r in batch.items] for batch in batcher.flush()]
    started = time.perf_counter()
    for batch in batches:
        encoder.encode_ids(batch, token_states=True)  # returns host arrays: synchronised
    return len(ids) / (time.perf_counter() - started)


def device_info() -> dict[str, Any]:
    import os

    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def ceilings(settings: Settings, texts: list[str], emit: Any) -> tuple[int, int]:
    """The encoder sweep and the model ceiling; returns the best batch budget."""
    import torch

    from stream_aimass.enrich.enricher import DocumentEnricher
    from stream_aimass.tools.bench.scenarios import model_ceiling

    enricher = DocumentEnricher.from_settings(settings)
    encoder = enricher.encoder
    ids = encoder.tokenize(texts)
    tokens = sum(map(len, ids))
    encoder_ceiling(encoder, ids[:2048], *BUDGETS[-1])  # warm-up: kernels, allocator
    rates: dict[tuple[int, int], float] = {}
    for budget in BUDGETS:
        rate = encoder_ceiling(encoder, ids, *budget)
        rates[budget] = rate
        emit("encoder", {
            "batch_max_tokens": budget[0], "batch_max_documents": budget[1],
            "docs_per_s": round(rate, 1), "tokens_per_s": round(rate * tokens / len(ids)),
            "device": encoder.device, "dtype": encoder.dtype, "documents": len(ids),
        })  # fmt: skip
    best = max(rates, key=lambda b: rates[b])
    tuned = settings.model_copy(
        update={"batch_max_tokens": best[0], "batch_max_documents": best[1]}
    )
    model_ceiling(enricher, texts[:512], tuned)
    emit("model_docs_per_s_standalone", {
        "docs_per_s": round(model_ceiling(enricher, texts, tuned), 1),
        "batch_max_tokens": best[0], "batch_max_documents": best[1],
        "includes": "tokenize + forward + topic head + entities, one thread",
    })  # fmt: skip
    del enricher, encoder
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return best


def role_runs(
    settings: Settings,
    docs: list[dict[str, Any]],
    counts: list[int],
    mode: str,
    work: Path,
    emit: Any,
) -> None:
    """One enrich run per process count, ``mode`` ``real`` or ``free``, a broker each."""
    from stream_aimass.kafka.embedded import EmbeddedBroker
    from stream_aimass.tools.bench.roles import PARTITIONS, enrich_run
    from stream_aimass.tools.bench.runs import retag

    gpu = GpuSampler()
    try:
        for n in counts:
            broker = EmbeddedBroker()
            measured: list[float] = []
            try:
                tagged = retag(docs, f"bench-device-{mode}-{n}", len(docs))
                run, _ = enrich_run(
                    settings, broker, tagged, n, work / f"{mode}-{n}",
                    forward_free=mode == "free", partitions=max(PARTITIONS, 2 * n),
                    on_window=lambda t0, t1: measured.extend((t0, t1)),  # noqa: B023 (called here)
                )  # fmt: skip
            finally:
                broker.close()
            # Of the processes' wall time (N x wall), the share each busy stage took; queue
            # is waiting, not work, and stays in stage_seconds only.
            busy = n * run["wall_s"]
            run["stage_share"] = {
                k: round(v / busy, 3) for k, v in run["stage_seconds"].items() if k != "queue"
            }
            cpu_s = run["enrich_cpu_us_per_doc"] * run["documents"] / 1e6
            run["cpu_cores_busy"] = round(cpu_s / run["wall_s"], 2)
            window = gpu.window(*measured) if measured else None
            if window:
                run.update(window)
            emit(f"enrich_{mode}", run)
    finally:
        gpu.close()


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key, label in (("enrich_real", "enrich, real forward"), ("enrich_free", "forward-free")):
        runs = result.get(key) or []
        if runs:
            ax.plot([r["processes"] for r in runs], [r["docs_per_s"] for r in runs], "o-",
                    label=label)  # fmt: skip
    best = max((e["docs_per_s"] for e in result.get("encoder", [])), default=0)
    if best:
        ax.axhline(best, ls="--", c="grey", label=f"forward pass alone ({best:,.0f}/s)")
    ax.set_xlabel("enrich processes sharing the device")
    ax.set_ylabel("documents / s")
    ax.set_title(f"{result['info'].get('gpu', 'CPU')}: enrich role, end to end through Kafka")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    from stream_aimass.observability import configure_logging
    from stream_aimass.settings import load_settings
    from stream_aimass.tools.corpus import generate_documents

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=40000)
    parser.add_argument("--processes", default="1,4,8", help="comma-separated counts")
    parser.add_argument("--forward", default="real,free", help="real, free or both")
    parser.add_argument("--free-processes", help="counts of the free runs (default: --processes)")
    parser.add_argument("--out", type=Path, default=Path("device-bench"))
    args = parser.parse_args()
    settings = load_settings()
    configure_logging("warning")
    counts = [int(x) for x in args.processes.split(",") if x.strip()]
    free_counts = [int(x) for x in (args.free_processes or args.processes).split(",") if x]
    modes = [m.strip() for m in args.forward.split(",") if m.strip()]
    if any(m not in ("real", "free") for m in modes):
        parser.error(f"--forward takes real and/or free, not {args.forward!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"info": device_info()}

    def emit(key: str, figure: dict[str, Any]) -> None:
        print(json.dumps({key: figure}), flush=True)
        if key == "model_docs_per_s_standalone":
            result[key] = figure
        else:
            result.setdefault(key, []).append(figure)

    print(json.dumps({"info": result["info"]}), flush=True)
    docs = generate_documents(args.documents, seed=101)
    best = ceilings(settings, [str(d["text"]) for d in docs], emit)
    tuned = settings.model_copy(
        update={"batch_max_tokens": best[0], "batch_max_documents": best[1]}
    )
    with tempfile.TemporaryDirectory(prefix="aimass-device-") as tmp:
        for mode in modes:
            runs = counts if mode == "real" else free_counts
            role_runs(tuned, docs, runs, mode, Path(tmp), emit)
    (args.out / "device.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "device.png")


if __name__ == "__main__":
    main()
