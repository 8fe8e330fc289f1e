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


def events_partitions(settings: Settings) -> int:
    """Partitions of the events topic (and of the profile table's changelog)."""
    return settings.topic_partitions or load_specs()["aimass.events"].partitions


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
    replicas = settings.topic_replication_factor
    for default, actual in names.items():
        spec = specs[default]
        partitions = spec.partitions
        if settings.topic_partitions and default != "aimass.dlq":
            partitions = settings.topic_partitions
        out.append(
            TopicSpec(
                name=actual,
                partitions=partitions,
                replication_factor=replicas or spec.replication_factor,
                retention_ms=spec.retention_ms,
                cleanup_policy=spec.cleanup_policy,
                key=spec.key,
            )
        )
    events = next(t for t in out if t.name == settings.topic_events)
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


def topic_mismatches(
    spec: TopicSpec, partitions: int, replicas: int, config: dict[str, str] | None
) -> list[str]:
    """How an existing topic differs from ``spec`` (empty: it matches). ``config`` None: the
    cluster did not say (its retention and cleanup policy go unchecked)."""
    problems = []
    if partitions != spec.partitions:
        problems.append(f"{partitions} partitions, not {spec.partitions}")
    if replicas < spec.replication_factor:
        problems.append(f"replication factor {replicas}, below {spec.replication_factor}")
    if config is not None:
        for key, want in (
            ("cleanup.policy", spec.cleanup_policy),
            ("retention.ms", str(spec.retention_ms)),
        ):
            have = config.get(key)
            if have is not None and have != want:
                problems.append(f"{key}={have}, not {want}")
    return problems


def _topic_configs(admin: Any, names: list[str], timeout_s: float) -> dict[str, dict[str, str]]:
    """retention.ms and cleanup.policy of ``names`` (topics the cluster would not describe
    are left out: the embedded broker describes none)."""
    from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

    found: dict[str, dict[str, str]] = {}
    if not names:
        return found
    try:
        futures = admin.describe_configs(
            [ConfigResource("topic", name) for name in names], request_timeout=timeout_s
        )
        for resource, future in futures.items():
            entries = future.result(timeout=timeout_s)
            found[resource.name] = {k: str(v.value) for k, v in entries.items()}
    except Exception:  # an old or partial broker: partitions are still checked
        return found
    return found


def create_on_cluster(settings: Settings, timeout_s: float = 30.0) -> dict[str, str]:
    """Create the configured topics on a real cluster; returns topic -> outcome: "created",
    "exists", "mismatch: ..." (partitions or config differ from topics/*.config.json) or
    "failed: ..."."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = make_admin_client(settings)
    wanted = configured_topics(settings)
    existing = admin.list_topics(timeout=timeout_s).topics
    outcome: dict[str, str] = {}
    present = [t for t in wanted if t.name in existing and not existing[t.name].error]
    configs = _topic_configs(admin, [t.name for t in present], min(timeout_s, 5.0))
    for spec in present:
        meta = existing[spec.name]
        replicas = min((len(p.replicas) for p in meta.partitions.values()), default=0)
        problems = topic_mismatches(spec, len(meta.partitions), replicas, configs.get(spec.name))
        outcome[spec.name] = "mismatch: " + "; ".join(problems) if problems else "exists"
    new = [
        NewTopic(
            t.name,
            num_partitions=t.partitions,
            replication_factor=t.replication_factor,
            config={"retention.ms": str(t.retention_ms), "cleanup.policy": t.cleanup_policy},
        )
        for t in wanted
        if t.name not in outcome
    ]
    if new:
        for name, future in admin.create_topics(new, request_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
                outcome[name] = "created"
            except Exception as exc:
                text = str(exc)
                outcome[name] = "exists" if "TOPIC_ALREADY_EXISTS" in text else f"failed: {text}"
    return {t.name: outcome[t.name] for t in wanted}
