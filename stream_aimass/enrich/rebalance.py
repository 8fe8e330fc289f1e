"""What the enrich role does when the consumer group moves partitions."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition

from stream_aimass.kafka.retention import LossWatch

log = logging.getLogger("stream_aimass.enrich")


class Owner(Protocol):
    """The service whose partitions move (``EnrichService``)."""

    losses: LossWatch
    consumer: Any
    _paused: bool

    async def drain(self, revoked: list[TopicPartition], timeout_s: float = 30.0) -> None: ...


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Revoked partitions are drained and committed first; assigned ones stay paused while
    the service is."""

    def __init__(self, service: Owner) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.service.losses.forget(revoked)
        await self.service.drain(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("enrich assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))
        if self.service._paused and assigned:
            self.service.consumer.pause(*assigned)
