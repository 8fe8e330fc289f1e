"""Reading CoNLL named-entity files, detecting their tag scheme and converting IOB1 to BIO2."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_aimass.entities.spans import bio_spans
from stream_aimass.training.conll import (
    Sentence,
    detect_scheme,
    entity_types,
    read_conll,
    to_bio2,
)
from stream_aimass.training.data import DataError

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()
NER_DATA = SHARED_DATA / "ner"

needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")


def write(tmp_path: Path, content: str, name: str = "data.conll") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    return path


def sentence(tags: str) -> Sentence:
    split = tags.split()
    return Sentence([f"w{i}" for i in range(len(split))], split, 1)


# reading


def test_space_separated_iob1_with_docstart(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "-DOCSTART- O\n\nThe O\n139th I-ORG\nwas O\n\nFrederick I-PER\nCollier I-PER\n. O\n",
    )
    sentences = read_conll(path)
    assert sentences == [
        Sentence(["The", "139th", "was"], ["O", "I-ORG", "O"], 3, document=0),
        Sentence(["Frederick", "Collier", "."], ["I-PER", "I-PER", "O"], 7, document=0),
    ]
    assert len(sentences[1]) == 3


def test_tab_separated_bio2(tmp_path: Path) -> None:
    path = write(tmp_path, "Empire\tB-location\nState\tI-location\n=\tO\n\nAHFA\tB-group\n")
    assert read_conll(path) == [
        Sentence(["Empire", "State", "="], ["B-location", "I-location", "O"], 1),
        Sentence(["AHFA"], ["B-group"], 5),
    ]


def test_a_tab_separated_token_may_hold_spaces(tmp_path: Path) -> None:
    path = write(tmp_path, "New York\tB-LOC\nwatched\u200bwas\tO\n")
    assert read_conll(path) == [Sentence(["New York", "watched\u200bwas"], ["B-LOC", "O"], 1)]


def test_token_is_the_first_column_and_tag_the_last(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter\tNNP\tI-PER\n",
    )
    assert read_conll(path) == [
        Sentence(["EU", "rejects"], ["B-ORG", "O"], 3, document=0),
        Sentence(["Peter"], ["I-PER"], 6, document=0),
    ]


def test_docstart_without_a_blank_line_still_ends_the_sentence(tmp_path: Path) -> None:
    path = write(tmp_path, "a O\nb B-X\n-DOCSTART-\nc O\n")
    assert read_conll(path) == [
        Sentence(["a", "b"], ["O", "B-X"], 1),  # before any -DOCSTART-: no document
        Sentence(["c"], ["O"], 4, document=0),
    ]


def test_several_blank_lines_and_whitespace_lines_are_one_boundary(tmp_path: Path) -> None:
    path = write(tmp_path, "\n\na O\n\n  \n\t\n\nb O\n\n\n")
    assert read_conll(path) == [Sentence(["a"], ["O"], 3), Sentence(["b"], ["O"], 8)]


def test_crlf_bom_and_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "windows.conll"
    path.write_bytes("\ufeffZürich B-LOC\r\nis O\r\n\r\nnice\tO".encode())
    assert read_conll(path) == [
        Sentence(["Zürich", "is"], ["B-LOC", "O"], 1),
        Sentence(["nice"], ["O"], 4),
    ]


def test_unicode_line_separators_inside_a_token_do_not_split_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "a\u2028b\tO\nc\x85d\tB-X\n")
    assert read_conll(path) == [Sentence(["a\u2028b", "c\x85d"], ["O", "B-X"], 1)]


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.conll does not exist"):
        read_conll(tmp_path / "missing.conll")
    with pytest.raises(DataError, match="is a directory"):
        read_conll(tmp_path)


@pytest.mark.parametrize("content", ["", "\n\n", "\ufeff\r\n", "-DOCSTART- O\n\n"])
def test_a_file_without_sentences_is_a_data_error(tmp_path: Path, content: str) -> None:
    with pytest.raises(DataError, match="has no sentences"):
        read_conll(write(tmp_path, content))


def test_a_line_with_one_column_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a O\n\nb O\nlonely\nc O\n")
    with pytest.raises(DataError, match=r"data\.conll, line 4: expected a token and a tag") as info:
        read_conll(path)
    assert "'lonely'" in str(info.value)


def test_a_tab_line_with_an_empty_token_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="line 2: expected a token and a tag"):
        read_conll(write(tmp_path, "a\tO\n\tO\n"))


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("E-PER", "IOBES/BILOU; only IOB1 and BIO2"),
        ("S-LOC", "IOBES/BILOU; only IOB1 and BIO2"),
        ("U-LOC", "IOBES/BILOU; only IOB1 and BIO2"),
        ("PER", "is not O, B-TYPE or I-TYPE; only IOB1 and BIO2"),
        ("o", "is not O, B-TYPE or I-TYPE"),
        ("B-", "has no entity type"),
        ("I-", "has no entity type"),
    ],
)
def test_an_unsupported_tag_names_the_file_and_line(tmp_path: Path, tag: str, message: str) -> None:
    path = write(tmp_path, f"a O\r\n\r\nb {tag}\r\n")
    with pytest.raises(DataError, match=rf"data\.conll, line 3: tag '{tag}' .*{message}"):
        read_conll(path)


def test_text_that_is_not_utf8_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.conll"
    path.write_bytes("Zürich B-LOC\n".encode("latin-1"))
    with pytest.raises(DataError, match="is not UTF-8"):
        read_conll(path)


# schemes


@pytest.mark.parametrize(
    ("tags", "scheme"),
    [
        ("O O O", "BIO2"),
        ("B-PER I-PER O B-LOC", "BIO2"),
        ("B-PER B-PER I-PER", "BIO2"),
        ("I-PER I-PER O", "IOB1"),
        ("O I-PER", "IOB1"),
        ("B-PER I-LOC", "IOB1"),
        ("I-PER B-PER", "IOB1"),
    ],
)
def test_detect_scheme(tags: str, scheme: str) -> None:
    assert detect_scheme([sentence("B-X O"), sentence(tags)]) == scheme


def test_detect_scheme_of_no_sentences_is_bio2() -> None:
    assert detect_scheme([]) == "BIO2"


def test_scheme_detection_does_not_carry_across_sentences() -> None:
    # an I-PER at the start of a sentence begins an entity even after a PER-ending sentence
    assert detect_scheme([sentence("B-PER"), sentence("I-PER")]) == "IOB1"


@pytest.mark.parametrize(
    ("iob1", "bio2"),
    [
        ("I-PER I-PER O I-LOC", "B-PER I-PER O B-LOC"),
        ("I-PER B-PER I-PER", "B-PER B-PER I-PER"),
        ("I-PER I-LOC I-LOC", "B-PER B-LOC I-LOC"),
        ("O I-MISC I-MISC I-MISC O", "O B-MISC I-MISC I-MISC O"),
        ("", ""),
    ],
)
def test_to_bio2(iob1: str, bio2: str) -> None:
    converted = to_bio2(iob1.split())
    assert converted == bio2.split()
    assert to_bio2(converted) == converted
    # the spans are the same either way
    assert bio_spans(converted) == bio_spans(iob1.split())


def test_to_bio2_rejects_unknown_tags() -> None:
    with pytest.raises(ValueError, match="IOBES"):
        to_bio2(["S-PER"])


def test_entity_types_are_sorted_and_unique() -> None:
    sentences = [sentence("B-PER I-PER O"), sentence("I-LOC B-ORG"), sentence("O")]
    assert entity_types(sentences) == ["LOC", "ORG", "PER"]
    assert entity_types([sentence("O O")]) == []


def test_sentence_needs_one_tag_per_token() -> None:
    with pytest.raises(ValueError, match="2 tokens but 1 tags"):
        Sentence(["a", "b"], ["O"], 1)


# the shared datasets


def entity_count(sentences: list[Sentence]) -> int:
    return sum(len(bio_spans(to_bio2(s.tags))) for s in sentences)


@needs_shared_data
@pytest.mark.parametrize("split", ["train", "dev"])
def test_wikigold_is_space_separated_iob1(split: str) -> None:
    sentences = read_conll(NER_DATA / "wikigold" / f"{split}.conll")
    assert detect_scheme(sentences) == "IOB1"
    assert entity_types(sentences) == ["LOC", "MISC", "ORG", "PER"]
    assert all(s.tokens[0] != "-DOCSTART-" for s in sentences)
    # line 1 is "-DOCSTART- O", line 2 blank
    assert sentences[0].line == 3
    assert sentences[0].tokens[0] == "The"
    assert detect_scheme([Sentence(s.tokens, to_bio2(s.tags), s.line) for s in sentences]) == (
        "BIO2"
    )
    assert entity_count(sentences) > 100
    if split == "train":
        assert len(sentences) > 1000


@needs_shared_data
@pytest.mark.parametrize("split", ["train", "dev"])
def test_wnut17_is_tab_separated_bio2(split: str) -> None:
    sentences = read_conll(NER_DATA / "wnut17" / f"{split}.conll")
    assert detect_scheme(sentences) == "BIO2"
    assert entity_types(sentences) == [
        "corporation",
        "creative-work",
        "group",
        "location",
        "person",
        "product",
    ]
    assert all(to_bio2(s.tags) == s.tags for s in sentences)
    assert len(sentences) > 1000
    assert entity_count(sentences) > 500
