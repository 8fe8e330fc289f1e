"""The profile table's local store (RocksDB) checked against its changelog before Faust starts.

The changelog topic on the broker is the truth; the local store is a cache of it. The cache
belongs to other data when the broker is another one (a restarted embedded broker, a new
cluster: its cluster id differs), or when the topic was emptied or recreated (a partition's
persisted offset is at or beyond the changelog's end). Faust then either stops with
``ConsistencyError`` (offset above a non-empty changelog's end) or, worse, keeps the stale
profiles and their offsets (an empty changelog), which swallow the new broker's events as
replays. So before the app starts, :func:`rebuild_stale_store` deletes such a store, logs one
line, and lets Faust rebuild it from the changelog.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from aiokafka import TopicPartition

from stream_aimass.kafka.clients import cluster_id, make_consumer
from stream_aimass.settings import Settings

log = logging.getLogger("stream_aimass.recs")

# Faust's RocksDB stores keep the last changelog offset they applied under this key.
OFFSET_KEY = b"__faust\x00offset__"
MARKER = "aimass-changelog.json"


def persisted_offsets(tabledir: Path, table: str) -> dict[int, int]:
    """Partition -> the changelog offset each local partition store last applied."""
    from rocksdict import AccessType, Options, Rdict

    found: dict[int, int] = {}
    pattern = re.compile(rf"^{re.escape(table)}-(\d+)\.db$")
    for path in sorted(tabledir.glob(f"{table}-*.db")):
        match = pattern.match(path.name)
        if not match:
            continue
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            raw = db.get(OFFSET_KEY)
        finally:
            db.close()
        if raw is not None:
            found[int(match.group(1))] = int(raw)
    return found


async def changelog_ends(settings: Settings, bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> end offset (high watermark) of ``topic`` on the broker now."""
    consumer = make_consumer(settings, bootstrap, None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: int(end) for tp, end in ends.items()}
    finally:
        await consumer.stop()


def stale_reason(
    marker: dict[str, str] | None,
    cluster: str | None,
    persisted: dict[int, int],
    ends: dict[int, int],
) -> str | None:
    """Why a local store does not belong to the changelog now on the broker, or None."""
    if marker and cluster and marker.get("cluster_id") not in (None, cluster):
        return f"the broker is another cluster ({marker['cluster_id']} then, {cluster} now)"
    for partition, offset in sorted(persisted.items()):
        end = ends.get(partition, 0)
        if offset >= end:
            return (
                f"partition {partition} of the store applied changelog offset {offset}, but the "
                f"changelog ends at {end} (emptied, recreated or on a restarted broker)"
            )
    return None


async def rebuild_stale_store(
    settings: Settings, bootstrap: str, tabledir: Path, table: str, changelog: str
) -> bool:
    """Delete the local table store when it is stale (see the module); True if it was.

    Records the broker's cluster id next to the store, for the next start's check.
    """
    cluster = cluster_id(settings, bootstrap)
    marker_path = tabledir / MARKER
    marker = None
    if marker_path.exists():
        try:
            marker = json.loads(marker_path.read_text())
        except ValueError:
            marker = None
    persisted = persisted_offsets(tabledir, table) if tabledir.is_dir() else {}
    stale = None
    if persisted or marker:
        ends = await changelog_ends(settings, bootstrap, changelog)
        stale = stale_reason(marker, cluster, persisted, ends)
    if stale is not None:
        log.warning(
            "local table store %s is stale: %s; rebuilding it from the changelog %s",
            tabledir,
            stale,
            changelog,
        )
        shutil.rmtree(tabledir, ignore_errors=True)
    if cluster:
        tabledir.mkdir(parents=True, exist_ok=True)
        marker_path.write_text(json.dumps({"cluster_id": cluster, "changelog": changelog}))
    return stale is not None
