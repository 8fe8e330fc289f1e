"""The KB format: loading, clear errors for malformed lines, versions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stream_aimass.entities.kb import KBError, load_kb, parse_kb


def line(**overrides: object) -> str:
    entity = {
        "id": "company/apple", "name": "Apple Inc.", "type": "ORG", "aliases": ["Apple"],
        "description": "Technology company that makes the iPhone.", "popularity": 90,
    }  # fmt: skip
    entity.update(overrides)
    return json.dumps({k: v for k, v in entity.items() if v is not None})


def test_loads_entities_with_defaults_and_a_content_version(tmp_path: Path) -> None:
    path = tmp_path / "kb.jsonl"
    path.write_text(
        "# a comment\n" + line() + "\n\n"
        + line(id="fruit/apple", name="apple", type="MISC", aliases=None, popularity=None)
        + "\n"
    )  # fmt: skip
    kb = load_kb(path)
    assert kb.name == "kb" and len(kb) == 2 and len(kb.version) == 12
    fruit = kb.get("fruit/apple")
    assert fruit is not None and fruit.popularity == 1.0 and fruit.aliases == ()
    assert kb.get("company/apple").surface_forms == ("Apple Inc.", "Apple")  # type: ignore[union-attr]
    path.write_text(path.read_text() + line(id="x/y", name="Y") + "\n")
    assert load_kb(path).version != kb.version


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "kb.jsonl:1: invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (line(type="CITY"), "type 'CITY' is not one of"),
        (line(id="has space"), "has characters outside"),
        (line(name=""), "'name' must be a non-empty string"),
        (line(aliases="Apple"), "'aliases' must be a list"),
        (line(popularity=-1), "'popularity' must be a positive number"),
        (line(colour="red"), "unknown keys ['colour']"),
        (line() + "\n" + line(), "kb.jsonl:2: duplicate id 'company/apple' (first on line 1)"),
        ("", "no entities"),
    ],
)
def test_malformed_lines_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "kb.jsonl"
    path.write_text(text + "\n")
    with pytest.raises(KBError, match=re.escape(message)):
        load_kb(path)


def test_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(KBError, match="cannot read KB"):
        load_kb(tmp_path / "absent.jsonl")
    with pytest.raises(KBError, match="not UTF-8"):
        parse_kb(b"\xff\xfe\x00", "x")


def test_the_demo_kb_loads() -> None:
    kb = load_kb()
    assert kb.name == "demo-kb" and len(kb) >= 300
