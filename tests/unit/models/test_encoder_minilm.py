"""Real behaviour of the bundled all-MiniLM-L6-v2 encoder and the zero-shot head."""

from __future__ import annotations

import numpy as np
import pytest

from stream_aimass.models.classify import HeadInput, ZeroShotClassifier
from stream_aimass.models.encoder import Encoder, ModelLoadError, cpu_has_native_bf16
from stream_aimass.settings import DEFAULT_LABELS, default_model_dir

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(default_model_dir(), device="cpu", dtype="fp32")


def test_paraphrases_are_close_and_unrelated_texts_are_not(encoder: Encoder) -> None:
    a, b, c = encoder.encode_texts(
        [
            "The central bank raised interest rates on Tuesday.",
            "On Tuesday the central bank increased interest rates.",
            "My cat likes to sleep on the warm windowsill all afternoon.",
        ]
    )
    assert float(a @ b) > 0.85
    assert float(a @ c) < 0.2
    assert np.allclose(np.linalg.norm([a, b, c], axis=1), 1.0, atol=1e-4)


def test_zero_shot_puts_an_obvious_sports_text_in_sports(encoder: Encoder) -> None:
    classifier = ZeroShotClassifier(encoder, DEFAULT_LABELS)
    emb = encoder.encode_texts(
        ["The striker scored twice in the second half as the home team won the cup final 3-1."]
    )
    scores = classifier.scores(HeadInput(emb, [], []))[0]
    assert classifier.labels[int(np.argmax(scores))] == "sports"


def test_batched_and_single_encodings_agree(encoder: Encoder) -> None:
    texts = ["short one", "a noticeably longer sentence that needs padding in a batch of two"]
    together = encoder.encode_texts(texts)
    alone = np.vstack([encoder.encode_texts([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_truncation_bounds_tokens() -> None:
    small = Encoder(default_model_dir(), device="cpu", dtype="fp32", max_tokens=16)
    ids = small.tokenize(["word " * 500])
    assert len(ids[0]) == 16


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_stays_close_to_fp32(encoder: Encoder) -> None:
    bf16 = Encoder(default_model_dir(), device="cpu", dtype="bf16")
    texts = [f"Document number {i} about markets, matches and medicine." for i in range(16)]
    cos = np.sum(encoder.encode_texts(texts) * bf16.encode_texts(texts), axis=1)
    assert float(cos.min()) > 0.999


def test_refuses_directories_without_safetensors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="safetensors"):
        Encoder(tmp_path)
