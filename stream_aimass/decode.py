"""Stage ``decode``/``validate``: raw Kafka bytes to a :class:`Document` or a :class:`DeadLetter`.

Errors are data: nothing here raises on bad input.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson

from stream_aimass.records import (
    MAX_EXPLICIT_VERSION,
    TENANT_RE,
    TENANT_RULE,
    DeadLetter,
    Document,
    Event,
    Source,
    UnreadableBatch,
)

R = TypeVar("R")

STAGE_DECODE = "decode"
STAGE_VALIDATE = "validate"

# Characters that show nothing: a text made only of these (and whitespace) is empty.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zs", "Zl", "Zp"})
_BOM = b"\xef\xbb\xbf"
_MAX_ID = 256
# 2299-12-31T23:59:59.999Z, the last millisecond ClickHouse's DateTime64(3) holds: every
# table stores ts there, and the sink refuses later times (the item vector would fail).
_MAX_TS_MS = 10_413_791_999_999
# orjson reads 1024 levels but writes only 254: the enriched record wraps meta in its own
# object, so deeper meta would pass here and fail later, in the middle of a model batch.
MAX_META_DEPTH = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidDocument(ValueError):
    """A JSON document that breaks the schema; the message is the dead letter's reason."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_ts_ms(value: Any) -> int:
    """Epoch milliseconds from an int/float (ms) or an ISO-8601 string."""
    if isinstance(value, bool):
        raise InvalidDocument("field 'ts' must be epoch milliseconds or ISO-8601, got a boolean")
    if isinstance(value, int | float):
        if value != value or not 0 <= value <= _MAX_TS_MS:  # NaN or out of range
            raise InvalidDocument(f"field 'ts' is out of range: {value!r}")
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidDocument(
                f"field 'ts' is not epoch milliseconds or ISO-8601: {value[:64]!r}"
            ) from None
        if parsed.tzinfo is None:
            raise InvalidDocument("field 'ts' ISO-8601 string needs a time zone")
        # Integer arithmetic: float timestamps lose a millisecond now and then.
        ms = (parsed - _EPOCH) // timedelta(milliseconds=1)
        if ms < 0:
            raise InvalidDocument(f"field 'ts' is before 1970: {value[:64]!r}")
        if ms > _MAX_TS_MS:
            # A time-zone offset can push 9999-12-31 past the range too.
            raise InvalidDocument(f"field 'ts' is out of range: {value[:64]!r}")
        return ms
    raise InvalidDocument(
        f"field 'ts' must be epoch milliseconds or ISO-8601, got {type(value).__name__}"
    )


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: whitespace, zero-width and other format characters."""
    return not any(
        not ch.isspace() and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES for ch in text
    )


def check_tenant_field(obj: dict[str, Any]) -> str:
    tenant = _string(obj, "tenant", required=True)
    if not TENANT_RE.fullmatch(tenant):
        raise InvalidDocument(f"field 'tenant' {TENANT_RULE}")
    return tenant


def parse_version(value: Any) -> int | None:
    """A document's optional ``version``: an integer from 0 to 2**63 - 1, or None."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidDocument(
            f"field 'version' must be a non-negative integer, got {type(value).__name__}"
        )
    if not 0 <= value <= MAX_EXPLICIT_VERSION:
        raise InvalidDocument(f"field 'version' is out of range (0 to {MAX_EXPLICIT_VERSION})")
    return value


def utf8_problem(raw: bytes) -> str:
    """Where and why ``raw`` is not UTF-8, e.g. "byte 0xff at offset 7: invalid start byte"."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.end]
        return f"byte {'0x' + bad[:1].hex()} at offset {exc.start}: {exc.reason}"
    return "it is valid UTF-8"


def _string(obj: dict[str, Any], name: str, *, required: bool, max_len: int | None = None) -> str:
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidDocument(f"missing required field '{name}'")
        return ""
    if not isinstance(value, str):
        raise InvalidDocument(f"field '{name}' must be a string, got {type(value).__name__}")
    if max_len is not None and len(value) > max_len:
        raise InvalidDocument(f"field '{name}' is longer than {max_len} characters")
    return value


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` has containers nested more than ``limit`` deep (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def validate_document(obj: Any, source: Source) -> Document:
    """Check a parsed JSON value against the documents schema; raise InvalidDocument."""
    if not isinstance(obj, dict):
        raise InvalidDocument(f"document must be a JSON object, got {type(obj).__name__}")
    doc_id = _string(obj, "id", required=True, max_len=_MAX_ID)
    if not doc_id:
        raise InvalidDocument("field 'id' is empty")
    tenant = check_tenant_field(obj)
    if "ts" not in obj or obj["ts"] is None:
        raise InvalidDocument("missing required field 'ts'")
    ts_ms = parse_ts_ms(obj["ts"])
    text = _string(obj, "text", required=True)
    if is_blank(text):
        raise InvalidDocument(
            "field 'text' is empty (only whitespace, zero-width or other invisible characters)"
        )
    title = _string(obj, "title", required=False, max_len=4096)
    lang = _string(obj, "lang", required=False, max_len=32)
    meta = obj.get("meta")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise InvalidDocument(f"field 'meta' must be an object, got {type(meta).__name__}")
    if _nests_deeper(meta, MAX_META_DEPTH):
        raise InvalidDocument(f"field 'meta' nests deeper than {MAX_META_DEPTH} levels")
    return Document(
        id=doc_id,
        tenant=tenant,
        ts_ms=ts_ms,
        text=text,
        source=source,
        title=title,
        lang=lang,
        meta=meta,
        version=parse_version(obj.get("version")),
    )


def validate_item(obj: Any, source: Source) -> Document:
    """Check a catalogue item (``aimass.items``) and return it as a document to embed.

    Like a document, except that ``ts`` is optional (default: the Kafka timestamp) and an
    optional ``category`` is kept in ``meta["category"]``.
    """
    if isinstance(obj, dict) and obj.get("ts") is None:
        obj = {**obj, "ts": source.timestamp_ms}
    doc = validate_document(obj, source)
    category = _string(obj, "category", required=False, max_len=128)
    if category:
        doc.meta["category"] = category
    return doc


class JsonDecoder(Generic[R]):
    """Turns raw message values into records or dead letters (never raises on input)."""

    def __init__(
        self,
        validate: Callable[[Any, Source], R],
        max_bytes: int,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self._validate = validate
        self.max_bytes = max_bytes
        self._clock = clock

    def _dead(
        self, stage: str, reason: str, raw: bytes, source: Source, error: str, key: bytes | None
    ) -> DeadLetter:
        return DeadLetter(
            stage=stage,
            reason=reason,
            raw=raw,
            source=source,
            failed_at_ms=self._clock(),
            error_type=error,
            key=key,
        )

    def decode(self, raw: bytes | None, source: Source, key: bytes | None = None) -> R | DeadLetter:
        raw = raw if raw is not None else b""
        if len(raw) > self.max_bytes:
            return self._dead(
                STAGE_VALIDATE,
                f"message is {len(raw)} bytes, over the limit of {self.max_bytes}",
                raw,
                source,
                "TooLarge",
                key,
            )
        if not raw.strip(b" \t\r\n"):
            return self._dead(STAGE_DECODE, "message is empty", raw, source, "Empty", key)
        try:
            # A UTF-8 byte order mark (Windows tools write one) is no part of the JSON text.
            obj = orjson.loads(raw[3:] if raw.startswith(_BOM) else raw)
        except orjson.JSONDecodeError as exc:
            reason = str(exc)
            if "utf-8" in reason.lower():
                reason = f"message is not valid UTF-8: {utf8_problem(raw)}"
            else:
                reason = f"message is not valid JSON ({reason})"
            return self._dead(STAGE_DECODE, reason, raw, source, "JSONDecodeError", key)
        try:
            return self._validate(obj, source)
        except InvalidDocument as exc:
            return self._dead(STAGE_VALIDATE, str(exc), raw, source, "InvalidDocument", key)
        except RecursionError:
            return self._dead(
                STAGE_VALIDATE, "document nests too deeply", raw, source, "RecursionError", key
            )


class DocumentDecoder(JsonDecoder[Document]):
    """Decoder for ``aimass.documents``."""

    def __init__(self, max_document_bytes: int, clock: Callable[[], int] = _now_ms) -> None:
        super().__init__(validate_document, max_document_bytes, clock)


class ItemDecoder(JsonDecoder[Document]):
    """Decoder for ``aimass.items`` (catalogue items)."""

    def __init__(self, max_bytes: int, clock: Callable[[], int] = _now_ms) -> None:
        super().__init__(validate_item, max_bytes, clock)


class EventDecoder(JsonDecoder[Event]):
    """Decoder for ``aimass.events``."""

    def __init__(self, max_bytes: int = 65536, clock: Callable[[], int] = _now_ms) -> None:
        super().__init__(validate_event, max_bytes, clock)


EVENT_TYPES = ("view", "click", "like", "purchase")


def validate_event(obj: Any, source: Source) -> Event:
    """Check a parsed JSON value against the events schema; raise InvalidDocument."""
    if not isinstance(obj, dict):
        raise InvalidDocument(f"event must be a JSON object, got {type(obj).__name__}")
    fields = {}
    for name in ("event_id", "user_id", "item_id"):
        value = _string(obj, name, required=True, max_len=_MAX_ID)
        if not value:
            raise InvalidDocument(f"field '{name}' is empty")
        fields[name] = value
    tenant = check_tenant_field(obj)
    kind = _string(obj, "type", required=True)
    if kind not in EVENT_TYPES:
        raise InvalidDocument(f"field 'type' must be one of {', '.join(EVENT_TYPES)}")
    if "ts" not in obj or obj["ts"] is None:
        raise InvalidDocument("missing required field 'ts'")
    return Event(
        event_id=fields["event_id"],
        tenant=tenant,
        user_id=fields["user_id"],
        item_id=fields["item_id"],
        type=kind,
        ts_ms=parse_ts_ms(obj["ts"]),
        source=source,
    )


def unreadable_dead_letter(
    batch: UnreadableBatch, topic: str, partition: int, timestamp_ms: int
) -> DeadLetter:
    """The dead letter of a record batch no consumer could decode: where it is, why, and the
    raw batch (the records themselves are still in Kafka at those offsets)."""
    return DeadLetter(
        stage=STAGE_DECODE,
        reason=batch.describe(),
        raw=batch.raw,
        source=Source(topic, partition, batch.first_offset, timestamp_ms),
        failed_at_ms=_now_ms(),
        error_type="UnreadableBatch",
    )
