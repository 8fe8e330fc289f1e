"""Unit tests for stream_aimass.settings.Settings (defaults, environment, validation, secrets)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from stream_aimass.settings import DEFAULT_LABELS, EMBEDDED, Settings, load_settings

PASSWORD = "s3cr3t-hunter2-password"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No AIMASS_* variables from the outside, and a scratch working directory."""
    for name in list(os.environ):
        if name.upper().startswith("AIMASS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_defaults(clean_env: Path) -> None:
    settings = Settings()
    assert settings.kafka_bootstrap == EMBEDDED == "embedded"
    assert settings.embedded_kafka is True
    assert settings.device == "auto"
    assert settings.dtype == "auto"
    assert settings.clickhouse_dsn == ""
    assert settings.clickhouse_database == "aimass"
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.kafka_sasl_password.get_secret_value() == ""
    assert settings.labels == DEFAULT_LABELS
    assert settings.labels is not DEFAULT_LABELS
    assert settings.model_dir is None
    assert settings.topics == (
        "aimass.documents",
        "aimass.events",
        "aimass.enriched",
        "aimass.recommendations",
        "aimass.dlq",
        "aimass.items",
        "aimass.item-vectors",
    )
    assert settings.profiles_changelog == "aimass-profiles-changelog"
    assert settings.recs_store == "rocksdb://"


def test_default_clickhouse_dsn_is_chdb_under_absolute_data_dir(clean_env: Path) -> None:
    settings = Settings()
    expected = (clean_env / "aimass-data" / "clickhouse").resolve()
    dsn = settings.resolved_clickhouse_dsn
    assert dsn == f"chdb://{expected}"
    assert dsn.startswith("chdb:///")
    location = dsn.removeprefix("chdb://")
    assert Path("/" + location.lstrip("/")) == expected
    assert expected.is_absolute()


def test_clickhouse_dsn_follows_data_dir(clean_env: Path) -> None:
    settings = Settings(data_dir=Path("elsewhere/state"))
    expected = (clean_env / "elsewhere" / "state" / "clickhouse").resolve()
    assert settings.resolved_clickhouse_dsn == f"chdb://{expected}"


def test_explicit_clickhouse_dsn_wins() -> None:
    settings = Settings(clickhouse_dsn="http://default:pw@ch:8123/db")
    assert settings.resolved_clickhouse_dsn == "http://default:pw@ch:8123/db"


def test_env_vars_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMASS_BATCH_MAX_TOKENS", "123")
    monkeypatch.setenv("AIMASS_KAFKA_BOOTSTRAP", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    monkeypatch.setenv("AIMASS_DTYPE", "bf16")
    monkeypatch.setenv("AIMASS_SINK_RETRY_MAX_S", "2.5")
    monkeypatch.setenv("AIMASS_DATA_DIR", "/tmp/aimass-test-data")
    settings = Settings()
    assert settings.batch_max_tokens == 123
    assert settings.kafka_bootstrap == "broker-1:9092,broker-2:9092"
    assert settings.embedded_kafka is False
    assert settings.device == "cpu"
    assert settings.dtype == "bf16"
    assert settings.sink_retry_max_s == 2.5
    assert settings.data_dir == Path("/tmp/aimass-test-data")


def test_env_var_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("aimass_batch_max_documents", "17")
    assert Settings().batch_max_documents == 17


def test_unprefixed_env_vars_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_MAX_TOKENS", "999")
    default = Settings.model_fields["batch_max_tokens"].default
    assert Settings().batch_max_tokens == default != 999


def test_labels_from_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMASS_LABELS", '{"a": "alpha", "b": "beta"}')
    assert Settings().labels == {"a": "alpha", "b": "beta"}


def test_labels_from_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMASS_LABELS", '["sports", "politics"]')
    assert Settings().labels == {"sports": "sports", "politics": "politics"}


def test_labels_list_in_code() -> None:
    assert Settings(labels=["x", "y"]).labels == {"x": "x", "y": "y"}


@pytest.mark.parametrize("value", ["{}", "[]"])
def test_empty_labels_turn_the_topic_head_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AIMASS_LABELS", value)
    assert Settings().labels == {}


def test_classifiers_from_env_and_library_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "AIMASS_CLASSIFIERS", '{"intent": "banking77@abc", "tags": {"labels": ["a"]}}'
    )
    s = Settings(data_dir=tmp_path)
    assert s.classifiers == {"intent": "banking77@abc", "tags": {"labels": ["a"]}}
    assert s.resolved_models_dir == tmp_path / "models"
    assert s.resolved_classifiers_file == tmp_path / "classifiers.json"


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("AIMASS_DEVICE", "tpu"),
        ("AIMASS_DTYPE", "fp16"),
        ("AIMASS_BATCH_MAX_TOKENS", "0"),
        ("AIMASS_BATCH_MAX_TOKENS", "15"),
        ("AIMASS_BATCH_MAX_TOKENS", "lots"),
        ("AIMASS_BATCH_MAX_DOCUMENTS", "0"),
        ("AIMASS_BATCH_MAX_WAIT_MS", "-1"),
        ("AIMASS_MAX_DOCUMENT_BYTES", "10"),
        ("AIMASS_SINK_RETRY_MAX_S", "0"),
        ("AIMASS_WEB_PORT", "70000"),
        ("AIMASS_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("AIMASS_LABELS", "not json"),
    ],
)
def test_invalid_env_values_raise(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises((ValidationError, ValueError)):
        Settings()


@pytest.mark.parametrize(
    "kwargs",
    [{"device": "tpu"}, {"batch_max_tokens": 0}, {"dtype": "int8"}, {"fetch_max_wait_ms": 0}],
)
def test_invalid_values_raise_validation_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**kwargs)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.device = "cpu"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.batch_max_tokens = 1  # type: ignore[misc]
    assert settings.device == "auto"
    updated = settings.model_copy(update={"device": "cpu"})
    assert updated.device == "cpu"
    assert settings.device == "auto"


def test_load_settings_ignores_none_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMASS_BATCH_MAX_TOKENS", "123")
    settings = load_settings(batch_max_tokens=None, device="cpu")
    assert settings.batch_max_tokens == 123
    assert settings.device == "cpu"
    assert load_settings(batch_max_tokens=456).batch_max_tokens == 456


def test_sasl_password_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMASS_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("AIMASS_KAFKA_SASL_USERNAME", "svc-aimass")
    settings = Settings()
    assert isinstance(settings.kafka_sasl_password, SecretStr)
    assert settings.kafka_sasl_password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert PASSWORD not in repr(settings.kafka_sasl_password)
    assert PASSWORD not in str(settings.kafka_sasl_password)
    assert PASSWORD not in settings.model_dump_json()
    assert "svc-aimass" in repr(settings)


def test_kafka_client_options_plaintext() -> None:
    assert Settings().kafka_client_options() == {"security_protocol": "PLAINTEXT"}


def test_kafka_client_options_with_sasl() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="svc-aimass",
        kafka_sasl_password=PASSWORD,
    )
    assert settings.kafka_client_options() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc-aimass",
        "sasl_plain_password": PASSWORD,
    }


def test_kafka_client_options_without_mechanism_has_no_sasl_fields() -> None:
    settings = Settings(kafka_sasl_username="u", kafka_sasl_password=PASSWORD)
    options = settings.kafka_client_options()
    assert not any(key.startswith("sasl_") for key in options)


def test_kafka_client_options_ssl_builds_a_context() -> None:
    import ssl

    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="svc-aimass",
        kafka_sasl_password="pw",
    )
    options = settings.kafka_client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "PLAIN"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
