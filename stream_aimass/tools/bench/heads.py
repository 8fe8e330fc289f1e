"""One pass for every head, measured: a multitask model against the encoder alone.

    python -m stream_aimass.tools.bench.heads --model MODELS/mt/VERSION \\
        --ner-head wikigold --classifier-head banking77

Three configurations of the enrich role's model thread, on the same demo-corpus texts, the
same dtype and batching, measured in alternating rounds (this machine's speed drifts) and
reported as the median of the rounds:

- ``encoder_alone``: the base encoder with the zero-shot topic head and KB dictionary
  matching, today's default (no trained heads);
- ``multitask_one_pass``: the multitask model served as the shared encoder, its NER head
  and classifier head and the zero-shot head all reading the document's one pass;
- ``same_heads_own_passes``: the base encoder served, the same heads each running the
  multitask encoder as a pass of its own: what separately fine-tuned models cost.

Each figure is ``model_ceiling``: tokenize + forward + every head + entities (detection
and linking), in one thread, without Kafka, records or ClickHouse. Also the forward pass
alone of each encoder. Writes ``heads.json`` and ``heads.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from stream_aimass.settings import Settings


def configurations(
    base: Settings, model: Path, ner_head: str, classifier_head: str
) -> dict[str, Settings]:
    heads = {"ner_model": str(model), "ner_head": ner_head}
    classifiers = {classifier_head: {"model": str(model), "head": classifier_head}}
    return {
        "encoder_alone": base,
        "multitask_one_pass": base.model_copy(
            update={"model_dir": model, "classifiers": classifiers, **heads}
        ),
        "same_heads_own_passes": base.model_copy(update={"classifiers": classifiers, **heads}),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from stream_aimass.enrich.enricher import DocumentEnricher
    from stream_aimass.tools.bench.device import encoder_ceiling
    from stream_aimass.tools.bench.scenarios import model_ceiling
    from stream_aimass.tools.corpus import generate_documents

    texts = [f"{d['title']}. {d['text']}" for d in generate_documents(args.documents, seed=11)]
    with tempfile.TemporaryDirectory(prefix="aimass-heads-") as tmp:
        base = Settings(
            data_dir=Path(tmp), classifiers_file=Path(tmp) / "none.json", dtype=args.dtype
        )
        settings = configurations(base, args.model, args.ner_head, args.classifier_head)
        enrichers = {name: DocumentEnricher.from_settings(s) for name, s in settings.items()}
        for name, enricher in enrichers.items():  # warm-up: kernels, allocator, caches
            model_ceiling(enricher, texts[:256], settings[name])
        rounds: dict[str, list[float]] = {name: [] for name in enrichers}
        forward: dict[str, list[float]] = {"base": [], "multitask": []}
        for r in range(args.rounds):
            for name, enricher in enrichers.items():
                rate = model_ceiling(enricher, texts, settings[name])
                rounds[name].append(rate)
                print(f"round {r + 1}: {name} {rate:.1f} docs/s", file=sys.stderr)
            for key, name in (("base", "encoder_alone"), ("multitask", "multitask_one_pass")):
                encoder = enrichers[name].encoder
                ids = encoder.tokenize(texts)
                forward[key].append(
                    encoder_ceiling(encoder, ids, base.batch_max_tokens, base.batch_max_documents)
                )
        passes = {
            name: 1 + sum(1 for c in e.classifiers.classifiers if not c.shared_pass)
            + int(e.entities is not None and not e.entities.detector.shared_pass)
            for name, e in enrichers.items()
        }  # fmt: skip
        dtype = enrichers["encoder_alone"].encoder.dtype
    median = {name: statistics.median(v) for name, v in rounds.items()}
    alone = median["encoder_alone"]
    return {
        "documents": len(texts),
        "rounds": args.rounds,
        "dtype": dtype,
        "model": str(args.model),
        "heads": {"ner": args.ner_head, "classifier": args.classifier_head},
        "model_docs_per_s": {k: round(v, 1) for k, v in median.items()},
        "model_docs_per_s_rounds": {k: [round(x, 1) for x in v] for k, v in rounds.items()},
        "encoder_passes_per_document": passes,
        "ratio_to_encoder_alone": {k: round(v / alone, 3) for k, v in median.items()},
        "forward_only_docs_per_s": {k: round(statistics.median(v), 1) for k, v in forward.items()},
        "includes": "tokenize + forward + every head + entities (detection, linking), one "
        "thread; no Kafka, records or ClickHouse",
    }


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["model_docs_per_s"])
    values = [report["model_docs_per_s"][n] for n in names]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    bars = ax.barh(names[::-1], values[::-1], color=["#9e9e9e", "#2ca02c", "#1f77b4"][::-1])
    labels = [
        f"{v:.0f} docs/s, {report['encoder_passes_per_document'][n]} pass(es)"
        for n, v in zip(names[::-1], values[::-1], strict=True)
    ]
    ax.bar_label(bars, labels=labels, padding=3, fontsize=8)
    ax.set_xlim(0, max(values) * 1.45)
    ax.set_xlabel("model docs/s (tokenize + forward + heads + entities)")
    ax.set_title(
        f"NER + classifier + zero-shot heads, {report['documents']} docs, {report['dtype']}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a multitask model version")
    parser.add_argument("--ner-head", required=True)
    parser.add_argument("--classifier-head", required=True)
    parser.add_argument("--documents", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--out", type=Path, default=Path("heads-bench"))
    args = parser.parse_args(argv)
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "heads.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "heads.png")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
