"""The bodies of ``POST /v1/enrich`` and ``POST /v1/embed``, read and checked.

A body is one document (``{"text": ...}``) or several (``{"documents": [...]}``); each is
checked by the same rules as a document on ``aimass.documents``
(:func:`~stream_aimass.decode.validate_document`), except that ``id`` (default: a new
random id) and ``ts`` (default: now) may be left out, and the tenant is the caller's: a
tenant's key acts for its tenant (a document naming another gets 403), the admin key (or
anyone, with auth off) for the tenant each document names, ``?tenant=``, else
``default``. Every problem is a :class:`BadRequest` whose reason names the document.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_aimass.decode import InvalidDocument, validate_document
from stream_aimass.records import TENANT_RE, TENANT_RULE, Document, Source

DEFAULT_TENANT = "default"
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class BadRequest(Exception):
    """A request that cannot be served as sent: its HTTP status and the reason."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.reason


def read_json(body: bytes, limit: int) -> Any:
    """The JSON value of a request body of at most ``limit`` bytes."""
    if len(body) > limit:
        raise BadRequest(413, f"the body is {len(body)} bytes, over the limit of {limit}")
    if not body.strip():
        raise BadRequest(400, "the body is empty: send a JSON object")
    try:
        return orjson.loads(body[3:] if body.startswith(_BOM) else body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, f"the body is not valid JSON ({exc})") from None


def _listed(value: Any, field: str, single: str, max_items: int) -> list[Any]:
    """The items of a body: ``{field: [...]}``, or the body itself when it has ``single``."""
    if not isinstance(value, dict):
        raise BadRequest(400, f"the body must be a JSON object, not {type(value).__name__}")
    if field in value:
        items = value[field]
        if not isinstance(items, list):
            raise BadRequest(400, f"'{field}' must be a list, not {type(items).__name__}")
    elif single in value:
        items = [value]
    else:
        raise BadRequest(400, f"the body needs '{field}' (a list) or '{single}'")
    if not items:
        raise BadRequest(400, f"'{field}' is empty")
    if len(items) > max_items:
        raise BadRequest(413, f"{len(items)} {field} in one request, over the limit of {max_items}")
    return items


def enrich_documents(
    value: Any,
    caller_tenant: str | None,
    query_tenant: str | None,
    max_documents: int,
    source: Callable[[], Source],
) -> list[Document]:
    """The documents of a ``POST /v1/enrich`` body; ``caller_tenant``: the key's tenant
    (None: admin or auth off); ``source``: where each came from (a new one per document)."""
    if query_tenant is not None and not TENANT_RE.fullmatch(query_tenant):
        raise BadRequest(400, f"query parameter 'tenant' {TENANT_RULE}")
    out: list[Document] = []
    for n, obj in enumerate(_listed(value, "documents", "text", max_documents)):
        where = f"documents[{n}]" if "documents" in value else "the document"
        if not isinstance(obj, dict):
            raise BadRequest(400, f"{where} must be a JSON object, not {type(obj).__name__}")
        given = obj.get("tenant")
        tenant = caller_tenant or (given if given is not None else None) or query_tenant
        if caller_tenant is not None and given is not None and given != caller_tenant:
            shown = str(given)[:140]
            raise BadRequest(403, f"{where}: the API key does not grant access to tenant {shown!r}")
        filled = {
            **obj,
            "tenant": tenant or DEFAULT_TENANT,
            "id": obj["id"] if obj.get("id") is not None else uuid.uuid4().hex,
            "ts": obj["ts"] if obj.get("ts") is not None else time.time_ns() // 1_000_000,
        }
        try:
            out.append(validate_document(filled, source()))
        except InvalidDocument as exc:
            raise BadRequest(400, f"{where}: {exc}") from None
        except RecursionError:
            raise BadRequest(400, f"{where}: the document nests too deeply") from None
    return out


def embed_texts(value: Any, max_texts: int) -> list[str]:
    """The texts of a ``POST /v1/embed`` body: ``{"texts": [...]}``, ``{"text": ...}``, or
    ``{"documents": [{"text": ...}, ...]}``."""
    if isinstance(value, dict) and "documents" in value:
        docs = _listed(value, "documents", "text", max_texts)
        texts = [d.get("text") if isinstance(d, dict) else None for d in docs]
        label = "documents[{}].text"
    else:
        texts = _listed(value, "texts", "text", max_texts)
        if "texts" not in value:
            texts = [value["text"]]
        label = "texts[{}]"
    out: list[str] = []
    for n, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequest(400, f"{label.format(n)} must be a string")
        if not text.strip():
            raise BadRequest(400, f"{label.format(n)} is empty")
        out.append(text)
    return out
