"""Decoding BIO tags into spans, and aligning word-piece tags with words and characters."""

from __future__ import annotations

from typing import Any

import pytest

from stream_aimass.entities.spans import bio_spans, char_spans, word_labels_to_piece_labels
from stream_aimass.settings import default_model_dir

# bio_spans


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        ("", []),
        ("O O O", []),
        ("B-PER I-PER O B-LOC", [(0, 2, "PER"), (3, 4, "LOC")]),
        ("B-PER B-PER I-PER", [(0, 1, "PER"), (1, 3, "PER")]),
        ("O B-ORG I-ORG I-ORG", [(1, 4, "ORG")]),
        # broken sequences never give broken spans
        ("O I-PER I-PER O", [(1, 3, "PER")]),
        ("B-PER I-LOC", [(0, 1, "PER"), (1, 2, "LOC")]),
        ("B-PER I-LOC I-LOC I-PER", [(0, 1, "PER"), (1, 3, "LOC"), (3, 4, "PER")]),
        ("I-X I-X O", [(0, 2, "X")]),
        ("O I-MISC O", [(1, 2, "MISC")]),
        ("I-MISC", [(0, 1, "MISC")]),
        ("I-PER B-PER", [(0, 1, "PER"), (1, 2, "PER")]),
        ("B-creative-work I-creative-work", [(0, 2, "creative-work")]),
    ],
)
def test_bio_spans(tags: str, spans: list[tuple[int, int, str]]) -> None:
    assert bio_spans(tags.split()) == spans


@pytest.mark.parametrize("bad", ["I-", "B-", "E-PER", "PER", ""])
def test_bio_spans_rejects_tags_that_are_not_bio(bad: str) -> None:
    with pytest.raises(ValueError, match="at position 1 is not O, B-TYPE or I-TYPE"):
        bio_spans(["O", bad])


# char_spans over hand-made pieces

# "Hello New York!" pieces: [CLS] hello new york ! [SEP]
TEXT = "Hello New York!"
OFFSETS = [(0, 0), (0, 5), (6, 9), (10, 14), (14, 15), (0, 0)]


def test_char_spans_of_consecutive_pieces() -> None:
    labels = ["O", "O", "B-LOC", "I-LOC", "O", "O"]
    assert char_spans(TEXT, OFFSETS, labels) == [(6, 14, "LOC")]
    assert TEXT[6:14] == "New York"


def test_special_tokens_are_skipped_whatever_their_label() -> None:
    labels = ["B-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC"]
    assert char_spans(TEXT, OFFSETS, labels) == [(10, 15, "LOC")]


def test_a_special_token_between_segments_ends_an_entity() -> None:
    text = "York York"
    offsets = [(0, 0), (0, 4), (0, 0), (5, 9), (0, 0)]
    labels = ["O", "B-LOC", "I-LOC", "I-LOC", "O"]
    assert char_spans(text, offsets, labels) == [(0, 4, "LOC"), (5, 9, "LOC")]


def test_spans_are_trimmed_of_whitespace() -> None:
    # sentencepiece-style offsets that take in the space before a word
    text = "I met  Ada Lovelace \n today"
    offsets = [(0, 1), (1, 5), (5, 10), (10, 19), (19, 21), (21, 27)]
    labels = ["O", "O", "B-PER", "I-PER", "I-PER", "O"]
    assert char_spans(text, offsets, labels) == [(7, 19, "PER")]
    assert text[7:19] == "Ada Lovelace"


def test_a_span_of_only_whitespace_is_dropped() -> None:
    assert char_spans("a   b", [(0, 1), (1, 4), (4, 5)], ["O", "B-X", "O"]) == []


def test_overlapping_offsets_give_non_overlapping_sorted_spans() -> None:
    text = "abcdef"
    offsets = [(3, 6), (0, 4), (4, 6)]
    labels = ["B-X", "B-Y", "B-Z"]
    assert char_spans(text, offsets, labels) == [(0, 4, "Y"), (4, 6, "Z")]


def test_char_spans_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="2 offsets but 1 labels"):
        char_spans("ab", [(0, 1), (1, 2)], ["O"])
    with pytest.raises(ValueError, match="1 word ids but 2 labels"):
        char_spans("ab", [(0, 1), (1, 2)], ["O", "O"], word_ids=[0])
    with pytest.raises(ValueError, match=r"offset 1 \(1, 3\) is not a range in the text of 2"):
        char_spans("ab", [(0, 1), (1, 3)], ["O", "O"])
    with pytest.raises(ValueError, match="is not O, B-TYPE or I-TYPE"):
        char_spans("ab", [(0, 1), (1, 2)], ["O", "PER"])


# char_spans with word ids

# "Arnold Schwarzenegger visited" pieces: [CLS] arnold schwarz ##ene ##gger visited [SEP]
WORDS_TEXT = "Arnold Schwarzenegger visited"
WORDS_OFFSETS = [(0, 0), (0, 6), (7, 14), (14, 17), (17, 21), (22, 29), (0, 0)]
WORD_IDS: list[int | None] = [None, 0, 1, 1, 1, 2, None]


@pytest.mark.parametrize(
    ("labels", "spans"),
    [
        # the later pieces' tags are ignored: a word is tagged by its first piece
        (["O", "B-PER", "I-PER", "O", "O", "O", "O"], [(0, 21, "PER")]),
        (["O", "O", "B-PER", "O", "B-LOC", "O", "O"], [(7, 21, "PER")]),
        (["O", "O", "O", "B-PER", "I-PER", "O", "O"], []),
        (["O", "B-PER", "B-PER", "I-LOC", "O", "O", "O"], [(0, 6, "PER"), (7, 21, "PER")]),
        (["O", "O", "I-PER", "O", "O", "I-PER", "O"], [(7, 29, "PER")]),
    ],
)
def test_with_word_ids_spans_cover_whole_words(
    labels: list[str], spans: list[tuple[int, int, str]]
) -> None:
    assert char_spans(WORDS_TEXT, WORDS_OFFSETS, labels, word_ids=WORD_IDS) == spans


def test_without_word_ids_pieces_are_decoded_as_they_are() -> None:
    labels = ["O", "B-PER", "I-PER", "O", "O", "O", "O"]
    assert char_spans(WORDS_TEXT, WORDS_OFFSETS, labels) == [(0, 14, "PER")]


# word_labels_to_piece_labels


def test_first_piece_gets_the_word_tag_and_the_rest_are_ignored() -> None:
    word_tags = ["B-PER", "I-PER", "O"]
    assert word_labels_to_piece_labels(word_tags, WORD_IDS) == [
        None,
        "B-PER",
        "I-PER",
        None,
        None,
        "O",
        None,
    ]


def test_label_all_pieces_continues_the_entity() -> None:
    assert word_labels_to_piece_labels(["O", "B-PER", "O"], WORD_IDS, label_all_pieces=True) == [
        None,
        "O",
        "B-PER",
        "I-PER",
        "I-PER",
        "O",
        None,
    ]
    assert word_labels_to_piece_labels(["B-X", "I-X", "O"], WORD_IDS, True) == [
        None,
        "B-X",
        "I-X",
        "I-X",
        "I-X",
        "O",
        None,
    ]
    assert word_labels_to_piece_labels(["O", "O", "O"], WORD_IDS, True) == [
        None,
        "O",
        "O",
        "O",
        "O",
        "O",
        None,
    ]


def test_a_word_id_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="word id 2 of piece 2 is out of range for 2 words"):
        word_labels_to_piece_labels(["O", "O"], [None, 0, 2])


# the bundled MiniLM tokenizer (BERT uncased word pieces)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(str(default_model_dir()))
    assert loaded.is_fast
    return loaded


def test_a_multi_piece_word_is_covered_whole(tokenizer: Any) -> None:
    text = "Yesterday Arnold Schwarzenegger visited Kraków."
    encoding = tokenizer(text, return_offsets_mapping=True)
    pieces = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    assert pieces[2:6] == ["arnold", "schwarz", "##ene", "##gger"]
    # a model that tags only the first piece of each word, and Kraków (accent stripped)
    labels = ["O"] * len(pieces)
    labels[pieces.index("arnold")] = "B-PER"
    labels[pieces.index("schwarz")] = "I-PER"
    labels[pieces.index("krakow")] = "B-LOC"
    offsets = [tuple(offset) for offset in encoding["offset_mapping"]]

    spans = char_spans(text, offsets, labels, word_ids=encoding.word_ids())
    assert [(text[start:end], kind) for start, end, kind in spans] == [
        ("Arnold Schwarzenegger", "PER"),
        ("Kraków", "LOC"),
    ]
    # without word ids the half-tagged word is cut after its first piece
    assert [text[start:end] for start, end, _ in char_spans(text, offsets, labels)] == [
        "Arnold Schwarz",
        "Kraków",
    ]


def test_training_labels_of_pre_split_words_round_trip(tokenizer: Any) -> None:
    words = ["Arnold", "Schwarzenegger", "visited", "Kraków", "."]
    word_tags = ["B-PER", "I-PER", "O", "B-LOC", "O"]
    split = tokenizer(words, is_split_into_words=True, return_offsets_mapping=True)
    word_ids = split.word_ids()
    piece_labels = word_labels_to_piece_labels(word_tags, word_ids)
    pieces = tokenizer.convert_ids_to_tokens(split["input_ids"])
    assert list(zip(pieces, piece_labels, strict=True)) == [
        ("[CLS]", None),
        ("arnold", "B-PER"),
        ("schwarz", "I-PER"),
        ("##ene", None),
        ("##gger", None),
        ("visited", "O"),
        ("krakow", "B-LOC"),
        (".", "O"),
        ("[SEP]", None),
    ]
    all_pieces = word_labels_to_piece_labels(word_tags, word_ids, label_all_pieces=True)
    assert all_pieces[3:5] == ["I-PER", "I-PER"]

    # the same words as one text give the same pieces, and decoding recovers the entities
    text = "Arnold Schwarzenegger visited Kraków ."
    joined = tokenizer(text, return_offsets_mapping=True)
    assert joined["input_ids"] == split["input_ids"]
    assert joined.word_ids() == word_ids
    predicted = [label or "O" for label in piece_labels]
    offsets = [tuple(offset) for offset in joined["offset_mapping"]]
    spans = char_spans(text, offsets, predicted, word_ids=joined.word_ids())
    assert spans == [(0, 21, "PER"), (30, 36, "LOC")]
    assert [text[start:end] for start, end, _ in spans] == ["Arnold Schwarzenegger", "Kraków"]
