"""Labelled text data for classifier training: read and check a CSV, split it, write it back.

A dataset is a CSV with a header row, one text column and one label column. For multi-label
data the label cell holds several labels joined by a separator (``"billing|refund"``). Every
problem a user can fix in the file is raised as :class:`DataError` with the file, the line
and, where it helps, the columns that exist.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DataError",
    "LabelledTexts",
    "check_trainable",
    "read_classification_csv",
    "stratified_split",
    "write_classification_csv",
]


class DataError(ValueError):
    """A training file or dataset that cannot be used as it is; the message says how to fix it."""


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with their labels, in file order; single-label rows hold exactly one label."""

    texts: list[str]
    labels: list[tuple[str, ...]]
    multi_label: bool
    path: Path | None = None

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} label rows")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label_names(self) -> list[str]:
        """Every label that occurs, sorted."""
        return sorted({label for row in self.labels for label in row})

    @property
    def data_hash(self) -> str:
        """SHA-256 hex of the source file's bytes, or of the content when there is no file."""
        if self.path is not None:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        content = {"texts": self.texts, "labels": self.labels, "multi_label": self.multi_label}
        return hashlib.sha256(
            json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
        ).hexdigest()


def _column_index(header: list[str], column: str, role: str, source: str) -> int:
    matches = [i for i, name in enumerate(header) if name == column]
    if not matches:
        available = ", ".join(repr(name) for name in header)
        raise DataError(f"{source}: no {role} column {column!r}; available columns: {available}")
    if len(matches) > 1:
        raise DataError(f"{source}: the header has {len(matches)} columns named {column!r}")
    return matches[0]


def _cell(row: list[str], index: int, column: str, line: int, header_len: int, source: str) -> str:
    if index >= len(row):
        raise DataError(
            f"{source}, line {line}: no {column!r} cell "
            f"(the row has {len(row)} cells, the header has {header_len})"
        )
    return row[index]


def _parse_labels(cell: str, multi_label: bool, separator: str) -> tuple[str, ...]:
    if not multi_label:
        label = cell.strip()
        return (label,) if label else ()
    # dict keeps first-seen order and drops repeats such as "a|a"
    parts = dict.fromkeys(part.strip() for part in cell.split(separator))
    return tuple(part for part in parts if part)


def read_classification_csv(
    path: str | os.PathLike[str],
    *,
    text_column: str = "text",
    label_column: str = "category",
    multi_label: bool = False,
    separator: str = "|",
) -> LabelledTexts:
    """Read a UTF-8 CSV (a BOM is dropped) of texts and labels.

    For multi-label data the label cell is split on ``separator`` and each part stripped;
    for single-label data the whole stripped cell is the label, separator or not.
    Raises :class:`DataError` for a missing or empty file, a missing column, a row without
    text or label, or text that is not UTF-8 or not valid CSV.
    """
    path = Path(path)
    source = str(path)
    if multi_label and not separator:
        raise ValueError("multi-label data needs a non-empty separator")
    if not path.is_file():
        what = "is a directory, not a CSV file" if path.is_dir() else "does not exist"
        raise DataError(f"{source} {what}")

    texts: list[str] = []
    labels: list[tuple[str, ...]] = []
    line = 1
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            if not any(header):
                raise DataError(
                    f"{source} is empty; expected a header row such as "
                    f"'{text_column},{label_column}' and then one row per example"
                )
            text_index = _column_index(header, text_column, "text", source)
            label_index = _column_index(header, label_column, "label", source)
            while True:
                # a quoted cell may span lines, so a row starts one line after the last ended
                line = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    break
                if not row:
                    continue
                text = _cell(row, text_index, text_column, line, len(header), source)
                cell = _cell(row, label_index, label_column, line, len(header), source)
                if not text.strip():
                    raise DataError(f"{source}, line {line}: empty {text_column!r} (text) cell")
                row_labels = _parse_labels(cell, multi_label, separator)
                if not row_labels:
                    raise DataError(f"{source}, line {line}: empty {label_column!r} (label) cell")
                texts.append(text)
                labels.append(row_labels)
    except UnicodeDecodeError as exc:
        raise DataError(f"{source} is not UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    except csv.Error as exc:
        raise DataError(f"{source}, line {line}: not valid CSV: {exc}") from exc

    if not texts:
        raise DataError(f"{source} has a header row but no examples")
    return LabelledTexts(texts=texts, labels=labels, multi_label=multi_label, path=path)


def check_trainable(data: LabelledTexts, min_examples: int = 2) -> None:
    """Raise :class:`DataError` naming every label with fewer than ``min_examples`` examples,
    and when single-label data has fewer than two labels."""
    if min_examples < 1:
        raise ValueError(f"min_examples must be at least 1, got {min_examples}")
    source = str(data.path) if data.path is not None else "the dataset"
    if not data.texts:
        raise DataError(f"{source} has no examples")
    counts = Counter(label for row in data.labels for label in row)
    problems = [
        f"label {label!r} has {count} example{'' if count == 1 else 's'}; "
        f"each label needs at least {min_examples}"
        for label, count in sorted(counts.items())
        if count < min_examples
    ]
    if not data.multi_label and len(counts) < 2:
        only = ", ".join(repr(label) for label in counts)
        problems.append(
            f"there is only one label ({only}); single-label training needs at least two"
        )
    if problems:
        raise DataError(f"{source} cannot be trained on:\n  " + "\n  ".join(problems))


def _dev_counts(sizes: dict[str, int], dev_fraction: float) -> dict[str, int]:
    """How many examples of each stratum go to dev: the overall share is rounded once and
    handed out by largest remainder, and each stratum keeps at least one in train."""
    total = sum(sizes.values())
    target = round(total * dev_fraction)
    caps = {key: size - 1 for key, size in sizes.items()}
    counts = {key: min(int(size * dev_fraction), caps[key]) for key, size in sizes.items()}
    # largest remainder first; the stratum key breaks ties so the result is reproducible
    order = sorted(sizes, key=lambda key: (-(sizes[key] * dev_fraction % 1), key))
    remaining = target - sum(counts.values())
    while remaining > 0:
        open_keys = [key for key in order if counts[key] < caps[key]]
        if not open_keys:
            break
        for key in open_keys[:remaining]:
            counts[key] += 1
        remaining = target - sum(counts.values())
    return counts


def _subset(data: LabelledTexts, indices: list[int]) -> LabelledTexts:
    return LabelledTexts(
        texts=[data.texts[i] for i in indices],
        labels=[data.labels[i] for i in indices],
        multi_label=data.multi_label,
    )


def stratified_split(
    data: LabelledTexts, dev_fraction: float, seed: int
) -> tuple[LabelledTexts, LabelledTexts]:
    """Split into (train, dev) with about ``dev_fraction`` of each label in dev.

    The same data and seed give the same split. Multi-label rows are stratified by their
    first label; every label keeps at least one example in train. Both parts keep file order.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be between 0 and 1, got {dev_fraction}")
    strata: dict[str, list[int]] = {}
    for i, row in enumerate(data.labels):
        strata.setdefault(row[0] if row else "", []).append(i)
    counts = _dev_counts({key: len(items) for key, items in strata.items()}, dev_fraction)

    rng = random.Random(seed)
    dev: set[int] = set()
    for key in sorted(strata):
        members = list(strata[key])
        rng.shuffle(members)
        dev.update(members[: counts[key]])

    if data.multi_label:
        # a label seen only after the first position may have landed wholly in dev
        in_train = {label for i, row in enumerate(data.labels) if i not in dev for label in row}
        for i in sorted(dev):
            if not set(data.labels[i]) <= in_train:
                dev.discard(i)
                in_train.update(data.labels[i])

    train_indices = [i for i in range(len(data.texts)) if i not in dev]
    return _subset(data, train_indices), _subset(data, sorted(dev))


def write_classification_csv(
    data: LabelledTexts,
    path: str | os.PathLike[str],
    text_column: str = "text",
    label_column: str = "category",
    separator: str = "|",
) -> Path:
    """Write ``data`` as a UTF-8 CSV that :func:`read_classification_csv` reads back unchanged.

    Multi-label rows are joined with ``separator``; a label containing it cannot be written.
    Parent directories are created. Returns the path written.
    """
    path = Path(path)
    if text_column == label_column:
        raise ValueError(f"text and label columns must differ, both are {text_column!r}")
    rows: list[tuple[str, str]] = []
    for text, row_labels in zip(data.texts, data.labels, strict=True):
        if data.multi_label:
            clashing = [label for label in row_labels if separator in label]
            if clashing:
                raise DataError(
                    f"label {clashing[0]!r} contains the separator {separator!r}; "
                    "choose another separator"
                )
            rows.append((text, separator.join(row_labels)))
        else:
            if len(row_labels) != 1:
                raise DataError(f"single-label row has {len(row_labels)} labels: {row_labels}")
            rows.append((text, row_labels[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow((text_column, label_column))
        writer.writerows(rows)
    return path
