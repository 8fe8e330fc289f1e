"""Every patch of a third-party library, in one place, each installed by a named function.

A patch exists because a library (aiokafka, Faust) does something we cannot configure. Each
one checks, when it is installed, that what it hooks is still there: an upgrade that renames
or removes it fails loudly at start instead of silently undoing the patch, and
``tests/unit/test_compat.py`` exercises each one against the installed library.

- :func:`install_unreadable_batch_guard` (aiokafka, every consumer): a record batch that
  cannot be decoded (a codec error, corrupt compressed data, a CRC mismatch) becomes one
  marker record instead of an exception that refetches the same batch forever.
- :func:`install_mock_broker_workarounds` (aiokafka, only against the embedded broker): a
  SyncGroup answered with INVALID_REQUEST rejoins instead of stopping the coordinator.
- :func:`faust_fetch_wait` (Faust): our fetch wait for Faust's consumer instead of its
  hard-coded 1,500 ms.
"""

from __future__ import annotations

import inspect
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from stream_aimass.records import UnreadableBatch

log = logging.getLogger("stream_aimass.kafka")


class CompatError(RuntimeError):
    """A library no longer has what one of our patches hooks (after an upgrade)."""


def _require(owner: Any, name: str, what: str) -> Any:
    if not hasattr(owner, name):
        raise CompatError(
            f"{getattr(owner, '__name__', owner)!s} has no {name!r} any more: the patch for "
            f"{what} (stream_aimass/compat.py) needs updating for this library version"
        )
    return getattr(owner, name)


# -- unreadable record batches ----------------------------------------------------------

UNREADABLE_HEADER = "aimass-unreadable-batch"
UNREADABLE_BYTES_HEADER = "aimass-unreadable-batch-bytes"
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
# Every Kafka record framing (message sets v0/v1 and record batches v2) starts with the
# offset (int64) and the size of the rest (int32).
_FRAME = struct.Struct(">qi")


def unreadable_batch(msg: Any) -> UnreadableBatch | None:
    """The unreadable batch ``msg`` marks, or None for an ordinary message (cheap)."""
    if msg.value is not None:
        return None
    headers = getattr(msg, "headers", None)
    if not headers:
        return None
    if not isinstance(headers, dict):
        headers = dict(headers)
    meta = headers.get(UNREADABLE_HEADER)
    if meta is None:
        return None
    info = orjson.loads(meta)
    return UnreadableBatch(
        first_offset=int(info["first_offset"]),
        last_offset=int(info["last_offset"]),
        codec=str(info["codec"]),
        reason=str(info["reason"]),
        raw=bytes(headers.get(UNREADABLE_BYTES_HEADER) or b""),
    )


@dataclass(frozen=True, slots=True)
class _Marker:
    """What aiokafka turns into the marker ConsumerRecord (the fields it reads)."""

    offset: int
    timestamp: int
    timestamp_type: int
    headers: tuple[tuple[str, bytes], ...]
    key: None = None
    value: None = None
    checksum: None = None


class _GuardedBatch:
    """A record batch whose decoding failure becomes one marker record."""

    def __init__(self, batch: Any, raw: bytes) -> None:
        self._batch = batch
        self._raw = raw
        self._crc_wanted = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __next__(self) -> Any:
        # aiokafka reads a control batch's marker with next(batch): no decoding to guard.
        return next(self._batch)

    def validate_crc(self) -> bool:
        # Checked when the records are read, so that a mismatch becomes the marker too.
        self._crc_wanted = True
        return True

    def __iter__(self) -> Iterator[Any]:
        batch = self._batch
        next_offset = batch.next_offset
        first = batch.base_offset
        try:
            if self._crc_wanted and not batch.validate_crc():
                raise ValueError("CRC mismatch (the batch is corrupt)")
            for record in batch:
                first = record.offset + 1
                yield record
        except Exception as exc:  # codec missing, corrupt data: whatever decoding raised
            if first >= next_offset:
                return  # every record was read before the failure
            yield self._marker(first, next_offset - 1, f"{type(exc).__name__}: {exc}")

    def _marker(self, first: int, last: int, reason: str) -> _Marker:
        batch = self._batch
        codec_id = getattr(batch, "compression_type", -1)
        info = {
            "first_offset": first,
            "last_offset": last,
            "codec": CODECS.get(codec_id, f"unknown ({codec_id})"),
            "reason": reason,
        }
        log.warning(
            "unreadable record batch at offsets %d-%d (codec %s): %s",
            first,
            last,
            info["codec"],
            reason,
        )
        return _Marker(
            offset=last,
            timestamp=int(getattr(batch, "first_timestamp", -1) or -1),
            timestamp_type=int(getattr(batch, "timestamp_type", 0) or 0),
            headers=(
                (UNREADABLE_HEADER, orjson.dumps(info)),
                (UNREADABLE_BYTES_HEADER, self._raw),
            ),
        )


class _GuardedRecords:
    """aiokafka's MemoryRecords, handing out :class:`_GuardedBatch` es with their bytes."""

    def __init__(self, records: Any, raw: bytes) -> None:
        self._records = records
        self._raw = memoryview(raw)
        self._pos = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        if batch is None:
            return None
        start = self._pos
        raw = b""
        if len(self._raw) - start >= _FRAME.size:
            _, size = _FRAME.unpack_from(self._raw, start)
            self._pos = start + _FRAME.size + size
            raw = bytes(self._raw[start : self._pos])
        return _GuardedBatch(batch, raw)


def install_unreadable_batch_guard() -> None:
    """Make every aiokafka consumer of this process hand out unreadable batches as markers.

    aiokafka decodes a batch inside ``getmany``: an unknown codec, corrupt compressed data or
    a CRC mismatch raises there, the position does not move, and the next fetch returns the
    same batch, forever. Wrapped, the batch yields one marker record instead (see
    :func:`unreadable_batch`); the roles dead-letter it and move past it.
    """
    from aiokafka.consumer import fetcher

    original = _require(fetcher, "MemoryRecords", "unreadable record batches")
    if getattr(original, "_aimass_guard", False):
        return
    _require(fetcher.PartitionRecords, "_unpack_records", "unreadable record batches")

    def guarded(raw: bytes) -> _GuardedRecords:
        return _GuardedRecords(original(raw), raw)

    guarded._aimass_guard = True  # type: ignore[attr-defined]
    fetcher.MemoryRecords = guarded


# -- the embedded broker's group quirk -------------------------------------------------


def install_mock_broker_workarounds() -> None:
    """Make SyncGroup's INVALID_REQUEST a retried rejoin instead of a dead coordinator.

    Only for processes that talk to the embedded broker (librdkafka's mock cluster): it
    answers SyncGroup with INVALID_REQUEST when two members join a group at once. aiokafka
    treats that as fatal: its coordinator stops for good. Our own batch consumers are
    replaced when that happens, but Faust's consumer (the recommendation path's events
    agent) has no such hook and would hang the worker. The rejoin is already requested when
    the error is raised, so returning "no assignment" makes aiokafka back off and join again.
    A real Kafka cluster never gets this patch.
    """
    from aiokafka.consumer import group_coordinator

    rebalance = _require(group_coordinator, "CoordinatorGroupRebalance", "SyncGroup retries")
    if getattr(rebalance, "_aimass_patched", False):
        return
    original = _require(rebalance, "perform_group_join", "SyncGroup retries")
    if not inspect.iscoroutinefunction(original):
        raise CompatError("CoordinatorGroupRebalance.perform_group_join is no coroutine any more")

    rebalance.perform_group_join = rejoin_on_invalid_request(original)
    rebalance._aimass_patched = True
    rebalance._aimass_original = original


def rejoin_on_invalid_request(original: Any) -> Any:
    """``perform_group_join`` that answers INVALID_REQUEST with "no assignment" (rejoin)."""
    from aiokafka.errors import KafkaError

    async def perform_group_join(self: Any) -> Any:
        try:
            return await original(self)
        except KafkaError as exc:
            if "InvalidRequestError" not in str(exc):
                raise
            log.warning("group %s: SyncGroup got INVALID_REQUEST; joining again", self.group_id)
            return None

    return perform_group_join


def mock_broker_workarounds_installed() -> bool:
    from aiokafka.consumer import group_coordinator

    return bool(getattr(group_coordinator.CoordinatorGroupRebalance, "_aimass_patched", False))


# -- Faust's fetch wait -----------------------------------------------------------------


def faust_fetch_wait(app: Any, fetch_max_wait_ms: int) -> None:
    """Give Faust's consumer our broker fetch wait instead of its hard-coded 1,500 ms.

    A fetch with no new data is held for the whole wait (see FINDINGS: the embedded broker
    holds it even when data arrives meanwhile), so 1.5 s would be the recommendation path's
    latency floor. Faust has no setting for it: wrap the consumer factory of its aiokafka
    driver, reading the wait from the app.
    """
    from faust.transport.drivers import aiokafka as driver

    thread = _require(driver, "AIOKafkaConsumerThread", "Faust's fetch wait")
    if not getattr(thread, "_aimass_patched", False):
        original = _require(thread, "_create_worker_consumer", "Faust's fetch wait")

        def create(self: Any, transport: Any) -> Any:
            consumer = original(self, transport)
            wait = getattr(self.app, "aimass_fetch_max_wait_ms", None)
            if wait is not None:
                if not hasattr(consumer, "_fetch_max_wait_ms"):
                    raise CompatError("AIOKafkaConsumer has no _fetch_max_wait_ms any more")
                consumer._fetch_max_wait_ms = wait
            return consumer

        thread._create_worker_consumer = create
        thread._aimass_patched = True
    app.aimass_fetch_max_wait_ms = fetch_max_wait_ms
