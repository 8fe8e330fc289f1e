"""Topic specs under the settings: names, and the partitions and replication to create."""

from __future__ import annotations

from stream_aimass.kafka.topics import configured_topics, events_partitions, load_specs
from stream_aimass.settings import Settings


def test_the_configs_decide_when_the_settings_do_not() -> None:
    settings = Settings()
    specs = load_specs()
    topics = {t.name: t for t in configured_topics(settings)}
    for name, spec in specs.items():
        assert (topics[name].partitions, topics[name].replication_factor) == (
            spec.partitions,
            spec.replication_factor,
        )
    assert topics[settings.profiles_changelog].partitions == specs["aimass.events"].partitions
    assert events_partitions(settings) == specs["aimass.events"].partitions


def test_topic_partitions_sets_every_topic_but_the_dlq_and_keeps_the_changelog_in_step() -> None:
    settings = Settings(topic_partitions=12, topic_replication_factor=3, topic_events="ev")
    topics = {t.name: t for t in configured_topics(settings)}
    dlq = load_specs()["aimass.dlq"].partitions
    assert topics[settings.topic_dlq].partitions == dlq != 12
    others = [t for name, t in topics.items() if name != settings.topic_dlq]
    assert len(others) == 7 and {t.partitions for t in others} == {12}
    # The profile table's changelog is co-partitioned with the events it is keyed by.
    assert topics[settings.profiles_changelog].partitions == topics["ev"].partitions == 12
    assert {t.replication_factor for t in topics.values()} == {3}
    assert events_partitions(settings) == 12
