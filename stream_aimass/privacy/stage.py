"""The PII stage: apply the tenant's policy to a document before anything is written.

:meth:`PiiStage.protect` runs in the enrich role's model thread after the entity stage, on
the document's text, title and every string in its ``meta``: the pattern detectors of the
types the policy looks for, plus person names from the entity stage (mentions labelled
``PER``). It returns the document as it may be stored, its entity mentions moved onto the
new text, and the findings (type, field, span, action; never the value).

:meth:`PiiStage.protect_dead_letter` keeps dead letters from being a side door. Under a
policy that looks for anything, a dead letter keeps:

- ``redacted``: a copy with the pattern findings replaced, when names are not protected;
  when they are (no entity stage runs on bad input), a JSON message keeps its structure with
  every string value replaced except ``id``/``tenant``/``ts``/``lang``/``version`` (those
  pattern-redacted);
- ``hash``: only the SHA-256 of the message, when it is not JSON (names cannot be found in
  free text without the entity stage) or not UTF-8.

Either way ``raw_sha256`` is the original's digest and the source coordinates say where the
original still is (``dlq replay`` fetches it from there). The reason and the key are
pattern-redacted too.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from stream_aimass.privacy.detectors import PATTERN_TYPES, Finding, detect, resolve_overlaps
from stream_aimass.privacy.names import names
from stream_aimass.privacy.policy import Policy, PolicyError, PolicySource, TenantPolicy
from stream_aimass.privacy.redact import Applied, Edits, Hasher, rewrite
from stream_aimass.records import DeadLetter, Document
from stream_aimass.settings import Settings

PERSON_LABELS = frozenset({"PER", "PERSON"})
# Fields of a JSON dead letter kept (pattern-redacted) when names are protected.
_STRUCTURAL_FIELDS = frozenset({"id", "tenant", "ts", "lang", "version"})
_VALUE = "[REDACTED]"


@dataclass(frozen=True, slots=True)
class Protected:
    """A document as it may be stored, its mentions on the new text, and the findings."""

    document: Document
    entities: tuple[Any, ...]
    findings: tuple[Applied, ...]
    # Where the text's replaced spans went (None: the text is as it came).
    edits: Edits | None = None


def _persons(entities: Iterable[Any]) -> list[Finding]:
    return [
        Finding("PERSON", e.start, e.end, "ner", float(e.score))
        for e in entities
        if e.label in PERSON_LABELS and e.end > e.start
    ]


def _dead_letter_action(tenant: TenantPolicy, pii_type: str) -> str:
    """A dead letter is not a report: ``detect`` redacts there."""
    action = tenant.action(pii_type)
    return "redact" if action == "detect" else action


class PiiStage:
    """The policy (from a :class:`PolicySource`), applied to documents and dead letters."""

    def __init__(self, source: PolicySource, hasher: Hasher | None, region: str = "US") -> None:
        self.source = source
        self.hasher = hasher
        self.region = region

    @classmethod
    def from_settings(
        cls, settings: Settings, on_reload: Callable[[str], None] | None = None
    ) -> PiiStage:
        """From ``pii_policy``, ``pii_policy_file``, ``pii_hash_key`` and ``pii_region``;
        raises PolicyError for a policy that cannot work."""
        key = settings.pii_hash_key.get_secret_value().encode()
        hasher = Hasher(key) if key else None

        def check(policy: Policy) -> None:
            if policy.hashes and hasher is None:
                raise PolicyError(
                    "the hash action needs a key: set AIMASS_PII_HASH_KEY (the same on every "
                    "worker, so equal values hash alike)"
                )

        source = PolicySource(
            settings.pii_policy,
            settings.resolved_pii_policy_file,
            settings.model_reload_interval_s,
            check=check,
            on_reload=on_reload or (lambda _: None),
        )
        return cls(source, hasher, settings.pii_region)

    def policy(self) -> Policy:
        return self.source.current()

    # -- documents ---------------------------------------------------------------------

    def _findings(
        self, text: str, tenant: TenantPolicy, extra: Sequence[Finding] = ()
    ) -> list[Finding]:
        types = tenant.looked_for()
        if not text:
            return []
        found = detect(text, self.region, [t for t in PATTERN_TYPES if t in types])
        if "PERSON" in types:
            extra = [*extra, *names(text)]
        if extra:
            found = resolve_overlaps([*found, *extra])
        return found

    def protect(self, doc: Document, entities: Sequence[Any], policy: Policy) -> Protected:
        """``doc`` and its ``entities`` under ``policy`` (read once per batch by the caller)."""
        tenant = policy.for_tenant(doc.tenant)
        if not tenant.active:
            return Protected(doc, tuple(entities), ())
        persons = _persons(entities) if tenant.action("PERSON") != "keep" else []
        found = self._findings(doc.text, tenant, persons)
        text, applied, edits = rewrite(doc.text, found, "text", tenant.action, self.hasher)
        moved = tuple(entities)
        if edits.spans and any(a.action != "detect" for a in applied):
            moved = self._move(entities, text, edits, applied)
        title = doc.title
        if title:
            found = self._findings(title, tenant)
            title, more, _ = rewrite(title, found, "title", tenant.action, self.hasher)
            applied += more
        meta = self._meta(doc.meta, "meta", tenant, applied)
        if text is doc.text and title is doc.title and meta is doc.meta:
            return Protected(doc, moved, tuple(applied))
        new = dataclasses.replace(doc, text=text, title=title, meta=meta)
        return Protected(new, moved, tuple(applied), edits if text is not doc.text else None)

    @staticmethod
    def _move(entities: Sequence[Any], text: str, edits: Edits, applied: list[Applied]) -> Any:
        """Mentions on the new text. One inside a replaced email, number or key (a name
        the KB knows inside an address) is part of that value and goes; two that land on
        the same span are one; a rewritten name loses its KB link (entity id and name)."""
        rewritten = [a for a in applied if a.action != "detect"]
        values = [(a.start, a.end) for a in rewritten if a.type != "PERSON"]
        persons = [(a.start, a.end) for a in rewritten if a.type == "PERSON"]
        out, seen = [], set()
        for e in entities:
            s, t = edits.span(e.start, e.end)
            if (s, t) in seen or any(a <= s and t <= b for a, b in values):
                continue
            seen.add((s, t))
            moved = dataclasses.replace(e, start=s, end=t, text=text[s:t])
            if any(a < t and s < b for a, b in persons):
                # A rewritten name: its link would say who it was.
                moved = dataclasses.replace(moved, entity_id=None, name=None)
            out.append(moved)
        return tuple(out)

    def _meta(self, value: Any, path: str, tenant: TenantPolicy, applied: list[Applied]) -> Any:
        """``value`` with every string in it rewritten (the same object when nothing was)."""
        if isinstance(value, str):
            found = self._findings(value, tenant)
            if not found:
                return value
            new, more, _ = rewrite(value, found, path, tenant.action, self.hasher)
            applied += more
            return new
        if isinstance(value, dict):
            out = {k: self._meta(v, f"{path}.{k}", tenant, applied) for k, v in value.items()}
            same = all(out[k] is value[k] for k in value)
            return value if same else out
        if isinstance(value, list):
            items = [self._meta(v, f"{path}[{i}]", tenant, applied) for i, v in enumerate(value)]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        return value

    # -- dead letters ------------------------------------------------------------------

    def _redact(self, text: str, tenant: TenantPolicy) -> str:
        found = self._findings(text, tenant)
        if not found:
            return text
        return rewrite(text, found, "", lambda t: _dead_letter_action(tenant, t), self.hasher)[0]

    def protect_dead_letter(self, dead: DeadLetter) -> DeadLetter:
        """``dead`` as ``aimass.dlq`` and ``dead_letters`` may keep it (itself when the
        policy keeps everything, or it was protected already)."""
        if dead.raw_kind != "raw":
            return dead
        policy = self.policy()
        if not policy.active:
            return dead
        parsed: Any = None
        try:
            text: str | None = dead.raw.decode("utf-8")
            parsed = orjson.loads(dead.raw)
        except UnicodeDecodeError:
            text = None
        except orjson.JSONDecodeError:
            parsed = None
        tenant_name = parsed.get("tenant") if isinstance(parsed, dict) else None
        tenant = policy.for_tenant(tenant_name if isinstance(tenant_name, str) else "")
        if not tenant.active:
            return dead
        digest = hashlib.sha256(dead.raw).hexdigest()
        if text is None:
            raw, kind = b"", "hash"
        elif _dead_letter_action(tenant, "PERSON") == "keep":
            raw, kind = self._redact(text, tenant).encode(), "redacted"
        elif isinstance(parsed, dict | list):
            raw, kind = orjson.dumps(self._structure(parsed, tenant)), "redacted"
        else:
            raw, kind = b"", "hash"
        key = dead.key
        if key:
            key = self._redact(key.decode("utf-8", errors="replace"), tenant).encode()
        return dataclasses.replace(
            dead,
            raw=raw,
            reason=self._redact(dead.reason, tenant),
            key=key,
            raw_kind=kind,
            raw_sha256=digest,
        )

    def _structure(self, value: Any, tenant: TenantPolicy, name: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self._structure(v, tenant, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._structure(v, tenant) for v in value]
        if isinstance(value, str):
            return self._redact(value, tenant) if name in _STRUCTURAL_FIELDS else _VALUE
        if isinstance(value, int | float) and not isinstance(value, bool):
            # A long number may be a phone or card number.
            return value if name in _STRUCTURAL_FIELDS or abs(value) < 100_000 else _VALUE
        return value
