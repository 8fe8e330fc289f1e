"""Security settings reach every client, down to the wire.

Each Kafka client factory is checked twice: the built client object carries the options,
and a fake broker in this process (a TCP or TLS server that speaks just enough of the Kafka
protocol: ApiVersions and SaslHandshake) records what the client really sends: the SASL
mechanism, the PLAIN credentials or SCRAM user name, the TLS client certificate. The
ClickHouse client meets a fake HTTPS server the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import struct
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaError
from clickhouse_connect.driver.exceptions import Error as ClickHouseError

from stream_aimass.kafka.clients import make_consumer, make_producer
from stream_aimass.kafka.topics import admin_client_config, make_admin_client
from stream_aimass.settings import SecurityConfigError, Settings

USER = "svc-aimass"
PASSWORD = "pw-Kafka-7f3a"
KEY_PASSWORD = "key-pw-91c2"

API_METADATA, API_SASL_HANDSHAKE, API_API_VERSIONS, API_SASL_AUTHENTICATE = 3, 17, 18, 36
# What the fake broker advertises: enough for both clients to reach SASL authentication.
ADVERTISED = ((API_METADATA, 0, 1), (API_SASL_HANDSHAKE, 0, 1), (API_API_VERSIONS, 0, 3),
              (API_SASL_AUTHENTICATE, 0, 1))  # fmt: skip


# -- a fake broker ----------------------------------------------------------------------------


@dataclass
class Request:
    api_key: int
    api_version: int
    rest: bytes  # the request after the header's client id


@dataclass
class FakeBroker:
    """Answers ApiVersions and SaslHandshake, records every request, hangs up at the first
    other one (SaslAuthenticate or Metadata): what a client sent up to there is recorded."""

    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    first_bytes: list[bytes] = field(default_factory=list)
    peer_certs: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    async def __aenter__(self) -> FakeBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def sent(self, api_key: int) -> list[bytes]:
        return [r.rest for r in self.requests if r.api_key == api_key]

    async def wait_for(self, api_key: int, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.sent(api_key):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no request {api_key} in {timeout}s; got {self.requests}")
            await asyncio.sleep(0.02)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cert = writer.get_extra_info("peercert")
        if cert:
            self.peer_certs.append(cert)
        try:
            while True:
                size_bytes = await reader.readexactly(4)
                if len(self.first_bytes) < 8:
                    self.first_bytes.append(size_bytes)
                if self.tls is None and size_bytes[0] == 0x16:
                    break  # a TLS ClientHello on a plain port: recorded, nothing to answer
                frame = await reader.readexactly(struct.unpack(">i", size_bytes)[0])
                api_key, version, correlation, id_len = struct.unpack(">hhih", frame[:10])
                request = Request(api_key, version, frame[10 + max(id_len, 0) :])
                self.requests.append(request)
                body = self._answer(request)
                if body is None:
                    break
                payload = struct.pack(">i", correlation) + body
                writer.write(struct.pack(">i", len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _answer(self, request: Request) -> bytes | None:
        if request.api_key == API_API_VERSIONS:
            if request.api_version >= 3:  # flexible: compact array, tagged fields
                apis = b"".join(struct.pack(">hhh", *a) + b"\0" for a in ADVERTISED)
                return struct.pack(">hB", 0, len(ADVERTISED) + 1) + apis + b"\0\0\0\0\0"
            apis = b"".join(struct.pack(">hhh", *a) for a in ADVERTISED)
            throttle = struct.pack(">i", 0) if request.api_version >= 1 else b""
            return struct.pack(">hi", 0, len(ADVERTISED)) + apis + throttle
        if request.api_key == API_SASL_HANDSHAKE:
            # The mechanism the client asked for is the one enabled: then it authenticates.
            (length,) = struct.unpack(">h", request.rest[:2])
            mechanism = request.rest[2 : 2 + length]
            return struct.pack(">hih", 0, 1, len(mechanism)) + mechanism
        return None


async def start_and_stop(client: Any, broker: FakeBroker, api_key: int) -> None:
    """Start an aiokafka client against the fake broker until it sent ``api_key``."""
    starting = asyncio.ensure_future(client.start())
    try:
        await broker.wait_for(api_key)
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError, OSError):
            await starting
        await client.stop()


async def confluent_admin_contact(settings: Settings, broker: FakeBroker, api_key: int) -> None:
    """Build the confluent admin client and let it talk to the broker until ``api_key``."""
    admin = make_admin_client(settings)
    loop = asyncio.get_running_loop()
    listing = loop.run_in_executor(None, lambda: admin.list_topics(timeout=1))
    try:
        await broker.wait_for(api_key)
    finally:
        with contextlib.suppress(Exception):
            await listing


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


# -- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path  # for localhost and 127.0.0.1, signed by ``ca``
    server_key: Path
    server: ssl.SSLContext  # asks for and verifies a client certificate
    wrong_host: ssl.SSLContext  # a certificate for kafka.invalid only
    client_cert: Path
    client_key: Path  # encrypted with KEY_PASSWORD


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _signed(name: str, cn: str, san: str | None, tmp: Path, key_password: str = "") -> None:
    key_opts = ["-passout", f"pass:{key_password}"] if key_password else ["-nodes"]
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             *key_opts, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
             cwd=tmp)  # fmt: skip
    ext = []
    if san:
        (tmp / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        ext = ["-extfile", f"{name}.ext"]
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *ext, cwd=tmp)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test certificates")
    tmp = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=aimass-test-ca", cwd=tmp)  # fmt: skip
    _signed("server", "localhost", "DNS:localhost,IP:127.0.0.1", tmp)
    _signed("wrong", "kafka.invalid", "DNS:kafka.invalid", tmp)
    _signed("client", "aimass-client", None, tmp, key_password=KEY_PASSWORD)

    def server(name: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp / f"{name}.pem", tmp / f"{name}.key")
        context.load_verify_locations(tmp / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    return Pki(tmp / "ca.pem", tmp / "server.pem", tmp / "server.key", server("server"),
               server("wrong"), tmp / "client.pem", tmp / "client.key")  # fmt: skip


def tls_settings(pki: Pki, bootstrap: str = "127.0.0.1:9093", **more: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "kafka_security_protocol": "SSL",
        "kafka_ssl_cafile": str(pki.ca),
        "kafka_ssl_certfile": str(pki.client_cert),
        "kafka_ssl_keyfile": str(pki.client_key),
        "kafka_ssl_key_password": KEY_PASSWORD,
    }
    return Settings(**{**values, **more})


def sasl_settings(mechanism: str, protocol: str = "SASL_PLAINTEXT", **more: Any) -> Settings:
    return Settings(
        kafka_bootstrap=more.pop("kafka_bootstrap", "127.0.0.1:9092"),
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username=USER,
        kafka_sasl_password=PASSWORD,
        **more,
    )


# -- the options each factory builds ---------------------------------------------------------


def _conn_options(client: Any) -> dict[str, Any]:
    # The AIOKafkaClient both consumer and producer connect through.
    inner = client._client if hasattr(client, "_client") else client.client
    return {
        "security_protocol": inner._security_protocol,
        "sasl_mechanism": inner._sasl_mechanism,
        "sasl_plain_username": inner._sasl_plain_username,
        "sasl_plain_password": inner._sasl_plain_password,
        "ssl_context": inner._ssl_context,
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_aiokafka_factories_get_the_sasl_options(mechanism: str) -> None:
    settings = sasl_settings(mechanism)

    async def build() -> None:
        for client in (make_consumer(settings, "127.0.0.1:9092", "g", "t"),
                       make_producer(settings, "127.0.0.1:9092")):  # fmt: skip
            options = _conn_options(client)
            assert options["security_protocol"] == "SASL_PLAINTEXT"
            assert options["sasl_mechanism"] == mechanism
            assert options["sasl_plain_username"] == USER
            assert options["sasl_plain_password"] == PASSWORD
            assert options["ssl_context"] is None
            await client.stop()

    run(build)


def test_aiokafka_factories_get_the_tls_options(pki: Pki) -> None:
    settings = tls_settings(pki, kafka_ssl_check_hostname=False)

    async def build() -> None:
        for client in (make_consumer(settings, "127.0.0.1:9093", "g"),
                       make_producer(settings, "127.0.0.1:9093")):  # fmt: skip
            options = _conn_options(client)
            assert options["security_protocol"] == "SSL"
            assert options["sasl_mechanism"] is None or options["sasl_mechanism"] == "PLAIN"
            context = options["ssl_context"]
            assert isinstance(context, ssl.SSLContext)
            assert context.check_hostname is False
            assert context.verify_mode == ssl.CERT_REQUIRED
            # Our CA is among the context's trust anchors.
            assert any(c["subject"] == ((("commonName", "aimass-test-ca"),),)
                       for c in context.get_ca_certs())  # fmt: skip
            await client.stop()

    run(build)


def test_faust_app_gets_the_credentials(pki: Pki) -> None:
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from stream_aimass.pipeline import make_faust_app

    settings = sasl_settings("SCRAM-SHA-512", "SASL_SSL", kafka_ssl_cafile=str(pki.ca))
    app = make_faust_app(settings, "127.0.0.1:9092", web=False)
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    # What Faust's aiokafka driver hands its consumer and producer.
    auth = credentials_to_aiokafka_auth(credentials, app.conf.ssl_context)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == (USER, PASSWORD)
    assert isinstance(auth["ssl_context"], ssl.SSLContext)

    ssl_only = make_faust_app(tls_settings(pki), "127.0.0.1:9093", web=False)
    auth = credentials_to_aiokafka_auth(ssl_only.conf.broker_credentials, None)
    assert auth["security_protocol"] == "SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)

    plain = make_faust_app(Settings(kafka_bootstrap="127.0.0.1:9092"), "b:1", web=False)
    assert plain.conf.broker_credentials is None


def test_confluent_admin_config_gets_the_options(pki: Pki) -> None:
    conf = admin_client_config(sasl_settings("SCRAM-SHA-256", "SASL_SSL"))
    assert conf == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": USER,
        "sasl.password": PASSWORD,
        "ssl.ca.location": "probe",
        "ssl.endpoint.identification.algorithm": "https",
    }
    conf = admin_client_config(tls_settings(pki, kafka_ssl_check_hostname=False))
    assert conf == {
        "bootstrap.servers": "127.0.0.1:9093",
        "security.protocol": "SSL",
        "ssl.ca.location": str(pki.ca),
        "ssl.certificate.location": str(pki.client_cert),
        "ssl.key.location": str(pki.client_key),
        "ssl.key.password": KEY_PASSWORD,
        "ssl.endpoint.identification.algorithm": "none",
    }
    assert admin_client_config(Settings(kafka_bootstrap="b:1")) == {
        "bootstrap.servers": "b:1",
        "security.protocol": "PLAINTEXT",
    }


def test_factories_refuse_missing_files_by_name(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ca.pem"
    settings = Settings(
        kafka_bootstrap="127.0.0.1:9093",
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=str(missing),
    )
    from stream_aimass.pipeline import make_faust_app

    builders: list[Callable[[], Any]] = [
        lambda: make_consumer(settings, "127.0.0.1:9093", "g"),
        lambda: make_producer(settings, "127.0.0.1:9093"),
        lambda: make_admin_client(settings),
        lambda: make_faust_app(settings, "127.0.0.1:9093", web=False),
    ]
    for build in builders:
        with pytest.raises(SecurityConfigError, match=f"AIMASS_KAFKA_SSL_CAFILE={missing}"):
            build()


def test_wrong_key_password_is_a_clear_error_without_the_password(pki: Pki) -> None:
    settings = tls_settings(pki, kafka_ssl_key_password="not-the-key-password")
    with pytest.raises(SecurityConfigError) as info:
        settings.kafka_client_options()
    message = str(info.value)
    assert "AIMASS_KAFKA_SSL_KEY_PASSWORD" in message
    assert str(pki.client_key) in message
    assert "not-the-key-password" not in message
    # No password at all: an error, not OpenSSL prompting on the terminal.
    no_password = tls_settings(pki, kafka_ssl_key_password="")
    with pytest.raises(SecurityConfigError, match="AIMASS_KAFKA_SSL_KEYFILE"):
        no_password.kafka_client_options()


# -- on the wire --------------------------------------------------------------------------------


def test_consumer_sends_plain_credentials_over_sasl() -> None:
    async def scenario() -> None:
        async with FakeBroker() as broker:
            settings = sasl_settings("PLAIN", kafka_bootstrap=broker.bootstrap)
            consumer = make_consumer(settings, broker.bootstrap, "g", "t")
            await start_and_stop(consumer, broker, API_SASL_AUTHENTICATE)
        assert [r.api_key for r in broker.requests[:2]] == [API_API_VERSIONS, API_SASL_HANDSHAKE]
        assert b"PLAIN" in broker.sent(API_SASL_HANDSHAKE)[0]
        assert f"\0{USER}\0{PASSWORD}".encode() in broker.sent(API_SASL_AUTHENTICATE)[0]

    run(scenario)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_producer_starts_scram(mechanism: str) -> None:
    async def scenario() -> None:
        async with FakeBroker() as broker:
            settings = sasl_settings(mechanism, kafka_bootstrap=broker.bootstrap)
            await start_and_stop(make_producer(settings, broker.bootstrap), broker,
                                 API_SASL_AUTHENTICATE)  # fmt: skip
        assert mechanism.encode() in broker.sent(API_SASL_HANDSHAKE)[0]
        first = broker.sent(API_SASL_AUTHENTICATE)[0]
        assert f"n={USER},r=".encode() in first  # SCRAM's client-first message
        assert PASSWORD.encode() not in first  # SCRAM never sends the password itself

    run(scenario)


def test_plaintext_client_sends_no_sasl() -> None:
    async def scenario() -> None:
        async with FakeBroker() as broker:
            settings = Settings(kafka_bootstrap=broker.bootstrap)
            await start_and_stop(make_producer(settings, broker.bootstrap), broker, API_METADATA)
        assert not broker.sent(API_SASL_HANDSHAKE)

    run(scenario)


def test_ssl_client_speaks_tls_first() -> None:
    async def scenario() -> None:
        async with FakeBroker() as broker:  # a plain TCP server: sees the TLS ClientHello
            settings = Settings(kafka_bootstrap=broker.bootstrap, kafka_security_protocol="SSL")
            client = make_consumer(settings, broker.bootstrap, None)
            with contextlib.suppress(KafkaError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(client.start(), 5)
            await client.stop()
        assert broker.first_bytes, "the client never wrote"
        assert broker.first_bytes[0][0] == 0x16  # a TLS handshake record, not a Kafka frame

    run(scenario)


def test_consumer_and_producer_present_the_client_certificate_over_sasl_ssl(pki: Pki) -> None:
    async def scenario() -> None:
        async with FakeBroker(tls=pki.server) as broker:
            settings = tls_settings(
                pki,
                broker.bootstrap,
                kafka_security_protocol="SASL_SSL",
                kafka_sasl_mechanism="SCRAM-SHA-256",
                kafka_sasl_username=USER,
                kafka_sasl_password=PASSWORD,
            )
            await start_and_stop(make_consumer(settings, broker.bootstrap, "g"), broker,
                                 API_SASL_AUTHENTICATE)  # fmt: skip
            consumer_certs = len(broker.peer_certs)
            broker.requests.clear()
            await start_and_stop(make_producer(settings, broker.bootstrap), broker,
                                 API_SASL_AUTHENTICATE)  # fmt: skip
        # The server verified the client certificate against our CA (CERT_REQUIRED).
        assert consumer_certs >= 1 and len(broker.peer_certs) > consumer_certs
        assert all(dict(c["subject"][0])["commonName"] == "aimass-client"
                   for c in broker.peer_certs)  # fmt: skip
        assert b"SCRAM-SHA-256" in broker.sent(API_SASL_HANDSHAKE)[0]

    run(scenario)


def test_check_hostname_is_honoured(pki: Pki) -> None:
    async def attempt(check_hostname: bool) -> FakeBroker:
        async with FakeBroker(tls=pki.wrong_host) as broker:
            settings = tls_settings(pki, broker.bootstrap, kafka_ssl_check_hostname=check_hostname)
            client = make_producer(settings, broker.bootstrap)
            with contextlib.suppress(KafkaError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(client.start(), 5)
            await client.stop()
        return broker

    async def scenario() -> None:
        checked = await attempt(True)
        assert not checked.requests  # the certificate names kafka.invalid: refused
        unchecked = await attempt(False)
        assert unchecked.requests and unchecked.requests[0].api_key == API_API_VERSIONS

    run(scenario)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_confluent_admin_client_authenticates_over_sasl(mechanism: str) -> None:
    async def scenario() -> None:
        async with FakeBroker() as broker:
            settings = sasl_settings(mechanism, kafka_bootstrap=broker.bootstrap)
            await confluent_admin_contact(settings, broker, API_SASL_AUTHENTICATE)
        assert mechanism.encode() in broker.sent(API_SASL_HANDSHAKE)[0]
        first = broker.sent(API_SASL_AUTHENTICATE)[0]
        if mechanism == "PLAIN":
            assert f"\0{USER}\0{PASSWORD}".encode() in first
        else:
            assert f"n={USER},r=".encode() in first

    run(scenario)


def test_confluent_admin_client_presents_the_client_certificate(pki: Pki) -> None:
    async def scenario() -> None:
        async with FakeBroker(tls=pki.server) as broker:
            settings = tls_settings(pki, broker.bootstrap)
            await confluent_admin_contact(settings, broker, API_API_VERSIONS)
        assert broker.peer_certs
        assert dict(broker.peer_certs[0]["subject"][0])["commonName"] == "aimass-client"

    run(scenario)


def test_connection_errors_carry_no_credentials(pki: Pki) -> None:
    from confluent_kafka import KafkaException

    from stream_aimass.testing import free_port

    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    settings = tls_settings(pki, bootstrap, kafka_security_protocol="SASL_SSL",
                            kafka_sasl_mechanism="PLAIN", kafka_sasl_username=USER,
                            kafka_sasl_password=PASSWORD)  # fmt: skip
    errors: list[BaseException] = []

    async def scenario() -> None:
        for client in (make_consumer(settings, bootstrap, "g"), make_producer(settings, bootstrap)):
            try:
                await client.start()
            except KafkaError as exc:
                errors.append(exc)
            finally:
                await client.stop()

    run(scenario)
    try:
        make_admin_client(settings).list_topics(timeout=0.5)
    except KafkaException as exc:
        errors.append(exc)
    assert len(errors) == 3
    for error in errors:
        for text in (str(error), repr(error), repr(error.args)):
            assert PASSWORD not in text and KEY_PASSWORD not in text


# -- ClickHouse over HTTPS ------------------------------------------------------------------


class FakeClickHouse:
    """An HTTPS server that records each request's headers and answers every one with a
    ClickHouse-style authentication error."""

    def __init__(self, pki: Pki) -> None:
        import http.server
        import threading

        self.headers: list[dict[str, str]] = []
        recorded = self.headers

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorded.append(dict(self.headers.items()))
                body = b"Code: 516. DB::Exception: Authentication failed. (AUTHENTICATION_FAILED)"
                self.send_response(403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def fake_clickhouse(pki: Pki) -> Iterator[FakeClickHouse]:
    server = FakeClickHouse(pki)
    yield server
    server.close()


def _basic_auth(headers: dict[str, str]) -> str:
    import base64

    scheme, _, value = headers.get("Authorization", "").partition(" ")
    assert scheme == "Basic", headers
    return base64.b64decode(value).decode()


def test_clickhouse_https_sends_the_settings_credentials(
    pki: Pki, fake_clickhouse: FakeClickHouse
) -> None:
    from stream_aimass.clickhouse.client import get_client

    settings = Settings(
        clickhouse_dsn=f"https://dsn-user:dsn%40pw@127.0.0.1:{fake_clickhouse.port}/analytics",
        clickhouse_user="ch-user",
        clickhouse_password="ch-pw-55d1",
        clickhouse_ca_cert=str(pki.ca),
    )
    with pytest.raises(ClickHouseError) as info:
        get_client(settings)
    assert fake_clickhouse.headers, "no request reached the server over TLS"
    # The settings win over the DSN's user info.
    assert _basic_auth(fake_clickhouse.headers[0]) == "ch-user:ch-pw-55d1"
    assert "ch-pw-55d1" not in str(info.value) and "dsn@pw" not in str(info.value)


def test_clickhouse_https_uses_the_dsn_credentials_url_decoded(
    pki: Pki, fake_clickhouse: FakeClickHouse
) -> None:
    from stream_aimass.clickhouse.client import get_client

    settings = Settings(
        clickhouse_dsn=f"https://dsn-user:p%40ss%3Aw%2Ford@127.0.0.1:{fake_clickhouse.port}/db",
        clickhouse_ca_cert=str(pki.ca),
    )
    with pytest.raises(ClickHouseError):  # the fake server refuses every login
        get_client(settings)
    assert _basic_auth(fake_clickhouse.headers[0]) == "dsn-user:p@ss:w/ord"


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_clickhouse_https_verifies_the_server(pki: Pki, fake_clickhouse: FakeClickHouse) -> None:
    from stream_aimass.clickhouse.client import get_client

    dsn = f"https://u:pw@127.0.0.1:{fake_clickhouse.port}/db"
    with pytest.raises(ClickHouseError):  # TLS: the test CA is not a system CA
        get_client(Settings(clickhouse_dsn=dsn))
    assert not fake_clickhouse.headers
    with pytest.raises(ClickHouseError):  # through TLS unverified, then refused
        get_client(Settings(clickhouse_dsn=dsn, clickhouse_verify=False))
    assert len(fake_clickhouse.headers) == 1
