"""Which workers a recommendations request asks, and in what order."""

from __future__ import annotations

import uuid

from stream_aimass.kafka.embedded import EmbeddedBroker
from stream_aimass.recs.lookup import ask_order, murmur2_partition, owners
from stream_aimass.testing import produce_with_librdkafka, read_topic

ME, A, B = "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"


def test_owners_come_from_faust_tables_metadata() -> None:
    meta = {ME: {"cl": [0, 2], "other": [1]}, A: {"cl": [1]}, B: {"cl": [3]}}
    assert owners(meta, "cl") == {0: ME, 2: ME, 1: A, 3: B}


def test_the_murmur2_owner_is_asked_first_and_me_never() -> None:
    owned = {0: ME, 1: A, 2: B, 3: A}
    key = next(
        f"acme:u{i}".encode()
        for i in range(100)
        if murmur2_partition(f"acme:u{i}".encode(), 4) == 2
    )
    assert ask_order(owned, 4, key, ME) == ([B, A], True)
    mine = next(
        f"acme:u{i}".encode()
        for i in range(100)
        if murmur2_partition(f"acme:u{i}".encode(), 4) == 0
    )
    assert ask_order(owned, 4, mine, ME) == ([A, B], True)


def test_an_unassigned_partition_makes_the_answer_incomplete() -> None:
    order, complete = ask_order({0: ME, 1: A}, 4, b"acme:u1", ME)
    assert not complete and order == [A]


def test_murmur2_partition_is_the_partition_kafkas_default_partitioner_picks() -> None:
    """librdkafka's murmur2_random (the Java client's default) agrees key by key."""
    topic = f"t{uuid.uuid4().hex[:6]}"
    keys = [f"acme:user-{i}".encode() for i in range(60)]
    with EmbeddedBroker() as broker:
        broker.create_topic(topic, 12)
        produce_with_librdkafka(
            broker.bootstrap, topic, [(k, b"v") for k in keys], partitioner="murmur2_random"
        )
        got = read_topic(broker.bootstrap, topic, len(keys), timeout=20)
    assert {m.key: m.partition for m in got} == {k: murmur2_partition(k, 12) for k in keys}
