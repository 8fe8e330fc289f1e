"""Documents that come over HTTP (``POST /v1/enrich``, ``/v1/embed``) instead of Kafka.

They join the same batcher and model thread as the stream: no second copy of the models,
and one model step serves both. This module bounds them (past
``api_max_pending_documents`` a request is refused with 429 and ``Retry-After``) and keeps
the replies the model step resolves, so that a stopping worker fails them instead of
leaving a caller waiting.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from stream_aimass.records import Source

# The source of a document that came over HTTP, in its enriched record: ``source.topic``
# says where it came from (usage and ClickHouse show it), the offset numbers this worker's
# requests (it orders two versions of one id sent in the same millisecond).
API_TOPIC = "api"
API_PARTITION = TopicPartition(API_TOPIC, 0)


@dataclass(frozen=True, slots=True)
class Refused(Exception):
    """Why an HTTP request is not taken: its status, the reason and when to retry."""

    status: int
    reason: str
    retry_after_s: int | None = None

    def __str__(self) -> str:
        return self.reason


@dataclass(slots=True)
class DirectRequests:
    """Admission and replies of the HTTP documents waiting for the model."""

    limit: int
    pending: int = 0
    _offsets: itertools.count[int] = field(default_factory=itertools.count)
    _replies: set[asyncio.Future[object]] = field(default_factory=set)
    _closed: str | None = None

    def admit(self, documents: int, ready: bool) -> None:
        """Take ``documents`` more, or raise :class:`Refused` (503 not ready, 429 full)."""
        if self._closed is not None or not ready:
            raise Refused(
                503, self._closed or "the enrich path is not ready (starting or reconnecting)", 1
            )
        if self.pending + documents > self.limit:
            raise Refused(
                429,
                f"{self.pending} documents of HTTP requests are waiting for the model and "
                f"this request brings {documents} (at most {self.limit} wait at once); retry",
                1,
            )
        self.pending += documents

    def release(self, documents: int) -> None:
        self.pending -= documents

    def source(self) -> Source:
        return Source(API_TOPIC, 0, next(self._offsets), time.time_ns() // 1_000_000)

    def reply(self) -> asyncio.Future[object]:
        """A future the model step resolves with the document's result."""
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._replies.add(future)
        future.add_done_callback(self._replies.discard)
        return future

    def close(self, reason: str) -> None:
        """Refuse from now on, and fail every reply still waiting."""
        self._closed = reason
        for future in list(self._replies):
            if not future.done():
                future.set_exception(Refused(503, reason, 1))
