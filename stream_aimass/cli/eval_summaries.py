"""``eval summaries``: extractive (and generated) summaries against reference summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stream_aimass.cli.eval import eval_app
from stream_aimass.cli.support import (
    DataDir,
    EncoderDir,
    JsonFlag,
    ProgressReporter,
    fail,
    out,
    progress_bar,
    settings_or_exit,
)

SHIPPED = Path(__file__).parents[1] / "resources" / "summaries" / "news-test.jsonl"


@eval_app.command("summaries")
def eval_summaries(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="JSONL: {id, text, summary[, genre]} per line; default: "
            "the shipped news test set.",
        ),
    ] = SHIPPED,
    sentences: Annotated[
        int | None,
        typer.Option("--sentences", min=1, help="Summary sentences (default: summary_sentences)."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG of ROUGE (default under reports/).")
    ] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    model_dir: EncoderDir = None,
) -> None:
    """ROUGE-1/2/L of the extractive summaries, the lead baseline beside them, and the
    generated ones when summary_model is set; a PNG."""
    from stream_aimass.enrich.enricher import DocumentEnricher
    from stream_aimass.evaluation.summaries import (
        SummaryDataError,
        extractive_summaries,
        read_articles,
        rouge_png,
        summaries_report,
    )
    from stream_aimass.models.encoder import ModelLoadError
    from stream_aimass.summaries.extractive import lead

    settings = settings_or_exit(data_dir=data_dir, model_dir=model_dir)
    k = sentences or settings.summary_sentences
    if not k:
        raise fail("summary_sentences is 0 (summaries off): pass --sentences N")
    # Only the summary matters here: no entity stage, no PII policy, no extra classifiers.
    settings = settings.model_copy(
        update={
            "summary_sentences": k,
            "entities_enabled": False,
            "labels": {},
            "classifiers": {},
            "pii_policy": "keep",
        }
    )
    try:
        articles = read_articles(data)
    except SummaryDataError as exc:
        raise fail(str(exc)) from None
    texts = [a.text for a in articles]
    systems: dict[str, list[str]] = {}
    generator: Any = None
    with progress_bar() as progress:
        reporter = ProgressReporter(progress)
        try:
            enricher = DocumentEnricher.from_settings(settings)
        except ModelLoadError as exc:
            raise fail(str(exc)) from None
        reporter.start("extractive", len(texts))
        found, times = extractive_summaries(enricher, texts, on_batch=reporter.advance)
        systems["extractive"] = [s["text"] for s in found]
        systems[f"lead{k}"] = [lead(t, k) for t in texts]
        if settings.summary_model:
            from stream_aimass.summaries.generative import Generator

            try:
                generator = Generator.from_settings(settings)
            except ModelLoadError as exc:
                raise fail(str(exc)) from None
            reporter.start("generated", len(texts))
            written: list[str] = []
            for first in range(0, len(texts), settings.summary_batch_size):
                part = texts[first : first + settings.summary_batch_size]
                written.extend(w.summary for w in generator.generate(part))
                reporter.advance(len(part))
            systems["generated"] = written
    report = summaries_report(articles, systems, baseline=f"lead{k}")
    report["sentences"] = k
    report["data"] = str(data)
    report["encoder"] = enricher.encoder.describe()
    report["summarizer"] = enricher.summarizer.describe() if enricher.summarizer else None
    model_ms = sum(times.values())
    report["timings_ms_per_document"] = {s: round(ms / len(texts), 4) for s, ms in times.items()}
    report["summary_share_of_model_time"] = round(times.get("summary", 0.0) / model_ms, 4)
    report["passthrough"] = sum(1 for s in found if s["passthrough"])
    if generator is not None:
        report["generator"] = generator.describe()
    png = plot or settings.data_dir / "reports" / f"{data.stem}-summaries-rouge.png"
    rouge_png(report, png, f"Summaries on {data.name} ({len(articles)} articles)")
    report["plot"] = str(png)
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = Table("system", "ROUGE-1", "ROUGE-2", "ROUGE-L", "words",
                  title=f"{data.name}: {len(articles)} articles, F-measure")  # fmt: skip
    for name, entry in report["systems"].items():
        table.add_row(name, *(f"{entry[m]:.4f}" for m in ("rouge1", "rouge2", "rougeL")),
                      f"{entry['words']:.0f}")  # fmt: skip
    out.print(table)
    share = report["summary_share_of_model_time"]
    out.print(f"summary step: {share:.1%} of the model step's time; plot: {png}")
