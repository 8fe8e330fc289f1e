"""``eval pii``: the PII stage on a labelled set, through the enrich role's own model step."""

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
    console,
    fail,
    out,
    settings_or_exit,
)

BATCH = 32


def run_detect(
    enricher: Any, texts: list[str]
) -> tuple[list[list[tuple[int, int, str]]], dict[str, float]]:
    """Every text through ``enricher.run`` (its policy: ``detect``): the text findings per
    text, and the summed stage times (ms) of the batches."""
    from stream_aimass.enrich.enricher import pending_texts

    found: list[list[tuple[int, int, str]]] = []
    times: dict[str, float] = {}
    for first in range(0, len(texts), BATCH):
        part = texts[first : first + BATCH]
        items = pending_texts(enricher, part, first=first)
        for result in enricher.run(items, 0.0, item_vectors=False):
            record = json.loads(result.record)
            for stage in ("forward", "heads", "entities", "pii"):
                times[stage] = times.get(stage, 0.0) + record["timings_ms"][stage] / len(part)
            findings = record["pii_findings"]
            found.append(
                [(f["start"], f["end"], f["type"]) for f in findings if f["field"] == "text"]
            )
    return found, times


@eval_app.command("pii")
def eval_pii(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Labelled set: lines with [[TYPE|value]] marks, or JSONL with text and spans "
            "(default: the set shipped in resources/privacy/pii-eval.txt).",
        ),
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG path.")] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    model_dir: EncoderDir = None,
) -> None:
    """Precision, recall and F1 per type of personal data, and the stage's share of model
    time. Runs the enrich role's model step (encoder, heads, entity stage, PII stage under the
    policy ``detect``) on every example, with the entity settings in force."""
    from stream_aimass.enrich.enricher import DocumentEnricher
    from stream_aimass.evaluation.pii import (
        PiiSetError,
        pii_png,
        read_pii_set,
        score,
        shipped_set,
    )
    from stream_aimass.privacy.policy import PolicySource
    from stream_aimass.privacy.stage import PiiStage

    path = data or shipped_set()
    settings = settings_or_exit(data_dir=data_dir, model_dir=model_dir)
    try:
        examples = read_pii_set(path)
    except PiiSetError as exc:
        raise fail(str(exc)) from None
    with console.status(f"loading the models, then finding personal data in {path.name}"):
        enricher = DocumentEnricher.from_settings(settings)
        # Everything looked for and reported, whatever policy the data dir has.
        enricher.privacy = PiiStage(PolicySource("detect", None, 0), None, settings.pii_region)
        predicted, times = run_detect(enricher, [e.text for e in examples])
    report = score(examples, predicted)
    model_ms = times["forward"] + times["heads"] + times["entities"]
    report["stage_ms"] = {k: round(v / len(examples), 4) for k, v in times.items()}
    report["pii_share_of_model_time"] = round(times["pii"] / model_ms, 4) if model_ms else None
    report["entities"] = enricher.entities.describe() if enricher.entities else None
    png = plot or settings.data_dir / "reports" / f"pii-{path.stem}.png"
    pii_png(report, png, f"PII detection on {path.name} ({report['spans']} spans)")
    report["plot"], report["data"] = str(png), str(path)
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = Table(title=f"{report['examples']} examples, {report['spans']} spans")
    for column in ("type", "precision", "recall", "f1", "support", "overlap recall"):
        table.add_column(column)
    for kind, m in report["per_type"].items():
        table.add_row(
            kind, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
            str(m["support"]), f"{m['overlap_recall']:.3f}",
        )  # fmt: skip
    out.print(table)
    out.print(
        f"PII stage: {report['stage_ms']['pii']:.3f} ms per document, "
        f"{report['pii_share_of_model_time']:.1%} of model time (forward, heads, entities)"
    )
    out.print(f"plot: {png}")
