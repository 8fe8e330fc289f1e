"""The model library over HTTP: what GET /v1/models/{name} says and what POST .../use writes
(the same classifiers file `models use` writes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_aimass.models.library import FORMAT
from stream_aimass.settings import Settings
from stream_aimass.web.documents import BadRequest
from stream_aimass.web.library import model_detail, use_model


def version(models: Path, name: str, v: str, kind: str, created: str) -> Path:
    path = models / name / v
    path.mkdir(parents=True)
    meta = {"format": FORMAT, "name": name, "kind": kind, "version": v, "created": created,
            "labels": ["a", "b"], "metrics": {"accuracy": 0.9}}  # fmt: skip
    (path / "model.json").write_text(json.dumps(meta))
    return path


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    models = tmp_path / "models"
    version(models, "intent", "v1aaaa", "classifier", "2026-12-01T00:00:00+00:00")
    version(models, "intent", "v2bbbb", "classifier", "2026-12-02T00:00:00+00:00")
    version(models, "tagger", "n1cccc", "ner", "2026-12-02T00:00:00+00:00")
    return Settings(data_dir=tmp_path, models_dir=models, classifiers_file=tmp_path / "c.json")


def test_use_writes_the_classifiers_file_and_detail_says_what_is_configured(
    settings: Settings,
) -> None:
    used = use_model(settings, "intent", {"version": "v1", "as": "support"})
    assert (used["classifier"], used["version"]) == ("support", "v1aaaa")
    specs = json.loads(settings.resolved_classifiers_file.read_text())
    assert specs == {"support": str((settings.resolved_models_dir / "intent/v1aaaa").resolve())}
    detail = model_detail(settings, "intent", None)
    by_version = {v["version"]: v for v in detail["versions"]}
    assert by_version["v1aaaa"]["configured"] == ["support"] and not by_version["v1aaaa"]["newest"]
    assert by_version["v2bbbb"]["configured"] == [] and by_version["v2bbbb"]["newest"]
    assert by_version["v2bbbb"]["metrics"] == {"accuracy": 0.9}
    assert "path" not in by_version["v2bbbb"]
    assert use_model(settings, "intent", {})["version"] == "v2bbbb"  # newest, as "intent"
    removed = use_model(settings, "intent", {"as": "support", "remove": True})
    assert removed["classifiers"] == ["intent"]


@pytest.mark.parametrize(
    ("name", "body", "status", "reason"),
    [
        ("nope", {}, 404, "no model 'nope'"),
        ("tagger", {}, 400, "only classifiers"),
        ("intent", {"version": "zz"}, 400, "no version 'zz'"),
        ("intent", {"versoin": "v1"}, 400, "unknown field"),
        ("intent", {"as": "a b"}, 400, "'as'"),
        ("intent", {"as": "gone", "remove": True}, 404, "no classifier 'gone'"),
        ("intent", [], 400, "JSON object"),
    ],
)
def test_use_refuses_with_a_reason(
    settings: Settings, name: str, body: object, status: int, reason: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        use_model(settings, name, body)
    assert caught.value.status == status and reason in caught.value.reason, caught.value.reason
