"""docker-compose.yml against the Compose Specification's JSON schema (the copy check-jsonschema
vendors and pins), and against the code it runs (settings, CLI)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml

from stream_aimass.cli.main import app as cli_app
from stream_aimass.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def compose_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(compose_schema())
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def test_docker_compose_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    assert compose_errors(compose) == []


def test_the_schema_refuses_what_compose_would_refuse(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["restart_policy"] = "always"  # a deploy: key, not a service one
    broken["services"]["kafka"]["ports"] = "29092:29092"  # a list, not a string
    errors = compose_errors(broken)
    assert any("restart_policy" in e for e in errors), errors
    assert any("ports" in e for e in errors), errors


def _aimass_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "stream-aimass:latest"
    }


def test_the_aimass_services_run_real_commands_with_real_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _aimass_services(compose)
    assert {"topics", "worker"} <= set(services)
    known = {f"AIMASS_{name.upper()}" for name in Settings.model_fields}
    group = typer.main.get_command(cli_app)
    for name, service in services.items():
        env = service.get("environment", {})
        assert set(env) <= known, f"{name}: not settings: {set(env) - known}"
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        Settings()  # raises on a value the settings refuse
        for key in env:
            monkeypatch.delenv(key)
        args: list[str] = list(service["command"])
        command: Any = group
        while args and hasattr(command, "commands") and args[0] in command.commands:
            command = command.commands[args.pop(0)]
        assert not hasattr(command, "commands"), f"{name}: no command in {service['command']}"
        command.make_context(command.name, args)
    for volume in compose["services"]["prometheus"]["volumes"]:
        assert (ROOT / volume.split(":")[0]).exists(), volume
