"""Security configuration: clear errors for settings that cannot work, secrets never shown,
ClickHouse connection options from the DSN and settings, and Kafka clients built in one place.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import stream_aimass
from stream_aimass.clickhouse.client import ClickHouseConfigError, get_client, server_client_kwargs
from stream_aimass.settings import SecurityConfigError, Settings, redact_dsn, settings_table

SASL_SECRET = "SENTINEL-kafka-sasl-4b1e"
KEY_SECRET = "SENTINEL-kafka-key-9d0c"
CH_SECRET = "SENTINEL-clickhouse-77aa"
DSN_SECRET = "SENTINEL-dsn-e3f2"
API_SECRET = "SENTINEL-api-0c5d"
SECRETS = (SASL_SECRET, KEY_SECRET, CH_SECRET, DSN_SECRET, API_SECRET)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No AIMASS_* variables from the outside, and a scratch working directory."""
    for name in list(os.environ):
        if name.upper().startswith("AIMASS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


def secret_settings(tmp_path: Path, **more: Any) -> Settings:
    """Every secret setting set to a sentinel (SASL_SSL with a client key)."""
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("not read by these tests")
    key.write_text("not read by these tests")
    values: dict[str, Any] = {
        "kafka_bootstrap": "kafka:9093",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "svc",
        "kafka_sasl_password": SASL_SECRET,
        "kafka_ssl_certfile": str(cert),
        "kafka_ssl_keyfile": str(key),
        "kafka_ssl_key_password": KEY_SECRET,
        "clickhouse_dsn": f"https://alice:{DSN_SECRET}@ch.example:8443/db",
        "clickhouse_password": CH_SECRET,
        "api_keys": f'{{"t": "{API_SECRET}"}}',
    }
    return Settings(**{**values, **more})


def assert_no_secret(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"secrets in the output: {leaked}\n{text}"


# -- Kafka security: settings that cannot work -------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u",
          "kafka_sasl_password": SASL_SECRET}, "needs AIMASS_KAFKA_SASL_MECHANISM"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN"},
         "needs AIMASS_KAFKA_SASL_USERNAME and AIMASS_KAFKA_SASL_PASSWORD"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN",
          "kafka_sasl_username": "u"}, "needs AIMASS_KAFKA_SASL_PASSWORD"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-256",
          "kafka_sasl_password": SASL_SECRET}, "needs AIMASS_KAFKA_SASL_USERNAME"),
        ({"kafka_sasl_mechanism": "PLAIN"},
         "AIMASS_KAFKA_SASL_MECHANISM=PLAIN needs AIMASS_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT"
         " or SASL_SSL (it is PLAINTEXT)"),
        ({"kafka_security_protocol": "SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512"},
         "(it is SSL)"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "c.pem"},
         "AIMASS_KAFKA_SSL_CERTFILE needs AIMASS_KAFKA_SSL_KEYFILE"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "k.pem"},
         "AIMASS_KAFKA_SSL_KEYFILE needs AIMASS_KAFKA_SSL_CERTFILE"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_key_password": KEY_SECRET},
         "AIMASS_KAFKA_SSL_KEY_PASSWORD is set but AIMASS_KAFKA_SSL_KEYFILE is not"),
        ({"kafka_ssl_cafile": "ca.pem"},
         "AIMASS_KAFKA_SSL_CAFILE set, but AIMASS_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not "
         "use TLS"),
    ],
)  # fmt: skip
def test_inconsistent_kafka_security_is_refused_clearly(
    values: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**values)
    assert expected in str(info.value)
    assert_no_secret(str(info.value))
    assert_no_secret(" ".join(e["msg"] for e in info.value.errors()))


def test_validation_errors_never_quote_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    # Any invalid setting: the error must not echo the other (secret) inputs back.
    monkeypatch.setenv("AIMASS_KAFKA_SASL_PASSWORD", SASL_SECRET)
    monkeypatch.setenv("AIMASS_CLICKHOUSE_DSN", f"https://u:{DSN_SECRET}@h/db")
    monkeypatch.setenv("AIMASS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "AIMASS_KAFKA_SASL_MECHANISM" in str(info.value)
    assert_no_secret(str(info.value))  # what a traceback shows


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"kafka_security_protocol": "SSL"},
        {"kafka_security_protocol": "SSL", "kafka_ssl_check_hostname": False},
        {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN",
         "kafka_sasl_username": "u", "kafka_sasl_password": "p"},
        {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
         "kafka_sasl_username": "u", "kafka_sasl_password": "p", "kafka_ssl_cafile": "ca.pem"},
    ],
)  # fmt: skip
def test_consistent_kafka_security_is_accepted(values: dict[str, Any]) -> None:
    assert Settings(**values).kafka_security_problems() == []


def test_check_security_names_each_missing_file(tmp_path: Path) -> None:
    settings = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=str(tmp_path / "ca.pem"),
        kafka_ssl_certfile=str(tmp_path / "client.pem"),
        kafka_ssl_keyfile=str(tmp_path / "client.key"),
        kafka_ssl_key_password=KEY_SECRET,
    )
    with pytest.raises(SecurityConfigError) as info:
        settings.check_security()
    message = str(info.value)
    for env, name in (("CAFILE", "ca.pem"), ("CERTFILE", "client.pem"), ("KEYFILE", "client.key")):
        assert f"AIMASS_KAFKA_SSL_{env}={tmp_path / name}: no such file" in message
    assert_no_secret(message)
    (tmp_path / "ca.pem").write_text("")
    (tmp_path / "client.pem").write_text("")
    (tmp_path / "client.key").write_text("")
    settings.check_security()  # all there now


def test_plaintext_options_carry_no_credentials() -> None:
    settings = Settings(kafka_sasl_username="u", kafka_sasl_password=SASL_SECRET)
    assert settings.kafka_client_options() == {"security_protocol": "PLAINTEXT"}
    assert settings.faust_client_options() == {}
    assert settings.confluent_client_options() == {"security.protocol": "PLAINTEXT"}


# -- secrets are never shown ---------------------------------------------------------------------


def test_every_secret_setting_is_a_secret_str() -> None:
    from pydantic import SecretStr

    secret_words = {"password", "secret", "token", "key", "keys", "credential", "credentials"}
    for name, info in Settings.model_fields.items():
        if secret_words & set(name.split("_")):
            assert info.annotation is SecretStr, f"{name} must be a SecretStr"


def test_repr_and_str_of_settings_hide_every_secret(tmp_path: Path) -> None:
    settings = secret_settings(tmp_path)
    for text in (repr(settings), str(settings), f"{settings!r}", f"{settings}"):
        assert_no_secret(text)
    assert "alice:***@ch.example" in repr(settings)
    assert settings.clickhouse_dsn.endswith(f"{DSN_SECRET}@ch.example:8443/db")  # value intact


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("https://alice:pw@ch:8443/db", "https://alice:***@ch:8443/db"),
        ("https://alice:p%40ss%3Aw@ch/db", "https://alice:***@ch/db"),
        ("https://alice:p@ss@ch/db", "https://alice:***@ch/db"),
        ("http://alice@ch:8123/db", "http://alice@ch:8123/db"),
        ("http://ch:8123/db?password=pw&user=bob", "http://ch:8123/db?password=***&user=bob"),
        ("https://ch/db?access_token=tok", "https://ch/db?access_token=***"),
        ("chdb:///var/lib/aimass/clickhouse", "chdb:///var/lib/aimass/clickhouse"),
        ("http://alice:pw@[::1/db", "<unparseable DSN>"),
    ],
)
def test_redact_dsn(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


def test_settings_command_never_prints_secrets(tmp_path: Path) -> None:
    from stream_aimass.cli.main import app

    env = {
        "AIMASS_KAFKA_BOOTSTRAP": "kafka:9093",
        "AIMASS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "AIMASS_KAFKA_SASL_MECHANISM": "PLAIN",
        "AIMASS_KAFKA_SASL_USERNAME": "svc",
        "AIMASS_KAFKA_SASL_PASSWORD": SASL_SECRET,
        "AIMASS_CLICKHOUSE_DSN": f"https://alice:{DSN_SECRET}@ch.example:8443/db",
        "AIMASS_CLICKHOUSE_PASSWORD": CH_SECRET,
        "AIMASS_API_KEYS": f'{{"t": "{API_SECRET}"}}',
    }
    runner = CliRunner()
    for args in (["settings"], ["settings", "--markdown"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        assert_no_secret(result.output)
    assert "***" in runner.invoke(app, ["settings"], env=env).output
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        rows = {r["name"]: r["value"] for r in settings_table(Settings())}
    assert rows["clickhouse_dsn"] == "https://alice:***@ch.example:8443/db"
    assert rows["kafka_sasl_password"] == rows["clickhouse_password"] == "***"
    assert rows["api_keys"] == "***"

    # Invalid settings: one line naming what is wrong, still no secret.
    env["AIMASS_KAFKA_SASL_MECHANISM"] = ""
    result = runner.invoke(app, ["settings"], env=env)
    assert result.exit_code == 2
    assert "AIMASS_KAFKA_SASL_MECHANISM" in result.output
    assert_no_secret(result.output)


# -- ClickHouse connection options --------------------------------------------------------------


def test_https_dsn_is_tls_on_8443_verified() -> None:
    kwargs = server_client_kwargs(Settings(clickhouse_dsn="https://ch.example/analytics"))
    assert kwargs == {
        "host": "ch.example",
        "port": 8443,
        "username": "default",
        "password": "",
        "database": "analytics",
        "secure": True,
        "verify": True,
    }


def test_https_options_from_settings_win_over_the_dsn() -> None:
    settings = Settings(
        clickhouse_dsn="clickhouses://dsn-user:dsn-pw@ch.example:9443",
        clickhouse_user="ch-user",
        clickhouse_password=CH_SECRET,
        clickhouse_ca_cert="/etc/ssl/ch-ca.pem",
        clickhouse_verify=False,
        clickhouse_database="aimass_prod",
    )
    kwargs = server_client_kwargs(settings)
    assert kwargs == {
        "host": "ch.example",
        "port": 9443,
        "username": "ch-user",
        "password": CH_SECRET,
        "database": "aimass_prod",
        "secure": True,
        "verify": False,
        "ca_cert": "/etc/ssl/ch-ca.pem",
    }


def test_http_dsn_credentials_are_url_decoded() -> None:
    kwargs = server_client_kwargs(
        Settings(clickhouse_dsn="http://bob%2Bops:p%40ss%3Aw%2Frd%25@10.0.0.5/db%2Dx")
    )
    assert kwargs == {
        "host": "10.0.0.5",
        "port": 8123,
        "username": "bob+ops",
        "password": "p@ss:w/rd%",
        "database": "db-x",
        "secure": False,
    }


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (f"ftp://u:{DSN_SECRET}@ch/db", "unsupported ClickHouse DSN scheme 'ftp'"),
        (f"https://u:{DSN_SECRET}@ch:notaport/db", "invalid ClickHouse DSN https://u:***@ch"),
    ],
)
def test_bad_dsns_are_clear_errors_without_the_password(dsn: str, expected: str) -> None:
    with pytest.raises(ClickHouseConfigError) as info:
        get_client(Settings(clickhouse_dsn=dsn))
    assert expected in str(info.value)
    assert_no_secret(str(info.value))


def test_missing_ca_cert_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    settings = Settings(clickhouse_dsn="https://ch.invalid/db", clickhouse_ca_cert=str(missing))
    with pytest.raises(ClickHouseConfigError, match=f"AIMASS_CLICKHOUSE_CA_CERT={missing}"):
        get_client(settings)


def test_unreachable_server_error_has_no_password() -> None:
    from clickhouse_connect.driver.exceptions import Error

    from stream_aimass.testing import free_port

    dsn = f"https://alice:{DSN_SECRET}@127.0.0.1:{free_port()}/db"
    for settings in (Settings(clickhouse_dsn=dsn),
                     Settings(clickhouse_dsn=dsn, clickhouse_password=CH_SECRET)):  # fmt: skip
        with pytest.raises(Error) as info:
            get_client(settings)
        assert_no_secret(f"{info.value} {info.value!r}")


# -- Kafka clients are built in one place --------------------------------------------------------

# The client classes of aiokafka, confluent-kafka and Faust, by module prefix.
CLIENT_CLASSES = {
    "aiokafka": {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaClient", "AIOKafkaAdminClient"},
    "confluent_kafka": {"AdminClient", "Producer", "Consumer", "SerializingProducer",
                        "DeserializingConsumer"},
    "faust": {"App"},
}  # fmt: skip
# Where they may be constructed: the factories, which apply the security settings.
FACTORIES = {
    ("kafka/clients.py", "make_consumer"),
    ("kafka/clients.py", "make_producer"),
    ("kafka/clients.py", "make_confluent_producer"),
    ("kafka/clients.py", "make_confluent_consumer"),
    ("kafka/topics.py", "make_admin_client"),
    ("pipeline.py", "make_faust_app"),
}


def client_constructions(source: str) -> list[tuple[str, str]]:
    """(enclosing function, class) of every Kafka client constructed in ``source``."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # local name -> client class
    modules: set[str] = set()  # local names of the client libraries' modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            for alias in node.names:
                if alias.name in CLIENT_CLASSES.get(root, ()):
                    aliases[alias.asname or alias.name] = alias.name
                elif root in CLIENT_CLASSES:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in CLIENT_CLASSES:
                    modules.add((alias.asname or alias.name).split(".")[0])
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in aliases:
                found.append((function, aliases[func.id]))
            elif isinstance(func, ast.Attribute):
                base = func.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                every = set().union(*CLIENT_CLASSES.values())
                if isinstance(base, ast.Name) and base.id in modules and func.attr in every:
                    found.append((function, func.attr))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")
    return found


def test_the_scan_finds_clients_built_anywhere() -> None:
    source = (
        "import faust\nimport confluent_kafka as ck\n"
        "from aiokafka import AIOKafkaProducer as P\n"
        "from confluent_kafka.admin import AdminClient\n"
        "def rogue():\n    P(bootstrap_servers='x')\n    ck.Producer({})\n"
        "    AdminClient({})\n    faust.App('x')\n"
    )
    assert client_constructions(source) == [
        ("rogue", "AIOKafkaProducer"),
        ("rogue", "Producer"),
        ("rogue", "AdminClient"),
        ("rogue", "App"),
    ]


def test_kafka_clients_are_only_built_by_the_factories() -> None:
    package = Path(stream_aimass.__file__).parent
    outside = []
    seen = set()
    for path in sorted(package.rglob("*.py")):
        for function, cls in client_constructions(path.read_text()):
            where = (str(path.relative_to(package)), function)
            seen.add(where)
            if where not in FACTORIES:
                outside.append(f"{where[0]}:{function} builds {cls}")
    assert not outside, "build Kafka clients with the factories: " + "; ".join(outside)
    assert seen == FACTORIES  # the scan does see the factories' own constructions
