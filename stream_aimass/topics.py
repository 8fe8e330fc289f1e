"""Topic definitions (``topics/*.config.json``) and their creation on a cluster."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from stream_aimass.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    retention_ms: int
    cleanup_policy: str
    key: str


def _resource_dir() -> Any:
    return resources.files("stream_aimass") / "resources" / "topics"


def load_specs() -> dict[str, TopicSpec]:
    """Topic configs by their default name."""
    specs: dict[str, TopicSpec] = {}
    for entry in _resource_dir().iterdir():
        if not entry.name.endswith(".config.json"):
            continue
        raw = json.loads(entry.read_text())
        specs[raw["name"]] = TopicSpec(
            name=raw["name"],
            partitions=int(raw["partitions"]),
            replication_factor=int(raw.get("replication_factor", 1)),
            retention_ms=int(raw.get("retention_ms", 7 * 24 * 3600 * 1000)),
            cleanup_policy=str(raw.get("cleanup_policy", "delete")),
            key=str(raw.get("key", "")),
        )
    return specs


def load_schema(default_name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (_resource_dir() / f"{default_name}.schema.json").read_text()
    )
    return loaded


def configured_topics(settings: Settings) -> list[TopicSpec]:
    """The topics this deployment uses, under their configured names."""
    specs = load_specs()
    names = {
        "aimass.documents": settings.topic_documents,
        "aimass.events": settings.topic_events,
        "aimass.enriched": settings.topic_enriched,
        "aimass.recommendations": settings.topic_recommendations,
        "aimass.dlq": settings.topic_dlq,
        "aimass.items": settings.topic_items,
        "aimass.item-vectors": settings.topic_item_vectors,
    }
    out = []
    for default, actual in names.items():
        spec = specs[default]
        out.append(
            TopicSpec(
                name=actual,
                partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                retention_ms=spec.retention_ms,
                cleanup_policy=spec.cleanup_policy,
                key=spec.key,
            )
        )
    events = specs["aimass.events"]
    # Faust's changelog of the profile table: co-partitioned with the events it is keyed by.
    out.append(
        TopicSpec(
            name=settings.profiles_changelog,
            partitions=events.partitions,
            replication_factor=events.replication_factor,
            retention_ms=-1,
            cleanup_policy="compact",
            key="tenant:user_id",
        )
    )
    return out


def admin_client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka configuration of an admin client: bootstrap plus the security options."""
    return {"bootstrap.servers": settings.kafka_bootstrap, **settings.confluent_client_options()}


def make_admin_client(settings: Settings) -> Any:
    """A confluent-kafka admin client for ``settings`` (the only confluent client built)."""
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    return AdminClient(admin_client_config(settings))


def create_on_cluster(settings: Settings, timeout_s: float = 30.0) -> dict[str, str]:
    """Create the configured topics on a real cluster; returns topic -> outcome."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = make_admin_client(settings)
    new = [
        NewTopic(
            t.name,
            num_partitions=t.partitions,
            replication_factor=t.replication_factor,
            config={"retention.ms": str(t.retention_ms), "cleanup.policy": t.cleanup_policy},
        )
        for t in configured_topics(settings)
    ]
    outcome: dict[str, str] = {}
    for name, future in admin.create_topics(new, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            outcome[name] = "created"
        except Exception as exc:
            text = str(exc)
            outcome[name] = "exists" if "TOPIC_ALREADY_EXISTS" in text else f"failed: {text}"
    return outcome
