"""Each patch of stream_aimass.kafka.compat against the installed libraries: these fail when an
upgrade of aiokafka, Faust or librdkafka undoes one silently."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
import uuid

import pytest

from stream_aimass.kafka import compat
from stream_aimass.kafka.clients import make_consumer
from stream_aimass.kafka.embedded import (
    SUPPORTED_LIBRDKAFKA,
    EmbeddedBroker,
    EmbeddedBrokerError,
    _load,
    check_librdkafka,
    librdkafka_version,
)
from stream_aimass.settings import Settings
from stream_aimass.testing import (
    KAFKA_CODECS,
    produce_raw_batch,
    produce_with_librdkafka,
    record_batch,
)


def _read(bootstrap: str, topic: str, expected: int) -> list[object]:
    async def run() -> list[object]:
        consumer = make_consumer(Settings(), bootstrap, f"t-{uuid.uuid4().hex}", topic)
        await consumer.start()
        got: list[object] = []
        try:
            for _ in range(50):
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    got.extend(messages)
                if len(got) >= expected:
                    break
        finally:
            await consumer.stop()
        return got

    return asyncio.run(run())


def test_an_unreadable_batch_becomes_one_marker_and_reading_goes_on() -> None:
    with EmbeddedBroker() as broker:
        broker.create_topic("t", 1)
        produce_raw_batch(broker.bootstrap, "t", 0, record_batch([b"a", b"b"], "none"))
        first = produce_raw_batch(
            broker.bootstrap, "t", 0, record_batch([b"x" * 200] * 4, "lz4", corrupt=True)
        )
        produce_with_librdkafka(broker.bootstrap, "t", [(None, b"after")], codec="zstd")
        got = _read(broker.bootstrap, "t", 4)
    assert [m.offset for m in got] == [0, 1, first + 3, first + 4]  # type: ignore[attr-defined]
    marker = compat.unreadable_batch(got[2])
    assert marker is not None
    assert (marker.first_offset, marker.last_offset, marker.codec) == (first, first + 3, "lz4")
    assert "DecompressionError" in marker.reason or "lz4" in marker.reason
    assert marker.raw[:8] == first.to_bytes(8, "big")  # the batch as fetched, header first
    assert [compat.unreadable_batch(m) for m in (got[0], got[1], got[3])] == [None] * 3
    assert got[3].value == b"after"  # type: ignore[attr-defined]


@pytest.mark.parametrize("codec", KAFKA_CODECS)
def test_every_codec_from_librdkafka_is_read(codec: str) -> None:
    with EmbeddedBroker() as broker:
        broker.create_topic("t", 2)
        values = [f"{codec} {i} ".encode() * 40 for i in range(20)]
        produce_with_librdkafka(broker.bootstrap, "t", [(None, v) for v in values], codec=codec)
        got = _read(broker.bootstrap, "t", len(values))
    assert sorted(m.value for m in got) == sorted(values)  # type: ignore[attr-defined]


def test_the_guard_hooks_what_aiokafka_still_has() -> None:
    from aiokafka.consumer import fetcher

    compat.install_unreadable_batch_guard()
    assert getattr(fetcher.MemoryRecords, "_aimass_guard", False)
    compat.install_unreadable_batch_guard()  # idempotent
    assert hasattr(fetcher.PartitionRecords, "_unpack_records")


def test_the_embedded_broker_workaround_is_not_installed_for_other_clusters() -> None:
    """Importing the worker's modules patches nothing; starting an embedded broker does."""
    code = textwrap.dedent(
        """
        import stream_aimass.app, stream_aimass.cli, stream_aimass.kafka.clients
        from stream_aimass.kafka import compat
        assert not compat.mock_broker_workarounds_installed(), "patched at import"
        from stream_aimass.kafka.embedded import EmbeddedBroker
        with EmbeddedBroker():
            assert compat.mock_broker_workarounds_installed()
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_syncgroup_workaround_turns_invalid_request_into_a_rejoin() -> None:
    from aiokafka.consumer import group_coordinator
    from aiokafka.errors import InvalidRequestError, KafkaError, RebalanceInProgressError

    class Member:
        group_id = "g"

    async def invalid(self: object) -> object:
        raise KafkaError(f"SyncGroup failed: {InvalidRequestError()!r}")

    async def other(self: object) -> object:
        raise RebalanceInProgressError()

    assert asyncio.run(compat.rejoin_on_invalid_request(invalid)(Member())) is None
    with pytest.raises(RebalanceInProgressError):
        asyncio.run(compat.rejoin_on_invalid_request(other)(Member()))
    compat.install_mock_broker_workarounds()
    rebalance = group_coordinator.CoordinatorGroupRebalance
    assert rebalance.perform_group_join is not rebalance._aimass_original  # type: ignore[attr-defined]
    assert asyncio.iscoroutinefunction(rebalance._aimass_original)  # type: ignore[attr-defined]


def test_faust_fetch_wait_reaches_the_consumer_faust_builds() -> None:
    import faust
    from faust.transport.drivers import aiokafka as driver

    async def build() -> int:
        app = faust.App(f"compat-{uuid.uuid4().hex[:6]}", broker="kafka://127.0.0.1:1")
        compat.faust_fetch_wait(app, 37)
        thread = driver.AIOKafkaConsumerThread(app.consumer)  # type: ignore[arg-type]
        consumer = thread._create_worker_consumer(app.transport)
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(build()) == 37


def test_librdkafka_version_is_checked_before_binding() -> None:
    lib = _load()
    version = librdkafka_version(lib)
    low, high = SUPPORTED_LIBRDKAFKA
    assert low <= version < high
    check_librdkafka(version)
    for outside in ((2, 4, 9), (3, 0, 0), (1, 9, 2)):
        with pytest.raises(EmbeddedBrokerError, match=re.escape("confluent-kafka>=2.5,<3")):
            check_librdkafka(outside)
