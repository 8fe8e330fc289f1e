"""Mention detection backends: dictionary matching and local HF token-classification dirs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stream_aimass.entities.aliases import AliasIndex
from stream_aimass.entities.kb import load_kb
from stream_aimass.entities.ner import (
    DetectorInput,
    DictionaryDetector,
    HFTokenClassifier,
    load_detector,
)
from stream_aimass.models.encoder import Encoder, ModelLoadError


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path) -> Path:
    """A tiny BertForTokenClassification saved as a standard HF directory."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    path = tmp_path_factory.mktemp("hf-ner")
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )  # fmt: skip
    torch.manual_seed(0)
    BertForTokenClassification(config).save_pretrained(str(path), safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (tiny_encoder_dir / name).exists():
            shutil.copy(tiny_encoder_dir / name, path / name)
    return path


def test_a_local_hf_token_classifier_loads_and_runs_its_own_pass(
    hf_checkpoint: Path, tiny_encoder: Encoder, tmp_path: Path
) -> None:
    detector = load_detector(str(hf_checkpoint), AliasIndex(load_kb()), tiny_encoder, tmp_path)
    assert isinstance(detector, HFTokenClassifier)
    assert not detector.shared_pass and detector.labels[1] == "B-PER"
    texts = ["Angela Merkel visited Washington.", "nothing here"]
    tokenized = tiny_encoder.tokenize_with_offsets(texts)
    spans = detector.detect(DetectorInput(texts, tokenized, []))
    assert len(spans) == 2
    for text, doc_spans in zip(texts, spans, strict=True):
        for span in doc_spans:
            assert span.label in {"PER", "LOC"} and 0 <= span.start < span.end <= len(text)
            assert text[span.start : span.end].strip() == text[span.start : span.end]
    tags = detector.predict_words([["Angela", "Merkel"], ["in", "Paris", "."]], tiny_encoder)
    assert [len(t) for t in tags] == [2, 3]


def test_pickle_checkpoints_and_non_classifiers_are_refused(
    hf_checkpoint: Path, tiny_encoder: Encoder, tmp_path: Path
) -> None:
    bad = tmp_path / "pickled"
    shutil.copytree(hf_checkpoint, bad)
    (bad / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_detector(str(bad), AliasIndex(load_kb()), tiny_encoder, tmp_path)
    plain = tmp_path / "plain"
    shutil.copytree(hf_checkpoint, plain)
    config = (plain / "config.json").read_text()
    (plain / "config.json").write_text(config.replace('"id2label"', '"_unused"'))
    with pytest.raises(ModelLoadError, match="id2label"):
        load_detector(str(plain), AliasIndex(load_kb()), tiny_encoder, tmp_path)


def test_no_model_means_dictionary_matching(tiny_encoder: Encoder, tmp_path: Path) -> None:
    detector = load_detector("", AliasIndex(load_kb()), tiny_encoder, tmp_path)
    assert isinstance(detector, DictionaryDetector)
    assert detector.model.name == "dictionary:demo-kb"
    text = "Shares of Apple fell in Tokyo."
    (spans,) = detector.detect(
        DetectorInput([text], tiny_encoder.tokenize_with_offsets([text]), [])
    )
    assert [text[s.start : s.end] for s in spans] == ["Apple", "Tokyo"]
