"""README and docs/ stay true: every setting is in the generated configuration table, the two
commands are in README, every named query is mentioned, every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

from stream_aimass.clickhouse.queries import query_names
from stream_aimass.settings import settings_markdown, settings_table

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"


def test_every_setting_is_documented_with_its_env_var_and_default() -> None:
    text = CONFIGURATION.read_text()
    for row in settings_table():
        line = f"| `{row['name']}` | `{row['env']}` | `{row['default']}` |"
        assert line in text, f"docs/configuration.md lacks or misstates {row['env']}"


def test_the_configuration_page_is_the_generated_table() -> None:
    text = CONFIGURATION.read_text()
    assert text[text.index("| setting | env var |") :] == settings_markdown(), (
        "regenerate it: stream-aimass settings --markdown"
    )


def test_readme_has_the_two_commands() -> None:
    text = README.read_text()
    assert "pip install torch==2.13.0 && pip install . && stream-aimass demo" in text
    assert "pip install -e '.[dev]' && python -m pytest -p no:cacheprovider tests" in text


def test_named_queries_are_documented() -> None:
    text = README.read_text()
    for name in query_names():
        assert name in text, f"README does not mention query {name}"


def test_readme_stays_short() -> None:
    assert len(README.read_text().splitlines()) <= 300, "move reference material to docs/"


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    out = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            out.add(title.replace(" ", "-"))
    return out


def test_every_relative_link_in_readme_and_docs_resolves() -> None:
    broken = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken
