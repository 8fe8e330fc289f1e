"""Produce until acknowledged, for the enrich role and the recommendation path."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError

from stream_aimass.retry import Backoff

log = logging.getLogger("stream_aimass.kafka")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce."""

    topic: str
    value: bytes | None
    key: bytes | None


async def deliver(
    producer: Any,
    records: list[Outgoing],
    *,
    stopping: Callable[[], bool],
    sleep: Callable[[float], Awaitable[None]],
    retry_max_s: float,
    on_retry: Callable[[Outgoing], None] = lambda _: None,
) -> set[int]:
    """Produce ``records`` until each is acknowledged; the indices of those given up.

    Failed sends are sent again with capped exponential backoff (from 0.1 s up to
    ``retry_max_s``; ``on_retry`` hears of each record sent again), for as long as it takes:
    callers hold what the records derive from meanwhile (source offsets, a publish slot),
    which is the backpressure. Only ``stopping()`` gives up. A retried record may reach the
    topic twice (the first attempt may have been written before its ack was lost): every
    consumer downstream collapses such duplicates.
    """
    todo = list(range(len(records)))
    backoff: Backoff | None = None
    while True:
        sent: list[tuple[int, Any]] = []
        failed: list[int] = []
        error: KafkaError | None = None
        for i in todo:
            out = records[i]
            try:
                sent.append((i, await producer.send(out.topic, out.value, key=out.key)))
            except KafkaError as exc:  # no metadata, buffer full past its timeout...
                failed.append(i)
                error = exc
        for i, future in sent:
            try:
                await future
            except KafkaError as exc:  # refused by the broker, or expired in the client
                failed.append(i)
                error = exc
        if not failed:
            return set()
        if stopping():
            log.warning(
                "stopping: %d records not acknowledged (%s); what they derive from stays "
                "uncommitted and is delivered again",
                len(failed),
                type(error).__name__,
            )
            return set(failed)
        if backoff is None:
            backoff = Backoff(max_s=retry_max_s)
        delay = backoff.next_delay()
        for i in failed:
            on_retry(records[i])
        log.warning(
            "producing %d records to %s failed (attempt %d, retry in %.2fs): %s: %s",
            len(failed),
            ",".join(sorted({records[i].topic for i in failed})),
            backoff.attempts,
            delay,
            type(error).__name__,
            error,
        )
        await sleep(delay)
        todo = sorted(failed)
