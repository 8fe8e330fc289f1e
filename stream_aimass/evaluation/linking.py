"""Evaluation of entity linking on a labelled file (gold mentions with KB ids or null).

File format (JSONL)::

    {"id": "le-001", "text": "Apple shares rose.",
     "mentions": [{"start": 0, "end": 5, "text": "Apple", "entity_id": "company/apple"}]}

``entity_id: null`` marks a mention of something absent from the KB (NIL). Linking is
evaluated on the gold mentions (the detector is not under test here), and compared with
the prior-only baseline: the most popular candidate of the alias, never NIL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_aimass.entities.extract import EntityExtractor
from stream_aimass.entities.linking import Mention, mention_vectors
from stream_aimass.models.encoder import Encoder
from stream_aimass.training.data import DataError


@dataclass(frozen=True, slots=True)
class GoldMention:
    start: int
    end: int
    entity_id: str | None


@dataclass(frozen=True, slots=True)
class LinkingExample:
    id: str
    text: str
    mentions: tuple[GoldMention, ...]


def read_linking_file(path: Path) -> list[LinkingExample]:
    """Labelled linking examples; clear errors (file:line) for malformed lines."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
            text = obj["text"]
            mentions = []
            for m in obj["mentions"]:
                start, end, entity = int(m["start"]), int(m["end"]), m.get("entity_id")
                if not 0 <= start < end <= len(text):
                    raise ValueError(f"mention offsets {start}-{end} outside the text")
                if "text" in m and text[start:end] != m["text"]:
                    raise ValueError(
                        f"text[{start}:{end}] is {text[start:end]!r}, not {m['text']!r}"
                    )
                mentions.append(GoldMention(start, end, entity))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{where}: {type(exc).__name__}: {exc}") from None
        out.append(LinkingExample(str(obj.get("id", number)), text, tuple(mentions)))
    if not out:
        raise DataError(f"{path}: no examples")
    return out


def _rates(pairs: list[tuple[str | None, str | None]]) -> dict[str, Any]:
    """Accuracy and NIL precision/recall over (gold, predicted) pairs."""
    total = len(pairs)
    correct = sum(1 for g, p in pairs if g == p)
    predicted_nil = [g for g, p in pairs if p is None]
    gold_nil = [p for g, p in pairs if g is None]
    in_kb = [(g, p) for g, p in pairs if g is not None]
    return {
        "accuracy": round(correct / total, 4) if total else 0.0,
        "in_kb_accuracy": round(sum(1 for g, p in in_kb if g == p) / len(in_kb), 4)
        if in_kb
        else 0.0,
        "nil_precision": (
            round(sum(1 for g in predicted_nil if g is None) / len(predicted_nil), 4)
            if predicted_nil
            else 0.0
        ),
        "nil_recall": (
            round(sum(1 for p in gold_nil if p is None) / len(gold_nil), 4) if gold_nil else 0.0
        ),
        "mentions": total,
    }


def gold_mentions(
    examples: list[LinkingExample], extractor: EntityExtractor, encoder: Encoder
) -> Iterator[tuple[LinkingExample, GoldMention, Mention, np.ndarray | None, np.ndarray]]:
    """Every gold mention, in order, with its candidates (as a :class:`Mention` without a
    NER label), its mention vector and its document's vector, from one forward pass per 32
    examples."""
    index = extractor.index
    for start in range(0, len(examples), 32):
        chunk = examples[start : start + 32]
        tokenized = encoder.tokenize_with_offsets([e.text for e in chunk])
        encoded = encoder.encode_ids(tokenized.ids, token_states=True)
        states = encoded.token_states or []
        for row, example in enumerate(chunk):
            spans = [(m.start, m.end) for m in example.mentions]
            vectors = mention_vectors(states[row], tokenized.offsets[row], spans)
            for gold, vector in zip(example.mentions, vectors, strict=True):
                surface = example.text[gold.start : gold.end]
                candidates, exact = index.candidates_and_match(surface)
                mention = Mention(gold.start, gold.end, surface, "", candidates, exact)
                yield example, gold, mention, vector, encoded.embeddings[row]


def evaluate_linking(
    examples: list[LinkingExample], extractor: EntityExtractor, encoder: Encoder
) -> dict[str, Any]:
    """Linker vs prior-only baseline on gold mentions; also on ambiguous aliases alone."""
    linker = extractor.linker
    ours: list[tuple[str | None, str | None]] = []
    prior: list[tuple[str | None, str | None]] = []
    ambiguous_ours: list[tuple[str | None, str | None]] = []
    ambiguous_prior: list[tuple[str | None, str | None]] = []
    errors = []
    for example, gold, mention, vector, context in gold_mentions(examples, extractor, encoder):
        linked = linker.link(mention, vector, context)
        baseline = linker.prior_only(mention)
        ours.append((gold.entity_id, linked.entity_id))
        prior.append((gold.entity_id, baseline))
        if len(mention.candidates) > 1:
            ambiguous_ours.append((gold.entity_id, linked.entity_id))
            ambiguous_prior.append((gold.entity_id, baseline))
        if linked.entity_id != gold.entity_id:
            errors.append({
                "example": example.id, "mention": mention.text, "gold": gold.entity_id,
                "predicted": linked.entity_id, "score": linked.score,
            })  # fmt: skip
    report = _rates(ours)
    report["nil_mentions"] = sum(1 for g, _ in ours if g is None)
    report["ambiguous"] = _rates(ambiguous_ours)
    report["prior_baseline"] = _rates(prior) | {"ambiguous": _rates(ambiguous_prior)}
    report["errors"] = errors
    report["kb"] = {"name": extractor.kb.name, "version": extractor.kb.version}
    report["weights"] = {
        k: getattr(linker.weights, k)
        for k in ("mention", "context", "prior", "type", "exact", "nil_threshold")
    }
    return report


def linking_png(report: dict[str, Any], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = ["accuracy", "in_kb_accuracy", "nil_precision", "nil_recall"]
    groups = [("linker", report), ("prior only", report["prior_baseline"])]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.38
    for k, (label, values) in enumerate(groups):
        xs = [i + (k - 0.5) * width for i in range(len(metrics))]
        bars = ax1.bar(xs, [values[m] for m in metrics], width, label=label)
        ax1.bar_label(bars, fmt="%.2f", fontsize=8)
    ax1.set_xticks(range(len(metrics)), metrics)
    ax1.set_ylim(0, 1.1)
    ax1.set_title(f"all {report['mentions']} mentions")
    ax1.legend(loc="lower right")
    amb = [("linker", report["ambiguous"]), ("prior only", report["prior_baseline"]["ambiguous"])]
    bars = ax2.bar(
        [a for a, _ in amb], [v["accuracy"] for _, v in amb], color=["#1f77b4", "#ff7f0e"]
    )
    ax2.bar_label(bars, fmt="%.2f")
    ax2.set_ylim(0, 1.1)
    ax2.set_title(f"accuracy on ambiguous aliases ({report['ambiguous']['mentions']} mentions)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
