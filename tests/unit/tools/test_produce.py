"""Partitioning keys of produced JSONL lines: the keys the pipeline's state is keyed by."""

from __future__ import annotations

import pytest

from stream_aimass.tools.produce import message_key


@pytest.mark.parametrize(
    ("kind", "line", "key"),
    [
        ("documents", b'{"id": "d1", "tenant": "acme", "text": "x"}', b"acme:d1"),
        ("items", b'{"id": "sku-1", "tenant": "shop", "text": "x"}', b"shop:sku-1"),
        ("events", b'{"event_id": "e", "tenant": "acme", "user_id": "u1"}', b"acme:u1"),
        ("events", b'{"tenant": "acme", "id": "not-a-user"}', None),
        ("documents", b"not json", None),
        ("items", b'["a list"]', None),
        ("documents", b'{"id": 7, "tenant": "acme"}', None),
    ],
)
def test_message_key(kind: str, line: bytes, key: bytes | None) -> None:
    assert message_key(kind, line) == key
