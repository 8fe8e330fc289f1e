"""Uploads are checked with the CLI's readers, and refused with their reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_aimass.jobs.uploads import check_upload, data_format
from stream_aimass.training.data import DataError


def test_formats_per_kind() -> None:
    assert data_format("classifier", "a.CSV") == "csv"
    assert data_format("ner", "a.conll") == "conll"
    assert data_format("multitask", "a.conll") == "conll"
    with pytest.raises(DataError, match="CoNLL"):
        data_format("ner", "a.csv")
    with pytest.raises(DataError, match="CSV"):
        data_format("classifier", "a.xlsx")


def test_checks_say_what_is_wrong_with_the_name_the_user_sent(tmp_path: Path) -> None:
    good = tmp_path / "data.csv"
    good.write_text("text,category\na,x\nb,x\nc,y\nd,y\n")
    assert check_upload(good, "csv", False, "mine.csv") == {"examples": 4, "labels": 2}
    bad = tmp_path / "bad.csv"
    bad.write_text("words,category\na,x\n")
    with pytest.raises(DataError) as caught:
        check_upload(bad, "csv", False, "mine.csv")
    assert "mine.csv" in str(caught.value) and str(tmp_path) not in str(caught.value)
    conll = tmp_path / "t.conll"
    conll.write_text("Paris B-LOC\nis O\n\nBob B-PER\n")
    assert check_upload(conll, "conll", False, "t.conll") == {"examples": 2, "labels": 2}
    conll.write_text("Paris B-LOC extra\nis\n")
    with pytest.raises(DataError):
        check_upload(conll, "conll", False, "t.conll")
