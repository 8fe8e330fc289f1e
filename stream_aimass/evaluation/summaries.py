"""Summaries measured against reference summaries: ROUGE-1/2/L, with the lead baseline.

The set is JSONL, one article per line: ``{"id", "text", "summary"}`` (``title`` and
``genre`` optional; ``genre`` splits the figures). The extractive summaries come from
:meth:`DocumentEnricher.run`, the model step as it runs in the stream (one encoder pass,
the same settings); the lead baseline takes the first sentences of the same split, as many
as the summary has. ROUGE is Google's ``rouge-score`` (F-measure, with its Porter stemmer),
averaged over articles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from stream_aimass.evaluation.plots import figure

METRICS = ("rouge1", "rouge2", "rougeL")


def shipped_set(split: str = "test") -> Path:
    """The news set written for this project (``test``: 55 articles; ``dev``: the 15 the
    summary settings were tuned on)."""
    return Path(__file__).parents[1] / "resources" / "summaries" / f"news-{split}.jsonl"


class SummaryDataError(ValueError):
    """A summaries set that cannot be read (the message says where)."""


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    text: str
    reference: str
    genre: str = ""


def read_articles(path: Path) -> list[Article]:
    """The articles of a JSONL set; raises SummaryDataError naming the line at fault."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SummaryDataError(f"cannot read {path}: {exc}") from exc
    out: list[Article] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise SummaryDataError(f"{path}:{number}: not JSON: {exc}") from exc
        if not isinstance(row, dict):
            raise SummaryDataError(f"{path}:{number}: expected an object with text and summary")
        for key in ("text", "summary"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise SummaryDataError(f"{path}:{number}: {key!r} must be a non-empty string")
        ident = str(row.get("id", number))
        if ident in seen:
            raise SummaryDataError(f"{path}:{number}: id {ident!r} appears twice")
        seen.add(ident)
        out.append(Article(ident, row["text"], row["summary"], str(row.get("genre") or "")))
    if not out:
        raise SummaryDataError(f"{path} has no articles")
    return out


def rouge(references: Sequence[str], candidates: Sequence[str]) -> dict[str, list[float]]:
    """Per article, the ROUGE-1/2/L F-measure of each candidate against its reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)
    scores: dict[str, list[float]] = {m: [] for m in METRICS}
    for reference, candidate in zip(references, candidates, strict=True):
        result = scorer.score(reference, candidate)
        for m in METRICS:
            scores[m].append(float(result[m].fmeasure))
    return scores


def _mean(values: Sequence[float]) -> float:
    return round(float(np.mean(values)), 4) if values else 0.0


def summaries_report(
    articles: Sequence[Article],
    systems: Mapping[str, Sequence[str]],
    baseline: str = "lead3",
    bootstrap: int = 1000,
) -> dict[str, Any]:
    """Mean ROUGE per system (overall and per genre), each system's gain over ``baseline``
    with a paired-bootstrap 95% interval, and per-article scores."""
    references = [a.reference for a in articles]
    per_system = {name: rouge(references, texts) for name, texts in systems.items()}
    report: dict[str, Any] = {"articles": len(articles), "systems": {}}
    genres = sorted({a.genre for a in articles if a.genre})
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(articles), size=(bootstrap, len(articles)))
    for name, scores in per_system.items():
        entry: dict[str, Any] = {m: _mean(scores[m]) for m in METRICS}
        entry["words"] = _mean([len(t.split()) for t in systems[name]])
        if genres:
            entry["by_genre"] = {
                g: {
                    m: _mean([s for s, a in zip(scores[m], articles, strict=True) if a.genre == g])
                    for m in METRICS
                }
                for g in genres
            }
        if name != baseline and baseline in per_system:
            gains = {}
            for m in METRICS:
                diff = np.asarray(scores[m]) - np.asarray(per_system[baseline][m])
                means = diff[draws].mean(axis=1)
                gains[m] = {
                    "mean": round(float(diff.mean()), 4),
                    "ci95": [round(float(np.percentile(means, q)), 4) for q in (2.5, 97.5)],
                    "wins": int((diff > 0).sum()),
                    "losses": int((diff < 0).sum()),
                }
            entry[f"vs_{baseline}"] = gains
        report["systems"][name] = entry
    report["per_article"] = [
        {"id": a.id, **{n: {m: round(s[m][i], 4) for m in METRICS} for n, s in per_system.items()}}
        for i, a in enumerate(articles)
    ]
    return report


def rouge_png(report: dict[str, Any], path: Path, title: str) -> Path:
    """Grouped bars: each system's mean ROUGE-1/2/L F-measure."""
    systems = list(report["systems"])
    x = np.arange(len(METRICS))
    width = 0.8 / max(1, len(systems))
    with figure(7.5, 4.2, path) as fig:
        ax = fig.add_subplot()
        for i, name in enumerate(systems):
            values = [report["systems"][name][m] for m in METRICS]
            bars = ax.bar(x + (i - (len(systems) - 1) / 2) * width, values, width, label=name)
            ax.bar_label(bars, fmt="%.3f", padding=2, fontsize=8)
        ax.set_xticks(x, ["ROUGE-1", "ROUGE-2", "ROUGE-L"])
        ax.set_ylabel("F-measure (mean over articles)")
        ax.set_ylim(
            0, min(1.0, max(report["systems"][s][m] for s in systems for m in METRICS) + 0.12)
        )
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return path


def extractive_summaries(
    enricher: Any,
    texts: Sequence[str],
    batch: int = 16,
    on_batch: Callable[[int], None] = lambda _: None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Each text's ``summary`` field through ``enricher.run`` (the stream's model step), and
    each stage's time (ms) summed over the batches."""
    from stream_aimass.enrich.enricher import pending_texts

    summaries: list[dict[str, Any]] = []
    times: dict[str, float] = {}
    for first in range(0, len(texts), batch):
        part = list(texts[first : first + batch])
        items = pending_texts(enricher, part, first=first)
        records = [orjson.loads(r.record) for r in enricher.run(items, 0.0, item_vectors=False)]
        summaries.extend(record["summary"] for record in records)
        for stage, ms in records[0]["timings_ms"].items():  # the batch's, on every record
            if stage not in ("queue", "batch_size"):
                times[stage] = times.get(stage, 0.0) + ms
        on_batch(len(part))
    return summaries, times
