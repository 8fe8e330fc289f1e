"""Multi-task training and serving its heads from one pass, on a tiny encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app
from stream_aimass.entities.ner import DetectorInput, TokenHeadDetector, load_detector
from stream_aimass.models.classify import (
    HeadInput,
    TrainedClassifier,
    head_names,
    load_classifier,
)
from stream_aimass.models.encoder import Encoder, ModelLoadError
from stream_aimass.models.library import ModelInfo, list_models
from stream_aimass.settings import Settings
from stream_aimass.training.conll import Sentence, read_conll
from stream_aimass.training.data import DataError, read_classification_csv
from stream_aimass.training.multitask import (
    ClassifierTask,
    MultitaskConfig,
    NerTask,
    train_multitask,
)

CONLL = """John I-PER
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


def _csv(path: Path, rows: dict[str, list[str]]) -> Path:
    lines = ["text,category"] + [f"{t},{label}" for label, ts in rows.items() for t in ts]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mt-data")
    (root / "people.conll").write_text(CONLL * 5)
    (root / "orgs.conll").write_text(CONLL.replace("PER", "NAME") * 4)
    cards = {"card": [f"my card {i} was lost" for i in range(10)],
             "transfer": [f"transfer {i} is pending" for i in range(10)]}  # fmt: skip
    moods = {
        "happy": [f"so glad {i}" for i in range(8)],
        "sad": [f"so sorry {i}" for i in range(8)],
    }
    return {
        "people": root / "people.conll",
        "orgs": root / "orgs.conll",
        "cards": _csv(root / "cards.csv", cards),
        "moods": _csv(root / "moods.csv", moods),
    }


@pytest.fixture(scope="module")
def model(
    data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path
) -> ModelInfo:
    people, orgs = read_conll(data["people"]), read_conll(data["orgs"])
    cards, moods = read_classification_csv(data["cards"]), read_classification_csv(data["moods"])
    tasks: list[NerTask | ClassifierTask] = [
        NerTask("people", people, people[:4], data["people"], data["people"]),
        NerTask("orgs", orgs, None, data["orgs"]),
        ClassifierTask("cards", cards, cards),
        ClassifierTask("moods", moods, None),
    ]
    return train_multitask(
        tasks, tmp_path_factory.mktemp("models") / "mt", name="mt",
        encoder_dir=tiny_encoder_dir, encoder_name="tiny",
        config=MultitaskConfig(epochs=2, batch_size=8, ner_batch_size=4, dtype="fp32"),
        held_aside=["a held-aside text", "another one, never trained on"],
    )  # fmt: skip


def test_one_model_holds_one_encoder_and_a_head_per_task(model: ModelInfo) -> None:
    assert model.kind == "multitask"
    assert model.meta["head_order"] == ["people", "orgs", "cards", "moods"]
    assert head_names(model, "ner") == ["people", "orgs"]
    assert head_names(model, "classifier") == ["cards", "moods"]
    assert (model.path / "encoder" / "model.safetensors").is_file()
    for head in model.meta["heads"]:
        assert (model.path / "heads" / f"{head}.safetensors").is_file()
    people = model.meta["heads"]["people"]
    assert people["labels"] == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert {"precision", "recall", "f1", "dev_cosine_to_original"} <= set(people["metrics"])
    assert model.meta["heads"]["orgs"]["metrics"] == {}  # no dev set, no metrics
    assert model.meta["heads"]["cards"]["labels"] == ["card", "transfer"]
    assert 0.0 <= model.meta["heads"]["cards"]["metrics"]["accuracy"] <= 1.0
    closeness = model.metrics["held_aside_cosine_to_original"]
    assert closeness["texts"] == 2 and -1.0 <= closeness["min"] <= closeness["mean"] <= 1.0
    history = model.meta["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert "train_loss" in history[0]["moods"] and "f1" in history[0]["people"]
    assert [m.kind for m in list_models(model.path.parent.parent)] == ["multitask"]


def test_the_multitask_model_is_served_as_the_shared_encoder(
    model: ModelInfo, tiny_encoder_dir: Path
) -> None:
    settings = Settings(model_dir=model.path)
    assert settings.resolved_model_dir == model.path / "encoder"
    assert Settings(model_dir=tiny_encoder_dir).resolved_model_dir == tiny_encoder_dir


def test_heads_read_the_shared_pass_of_their_encoder_and_match_an_own_pass(
    model: ModelInfo, tiny_encoder: Encoder
) -> None:
    served = Encoder(model.path / "encoder", device="cpu", dtype="fp32")
    texts = ["my card 3 was lost", "transfer 9 is pending", "John Smith lives in Paris ."]
    one_pass = TrainedClassifier("cards", model.path, served, head_name="cards")
    own_pass = TrainedClassifier("cards", model.path, tiny_encoder, head_name="cards")
    assert one_pass.shared_pass and not own_pass.shared_pass
    assert one_pass.model.name == "mt/cards" and one_pass.model.version == model.version
    ids = served.tokenize(texts)
    shared_scores = one_pass.scores(HeadInput(served.encode_ids(ids).embeddings, ids, texts))
    unrelated = tiny_encoder.encode_ids(ids).embeddings  # ignored by an own-pass head
    own_scores = own_pass.scores(HeadInput(unrelated, ids, texts))
    np.testing.assert_allclose(shared_scores, own_scores, atol=1e-5)

    detector = TokenHeadDetector(model.path, served, "people")
    assert detector.shared_pass and detector.labels[-1] == "I-PER"
    tokenized = served.tokenize_with_offsets(texts)
    states = served.encode_ids(tokenized.ids, token_states=True).token_states or []
    spans = detector.detect(DetectorInput(texts, tokenized, states))
    own = TokenHeadDetector(model.path, tiny_encoder, "people")
    assert not own.shared_pass
    assert own.detect(DetectorInput(texts, tokenized, [])) == spans


def test_heads_are_named_and_checked(model: ModelInfo, tiny_encoder: Encoder) -> None:
    with pytest.raises(ModelLoadError, match=r"2 classifier heads \(people, orgs, cards, moods\)"):
        TrainedClassifier("x", model.path, tiny_encoder)
    with pytest.raises(ModelLoadError, match="no head 'nope'"):
        TrainedClassifier("x", model.path, tiny_encoder, head_name="nope")
    with pytest.raises(ModelLoadError, match="is a 'ner' head, not a classifier head"):
        TrainedClassifier("x", model.path, tiny_encoder, head_name="people")
    with pytest.raises(ModelLoadError, match="ner_head 'people' given without a ner_model"):
        load_detector("", None, tiny_encoder, model.path.parent, "people")
    spec = {"model": str(model.path), "head": "moods", "threshold": 0.5}
    classifier = load_classifier("moods", spec, tiny_encoder, model.path.parent)
    assert classifier.labels == ["happy", "sad"]


def test_a_head_of_a_single_task_model_is_refused(
    data: dict[str, Path], tmp_path: Path, tiny_encoder_dir: Path, tiny_encoder: Encoder
) -> None:
    from stream_aimass.training.classifier import TrainConfig, train_classifier

    single = train_classifier(
        read_classification_csv(data["cards"]), None, tmp_path / "cards", name="cards",
        encoder_dir=tiny_encoder_dir, encoder_name="tiny",
        config=TrainConfig(epochs=1, dtype="fp32"),
    )  # fmt: skip
    with pytest.raises(ModelLoadError, match="without named heads"):
        TrainedClassifier("x", single.path, tiny_encoder, head_name="cards")


def test_bad_tasks_are_clear_errors(data: dict[str, Path], tiny_encoder_dir: Path) -> None:
    people = read_conll(data["people"])
    config = MultitaskConfig(epochs=1, dtype="fp32")
    for tasks, message in [
        ([], "at least one task"),
        ([NerTask("a", people), NerTask("a", people)], "a given twice"),
        ([NerTask("a b", people)], "task name 'a b'"),
        (
            [NerTask("o", [Sentence(s.tokens, ["O"] * len(s.tokens), s.line) for s in people])],
            "no entities",
        ),
    ]:
        with pytest.raises(DataError, match=message):
            train_multitask(
                tasks, Path("/nonexistent"), name="x", encoder_dir=tiny_encoder_dir,
                encoder_name="tiny", config=config,
            )  # fmt: skip


def test_train_eval_and_use_commands(
    data: dict[str, Path], tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMASS_MODEL_DIR", str(tiny_encoder_dir))
    monkeypatch.setenv("AIMASS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIMASS_DTYPE", "fp32")
    runner = CliRunner()
    out = tmp_path / "data" / "models" / "mt"
    trained = runner.invoke(
        app, ["train", "multitask", "--out", str(out), "--epochs", "1", "--held-aside", "5",
              "--ner", f"people={data['people']},{data['people']}",
              "--classifier", f"cards={data['cards']},{data['cards']}", "--json"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout[trained.stdout.index("{\n") :])
    assert summary["kind"] == "multitask" and set(summary["heads"]) == {"people", "cards"}
    assert summary["held_aside_cosine_to_original"]["texts"] == 5

    monkeypatch.setenv("AIMASS_MODEL_DIR", summary["path"])  # served as the shared encoder
    ner = runner.invoke(
        app, ["eval", "ner", "--model", "mt", "--head", "people", "--data", str(data["people"]),
              "--json"],
    )  # fmt: skip
    assert ner.exit_code == 0, ner.output
    report = json.loads(ner.stdout[ner.stdout.index("{\n") :])
    assert report["model"]["name"] == "mt/people" and report["gold_entities"] == 5 * 5
    cls = runner.invoke(
        app, ["eval", "classifier", "--model", "mt", "--data", str(data["cards"]), "--json"],
    )  # fmt: skip
    assert cls.exit_code == 0, cls.output  # the only classifier head needs no --head
    assert json.loads(cls.stdout[cls.stdout.index("{\n") :])["model"]["name"] == "mt/cards"
    wrong = runner.invoke(
        app, ["eval", "classifier", "--model", "mt", "--head", "people", "--data",
              str(data["cards"])],
    )  # fmt: skip
    assert wrong.exit_code == 2 and "not a classifier head" in wrong.output

    listed = runner.invoke(app, ["models", "list", "--json"])
    (entry,) = json.loads(listed.stdout[listed.stdout.index("{\n") :])["models"]
    assert entry["kind"] == "multitask"
    assert {h: v["kind"] for h, v in entry["heads"].items()} == {
        "people": "ner", "cards": "classifier",
    }  # fmt: skip
    assert "f1" in entry["heads"]["people"] and "accuracy" in entry["heads"]["cards"]

    used = runner.invoke(app, ["models", "use", "cards", "mt", "--head", "cards"])
    assert used.exit_code == 0, used.output
    specs = json.loads((tmp_path / "data" / "classifiers.json").read_text())
    assert specs == {"cards": {"model": summary["path"], "head": "cards"}}

    bad = runner.invoke(app, ["train", "multitask", "--out", str(out), "--ner", "people"])
    assert bad.exit_code == 2 and "NAME=TRAIN[,DEV]" in bad.output


def test_the_worker_serves_every_head_from_one_pass(model: ModelInfo, tmp_path: Path) -> None:
    from aiokafka import TopicPartition

    from stream_aimass.enrich.enricher import DocumentEnricher, Pending
    from stream_aimass.records import Document, Source

    settings = Settings(
        data_dir=tmp_path, model_dir=model.path, dtype="fp32", ner_model=str(model.path),
        ner_head="people", classifiers={"cards": {"model": str(model.path), "head": "cards"}},
        labels={"money": "payments and cards", "travel": "trips"},
    )  # fmt: skip
    enricher = DocumentEnricher.from_settings(settings)
    assert enricher.entities is not None and enricher.entities.detector.shared_pass
    assert enricher.encoder.version == model.meta["encoder"]["version"]
    assert all(c.shared_pass for c in enricher.classifiers.classifiers)
    text = "John Smith lost his card in Paris."
    tokenized = enricher.tokenize([text])
    tp = TopicPartition("aimass.documents", 0)
    item = Pending(
        Document("d1", "acme", 0, text, Source(tp.topic, 0, 0, 0)), tokenized.ids[0], tp, b"",
        None, tokenized.offsets[0], tokenized.word_ids[0],
    )  # fmt: skip
    (record,) = json.loads(enricher.enrich([item], 0.0)[0])["classifications"]
    assert record["classifier"] == "cards" and record["model"]["name"] == "mt/cards"
    assert set(record["labels"]) == {"card", "transfer"}
