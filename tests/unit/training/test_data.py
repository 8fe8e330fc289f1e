"""Reading, checking, splitting and writing labelled CSV files."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from stream_aimass.training.data import (
    DataError,
    LabelledTexts,
    check_trainable,
    read_classification_csv,
    stratified_split,
    write_classification_csv,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
BANKING77_TRAIN = (
    REPO_ROOT.parent / "shared" / "data" / "classification" / "banking77" / "train.csv"
).resolve()


def write(tmp_path: Path, content: str, name: str = "data.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    return path


def test_quoted_cells_keep_commas_quotes_and_newlines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'text,category\n"Hello, world",greeting\n"line one\nline two",multi\n'
        '"she said ""hi""",quote\n',
    )
    data = read_classification_csv(path)
    assert data.texts == ["Hello, world", "line one\nline two", 'she said "hi"']
    assert data.labels == [("greeting",), ("multi",), ("quote",)]
    assert data.multi_label is False
    assert data.path == path


def test_bom_is_dropped_from_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "text,category\nhéllo,a\nbye,b\n", encoding="utf-8-sig")
    data = read_classification_csv(path)
    assert data.texts == ["héllo", "bye"]


def test_custom_columns_and_extra_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "id,utterance,intent\n1,hi,greet\n2,bye,leave\n")
    data = read_classification_csv(path, text_column="utterance", label_column="intent")
    assert data.texts == ["hi", "bye"]
    assert data.label_names == ["greet", "leave"]


def test_missing_column_lists_the_available_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "utterance,intent\nhi,greet\n")
    with pytest.raises(DataError) as caught:
        read_classification_csv(path)
    message = str(caught.value)
    assert "data.csv" in message
    assert "'text'" in message
    assert "'utterance', 'intent'" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_classification_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize("content", ["", "\n", "\ufeff"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(DataError, match="is empty"):
        read_classification_csv(path)


def test_header_only(tmp_path: Path) -> None:
    path = write(tmp_path, "text,category\n")
    with pytest.raises(DataError, match="header row but no examples"):
        read_classification_csv(path)


@pytest.mark.parametrize(
    ("content", "line", "what"),
    [
        ("text,category\nhi,a\n,b\n", 3, "text"),
        ("text,category\nhi,a\nbye,  \n", 3, "label"),
        # a row spanning two lines shifts the number of every row after it
        ('text,category\n"two\nlines",a\n   ,b\n', 4, "text"),
    ],
)
def test_empty_cell_names_the_line(tmp_path: Path, content: str, line: int, what: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(DataError, match=rf"line {line}: empty .*\({what}\)"):
        read_classification_csv(path)


def test_short_row_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "text,category\nhi,a\nbye\n")
    with pytest.raises(DataError, match="line 3: no 'category' cell"):
        read_classification_csv(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "text,category\ncafé,a\n", encoding="latin-1")
    with pytest.raises(DataError, match="not UTF-8"):
        read_classification_csv(path)


def test_multi_label_cells_are_split_and_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, "text,category\nhi, a | b ,\nbye,c\nboth,a|a|\n")
    data = read_classification_csv(path, multi_label=True)
    assert data.labels == [("a", "b"), ("c",), ("a",)]
    assert data.label_names == ["a", "b", "c"]


def test_single_label_cell_with_separator_is_one_label(tmp_path: Path) -> None:
    path = write(tmp_path, "text,category\nhi,a|b\n")
    assert read_classification_csv(path).labels == [("a|b",)]


def test_custom_separator(tmp_path: Path) -> None:
    path = write(tmp_path, "text,category\nhi,a;b\n")
    assert read_classification_csv(path, multi_label=True, separator=";").labels == [("a", "b")]


def test_data_hash_is_the_file_sha256_or_a_content_hash(tmp_path: Path) -> None:
    path = write(tmp_path, "text,category\nhi,a\n")
    data = read_classification_csv(path)
    assert data.data_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    in_memory = LabelledTexts(["hi"], [("a",)], multi_label=False, path=None)
    changed = LabelledTexts(["hi"], [("b",)], multi_label=False, path=None)
    assert len(in_memory.data_hash) == 64
    assert in_memory.data_hash == LabelledTexts(["hi"], [("a",)], False, None).data_hash
    assert in_memory.data_hash != changed.data_hash


def test_check_trainable_names_every_rare_label() -> None:
    data = LabelledTexts(
        ["a1", "a2", "b1", "c1"], [("a",), ("a",), ("b",), ("c",)], multi_label=False
    )
    with pytest.raises(DataError) as caught:
        check_trainable(data)
    message = str(caught.value)
    assert "label 'b' has 1 example; each label needs at least 2" in message
    assert "label 'c' has 1 example; each label needs at least 2" in message
    assert "'a'" not in message
    check_trainable(data, min_examples=1)


def test_check_trainable_single_label_needs_two_labels() -> None:
    data = LabelledTexts(["x", "y"], [("only",), ("only",)], multi_label=False)
    with pytest.raises(DataError, match="only one label \\('only'\\)"):
        check_trainable(data)
    check_trainable(LabelledTexts(["x", "y"], [("only",), ("only",)], multi_label=True))


def test_check_trainable_single_example_of_a_single_label() -> None:
    data = LabelledTexts(["x"], [("a",)], multi_label=False)
    with pytest.raises(DataError) as caught:
        check_trainable(data)
    assert "label 'a' has 1 example" in str(caught.value)
    assert "only one label" in str(caught.value)


def test_check_trainable_counts_every_label_of_multi_label_rows() -> None:
    data = LabelledTexts(["x", "y"], [("a", "b"), ("a", "b")], multi_label=True)
    check_trainable(data)
    with pytest.raises(DataError, match="label 'b' has 2 examples; each label needs at least 3"):
        check_trainable(data, min_examples=3)


def make_single(counts: dict[str, int]) -> LabelledTexts:
    texts: list[str] = []
    labels: list[tuple[str, ...]] = []
    for label, count in counts.items():
        for i in range(count):
            texts.append(f"{label} {i}")
            labels.append((label,))
    return LabelledTexts(texts, labels, multi_label=False)


def test_split_is_deterministic_and_stratified() -> None:
    data = make_single({"big": 50, "mid": 20, "small": 2, "single": 1})
    train, dev = stratified_split(data, 0.2, seed=7)
    again_train, again_dev = stratified_split(data, 0.2, seed=7)
    assert (train.texts, dev.texts) == (again_train.texts, again_dev.texts)
    assert stratified_split(data, 0.2, seed=8)[1].texts != dev.texts

    assert sorted(train.texts + dev.texts) == sorted(data.texts)
    assert len(dev) == round(len(data) * 0.2)
    dev_counts = Counter(row[0] for row in dev.labels)
    assert dev_counts["big"] == 10
    assert dev_counts["mid"] == 4
    assert train.label_names == data.label_names
    assert train.path is None and dev.path is None
    # file order is kept inside each part
    assert train.texts == [t for t in data.texts if t in set(train.texts)]


def test_split_keeps_a_train_example_of_every_label_in_tiny_classes() -> None:
    data = make_single({f"label{i}": 2 for i in range(10)})
    train, dev = stratified_split(data, 0.5, seed=0)
    assert train.label_names == data.label_names
    assert len(dev) == 10


def test_multi_label_split_keeps_labels_that_only_appear_second() -> None:
    texts = [f"t{i}" for i in range(8)]
    labels: list[tuple[str, ...]] = [("a",)] * 4 + [("b",)] * 3 + [("b", "rare")]
    data = LabelledTexts(texts, labels, multi_label=True)
    dev_sizes = set()
    for seed in range(20):
        train, dev = stratified_split(data, 0.5, seed)
        assert train.label_names == ["a", "b", "rare"]
        assert dev.multi_label is True
        assert sorted(train.texts + dev.texts) == texts
        dev_sizes.add(len(dev))
    # the seeds that drew the only 'rare' row into dev moved it back to train
    assert dev_sizes == {3, 4}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_fractions(fraction: float) -> None:
    with pytest.raises(ValueError, match="dev_fraction"):
        stratified_split(make_single({"a": 3, "b": 3}), fraction, seed=0)


@pytest.mark.parametrize("multi_label", [False, True])
def test_write_then_read_round_trips(tmp_path: Path, multi_label: bool) -> None:
    texts = ["plain", "comma, inside", 'quote "x"', "new\nline", "crlf\r\nline", "ünï"]
    labels: list[tuple[str, ...]]
    if multi_label:
        labels = [("a", "b"), ("a",), ("c",), ("b", "c"), ("a",), ("with, comma",)]
    else:
        labels = [("a",), ("a|b",), ("c",), ("b",), ("a",), ("with, comma",)]
    data = LabelledTexts(texts, labels, multi_label=multi_label)
    path = write_classification_csv(data, tmp_path / "out" / "rows.csv", "utterance", "intent")
    back = read_classification_csv(
        path, text_column="utterance", label_column="intent", multi_label=multi_label
    )
    assert back.texts == texts
    assert back.labels == labels
    assert back.data_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_write_refuses_labels_containing_the_separator(tmp_path: Path) -> None:
    data = LabelledTexts(["x"], [("a|b", "c")], multi_label=True)
    with pytest.raises(DataError, match="separator"):
        write_classification_csv(data, tmp_path / "rows.csv")


def test_banking77_train_file() -> None:
    if not BANKING77_TRAIN.is_file():
        pytest.skip(f"../shared/data is absent: {BANKING77_TRAIN} not found")
    data = read_classification_csv(BANKING77_TRAIN)
    assert len(data.label_names) == 77
    assert len(data) > 10_000
    check_trainable(data)
    train, dev = stratified_split(data, 0.1, seed=13)
    assert train.label_names == data.label_names
    assert len(train) + len(dev) == len(data)
