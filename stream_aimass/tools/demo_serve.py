"""``stream-aimass demo --serve``: the demo stream through a real worker that stays up.

The worker (role ``all``, API auth off, on the embedded stack) starts as ``stream-aimass
worker`` would; a feeder thread waits for it to be ready, produces the demo's documents (the
bad messages among them) and, once they are stored, its user events, then prints a short
summary and where to look: the console, the API description, curl examples. The worker keeps
running until Ctrl-C (SIGINT) or SIGTERM.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

import faust
import orjson
from rich.console import Console

from stream_aimass.app import build_app
from stream_aimass.kafka.clients import make_producer
from stream_aimass.pipeline import Stack
from stream_aimass.settings import Settings
from stream_aimass.tools.corpus import bad_messages, generate_documents, generate_events


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _wait(what: str, check: Any, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass  # the web server is not up yet
        time.sleep(0.5)
    raise TimeoutError(f"the demo worker did not get there in {timeout:.0f} s: {what}")


def _stored(url: str) -> tuple[int, int]:
    """Documents and events the usage export counts so far."""
    rows = _get(f"{url}/v1/usage").get("rows", [])
    return sum(r["documents"] for r in rows), sum(r["events"] for r in rows)


async def _send(settings: Settings, bootstrap: str, topic: str, records: list[Any]) -> None:
    producer = make_producer(settings, bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def _feed(
    settings: Settings, bootstrap: str, url: str, n_docs: int, n_events: int, seed: int,
    console: Console,
) -> None:  # fmt: skip
    import asyncio

    docs = generate_documents(n_docs, seed=seed)
    events = generate_events(docs, n_events, seed=seed + 1) if n_events else []
    _wait("ready", lambda: _get(f"{url}/readyz")["ready"])
    started = time.perf_counter()
    records: list[tuple[bytes | None, bytes]] = [
        (f"{d['tenant']}:{d['id']}".encode(), orjson.dumps(d)) for d in docs
    ]
    records += [(None, raw) for raw, _ in bad_messages()]
    asyncio.run(_send(settings, bootstrap, settings.topic_documents, records))
    console.print(f"produced {n_docs} documents and {len(bad_messages())} bad messages")
    _wait("documents stored", lambda: _stored(url)[0] >= n_docs)
    keyed: list[tuple[bytes | None, bytes]] = [
        (f"{e['tenant']}:{e['user_id']}".encode(), orjson.dumps(e)) for e in events
    ]
    asyncio.run(_send(settings, bootstrap, settings.topic_events, keyed))
    _wait("events stored", lambda: _stored(url)[1] >= len(events))
    seconds = time.perf_counter() - started
    tenant, user = (events[0]["tenant"], events[0]["user_id"]) if events else ("acme", "u-1")
    console.print(
        f"\n[bold]{n_docs}[/] documents and [bold]{len(events)}[/] events enriched and stored "
        f"in {seconds:.1f} s. The worker keeps running (Ctrl-C stops it):\n"
        f"  console        {url}/console\n"
        f"  API            {url}/openapi.json\n"
        f'  enrich         curl -s {url}/v1/enrich -d \'{{"text": "Apple opened an office '
        f"in Berlin.\"}}'\n"
        f"  recommend      curl -s {url}/v1/recommendations/{tenant}/{user}\n"
        f"  usage          curl -s '{url}/v1/usage?format=csv'"
    )


def serve_demo(
    settings: Settings, n_docs: int, n_events: int, *, seed: int, console: Console
) -> None:
    """Run the demo through a worker and keep it running (blocking)."""
    settings = settings.model_copy(update={"api_auth_enabled": False})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    host = "127.0.0.1" if settings.web_host in ("", "0.0.0.0", "::") else settings.web_host
    url = f"http://{host}:{settings.web_port}"
    stack = Stack.start(settings)
    try:
        app = build_app(settings, stack, "all")
        feeder = threading.Thread(
            target=_feed, name="aimass-demo-feed", daemon=True,
            args=(settings, stack.bootstrap, url, n_docs, n_events, seed, console),
        )  # fmt: skip
        feeder.start()
        console.print(f"starting the worker; the console will be at {url}/console")
        # Faust would turn the feeder's prints into log lines: leave stdout and stderr be.
        worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
        worker.execute_from_commandline()
    finally:
        stack.close()
