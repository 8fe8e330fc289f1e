"""Per-tenant API keys for the worker's ``/v1/`` HTTP endpoints.

``AIMASS_API_KEYS`` is a JSON object, tenant -> key or list of keys. It is parsed once at
start into tenant -> SHA-256 digests of its keys; the keys themselves are not kept, logged
or echoed in errors. A request presents its key as ``Authorization: Bearer KEY`` or
``X-API-Key: KEY``.

- ``/v1/recommendations/{tenant}/...`` needs a key of that tenant.
- ``/v1/models`` needs any valid key.
- ``POST /v1/enrich`` and ``/v1/embed`` act for the key's tenant.
- Admin operations (``POST /v1/models/{name}/use``, every tenant's usage) need the admin key
  (``AIMASS_API_ADMIN_KEY``), which also passes wherever a tenant's key does.
- ``/healthz``, ``/readyz`` and ``/metrics`` stay open (ops endpoints; the web server binds
  127.0.0.1 by default).

No key: 401 with ``WWW-Authenticate: Bearer``. An unknown key or another tenant's key: 403,
with the same body either way (it never says which tenant a key belongs to). Auth on and no
keys configured: every ``/v1/`` request gets 401, saying how to configure keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_aimass.records import TENANT_RE, TENANT_RULE
from stream_aimass.settings import Settings

KEYS_ENV = "AIMASS_API_KEYS"
ADMIN_ENV = "AIMASS_API_ADMIN_KEY"
ENABLED_ENV = "AIMASS_API_AUTH_ENABLED"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="aimass"'}
NO_KEYS_CONFIGURED = (
    f"API keys are required but none are configured: set {KEYS_ENV} to a JSON object "
    f'tenant -> key or list of keys (e.g. {KEYS_ENV}=\'{{"acme": "KEY"}}\'), '
    f"or turn API auth off with {ENABLED_ENV}=false"
)


class ApiKeyConfigError(ValueError):
    """``AIMASS_API_KEYS`` cannot be used (the message never contains a key)."""


def digest(key: str) -> bytes:
    """The SHA-256 digest a key is stored and compared as."""
    return hashlib.sha256(key.encode()).digest()


def _valid_key(key: str) -> bool:
    # A key travels in an HTTP header: printable ASCII, no spaces (which HTTP would trim).
    return bool(key) and all(33 <= ord(c) <= 126 for c in key)


def parse_api_keys(raw: str) -> dict[str, frozenset[bytes]]:
    """tenant -> digests of its keys, from the JSON text of ``AIMASS_API_KEYS``."""
    if not raw.strip():
        return {}
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        # The message and position only: the document is a secret.
        raise ApiKeyConfigError(
            f"{KEYS_ENV} is not valid JSON ({exc.msg} at line {exc.lineno} column "
            f'{exc.colno}): expected an object tenant -> key or list of keys, e.g. {{"acme": '
            '["KEY1", "KEY2"]}'
        ) from None
    if not isinstance(value, dict):
        raise ApiKeyConfigError(
            f"{KEYS_ENV} must be a JSON object tenant -> key or list of keys, "
            f"not a JSON {type(value).__name__}"
        )
    keys: dict[str, frozenset[bytes]] = {}
    owner: dict[bytes, str] = {}
    for tenant, given in value.items():
        if not TENANT_RE.fullmatch(tenant):
            raise ApiKeyConfigError(f"{KEYS_ENV}: tenant {tenant[:140]!r} {TENANT_RULE}")
        listed = [given] if isinstance(given, str) else given
        if not isinstance(listed, list) or not listed:
            raise ApiKeyConfigError(
                f"{KEYS_ENV}: the keys of tenant {tenant!r} must be a string or a non-empty "
                "list of strings"
            )
        digests = set()
        for n, key in enumerate(listed, 1):
            if not isinstance(key, str) or not _valid_key(key):
                raise ApiKeyConfigError(
                    f"{KEYS_ENV}: key #{n} of tenant {tenant!r} must be a non-empty string "
                    "of printable ASCII without spaces"
                )
            d = digest(key)
            other = owner.setdefault(d, tenant)
            if other != tenant:
                raise ApiKeyConfigError(
                    f"{KEYS_ENV}: key #{n} of tenant {tenant!r} is also a key of tenant "
                    f"{other!r}: a key belongs to one tenant"
                )
            digests.add(d)
        keys[tenant] = frozenset(digests)
    return keys


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():  # a plain dict (aiohttp's headers are case-insensitive)
        if key.lower() == lowered:
            return val
    return None


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key of a request: ``Authorization: Bearer KEY``, else ``X-API-Key: KEY``."""
    authorization = _header(headers, "Authorization")
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    api_key = _header(headers, "X-API-Key")
    if api_key and api_key.strip():
        return api_key.strip()
    return None


@dataclass(frozen=True, slots=True)
class Denied:
    """Why a request is refused: the HTTP status, the JSON body and extra headers."""

    status: int
    body: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    """Checks the API key of ``/v1/`` requests (``enabled=False``: lets everything by)."""

    enabled: bool
    keys: Mapping[str, frozenset[bytes]] = field(default_factory=dict)
    admin: frozenset[bytes] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeyAuth:
        """Raises :class:`ApiKeyConfigError` when auth is on and the keys are unusable."""
        if not settings.api_auth_enabled:
            return cls(False)
        keys = parse_api_keys(settings.api_keys.get_secret_value())
        admin = settings.api_admin_key.get_secret_value().strip()
        if admin and not _valid_key(admin):
            raise ApiKeyConfigError(f"{ADMIN_ENV} must be printable ASCII without spaces")
        if admin and any(digest(admin) in d for d in keys.values()):
            raise ApiKeyConfigError(f"{ADMIN_ENV} is also a tenant's key: use a key of its own")
        return cls(True, keys, frozenset({digest(admin)}) if admin else frozenset())

    @property
    def misconfigured(self) -> bool:
        """Auth on and no keys: every ``/v1/`` request is refused."""
        return self.enabled and not self.keys and not self.admin

    def tenants(self) -> list[str]:
        return sorted(self.keys)

    def _matches(self, presented: bytes, digests: frozenset[bytes]) -> bool:
        found = False
        for d in digests:  # no early exit: the time does not depend on which key matched
            found |= hmac.compare_digest(presented, d)
        return found

    def caller(self, headers: Mapping[str, str]) -> Caller | Denied:
        """Who is calling: a tenant (by its key), the admin, or (auth off) anyone, as admin."""
        if not self.enabled:
            return Caller(None, admin=True)
        presented = self._presented(headers)
        if isinstance(presented, Denied):
            return presented
        if self._matches(presented, self.admin):
            return Caller(None, admin=True)
        found: str | None = None
        for tenant, digests in self.keys.items():  # every tenant: no early exit
            if self._matches(presented, digests):
                found = tenant
        if found is None:
            return Denied(403, {"error": "the API key is not valid"})
        return Caller(found, admin=False)

    def check_admin(self, headers: Mapping[str, str]) -> Denied | None:
        """None when the request carries the admin key (or auth is off)."""
        caller = self.caller(headers)
        if isinstance(caller, Denied):
            return caller
        if caller.admin:
            return None
        return Denied(403, {"error": f"this operation needs the admin key ({ADMIN_ENV})"})

    def _presented(self, headers: Mapping[str, str]) -> bytes | Denied:
        if not self.keys and not self.admin:
            return Denied(401, {"error": NO_KEYS_CONFIGURED}, dict(_CHALLENGE))
        key = presented_key(headers)
        if key is None:
            return Denied(
                401,
                {"error": "an API key is required: send 'Authorization: Bearer KEY' or "
                 "'X-API-Key: KEY'"},
                dict(_CHALLENGE),
            )  # fmt: skip
        return digest(key)

    def check(self, headers: Mapping[str, str], tenant: str | None) -> Denied | None:
        """None when the request may go on, else why not.

        ``tenant``: the tenant whose data the request reads (a key of that tenant, or the
        admin key, is needed), or None for an endpoint any valid key may call.
        """
        if not self.enabled:
            return None
        presented = self._presented(headers)
        if isinstance(presented, Denied):
            return presented
        if self._matches(presented, self.admin):
            return None
        if tenant is None:
            granted = False
            for digests in self.keys.values():
                granted |= self._matches(presented, digests)
            if granted:
                return None
            return Denied(403, {"error": "the API key is not valid"})
        if self._matches(presented, self.keys.get(tenant, frozenset())):
            return None
        # The same answer for an unknown key and another tenant's key.
        shown = tenant[:140]
        return Denied(403, {"error": f"the API key does not grant access to tenant {shown!r}"})


def error_response(
    web: Any, status: int, reason: str, headers: dict[str, str] | None = None
) -> Any:
    """The JSON error every endpoint answers with: ``{"error": reason}``."""
    return web.json({"error": reason}, status=status, headers=headers or {})


def denied_response(web: Any, denied: Denied) -> Any:
    return web.json(denied.body, status=denied.status, headers=dict(denied.headers))


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from: a tenant's key (``tenant``), or the admin (``tenant`` None)."""

    tenant: str | None
    admin: bool
