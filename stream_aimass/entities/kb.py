"""The knowledge base (KB): entities that mentions are linked to.

Format: JSONL, one entity per line::

    {"id": "company/apple", "name": "Apple Inc.", "type": "ORG",
     "aliases": ["Apple", "Apple Computer"],
     "description": "American technology company that makes the iPhone and Mac computers.",
     "popularity": 95, "external_ids": {"wikidata": "Q312"}}

- ``id``: unique, stable string; what rows and records carry.
- ``name``: canonical name (also an alias). ``aliases``: other surface forms.
- ``type``: ``PER``, ``ORG``, ``LOC``, ``PRODUCT`` or ``MISC``.
- ``description``: a sentence or two; embedded with the name to disambiguate.
- ``popularity``: positive number, relative prominence: the prior ``P(entity | alias)`` is
  an entity's popularity over the sum of its alias's candidates. Optional, default 1.
- ``external_ids``: optional object of other identifiers (e.g. a Wikidata QID).

Blank lines and lines starting with ``#`` are skipped. The KB version is a hash of the
file: rows say which KB linked them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

ENTITY_TYPES = ("PER", "ORG", "LOC", "PRODUCT", "MISC")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:-]*$")
_KEYS = {"id", "name", "type", "aliases", "description", "popularity", "external_ids"}


class KBError(ValueError):
    """A malformed KB file; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Entity:
    id: str
    name: str
    type: str
    aliases: tuple[str, ...]
    description: str
    popularity: float = 1.0
    external_ids: dict[str, str] = field(default_factory=dict)

    @property
    def surface_forms(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def text_for_embedding(self) -> str:
        return f"{self.name}: {self.description}" if self.description else self.name


@dataclass(frozen=True)
class KnowledgeBase:
    name: str
    version: str
    entities: tuple[Entity, ...]
    path: Path | None = None
    ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", {e.id: i for i, e in enumerate(self.entities)})

    def __len__(self) -> int:
        return len(self.entities)

    def get(self, entity_id: str) -> Entity | None:
        i = self.ids.get(entity_id)
        return self.entities[i] if i is not None else None


def _entity(obj: Any, where: str) -> Entity:
    if not isinstance(obj, dict):
        raise KBError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - _KEYS
    if unknown:
        raise KBError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(_KEYS)})")
    for key in ("id", "name", "type"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise KBError(f"{where}: {key!r} must be a non-empty string")
    if not _ID.match(obj["id"]):
        raise KBError(f"{where}: id {obj['id']!r} has characters outside [A-Za-z0-9_./:-]")
    if obj["type"] not in ENTITY_TYPES:
        raise KBError(f"{where}: type {obj['type']!r} is not one of {', '.join(ENTITY_TYPES)}")
    aliases = obj.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise KBError(f"{where}: 'aliases' must be a list of non-empty strings")
    description = obj.get("description", "")
    if not isinstance(description, str):
        raise KBError(f"{where}: 'description' must be a string")
    popularity = obj.get("popularity", 1.0)
    if isinstance(popularity, bool) or not isinstance(popularity, int | float) or popularity <= 0:
        raise KBError(f"{where}: 'popularity' must be a positive number")
    external = obj.get("external_ids", {})
    if not isinstance(external, dict) or not all(isinstance(v, str) for v in external.values()):
        raise KBError(f"{where}: 'external_ids' must be an object of strings")
    return Entity(
        id=obj["id"],
        name=obj["name"].strip(),
        type=obj["type"],
        aliases=tuple(
            dict.fromkeys(a.strip() for a in aliases if a.strip() != obj["name"].strip())
        ),
        description=description.strip(),
        popularity=float(popularity),
        external_ids=dict(external),
    )


def parse_kb(
    data: bytes, name: str, source: str = "<kb>", path: Path | None = None
) -> KnowledgeBase:
    """A KB from JSONL bytes; every malformed line is reported with its number."""
    entities: list[Entity] = []
    seen: dict[str, int] = {}
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KBError(f"{source}: not UTF-8 ({exc})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{source}:{number}"
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise KBError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        entity = _entity(obj, where)
        if entity.id in seen:
            raise KBError(f"{where}: duplicate id {entity.id!r} (first on line {seen[entity.id]})")
        seen[entity.id] = number
        entities.append(entity)
    if not entities:
        raise KBError(f"{source}: no entities")
    version = hashlib.sha256(data).hexdigest()[:12]
    return KnowledgeBase(name, version, tuple(entities), path)


def load_kb(path: Path | None = None) -> KnowledgeBase:
    """Load a KB file; without a path, the demo KB shipped with the package."""
    if path is None:
        ref = resources.files("stream_aimass") / "resources" / "kb" / "demo-kb.jsonl"
        return parse_kb(ref.read_bytes(), "demo-kb", "demo-kb.jsonl")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KBError(f"cannot read KB {path}: {exc.strerror or exc}") from None
    return parse_kb(data, path.stem, str(path), path)
