"""Send JSONL files to the input topics (lines are sent as they are: the worker validates)."""

from __future__ import annotations

from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import Progress

from stream_aimass.kafka.clients import make_producer
from stream_aimass.records import record_key
from stream_aimass.settings import Settings


def message_key(kind: str, line: bytes) -> bytes | None:
    """The partitioning key of a line: tenant:id (documents, items), tenant:user_id (events)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    field = "user_id" if kind == "events" else "id"
    tenant, ident = obj.get("tenant"), obj.get(field)
    if isinstance(tenant, str) and isinstance(ident, str):
        return record_key(tenant, ident)
    return None


async def produce_file(
    settings: Settings, bootstrap: str, topic: str, kind: str, path: Path, console: Console
) -> int:
    producer = make_producer(settings, bootstrap)
    await producer.start()
    sent = 0
    try:
        total = path.stat().st_size
        with Progress(console=console, transient=True) as progress, path.open("rb") as fh:
            task = progress.add_task(f"producing to {topic}", total=total)
            for line in fh:
                progress.advance(task, len(line))
                body = line.rstrip(b"\r\n")
                if not body.strip():
                    continue
                await producer.send(topic, body, key=message_key(kind, body))
                sent += 1
            await producer.flush()
    finally:
        await producer.stop()
    return sent
