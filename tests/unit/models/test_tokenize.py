"""The encoder tokenizes with the Rust tokenizer straight: the same pieces, offsets and word
ids as transformers' tokenizer call, for any text (truncation included)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

TEXTS = st.lists(
    st.text(
        st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=400
    ) | st.sampled_from(["Apple opened an office in Zürich.", "東京 ✓ café", "a " * 600]),
    min_size=1,
    max_size=6,
)  # fmt: skip


def _reference(encoder: Any, texts: list[str]) -> tuple[Any, Any, Any]:
    out = encoder.tokenizer(
        texts,
        truncation=True,
        max_length=encoder.max_tokens,
        add_special_tokens=True,
        return_offsets_mapping=True,
    )
    offsets = [[(int(a), int(b)) for a, b in row] for row in out["offset_mapping"]]
    return out["input_ids"], offsets, [out.word_ids(i) for i in range(len(texts))]


@settings(max_examples=150, deadline=None)
@given(texts=TEXTS)
def test_the_rust_path_gives_what_transformers_gives(tiny_encoder: Any, texts: list[str]) -> None:
    assert tiny_encoder._rust is not None
    ids, offsets, word_ids = _reference(tiny_encoder, texts)
    got = tiny_encoder.tokenize_with_offsets(texts)
    assert got.ids == ids
    assert got.offsets == offsets
    assert got.word_ids == word_ids
    assert tiny_encoder.tokenize(texts) == ids
    assert all(len(row) <= tiny_encoder.max_tokens for row in got.ids)
