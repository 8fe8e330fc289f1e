"""What to do with each type of personal data, per tenant: the ``pii_policy``.

A policy is one action for every type (``redact``), or a JSON object per tenant (``*`` for
every tenant not named) whose value is an action or an object per type (``*`` for the types
not named)::

    {"*": "redact", "acme": {"EMAIL": "hash", "PERSON": "detect"}, "lab": "keep"}

A type a tenant's object leaves out takes the action the ``*`` tenant gives it; a tenant
the policy leaves out takes the ``*`` tenant's; without a ``*`` tenant, ``keep``.

Actions: ``keep`` (not even looked for), ``detect`` (found and reported, the text stays),
``mask`` (letters and digits become ``*``, the last four digits of a number stay; the length
stays), ``redact`` (``[EMAIL]``) and ``hash`` (``[EMAIL:1f2e...]``, a keyed HMAC of the
normalised value: equal values join without being readable; needs ``pii_hash_key``).

:class:`PolicySource` serves the policy in force: the ``pii_policy_file`` when it exists
(looked at again every ``interval_s``, like the classifiers file), else the setting. A file
that does not parse is logged and counted; the policy in force stays.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_aimass.files import signature, write_json_atomically
from stream_aimass.privacy.detectors import PATTERN_TYPES

log = logging.getLogger("stream_aimass.privacy")

ACTIONS = ("keep", "detect", "mask", "redact", "hash")
TYPES = (*PATTERN_TYPES, "PERSON")
ANY = "*"
# Actions that change the stored text (detect only reports).
REWRITING = frozenset({"mask", "redact", "hash"})


class PolicyError(ValueError):
    """A ``pii_policy`` that cannot work (the message says which part and why)."""


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """One tenant's action per type (every type has one)."""

    actions: Mapping[str, str]

    def action(self, pii_type: str) -> str:
        return self.actions.get(pii_type, "keep")

    @property
    def active(self) -> bool:
        """Whether anything is looked for at all."""
        return any(a != "keep" for a in self.actions.values())

    @property
    def rewrites(self) -> bool:
        return any(a in REWRITING for a in self.actions.values())

    def looked_for(self) -> frozenset[str]:
        return frozenset(t for t, a in self.actions.items() if a != "keep")


KEEP_ALL = TenantPolicy({t: "keep" for t in TYPES})


@dataclass(frozen=True, slots=True)
class Policy:
    """Every tenant's :class:`TenantPolicy`; ``version`` names it in records and logs."""

    default: TenantPolicy
    tenants: Mapping[str, TenantPolicy]
    version: str

    def for_tenant(self, tenant: str) -> TenantPolicy:
        return self.tenants.get(tenant, self.default)

    @property
    def active(self) -> bool:
        return self.default.active or any(p.active for p in self.tenants.values())

    @property
    def hashes(self) -> bool:
        every = (self.default, *self.tenants.values())
        return any("hash" in p.actions.values() for p in every)

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            ANY: dict(self.default.actions),
            **{t: dict(p.actions) for t, p in sorted(self.tenants.items())},
        }


def _action(value: Any, where: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in ACTIONS:
        raise PolicyError(f"{where}: {value!r} is not an action (one of {', '.join(ACTIONS)})")
    return value.strip().lower()


def _actions(value: Any, base: Mapping[str, str], where: str) -> dict[str, str]:
    """A tenant's entry (an action, or an object per type) over ``base``."""
    if isinstance(value, str):
        return dict.fromkeys(TYPES, _action(value, where))
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: expected an action or an object of type -> action")
    out = dict(base)
    if ANY in value:
        out = dict.fromkeys(TYPES, _action(value[ANY], f"{where}.{ANY}"))
    for name, action in value.items():
        if name == ANY:
            continue
        if name.upper() not in TYPES:
            raise PolicyError(f"{where}: {name!r} is not a type (one of {', '.join(TYPES)})")
        out[name.upper()] = _action(action, f"{where}.{name}")
    return out


def parse_policy(value: str | Mapping[str, Any]) -> Policy:
    """A policy from the setting's text (an action, or JSON) or a parsed JSON object."""
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("{"):
            value = {ANY: text or "keep"}
        else:
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise PolicyError(f"pii_policy is not valid JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise PolicyError("pii_policy: expected an action or a JSON object of tenant -> policy")
    default = _actions(value.get(ANY, "keep"), KEEP_ALL.actions, ANY)
    tenants = {}
    for tenant, entry in value.items():
        if tenant == ANY:
            continue
        if not isinstance(tenant, str) or not tenant:
            raise PolicyError(f"pii_policy: {tenant!r} is not a tenant name")
        tenants[tenant] = TenantPolicy(_actions(entry, default, tenant))
    canonical = json.dumps(
        {ANY: default, **{t: dict(p.actions) for t, p in tenants.items()}}, sort_keys=True
    )
    version = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return Policy(TenantPolicy(default), tenants, version)


class PolicySource:
    """The policy in force: ``path`` when it exists, else ``setting``; ``path`` is looked
    at again at most every ``interval_s`` (0: never after the start). ``check`` validates a
    new policy beyond its syntax (e.g. a hash action needs a key) and raises PolicyError."""

    def __init__(
        self,
        setting: str,
        path: Path | None,
        interval_s: float,
        *,
        check: Callable[[Policy], None] = lambda _: None,
        on_reload: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.setting = parse_policy(setting)
        check(self.setting)
        self.path = path
        self.interval_s = interval_s
        self._check = check
        self._on_reload = on_reload
        self._clock = clock
        self._seen = signature(path) if path is not None else None
        self._looked = clock()
        self.policy = self._read() if self._seen is not None else self.setting

    def _read(self) -> Policy:
        assert self.path is not None
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise PolicyError(f"{self.path}: cannot read the policy: {exc}") from None
        try:
            policy = parse_policy(text)
        except PolicyError as exc:
            raise PolicyError(f"{self.path}: {exc}") from None
        self._check(policy)
        return policy

    def current(self) -> Policy:
        """The policy to apply now (cheap: one ``stat`` per ``interval_s`` at most)."""
        if self.path is None or self.interval_s <= 0:
            return self.policy
        now = self._clock()
        if now - self._looked < self.interval_s:
            return self.policy
        self._looked = now
        now_seen = signature(self.path)
        if now_seen == self._seen:
            return self.policy
        self._seen = now_seen
        try:
            new = self.setting if now_seen is None else self._read()
        except PolicyError as exc:
            log.error("PII policy reload failed, keeping policy %s: %s", self.policy.version, exc)
            self._on_reload("failed")
            return self.policy
        if new.version != self.policy.version:
            log.info("PII policy %s -> %s", self.policy.version, new.version)
        self.policy = new
        self._on_reload("swapped")
        return new


def write_policy_file(path: Path, policy: Mapping[str, Any]) -> None:
    """Replace the policy file atomically (a watcher never reads half of it)."""
    parse_policy(policy)  # refuse what would not load
    write_json_atomically(path, policy)
