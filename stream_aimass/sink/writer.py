"""Stage ``sink``: batches inserted into ClickHouse, idempotently, with retries.

Idempotency has two layers: every insert carries a deduplication token that names its rows
(see ``sink.buffers.TableBuffer.token``: a retried insert is dropped by ClickHouse, in the
materialized views it feeds too), and the tables are ReplacingMergeTree on natural keys (a
re-delivered record collapses under FINAL). Rows ClickHouse refuses for good are split out
(:func:`is_rejection`); every other failure is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import re
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_aimass.retry import Backoff

log = logging.getLogger("stream_aimass.sink")


# Sent with every insert: since ClickHouse 24.7 a retried block reaches the materialized views
# (usage_hourly) even when the source table drops it; this lets them drop it too.
INSERT_SETTINGS: dict[str, Any] = {"deduplicate_blocks_in_dependent_materialized_views": 1}


@dataclass(slots=True)
class InsertBatch:
    table: str
    columns: Sequence[str]
    rows: list[list[Any]]
    token: str
    # Filled by ClickHouseWriter.insert: (row index, reason) of the rows ClickHouse rejects
    # for good; the rest of the batch is stored.
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def part(self, start: int, end: int) -> InsertBatch:
        """Rows ``start:end``, with a token of their own (the same on every retry)."""
        return InsertBatch(
            self.table, self.columns, self.rows[start:end], f"{self.token}#{start}-{end}"
        )


# ClickHouse error codes that say "this data cannot go into this table", on every retry:
# malformed or out-of-range values, type mismatches, violated CONSTRAINTs, throwIf() in a
# materialized view. Anything else (the network, memory, too many parts, a missing table or
# column: things an operator fixes) is retried.
REJECTION_CODES = frozenset({6, 27, 38, 41, 53, 69, 70, 72, 117, 131, 190, 321, 349, 395, 469})


_CODE = re.compile(r"\bCode: (\d+)\b")


def is_rejection(exc: BaseException) -> bool:
    """Whether ``exc`` is a permanent rejection of the rows (see REJECTION_CODES), not a
    failure worth retrying. The client refusing to serialise a value counts too."""
    from clickhouse_connect.driver.exceptions import DataError

    if isinstance(exc, DataError | TypeError | ValueError | OverflowError | struct.error):
        return not isinstance(exc, ConnectionError)
    match = _CODE.search(str(exc))
    return match is not None and int(match.group(1)) in REJECTION_CODES


class ClickHouseWriter:
    """Inserts batches with a deduplication token, retrying with capped exponential backoff.

    ``insert`` does not return until ClickHouse acknowledged the batch (or ``stopping``
    says to give up): the caller holds its offsets until then, which is the backpressure.
    ``client`` may be set later (a sink that connects once ClickHouse is up); inserting
    without one fails like an unreachable server, and is retried.
    """

    def __init__(
        self,
        client: Any,
        *,
        retry_max_s: float = 30.0,
        retry_initial_s: float = 0.1,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_retry: Callable[[InsertBatch, BaseException, int], None] | None = None,
    ) -> None:
        self.client = client
        self._retry_max_s = retry_max_s
        self._retry_initial_s = retry_initial_s
        self._sleep = sleep
        self._on_retry = on_retry
        self.failures = 0
        # (table, columns) -> the columns' ClickHouse types, read once per client: without
        # them clickhouse-connect asks DESCRIBE TABLE before every insert.
        self._types: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._types_of: Any = None

    def _column_types(self, table: str, columns: tuple[str, ...]) -> Any:
        """The columns' types, described once per client and table (None: the client cannot
        say, and inserts by column name)."""
        if self._types_of is not self.client:
            self._types, self._types_of = {}, self.client
        key = (table, columns)
        types = self._types.get(key)
        if types is None:
            describe = getattr(self.client, "create_insert_context", None)
            if describe is None:
                return None
            types = self._types[key] = describe(table, list(columns)).column_types
        return types

    def insert_sync(self, batch: InsertBatch) -> None:
        if self.client is None:
            raise ConnectionError("not connected to ClickHouse yet")
        columns = tuple(batch.columns)
        try:
            self.client.insert(
                batch.table,
                batch.rows,
                column_names=list(columns),
                column_types=self._column_types(batch.table, columns),
                settings={**INSERT_SETTINGS, "insert_deduplication_token": batch.token},
            )
        except Exception:
            # The table may have changed (a migration, a recreated table): describe it again.
            self._types.pop((batch.table, columns), None)
            raise

    async def insert(
        self, batch: InsertBatch, stopping: Callable[[], bool] = lambda: False
    ) -> bool:
        """Insert until acknowledged; False only when ``stopping()`` turned true first.

        A permanent rejection (:func:`is_rejection`) splits the batch in halves until the
        rows ClickHouse refuses are alone: those are listed in ``batch.rejected`` with the
        reason, everything else is stored. Any other failure is retried with backoff.
        """
        batch.rejected = []
        return await self._insert_range(batch, 0, len(batch.rows), stopping)

    async def _insert_range(
        self, batch: InsertBatch, start: int, end: int, stopping: Callable[[], bool]
    ) -> bool:
        part = batch if (start, end) == (0, len(batch.rows)) else batch.part(start, end)
        backoff = Backoff(self._retry_initial_s, self._retry_max_s)
        attempt = 0
        loop = asyncio.get_running_loop()
        while True:
            attempt += 1
            try:
                await loop.run_in_executor(None, self.insert_sync, part)
                return True
            except Exception as exc:  # retried, or split until the refused rows are alone
                if is_rejection(exc):
                    if end - start == 1:
                        log.warning("%s rejected a row for good: %s", batch.table, exc)
                        batch.rejected.append((start, f"{type(exc).__name__}: {exc}"))
                        return True
                    mid = (start + end) // 2
                    return await self._insert_range(
                        batch, start, mid, stopping
                    ) and await self._insert_range(batch, mid, end, stopping)
                self.failures += 1
                if self._on_retry is not None:
                    self._on_retry(batch, exc, attempt)
                if stopping():
                    log.warning("insert into %s failed, stopping: %s", batch.table, exc)
                    return False
                delay = backoff.next_delay()
                log.warning(
                    "insert into %s failed (attempt %d, retry in %.2fs): %s",
                    batch.table,
                    attempt,
                    delay,
                    exc,
                )
                await self._sleep(delay)
