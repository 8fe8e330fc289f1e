"""Checks that a JSON value fits its ClickHouse column, with readable errors.

One wrong type or out-of-range number would fail a whole insert batch, again on every
retry: every row builder in :mod:`.rows` passes each value through one of these. They raise
``TypeError`` or ``ValueError`` naming the field and quoting (briefly) what they reject.
"""

from __future__ import annotations

import reprlib
from datetime import UTC, datetime
from typing import Any

UINT16_MAX = 2**16 - 1


UINT32_MAX = 2**32 - 1


UINT64_MAX = 2**64 - 1


FLOAT32_MAX = 3.4028234663852886e38


# The last millisecond DateTime64(3) holds (2299-12-31T23:59:59.999Z): later times would not
# fit the column and fail the whole insert batch.
MAX_EPOCH_MS = 10_413_791_999_999


# Error messages quote what they reject: hostile values can be megabytes, or nest deeper
# than the builtin repr can recurse.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 3


def show(value: Any) -> str:
    return _REPR.repr(value)


def utc_datetime(ms: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    except OverflowError as exc:
        # Past the platform's time_t Python raises OverflowError, which is no ValueError.
        raise ValueError(f"time {show(ms)} is out of range") from exc


def string(value: Any, field: str) -> str:
    # A wrong type here would fail the whole insert batch, again on every retry.
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, not {show(value)}")
    return value


def string_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{field} must be a list of strings, not {show(value)}")
    return value


def optional_string(value: Any, field: str) -> str:
    """A string, or '' for a null: anything else (0, false, a list) is an error, not ''."""
    return "" if value is None else string(value, field)


def char_offset(value: Any, field: str) -> int:
    # bool is an int in Python but never a character offset.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{field} must be an integer, not {show(value)}")
    if not 0 <= value <= UINT32_MAX:
        raise ValueError(f"{field} {value} is out of range")
    return value


def identifier(value: Any, field: str) -> str:
    """A non-empty string: ids are sorting keys, an empty one would merge unrelated rows."""
    text = string(value, field)
    if not text:
        raise ValueError(f"{field} is empty")
    return text


def json_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{field} must be an object, not {type(value).__name__}")
    return value


def integer(value: Any, field: str, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{field} must be an integer, not {show(value)}")
    if not 0 <= value <= high:
        raise ValueError(f"{field} {value} is out of range")
    return value


def number(value: Any, field: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{field} must be a number, not {show(value)}")
    return float(value)


def float32(value: Any, field: str) -> float:
    """A number a Float32 column takes: 1e39 would fail the whole insert batch."""
    checked = number(value, field)
    if not abs(checked) <= FLOAT32_MAX:
        raise ValueError(f"{field} {checked} does not fit a Float32")
    return checked


def float32_list(value: Any, field: str) -> list[float]:
    if not isinstance(value, list):
        raise TypeError(f"{field} must be a list of numbers, not {type(value).__name__}")
    return [float32(v, f"{field}[{i}]") for i, v in enumerate(value)]


def epoch_ms(value: Any, field: str) -> datetime:
    # Strict, unlike utc_datetime: a string or float time is a producer bug worth a dead letter.
    return utc_datetime(integer(value, field, MAX_EPOCH_MS))


def kafka_timestamp(value: Any, field: str) -> datetime:
    """A Kafka timestamp, clamped into the column's range rather than refused.

    Producers set it to anything (-1: none), and the record that came with it is still
    good: a dead letter must be stored whatever its input's timestamp was.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{field} must be an integer, not {show(value)}")
    return utc_datetime(min(max(value, 0), MAX_EPOCH_MS))
