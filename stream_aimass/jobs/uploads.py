"""Checking an uploaded training file before a job is queued, with the CLI's own readers
and their messages: a bad upload is refused at once, not an hour later in a log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stream_aimass.training.conll import read_conll
from stream_aimass.training.data import DataError, check_trainable, read_classification_csv

CSV_SUFFIXES = (".csv",)
CONLL_SUFFIXES = (".conll", ".txt", ".iob", ".bio")


def data_format(kind: str, filename: str) -> str:
    """``csv`` or ``conll`` for an upload of ``kind`` named ``filename``; raises DataError."""
    suffix = Path(filename).suffix.lower()
    fmt = "csv" if suffix in CSV_SUFFIXES else "conll" if suffix in CONLL_SUFFIXES else None
    wanted = {"classifier": ("csv",), "ner": ("conll",), "multitask": ("csv", "conll")}[kind]
    if fmt is None or fmt not in wanted:
        names = " or ".join({"csv": "a CSV file (.csv)", "conll": "a CoNLL file (.conll)"}[w]
                            for w in wanted)  # fmt: skip
        raise DataError(f"a {kind} job trains on {names}, not {filename!r}")
    return fmt


def check_upload(path: Path, fmt: str, multi_label: bool, shown: str) -> dict[str, Any]:
    """What the training command will read from ``path`` (examples, labels), or DataError
    with its reason; ``shown``: the file's name as the user sent it (in messages)."""
    try:
        if fmt == "csv":
            data = read_classification_csv(path, multi_label=multi_label)
            check_trainable(data)
            return {"examples": len(data.texts), "labels": len(data.label_names)}
        sentences = read_conll(path)
    except DataError as exc:
        raise DataError(str(exc).replace(str(path), shown)) from None
    tags = {t.split("-", 1)[-1] for s in sentences for t in s.tags if t != "O"}
    return {"examples": len(sentences), "labels": len(tags)}
