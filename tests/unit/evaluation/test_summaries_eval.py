"""The summaries evaluation: reading sets (with errors that name the line), ROUGE against
references (Google's rouge-score), gains over the lead baseline with an interval, a PNG; the
shipped set's size and shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_aimass.evaluation.summaries import (
    Article,
    SummaryDataError,
    read_articles,
    rouge,
    rouge_png,
    shipped_set,
    summaries_report,
)
from stream_aimass.summaries.extractive import lead
from stream_aimass.summaries.sentences import split_sentences


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_shipped_sets_are_written_articles_with_references() -> None:
    test, dev = read_articles(shipped_set("test")), read_articles(shipped_set("dev"))
    assert len(test) >= 50 and len(dev) >= 10
    assert not {a.id for a in test} & {a.id for a in dev}
    assert not {a.text for a in test} & {a.text for a in dev}
    for article in test + dev:
        assert 8 <= len(split_sentences(article.text)) <= 20, article.id
        assert 20 <= len(article.reference.split()) <= 90, article.id
        assert article.genre
        # The reference is the writer's own words, not the lead copied.
        assert article.reference != lead(article.text, 3)


def test_rouge_is_one_for_the_reference_itself_and_zero_for_unrelated_text() -> None:
    scores = rouge(["the council approved the seawall"] * 2,
                   ["the council approved the seawall", "purple elephants dance"])  # fmt: skip
    assert [scores[m][0] for m in ("rouge1", "rouge2", "rougeL")] == [1.0, 1.0, 1.0]
    assert [scores[m][1] for m in ("rouge1", "rouge2", "rougeL")] == [0.0, 0.0, 0.0]


def test_the_report_compares_each_system_with_the_baseline(tmp_path: Path) -> None:
    articles = [Article(f"a{i}", "x", "the council approved the new seawall on tuesday",
                        "news" if i % 2 else "sport") for i in range(6)]  # fmt: skip
    good = ["the council approved the seawall on tuesday"] * 6
    poor = ["a seawall"] * 6
    report = summaries_report(articles, {"mine": good, "lead3": poor}, bootstrap=200)
    mine = report["systems"]["mine"]
    assert report["articles"] == 6 and mine["rouge1"] > report["systems"]["lead3"]["rouge1"]
    gain = mine["vs_lead3"]["rouge1"]
    assert gain["mean"] > 0 and gain["ci95"][0] > 0 and gain["wins"] == 6 and gain["losses"] == 0
    assert set(mine["by_genre"]) == {"news", "sport"}
    assert "vs_lead3" not in report["systems"]["lead3"]
    assert len(report["per_article"]) == 6
    png = rouge_png(report, tmp_path / "rouge.png", "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json\n", "1: not JSON"),
        ('["a list"]\n', "expected an object"),
        ('{"text": "t"}\n', "'summary' must be a non-empty string"),
        ('{"text": "", "summary": "s"}\n', "'text' must be a non-empty string"),
        ('{"id": "x", "text": "t", "summary": "s"}\n{"id": "x", "text": "u", "summary": "v"}\n',
         "2: id 'x' appears twice"),
        ("\n\n", "has no articles"),
    ],
)  # fmt: skip
def test_a_bad_set_is_refused_naming_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(content)
    with pytest.raises(SummaryDataError, match=message):
        read_articles(path)


def test_a_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(SummaryDataError, match="cannot read"):
        read_articles(tmp_path / "nope.jsonl")
