"""Extractive summaries from the one encoder pass (the real MiniLM encoder): top sentences by
centrality, redundancy removed, document order, offsets into the text; short documents pass
through; sentences the encoder never saw are never picked."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from stream_aimass.models.encoder import Encoder
from stream_aimass.settings import Settings
from stream_aimass.summaries.extractive import (
    ExtractiveSummarizer,
    Summary,
    lead,
    mmr,
    sentence_vectors,
)
from stream_aimass.summaries.sentences import split_sentences

ARTICLE = (
    "The harbour town of Kelso Bay will build a seawall after two winters of flooding. "
    "The council approved the 14 million pound project on Tuesday by nine votes to two. "
    "Work starts in March and should finish before the storms of the following winter. "
    "Local bakers said the floods had closed their shops for weeks at a time. "
    "The seawall will be paid for by a regional flood fund and a small rise in parking fees. "
    "Opponents argued that the money should go to moving homes away from the shore. "
    "A public meeting on the design is planned for next month at the town hall."
)


@pytest.fixture(scope="module")
def minilm() -> Encoder:
    return Encoder(Settings().resolved_model_dir, device="cpu", dtype="fp32", max_tokens=256)


def summarize(encoder: Encoder, text: str, summarizer: ExtractiveSummarizer) -> Summary:
    tok = encoder.tokenize_with_offsets([text])
    encoded = encoder.encode_ids(tok.ids, token_states=True)
    assert encoded.token_states is not None
    return summarizer.summarize(text, tok.offsets[0], encoded.token_states[0],
                                encoded.embeddings[0])  # fmt: skip


def picked(summary: Summary) -> list[int]:
    return [p.index for p in summary.sentences]


def test_a_summary_is_k_sentences_of_the_text_in_document_order(minilm: Encoder) -> None:
    summary = summarize(minilm, ARTICLE, ExtractiveSummarizer(3))
    spans = split_sentences(ARTICLE)
    assert len(summary.sentences) == 3 and summary.sentences_total == len(spans) == 7
    assert picked(summary) == sorted(picked(summary))
    for p in summary.sentences:
        assert (p.start, p.end) == spans[p.index]
    assert summary.text == " ".join(ARTICLE[p.start : p.end] for p in summary.sentences)
    assert not summary.passthrough
    as_dict = summary.to_dict()
    assert as_dict["method"] == "extractive" and len(as_dict["sentences"]) == 3


def test_a_repeated_sentence_is_picked_once(minilm: Encoder) -> None:
    """MMR: the second copy of a central sentence adds nothing; relevance alone takes both."""
    key = "The council approved the 14 million pound seawall for Kelso Bay on Tuesday."
    text = f"{key} {ARTICLE} {key}"
    relevance_only = summarize(minilm, text, ExtractiveSummarizer(3, mmr_weight=1.0,
                                                                 position_weight=0.0))  # fmt: skip
    texts = [text[p.start : p.end] for p in relevance_only.sentences]
    assert texts.count(key) == 2  # the control: without redundancy removal both copies win
    summary = summarize(minilm, text, ExtractiveSummarizer(3, mmr_weight=0.6,
                                                          position_weight=0.0))  # fmt: skip
    assert [text[p.start : p.end] for p in summary.sentences].count(key) == 1


def test_a_document_no_longer_than_the_summary_is_its_own_summary(minilm: Encoder) -> None:
    text = "  Two sentences only.\n\nThe second one is here.\n"
    summary = summarize(minilm, text, ExtractiveSummarizer(3))
    assert summary.passthrough and summary.sentences_total == 2
    assert summary.text == "Two sentences only.\n\nThe second one is here."  # as it is
    assert picked(summary) == [0, 1]


def test_blank_text_gives_an_empty_summary(minilm: Encoder) -> None:
    summary = summarize(minilm, "   ", ExtractiveSummarizer(3))
    assert summary.text == "" and summary.sentences == () and summary.passthrough


def test_sentences_past_the_token_window_are_never_picked() -> None:
    short = Encoder(Settings().resolved_model_dir, device="cpu", dtype="fp32", max_tokens=40)
    summary = summarize(short, ARTICLE, ExtractiveSummarizer(3, position_weight=0.0))
    tok = short.tokenize_with_offsets([ARTICLE])
    seen_until = max(e for _, e in tok.offsets[0])
    assert all(p.start < seen_until for p in summary.sentences)
    assert len(summary.sentences) <= 3 and summary.sentences_total == 7


def test_a_strong_position_bonus_gives_the_lead(minilm: Encoder) -> None:
    summary = summarize(minilm, ARTICLE, ExtractiveSummarizer(3, position_weight=1.0))
    assert summary.text == lead(ARTICLE, 3)


def test_sentence_vectors_pool_each_sentences_own_pieces() -> None:
    spans = [(0, 10), (11, 20), (21, 30)]
    # [CLS], two pieces in sentence 0, one in 1, none in 2, [SEP]
    offsets: Sequence[tuple[int, int]] = [(0, 0), (0, 4), (5, 10), (11, 15), (0, 0)]
    states = np.array([[9, 9], [1, 0], [3, 0], [0, 2], [9, 9]], dtype=np.float32)
    vectors, covered = sentence_vectors(spans, offsets, states)
    assert covered.tolist() == [True, True, False]
    np.testing.assert_allclose(vectors[0], [1.0, 0.0])
    np.testing.assert_allclose(vectors[1], [0.0, 1.0])
    np.testing.assert_allclose(vectors[2], [0.0, 0.0])


def test_mmr_trades_relevance_against_redundancy() -> None:
    vectors = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    relevance = np.array([0.9, 0.89, 0.5], dtype=np.float32)
    candidates = np.arange(3)
    assert mmr(relevance, vectors, candidates, 2, weight=1.0) == [0, 1]
    assert mmr(relevance, vectors, candidates, 2, weight=0.5) == [0, 2]
    assert mmr(relevance, vectors, np.array([1, 2]), 1, weight=1.0) == [1]


def test_a_summary_needs_a_sentence() -> None:
    with pytest.raises(ValueError, match="at least one sentence"):
        ExtractiveSummarizer(0)
