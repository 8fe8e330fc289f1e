"""``stream-aimass bench``: three measurements on the same texts, in one run.

- model ceiling: tokenize + forward + heads + entities, same batching and dtype as the
  pipeline;
- pipeline: the full path through the embedded broker and ClickHouse, from a backlog
  (throughput), then steady streams at fractions of that rate (latency: produce ->
  ClickHouse row, p50/p95/p99 at each offered load; half the max is the headline figure);
- naive loop: consume one message, run the same model work in fp32 on it alone, produce its
  enriched record and wait for the ack, insert its row, commit, repeat (and the older
  forward-only loop, which skips the heads, the entity stage and the produce);
- recommendations: user events over the documents just indexed, as a backlog (events/s
  through decode -> profile table -> batched scoring -> produce) and then at half that rate
  (p50/p99 event -> recommendation latency), with the share of the path's time spent
  scoring, producing, and in Kafka/Faust (consume, decode, profile table).

Machines are noisy: the ratios measured in one run are the figures that mean something.
"""

from __future__ import annotations

import asyncio
import functools
import json
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from stream_aimass.enrich.enricher import DocumentEnricher
from stream_aimass.pipeline import Pipeline, Stack, open_clickhouse
from stream_aimass.settings import Settings
from stream_aimass.tools.bench.report import latency, plot, quantiles
from stream_aimass.tools.bench.roles import roles_phase
from stream_aimass.tools.bench.runs import (
    STEADY_TENANT,
    WARMUP_DOCS,
    WARMUP_TENANT,
    naive_run,
    pipeline_run,
    recs_latency,
    retag,
)
from stream_aimass.tools.bench.scenarios import (
    HEADS_DOCS,
    entities_scenario,
    heads_scenario,
    model_ceiling,
    news_articles,
    privacy_scenario,
    summaries_scenario,
    with_personal_data,
)
from stream_aimass.tools.corpus import generate_documents


def run_bench(
    settings: Settings,
    n_documents: int,
    n_naive: int,
    out_dir: Path,
    *,
    console: Console,
    steady_s: float = 10.0,
    heads: list[int] | None = None,
    recs_events: int = 5000,
    loads: list[float] | None = None,
    roles_processes: list[int] | None = None,
    roles_documents: int = 6000,
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aimass-bench-") as tmp:
        settings = settings.model_copy(
            update={"data_dir": Path(tmp), "kafka_bootstrap": "embedded", "clickhouse_dsn": ""}
        )
        docs = generate_documents(n_documents, seed=101)
        warmup = generate_documents(WARMUP_DOCS, seed=102, tenants=(WARMUP_TENANT,))
        with console.status("loading the model"):
            enricher = DocumentEnricher.from_settings(settings)
        texts = [str(d["text"]) for d in docs]
        with console.status("model ceiling: tokenize + forward"):
            model_ceiling(enricher, texts[: min(256, len(texts))], settings)  # warm caches
            standalone_rate = model_ceiling(enricher, texts, settings)
        with console.status("entities: model thread with NER + linking off and on"):
            entity_rates, entity_share = entities_scenario(enricher, texts[:HEADS_DOCS], settings)
        with console.status("privacy: model thread under the PII policy keep and redact"):
            pii_rates, pii_share = privacy_scenario(
                enricher, with_personal_data(texts[:HEADS_DOCS]), settings
            )
        with console.status("summaries: model thread with extractive summaries off and on"):
            summary_rates, summary_share = summaries_scenario(
                enricher, news_articles(min(HEADS_DOCS, len(texts))), settings
            )
        heads_rates: dict[str, float] = {}
        heads_shares: dict[str, float] = {}
        if heads:
            with console.status(f"heads: model thread with {heads} classifier heads"):
                heads_rates, heads_shares = heads_scenario(
                    enricher, texts[:HEADS_DOCS], heads, settings
                )
        stack = Stack.start(settings)
        try:
            client = open_clickhouse(settings)
            pipeline = Pipeline(
                settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client
            )
            recs: dict[str, Any] = {}
            with console.status(
                f"pipeline: {n_documents} documents through Kafka and ClickHouse"
                + (f", then {recs_events} user events" if recs_events else "")
            ):
                batch_sizes: dict[str, float] = {}
                sweep: list[dict[str, Any]] = []
                ceilings: list[float] = []
                forward_free: dict[str, float] = {}
                pipeline_rate, steady_rate = asyncio.run(
                    pipeline_run(
                        settings, stack, pipeline, warmup, docs, steady_s, batch_sizes,
                        recs_events=recs_events, recs=recs, loads=loads, sweep=sweep,
                        ceiling=functools.partial(model_ceiling, enricher, texts, settings),
                        ceilings=ceilings, forward_free=forward_free,
                    )
                )  # fmt: skip
            for point in sweep:
                q50, q95, q99 = quantiles(client, [point.pop("tenant")])
                point.update({"p50_ms": q50, "p95_ms": q95, "p99_ms": q99})
            if recs:
                recs["p50_ms"], recs["p99_ms"] = recs_latency(client, recs.pop("steady_prefix"))
            backlog_tenants = sorted({str(d["tenant"]) for d in docs})
            backlog_p50, backlog_p99 = latency(client, backlog_tenants)
            p50, p95, p99 = quantiles(client, [STEADY_TENANT])
            n_naive = min(n_naive, n_documents)
            with console.status(f"naive loop: {n_naive} documents one by one, fp32"):
                naive_enricher = DocumentEnricher.from_settings(
                    settings.model_copy(update={"dtype": "fp32"})
                )
                naive_rate = asyncio.run(
                    naive_run(
                        settings, stack.bootstrap, client,
                        retag(docs, "bench-naive", n_naive), naive_enricher,
                    )
                )  # fmt: skip
                naive_forward_rate = asyncio.run(
                    naive_run(
                        settings, stack.bootstrap, client,
                        retag(docs, "bench-naive-forward", n_naive),
                    )
                )  # fmt: skip
            with console.status(
                f"naive loop: {n_naive} documents one by one, {enricher.encoder.dtype}"
            ):
                naive_same_rate = asyncio.run(
                    naive_run(
                        settings, stack.bootstrap, client,
                        retag(docs, "bench-naive-same-dtype", n_naive), enricher,
                        topic="aimass.bench-naive-same-dtype",
                    )
                )  # fmt: skip
            roles: dict[str, Any] = {}
            if roles_processes:
                counts = sorted({1, *roles_processes})
                count = roles_documents
                with console.status(
                    f"roles in their own processes: {count} documents through "
                    f"{', '.join(map(str, counts))} forward-free enrich process(es), then a sink"
                ):
                    assert stack.broker is not None
                    roles = roles_phase(
                        settings, stack.broker, retag(docs, "bench-roles", count), counts,
                        Path(tmp) / "roles",
                    )  # fmt: skip
        finally:
            stack.close()
    encoder = enricher.encoder
    model_rate = sum(ceilings) / len(ceilings)
    result: dict[str, Any] = {
        "documents": n_documents,
        "naive_documents": n_naive,
        "texts": "every phase runs the backlog's texts (generated, seed 101), each phase "
        "under its own tenant and ids",
        "model": encoder.name,
        "model_version": encoder.version,
        "device": encoder.device,
        "dtype": encoder.dtype,
        "batch_max_tokens": settings.batch_max_tokens,
        "batch_max_documents": settings.batch_max_documents,
        "model_docs_per_s": round(model_rate, 1),
        "model_docs_per_s_before_after": [round(c, 1) for c in ceilings],
        "model_docs_per_s_standalone": round(standalone_rate, 1),
        "ratio_standalone": round(pipeline_rate / standalone_rate, 3),
        "pipeline_docs_per_s": round(pipeline_rate, 1),
        "naive_docs_per_s": round(naive_rate, 2),
        "naive_forward_only_docs_per_s": round(naive_forward_rate, 2),
        "naive_same_dtype_docs_per_s": round(naive_same_rate, 2),
        "ratio": round(pipeline_rate / model_rate, 3),
        "speedup_vs_naive": round(pipeline_rate / naive_rate, 2),
        "speedup_vs_naive_same_dtype": round(pipeline_rate / naive_same_rate, 2),
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "p99_ms": round(p99, 1),
        "latency_load_docs_per_s": round(steady_rate, 1),
        "load_sweep": sweep,
        "backlog_p50_ms": round(backlog_p50, 1),
        "backlog_p99_ms": round(backlog_p99, 1),
        "batch_adaptive": settings.batch_adaptive,
        "backlog_mean_batch_documents": batch_sizes.get("backlog", 0.0),
        "steady_mean_batch_documents": batch_sizes.get("steady", 0.0),
        "forward_free_docs_per_s": round(forward_free["docs_per_s"], 1),
        "catch_up_s": forward_free.get("catch_up_s"),
    }
    if roles:
        result["roles"] = roles
        runs = roles.get("runs") or []
        if runs:
            one = runs[0]
            result["enrich_cpu_us_per_doc"] = one["enrich_cpu_us_per_doc"]
            result["forward_free_processes_docs_per_s"] = {
                str(r["processes"]): r["docs_per_s"] for r in runs
            }
        if "sink_cpu_us_per_row" in roles:
            result["sink_cpu_us_per_row"] = roles["sink_cpu_us_per_row"]
            result["sink_rows_per_s"] = roles["sink_rows_per_s"]
    if entity_rates:
        result["entities_docs_per_s"] = entity_rates
        result["entities_share_of_model_time"] = entity_share
        result["entities_detector"] = enricher.entities.describe() if enricher.entities else None
    result["pii_docs_per_s"] = pii_rates
    result["pii_share_of_model_time"] = pii_share
    result["pii_texts"] = "the entity scenario's texts, every second with a PII-set line appended"
    result["summary_docs_per_s"] = summary_rates
    result["summary_share_of_model_time"] = summary_share
    result["summary_texts"] = (
        f"the shipped news test set's articles, repeated to {min(HEADS_DOCS, len(texts))}"
    )
    if recs:
        result["recommendations"] = recs
    if heads_rates:
        result["heads_docs_per_s"] = heads_rates
        base = heads_rates.get("0") or next(iter(heads_rates.values()))
        result["heads_relative"] = {k: round(v / base, 3) for k, v in heads_rates.items()}
        result["heads_share_of_model_time"] = heads_shares
    (out_dir / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out_dir / "bench.png")
    return result
