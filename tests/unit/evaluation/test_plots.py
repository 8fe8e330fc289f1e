"""The report charts are written as PNGs, for a few labels and for banking77's 77."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from stream_aimass.evaluation.plots import confusion_png, per_class_f1_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def confusion_for(n: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    matrix = rng.integers(0, 3, size=(n, n)) + np.eye(n, dtype=np.int64) * 20
    matrix[n - 1] = 0  # a gold class with no examples must not divide by zero
    return [[int(v) for v in row] for row in matrix]


def per_class_for(n: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(1)
    return {
        f"label_{i:02d}_with_a_longish_name": {
            "precision": float(p),
            "recall": float(p),
            "f1": float(p),
            "support": 10.0,
        }
        for i, p in enumerate(rng.random(n))
    }


def test_confusion_png_small_with_counts(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "confusion.png"
    out = confusion_png([[5, 1], [0, 3]], ["spam", "ham"], path, "dev confusion")
    assert out == path
    width, height = png_size(path)
    assert width > 300 and height > 300


def test_confusion_png_grows_for_77_labels(tmp_path: Path) -> None:
    labels = [f"label_{i:02d}_with_a_longish_name" for i in range(77)]
    small = confusion_png(confusion_for(5), labels[:5], tmp_path / "small.png", "small")
    large = confusion_png(confusion_for(77), labels, tmp_path / "large.png", "banking77")
    assert png_size(large)[0] > png_size(small)[0]
    assert png_size(large)[1] > png_size(small)[1]


def test_confusion_png_rejects_a_mismatched_matrix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="match 3 labels"):
        confusion_png([[1, 0], [0, 1]], ["a", "b", "c"], tmp_path / "bad.png", "bad")
    assert not (tmp_path / "bad.png").exists()


def test_per_class_f1_png(tmp_path: Path) -> None:
    per_class = {
        "a": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2},
        "b": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
    }
    path = per_class_f1_png(per_class, tmp_path / "out" / "f1.png", "per-class F1")
    assert path == tmp_path / "out" / "f1.png"
    assert png_size(path)[0] > 300


def test_per_class_f1_png_grows_for_77_labels(tmp_path: Path) -> None:
    small = per_class_f1_png(per_class_for(5), tmp_path / "small.png", "small")
    large = per_class_f1_png(per_class_for(77), tmp_path / "large.png", "banking77")
    assert png_size(large)[1] > png_size(small)[1]


def test_per_class_f1_png_rejects_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        per_class_f1_png({}, tmp_path / "none.png", "nothing")


def test_figures_are_closed(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    confusion_png(confusion_for(3), ["a", "b", "c"], tmp_path / "c.png", "c")
    per_class_f1_png(per_class_for(3), tmp_path / "f.png", "f")
    with pytest.raises(ValueError):
        confusion_png([[1]], ["a", "b"], tmp_path / "bad.png", "bad")
    assert len(plt.get_fignums()) == before
