"""Answering ``GET /v1/recommendations/{tenant}/{user_id}`` on any worker.

Profiles live in the partition of the events topic their events arrived on, which the
producer's partitioner chose: Kafka's default (murmur2, as Java, aiokafka and Faust use), or
librdkafka's default (CRC32), or anything else. So a worker that does not hold a user asks
the workers that hold the profile table's partitions, the murmur2 owner first, with a header
that makes them answer from their own store only. An unknown user is a 404 only once every
owner said so; while the table's partitions are not all assigned (a rebalance), or an owner
cannot be asked, the answer is a 503 with ``Retry-After``: never a 404 for a user who exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import murmur2

from stream_aimass.recs.profiles import profile_key

log = logging.getLogger("stream_aimass.recs")

ROUTED_HEADER = "X-Aimass-Routed"
RETRY_AFTER_S = 1
FORWARD_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any] | str  # a str: an owner's JSON body, passed on as it is
    headers: dict[str, str] = field(default_factory=dict)


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def owners(metadata: dict[str, dict[str, Any]], changelog: str) -> dict[int, str]:
    """Changelog partition -> URL of the worker holding it (Faust's tables metadata)."""
    found: dict[int, str] = {}
    for url, topics in metadata.items():
        for partition in topics.get(changelog, ()):
            found[int(partition)] = str(url)
    return found


def ask_order(
    owned: dict[int, str], partitions: int, key: bytes, me: str
) -> tuple[list[str], bool]:
    """The other workers to ask, the murmur2 owner of ``key`` first; and whether every
    partition has an owner now."""
    complete = all(p in owned for p in range(partitions))
    first = owned.get(murmur2_partition(key, partitions))
    others = sorted({url for url in owned.values() if url != me and url != first})
    order = ([first] if first is not None and first != me else []) + others
    return order, complete


async def recommendations(
    recs: Any,
    app: Any,
    tenant: str,
    user_id: str,
    k: int,
    cold_start: bool,
    request: Any,
) -> Answer:
    """The answer for this user, from this worker's profile store or another worker's."""
    local = recs.holds(tenant, user_id)
    if local or request.headers.get(ROUTED_HEADER):
        status, body = recs.recommend(tenant, user_id, k, cold_start)
        return Answer(status, body)
    changelog = recs.settings.profiles_changelog
    partitions = recs.partitions
    order, complete = ask_order(
        owners(app.router.tables_metadata(), changelog),
        partitions,
        profile_key(tenant, user_id),
        str(app.conf.canonical_url),
    )
    unanswered = []
    for url in order:
        try:
            status, text = await _ask(app, url, request)
        except Exception as exc:  # down, restarting, unreachable
            log.info("recommendations: worker %s could not be asked: %r", url, exc)
            unanswered.append(url)
            continue
        if status == 200:
            return Answer(200, text)
        if status != 404:
            unanswered.append(url)
    if unanswered or not complete:
        why = (
            f"workers {', '.join(unanswered)} did not answer"
            if unanswered
            else "the profile table's partitions are being assigned"
        )
        return Answer(
            503,
            {"error": f"cannot tell whether user {user_id!r} exists now: {why}; retry"},
            {"Retry-After": str(RETRY_AFTER_S)},
        )
    status, body = recs.recommend(tenant, user_id, k, cold_start)  # unknown everywhere
    return Answer(status, body)


async def _ask(app: Any, url: str, request: Any) -> tuple[int, str]:
    import aiohttp

    target = request.url.with_scheme("http").with_host(_host(url)).with_port(_port(url))
    headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}
    headers[ROUTED_HEADER] = "1"
    timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
    async with app.http_client.get(target, headers=headers, timeout=timeout) as response:
        return response.status, await response.text()


# Forwarded to the owner: the API key (it checks it again) and nothing that could confuse it.
_FORWARDED = {"authorization", "x-api-key", "accept"}


def _host(url: str) -> str:
    from yarl import URL

    return URL(url).host or "127.0.0.1"


def _port(url: str) -> int:
    from yarl import URL

    return URL(url).port or 80
