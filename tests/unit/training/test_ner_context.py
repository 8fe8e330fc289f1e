"""NER sentences in their document's context: windows, labels and the eval that reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer
from typer.testing import CliRunner

from stream_aimass.cli.main import app
from stream_aimass.training.conll import read_conll
from stream_aimass.training.ner import (
    IGNORE,
    NerConfig,
    bio_labels,
    context_windows,
    encode_sentences,
    train_ner,
)

DOCS = """-DOCSTART- O

John I-PER
Smith I-PER
lives O
in O
Paris I-LOC
. O

He O
likes O
Acme I-ORG
. O

Mary I-PER
agrees O
. O

-DOCSTART- O

Berlin I-LOC
is O
big O
. O

"""


@pytest.fixture(scope="module")
def tokenizer(tiny_encoder_dir: Path):  # type: ignore[no-untyped-def]
    return AutoTokenizer.from_pretrained(str(tiny_encoder_dir))


def test_documents_are_numbered_by_docstart(tmp_path: Path) -> None:
    path = tmp_path / "d.conll"
    path.write_text(DOCS)
    assert [s.document for s in read_conll(path)] == [0, 0, 0, 1]
    path.write_text(DOCS.replace("-DOCSTART- O\n\n", ""))
    assert [s.document for s in read_conll(path)] == [-1, -1, -1, -1]


def test_windows_take_neighbours_of_the_same_document_only(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "d.conll"
    path.write_text(DOCS)
    sentences = read_conll(path)
    windows = context_windows(tokenizer, sentences, 128, 64)
    for sentence, window in zip(sentences, windows, strict=True):
        assert window.words[window.start : window.end] == sentence.tokens
    assert windows[1].words == sentences[0].tokens + sentences[1].tokens + sentences[2].tokens
    assert windows[2].words[windows[2].end :] == []  # the next document is not context
    assert windows[3].words == ["Berlin", "is", "big", "."]
    small = context_windows(tokenizer, sentences, 128, 2)  # two pieces a side, whole words
    assert small[1].words == ["Paris", ".", *sentences[1].tokens, "Mary", "agrees"]
    tight = context_windows(tokenizer, sentences, 9, 64)  # the window never passes max_tokens
    for window in tight:
        pieces = tokenizer(window.words, is_split_into_words=True)["input_ids"]
        assert len(pieces) <= 9 or (window.start == 0 and window.end == len(window.words))
    assert [w.words for w in context_windows(tokenizer, sentences, 128, 0)] == [
        s.tokens for s in sentences
    ]


def test_only_the_sentence_is_labelled_in_its_window(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "d.conll"
    path.write_text(DOCS)
    sentences = read_conll(path)
    labels = bio_labels(["LOC", "ORG", "PER"])
    alone = encode_sentences(tokenizer, sentences, labels, 128)
    inside = encode_sentences(tokenizer, sentences, labels, 128, context=64)
    for a, b, s in zip(alone.labels, inside.labels, sentences, strict=True):
        kept_a = [x for x in a if x != IGNORE]
        kept_b = [x for x in b if x != IGNORE]
        assert kept_a == kept_b and len(kept_b) == len(s.tokens)
    assert len(inside.ids[1]) > len(alone.ids[1])
    assert [len(f) for f in inside.first_piece] == [len(s.tokens) for s in sentences]
    assert all(inside.labels[r][p] != IGNORE for r, f in enumerate(inside.first_piece) for p in f)


def test_a_model_trained_with_context_is_evaluated_with_it(
    tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.conll"
    path.write_text(DOCS * 3)
    sentences = read_conll(path)
    info = train_ner(
        sentences, sentences, tmp_path / "models" / "ner", name="ner",
        encoder_dir=tiny_encoder_dir, encoder_name="tiny",
        config=NerConfig(mode="head", epochs=2, dtype="fp32", context=32),
    )  # fmt: skip
    assert info.meta["training"]["context_tokens"] == 32
    monkeypatch.setenv("AIMASS_MODEL_DIR", str(tiny_encoder_dir))
    monkeypatch.setenv("AIMASS_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    for extra, expected in (([], 32), (["--context", "0"], 0)):
        result = runner.invoke(
            app, ["eval", "ner", "--model", str(info.path), "--data", str(path), "--json", *extra]
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout[result.stdout.index("{\n") :])
        assert report["context_tokens"] == expected and report["gold_entities"] == 5 * 3
