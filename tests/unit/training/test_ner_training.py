"""NER training and the token-head detector on a tiny encoder (seconds, not quality)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app
from stream_aimass.entities.ner import DetectorInput, TokenHeadDetector
from stream_aimass.entities.spans import SHAPE_FEATURES
from stream_aimass.models.encoder import Encoder
from stream_aimass.training.conll import read_conll
from stream_aimass.training.ner import NerConfig, train_ner

CONLL = """-DOCSTART- O

John I-PER
Smith I-PER
lives O
in O
Paris I-LOC
. O

Acme I-ORG
hired O
Mary I-PER
in O
Berlin I-LOC
. O

"""


@pytest.fixture()
def conll(tmp_path: Path) -> Path:
    path = tmp_path / "train.conll"
    path.write_text(CONLL * 6)
    return path


@pytest.mark.parametrize("mode", ["head", "finetune"])
def test_train_ner_writes_a_model_the_detector_runs(
    mode: str, conll: Path, tmp_path: Path, tiny_encoder_dir: Path, tiny_encoder: Encoder
) -> None:
    sentences = read_conll(conll)
    config = NerConfig(mode=mode, epochs=2, batch_size=4, dtype="fp32")  # type: ignore[arg-type]
    info = train_ner(
        sentences, sentences[:4], tmp_path / "ner", name="tiny-ner",
        encoder_dir=tiny_encoder_dir, encoder_name="tiny", config=config, train_path=conll,
    )  # fmt: skip
    assert info.kind == "ner" and info.mode == mode
    assert info.labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert info.meta["scheme_in"] == "IOB1" and "word_shape" in info.meta["features"]
    assert set(info.meta["metrics"]) >= {"precision", "recall", "f1"}
    assert len(info.meta["data"]["train_sha256"]) == 64
    assert (info.path / "encoder").is_dir() == (mode == "finetune")

    detector = TokenHeadDetector(info.path, tiny_encoder)
    assert detector.shared_pass == (mode == "head")
    assert detector.weight.shape[1] == tiny_encoder.dim + SHAPE_FEATURES
    text = "Mary Schwarzenegger moved to Berlin."
    tokenized = tiny_encoder.tokenize_with_offsets([text])
    states = tiny_encoder.encode_ids(tokenized.ids, token_states=True).token_states or []
    (spans,) = detector.detect(DetectorInput([text], tokenized, states))
    starts = {m.start() for m in re.finditer(r"\w+|\.", text)}
    ends = {m.end() for m in re.finditer(r"\w+|\.", text)}
    for span in spans:  # whatever a random tiny model predicts, spans cover whole words
        assert span.label in {"LOC", "ORG", "PER"}
        assert span.start in starts and span.end in ends, (span, text[span.start : span.end])
    tags = detector.predict_words([s.tokens for s in sentences[:3]], tiny_encoder)
    assert [len(t) for t in tags] == [len(s.tokens) for s in sentences[:3]]


def test_train_and_eval_ner_commands(
    conll: Path, tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMASS_MODEL_DIR", str(tiny_encoder_dir))
    monkeypatch.setenv("AIMASS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIMASS_DTYPE", "fp32")
    runner = CliRunner()
    out = tmp_path / "data" / "models" / "ner"
    trained = runner.invoke(
        app, ["train", "ner", "--data", str(conll), "--dev", str(conll), "--out", str(out),
              "--epochs", "1", "--mode", "head", "--json"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout[trained.stdout.index("{") :])
    evaluated = runner.invoke(
        app, ["eval", "ner", "--model", summary["path"], "--data", str(conll), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout[evaluated.stdout.index("{") :])
    assert {"precision", "recall", "f1", "per_type"} <= set(report)
    assert report["gold_entities"] == 5 * 6
    assert Path(report["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_bad_conll_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conll"
    bad.write_text("John B-PER\nlives\n")
    result = CliRunner().invoke(app, ["train", "ner", "--data", str(bad), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "bad.conll, line 2" in result.output


def test_the_worker_uses_the_ner_model_in_settings(
    conll: Path, tmp_path: Path, tiny_encoder_dir: Path
) -> None:
    from aiokafka import TopicPartition

    from stream_aimass.enrich.enricher import DocumentEnricher, Pending
    from stream_aimass.records import Document, Source
    from stream_aimass.settings import Settings

    sentences = read_conll(conll)
    info = train_ner(
        sentences, None, tmp_path / "models" / "ner", name="ner",
        encoder_dir=tiny_encoder_dir, encoder_name="tiny",
        config=NerConfig(mode="head", epochs=1, dtype="fp32"),
    )  # fmt: skip
    settings = Settings(
        data_dir=tmp_path, model_dir=tiny_encoder_dir, dtype="fp32", ner_model="ner", labels={}
    )
    enricher = DocumentEnricher.from_settings(settings)
    assert enricher.entities is not None
    assert enricher.entities.detector.model.version == info.version
    text = "John Smith lives in Paris."
    tokenized = enricher.tokenize([text])
    tp = TopicPartition("aimass.documents", 0)
    item = Pending(
        Document("d1", "acme", 0, text, Source(tp.topic, 0, 0, 0)), tokenized.ids[0], tp, b"",
        None, tokenized.offsets[0], tokenized.word_ids[0],
    )  # fmt: skip
    (record,) = enricher.enrich([item], 0.0)
    body = json.loads(record)
    assert body["entities_model"]["ner"] == {"name": "ner", "version": info.version}
    assert body["models"]["ner"] == info.version
    for entity in body["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
        assert entity["label"] in {"LOC", "ORG", "PER"}
