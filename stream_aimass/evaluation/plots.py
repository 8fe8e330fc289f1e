"""PNG charts for a classification report: a confusion heat map and per-class F1 bars.

Both stay readable from a handful of classes up to about a hundred (banking77): the figure
grows with the label count and fonts shrink, instead of labels overlapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["confusion_png", "per_class_f1_png"]

ANNOTATE_MAX_LABELS = 20
"""Cell counts are written on the confusion matrix up to this many labels."""

_DPI = 110


def _tick_fontsize(count: int) -> float:
    if count <= ANNOTATE_MAX_LABELS:
        return 9.0
    return 6.0 if count <= 50 else 5.0


@contextmanager
def figure(width: float, height: float, path: Path) -> Iterator[Figure]:
    """A figure that is saved to ``path`` if drawing succeeds and closed either way."""
    # imported here so that importing this module never picks a backend or costs start-up time
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(width, height))
    try:
        yield fig
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=_DPI)
    finally:
        plt.close(fig)


def confusion_png(confusion: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    """Draw ``confusion`` (rows gold, columns predicted) as a heat map and write it to ``path``.

    Colours are row-normalised (share of each gold class, on a square-root scale), so rare
    classes and small confusions stay visible; counts are written in the cells when there are
    at most :data:`ANNOTATE_MAX_LABELS` labels. Returns ``path``.
    """
    counts = np.asarray(confusion, dtype=np.int64)
    n = len(labels)
    if n == 0 or counts.shape != (n, n):
        raise ValueError(f"confusion {counts.shape} must be square and match {n} labels")
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(
        counts, row_totals, out=np.zeros(counts.shape, dtype=float), where=row_totals > 0
    )

    side = max(6.0, 0.2 * n + 3.0)
    fontsize = _tick_fontsize(n)
    ticks = np.arange(n)
    annotate = n <= ANNOTATE_MAX_LABELS
    with figure(side + 1.0, side, path) as fig:
        from matplotlib.colors import PowerNorm

        ax = fig.add_subplot()
        # a square-root scale keeps a 1% confusion visible next to a 95% diagonal
        norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
        image = ax.imshow(shares, cmap="Blues", norm=norm, interpolation="nearest")
        colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
        colorbar.set_label("share of the gold class's examples")
        if annotate:
            ax.set_xticks(ticks, labels, rotation=45, ha="right", fontsize=fontsize)
        else:
            ax.set_xticks(ticks, labels, rotation=90, fontsize=fontsize)
        ax.set_yticks(ticks, labels, fontsize=fontsize)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(title)
        if annotate:
            for (row, col), count in np.ndenumerate(counts):
                # white on dark cells, black on light ones
                colour = "white" if norm(shares[row, col]) > 0.6 else "black"
                ax.text(col, row, str(count), ha="center", va="center", fontsize=8, color=colour)
    return path


def per_class_f1_png(per_class: Mapping[str, Mapping[str, float]], path: Path, title: str) -> Path:
    """Draw a horizontal bar per class of its F1, best at the top, and write it to ``path``.

    ``per_class`` is the report's ``per_class`` mapping (label -> {"f1": ..., ...}).
    Returns ``path``.
    """
    if not per_class:
        raise ValueError("per_class is empty")
    # ascending, so barh puts the best class at the top; the name makes ties reproducible
    ordered = sorted(per_class.items(), key=lambda item: (float(item[1]["f1"]), item[0]))
    names = [name for name, _ in ordered]
    scores = [float(metrics["f1"]) for _, metrics in ordered]
    n = len(names)

    fontsize = _tick_fontsize(n)
    with figure(8.0, max(3.0, 0.2 * n + 1.5), path) as fig:
        ax = fig.add_subplot()
        bars = ax.barh(np.arange(n), scores, color="#1f77b4")
        ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=fontsize)
        ax.set_yticks(np.arange(n), names, fontsize=fontsize)
        ax.set_ylim(-0.6, n - 0.4)
        ax.set_xlim(0.0, 1.08)
        ax.set_xlabel("F1")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    return path
