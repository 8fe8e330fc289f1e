"""README stays true: every setting is in its configuration table, the test command is there."""

from __future__ import annotations

from pathlib import Path

from stream_aimass.clickhouse import query_names
from stream_aimass.settings import settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_with_its_env_var_and_default() -> None:
    text = README.read_text()
    for row in settings_table():
        line = f"| `{row['name']}` | `{row['env']}` | `{row['default']}` |"
        assert line in text, f"README configuration table lacks or misstates {row['env']}"


def test_readme_has_the_two_commands() -> None:
    text = README.read_text()
    assert "pip install torch==2.13.0 && pip install . && stream-aimass demo" in text
    assert "pip install -e '.[dev]' && python -m pytest -p no:cacheprovider tests" in text


def test_named_queries_are_documented() -> None:
    text = README.read_text()
    for name in query_names():
        assert name in text, f"README does not mention query {name}"
