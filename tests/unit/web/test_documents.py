"""Bodies of POST /v1/enrich and /v1/embed: the documents' rules, the caller's tenant,
and a reason for every refusal."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from stream_aimass.records import Source
from stream_aimass.web.documents import (
    DEFAULT_TENANT,
    BadRequest,
    embed_texts,
    enrich_documents,
    read_json,
)

_offsets = itertools.count()


def source() -> Source:
    return Source("api", 0, next(_offsets), 1_700_000_000_000)


def docs(value: Any, tenant: str | None = "acme", query: str | None = None, most: int = 8) -> Any:
    return enrich_documents(value, tenant, query, most, source)


def refused(call: Any) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        call()
    return caught.value


def test_one_document_or_several_with_ids_and_times_filled_in() -> None:
    (one,) = docs({"text": "Berlin", "title": "t", "meta": {"k": 1}})
    assert one.tenant == "acme" and one.text == "Berlin" and one.meta == {"k": 1}
    assert len(one.id) == 32 and one.ts_ms > 1_700_000_000_000 and one.source.topic == "api"
    many = docs({"documents": [{"id": "a", "text": "x", "ts": 5}, {"text": "y"}]})
    assert many[0].id == "a" and many[0].ts_ms == 5
    assert many[0].source.offset != many[1].source.offset and many[1].id != many[0].id


def test_the_tenant_is_the_callers() -> None:
    assert docs({"text": "x", "tenant": "acme"})[0].tenant == "acme"
    assert refused(lambda: docs({"text": "x", "tenant": "globex"})).status == 403
    # Admin or auth off: the document's tenant, else ?tenant=, else the default.
    assert docs({"text": "x", "tenant": "globex"}, tenant=None)[0].tenant == "globex"
    assert docs({"text": "x"}, tenant=None, query="initech")[0].tenant == "initech"
    assert docs({"text": "x"}, tenant=None)[0].tenant == DEFAULT_TENANT
    assert "tenant" in refused(lambda: docs({"text": "x"}, tenant=None, query="a b")).reason


@pytest.mark.parametrize(
    ("value", "status", "reason"),
    [
        ([1], 400, "must be a JSON object"),
        ({"title": "x"}, 400, "needs 'documents'"),
        ({"documents": {}}, 400, "must be a list"),
        ({"documents": []}, 400, "is empty"),
        ({"documents": [{"text": "x"}] * 9}, 413, "over the limit of 8"),
        ({"documents": ["x"]}, 400, "documents[0] must be a JSON object"),
        ({"documents": [{"text": "ok"}, {"text": "\u200b "}]}, 400, "documents[1]: field 'text'"),
        ({"text": "x", "meta": []}, 400, "the document: field 'meta'"),
        ({"text": "x", "version": -1}, 400, "version"),
        ({"text": "x", "id": ""}, 400, "'id' is empty"),
    ],
)
def test_bad_bodies_say_which_document_and_why(value: Any, status: int, reason: str) -> None:
    problem = refused(lambda: docs(value))
    assert problem.status == status and reason in problem.reason, problem.reason


def test_read_json_bounds_and_reasons() -> None:
    assert read_json(b'\xef\xbb\xbf{"a": 1}', 100) == {"a": 1}
    assert refused(lambda: read_json(b"x" * 101, 100)).status == 413
    assert "empty" in refused(lambda: read_json(b"  ", 100)).reason
    assert "not valid JSON" in refused(lambda: read_json(b"{", 100)).reason


def test_embed_texts_forms() -> None:
    assert embed_texts({"texts": ["a", "b"]}, 8) == ["a", "b"]
    assert embed_texts({"text": "a"}, 8) == ["a"]
    assert embed_texts({"documents": [{"text": "a"}]}, 8) == ["a"]
    assert (
        "texts[1] must be a string" in refused(lambda: embed_texts({"texts": ["a", 1]}, 8)).reason
    )
    assert (
        "documents[0].text is empty"
        in refused(lambda: embed_texts({"documents": [{"text": " "}]}, 8)).reason
    )
    assert refused(lambda: embed_texts({"texts": ["a"] * 9}, 8)).status == 413
