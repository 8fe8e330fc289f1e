"""``eval pii``: the PII stage measured on a labelled set, through the enrich role's model step.

The set is text with marked spans (``[[EMAIL|jane@example.com]]``, one example per line, the
format of the shipped ``resources/privacy/pii-eval.txt``) or JSONL (``{"text": ...,
"spans": [{"start", "end", "type"}]}``). Every example goes through
:meth:`DocumentEnricher.run` under the policy ``detect``, so the figures are those of the
stage as it runs in the stream: pattern detectors, names from their shape, and names from
the entity stage the settings configure. A prediction counts when its type and span are
exactly the gold ones; ``overlap`` counts it when the spans overlap (a boundary off by a
word).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from stream_aimass.evaluation.plots import figure
from stream_aimass.privacy.policy import TYPES

_MARK = re.compile(r"\[\[([A-Z_]+)\|(.*?)\]\]", re.S)


def shipped_set() -> Path:
    """The labelled set shipped with the package (``resources/privacy/pii-eval.txt``)."""
    from importlib import resources

    return Path(str(resources.files("stream_aimass") / "resources" / "privacy" / "pii-eval.txt"))


class PiiSetError(ValueError):
    """A labelled set that cannot be read (the message says where)."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    spans: tuple[tuple[int, int, str], ...]  # (start, end, type)


def parse_marked(line: str) -> Example:
    """``Call [[PERSON|Jane Roe]]`` -> the text and its spans."""
    parts: list[str] = []
    spans: list[tuple[int, int, str]] = []
    at = length = 0
    for m in _MARK.finditer(line):
        if m.group(1) not in TYPES:
            raise PiiSetError(f"{m.group(1)!r} is not a type (one of {', '.join(TYPES)})")
        parts.append(line[at : m.start()])
        length += m.start() - at
        value = m.group(2)
        spans.append((length, length + len(value), m.group(1)))
        parts.append(value)
        length += len(value)
        at = m.end()
    parts.append(line[at:])
    text = "".join(parts)
    if "[[" in text:
        raise PiiSetError("an unclosed [[TYPE|value]] mark")
    return Example(text, tuple(spans))


def read_pii_set(path: Path) -> list[Example]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PiiSetError(f"{path}: cannot read: {exc}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("# "):
            continue
        try:
            out.append(_json_example(line) if path.suffix == ".jsonl" else parse_marked(line))
        except (PiiSetError, ValueError, KeyError, TypeError) as exc:
            raise PiiSetError(f"{path}:{n}: {exc}") from None
    if not out:
        raise PiiSetError(f"{path}: no examples")
    return out


def _json_example(line: str) -> Example:
    rec = orjson.loads(line)
    text = rec["text"]
    if not isinstance(text, str):
        raise PiiSetError("text must be a string")
    spans = []
    for s in rec.get("spans") or []:
        start, end, kind = int(s["start"]), int(s["end"]), str(s["type"]).upper()
        if kind not in TYPES or not 0 <= start < end <= len(text):
            raise PiiSetError(f"bad span {s}")
        spans.append((start, end, kind))
    return Example(text, tuple(spans))


def score(
    examples: Sequence[Example], predicted: Sequence[Sequence[tuple[int, int, str]]]
) -> dict[str, Any]:
    """Precision, recall and F1 per type (exact spans), and with overlapping spans."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    overlap_tp: Counter[str] = Counter()
    misses: list[dict[str, Any]] = []
    for ex, pred in zip(examples, predicted, strict=True):
        gold = set(ex.spans)
        found = set(pred)
        for s in found & gold:
            tp[s[2]] += 1
        for s in found - gold:
            fp[s[2]] += 1
            misses.append({"kind": "false_positive", "type": s[2], "text": ex.text[s[0] : s[1]]})
        for s in gold - found:
            fn[s[2]] += 1
            misses.append({"kind": "missed", "type": s[2], "text": ex.text[s[0] : s[1]]})
        for g in gold:
            if any(p[2] == g[2] and p[0] < g[1] and g[0] < p[1] for p in found):
                overlap_tp[g[2]] += 1

    def prf(t: int, p: int, g: int) -> dict[str, float]:
        precision = t / p if p else 0.0
        recall = t / g if g else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}

    per_type = {}
    for kind in TYPES:
        support = tp[kind] + fn[kind]
        if not support and not fp[kind]:
            continue
        per_type[kind] = {
            **prf(tp[kind], tp[kind] + fp[kind], support),
            "support": support,
            "predicted": tp[kind] + fp[kind],
            "overlap_recall": round(overlap_tp[kind] / support, 4) if support else 0.0,
        }
    total = sum(tp.values()), sum(tp.values()) + sum(fp.values())
    gold_total = sum(tp.values()) + sum(fn.values())
    return {
        "examples": len(examples),
        "spans": gold_total,
        "per_type": per_type,
        "micro": prf(total[0], total[1], gold_total),
        "errors": misses[:200],
    }


def pii_png(report: dict[str, Any], path: Path, title: str) -> Path:
    """Precision, recall and F1 per type as grouped bars, with the issue's bars drawn in."""
    per_type = report["per_type"]
    kinds = list(per_type)
    x = np.arange(len(kinds))
    with figure(max(7.0, 1.1 * len(kinds) + 2), 4.5, path) as fig:
        ax = fig.add_subplot()
        for i, (metric, colour) in enumerate(
            (("precision", "#1f77b4"), ("recall", "#ff7f0e"), ("f1", "#2ca02c"))
        ):
            values = [per_type[k][metric] for k in kinds]
            bars = ax.bar(x + (i - 1) * 0.27, values, 0.27, label=metric, color=colour)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
        ax.axhline(0.95, color="#1f77b4", linestyle=":", linewidth=1)
        ax.axhline(0.90, color="#ff7f0e", linestyle=":", linewidth=1)
        ax.set_xticks(x, [f"{k}\n({per_type[k]['support']})" for k in kinds], fontsize=8)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("score (dotted: precision 0.95, recall 0.90)")
        ax.set_title(title)
        ax.legend(loc="lower left", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return path
