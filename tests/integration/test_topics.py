"""``stream-aimass topics create`` against a running broker whose topics exist already."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app
from stream_aimass.kafka.embedded import EmbeddedBroker
from stream_aimass.kafka.topics import TopicSpec, configured_topics, topic_mismatches
from stream_aimass.settings import Settings

pytestmark = pytest.mark.integration

runner = CliRunner()


def test_topics_that_exist_as_configured_are_reported_as_existing() -> None:
    with EmbeddedBroker() as broker:
        broker.create_topics((t.name, t.partitions) for t in configured_topics(Settings()))
        result = runner.invoke(app, ["topics", "create", "--bootstrap", broker.bootstrap])
    assert result.exit_code == 0, result.output
    assert result.output.count(": exists") == len(configured_topics(Settings()))


def test_a_topic_with_other_partitions_is_a_mismatch_and_the_command_fails() -> None:
    with EmbeddedBroker() as broker:
        for t in configured_topics(Settings()):
            broker.create_topic(t.name, 3 if t.name == "aimass.documents" else t.partitions)
        result = runner.invoke(app, ["topics", "create", "--bootstrap", broker.bootstrap])
    assert result.exit_code == 1, result.output
    assert "aimass.documents: mismatch: 3 partitions, not 6" in result.output
    assert "aimass.events: exists" in result.output
    assert "1 topic(s) failed or differ" in result.output


def test_config_differences_are_mismatches_too() -> None:
    spec = TopicSpec("aimass.item-vectors", 6, 1, -1, "compact", "tenant:item_id")
    assert topic_mismatches(spec, 6, 3, {"cleanup.policy": "compact", "retention.ms": "-1"}) == []
    assert topic_mismatches(spec, 6, 1, None) == []  # the cluster did not describe it
    assert topic_mismatches(spec, 12, 1, {"cleanup.policy": "delete"}) == [
        "12 partitions, not 6",
        "cleanup.policy=delete, not compact",
    ]
    three = TopicSpec("t", 6, 3, 1000, "delete", "")
    assert topic_mismatches(three, 6, 1, {"retention.ms": "5"}) == [
        "replication factor 1, below 3",
        "retention.ms=5, not 1000",
    ]


def test_the_standalone_broker_runs_several_brokers_with_the_configured_partitions(
    tmp_path: Path,
) -> None:
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    from stream_aimass.testing import start_broker

    broker = start_broker(tmp_path, "--brokers", "3", env={"AIMASS_TOPIC_PARTITIONS": "12"})
    try:
        metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
        assert sorted(metadata.brokers) == [1, 2, 3]
        documents = metadata.topics["aimass.documents"].partitions
        assert len(documents) == 12
        assert len({p.leader for p in documents.values()}) == 3, "leaders spread over brokers"
        assert len(metadata.topics["aimass.dlq"].partitions) == 2
    finally:
        broker.stop()
