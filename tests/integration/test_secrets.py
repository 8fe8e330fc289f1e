"""Secrets never reach logs or error output: a real worker, every secret set to a sentinel,
Kafka or ClickHouse unreachable, debug logging; everything it prints is searched."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from stream_aimass.testing import BrokerProcess, free_port, start_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SASL_SECRET = "SENTINEL-kafka-sasl-31f4"
KEY_SECRET = "SENTINEL-kafka-key-8a2b"
CLICKHOUSE_SECRET = "SENTINEL-clickhouse-c07e"
API_SECRET = "SENTINEL-api-5e9d"
DSN_SECRET = "SENTINEL-dsn-64b0"
RUN_S = 15.0  # long enough for the model to load and a connection to fail and be retried


def _client_certificate(folder: Path, key_password: str) -> tuple[Path, Path, Path]:
    """A CA and a client certificate whose key is encrypted with ``key_password``."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True,
                       timeout=30)  # fmt: skip

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    openssl("req", "-x509", *ec, "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=aimass-test-ca")  # fmt: skip
    openssl("req", "-new", *ec, "-passout", f"pass:{key_password}", "-keyout", "client.key",
            "-out", "client.csr", "-subj", "/CN=aimass-client")  # fmt: skip
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", "client.pem")  # fmt: skip
    return folder / "ca.pem", folder / "client.pem", folder / "client.key"


def run_worker(bootstrap: str, folder: Path, env: dict[str, str]) -> str:
    """Everything a worker prints until it exits, or for RUN_S seconds and its shutdown."""
    worker = start_worker("all", bootstrap, folder / "data", "worker", env={
        "AIMASS_LOG_LEVEL": "debug", "AIMASS_API_KEYS": f'{{"t": "{API_SECRET}"}}', **env,
    })  # fmt: skip
    deadline = time.monotonic() + RUN_S
    while time.monotonic() < deadline and worker.process.poll() is None:
        time.sleep(0.25)
    if worker.process.poll() is None:
        worker.process.send_signal(signal.SIGTERM)
        try:
            worker.process.wait(30)
        except subprocess.TimeoutExpired:
            worker.sigkill()
    return worker.log.read_text(errors="replace")


def assert_no_sentinel(output: str) -> None:
    assert "DEBUG" in output  # debug logging was on: the most a worker ever prints
    leaked = [line for line in output.splitlines() if "SENTINEL" in line]
    assert not leaked, "secrets in the worker's output:\n" + "\n".join(leaked)


def test_kafka_secrets_stay_out_of_a_worker_that_cannot_connect(
    tmp_path: Path, tiny_encoder_dir: Path
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test certificates")
    ca, cert, key = _client_certificate(tmp_path, KEY_SECRET)
    kafka_port = free_port()  # nothing listens there
    output = run_worker(f"127.0.0.1:{kafka_port}", tmp_path, {
        "AIMASS_MODEL_DIR": str(tiny_encoder_dir),
        "AIMASS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "AIMASS_KAFKA_SASL_MECHANISM": "PLAIN",
        "AIMASS_KAFKA_SASL_USERNAME": "svc-aimass",
        "AIMASS_KAFKA_SASL_PASSWORD": SASL_SECRET,
        "AIMASS_KAFKA_SSL_CAFILE": str(ca),
        "AIMASS_KAFKA_SSL_CERTFILE": str(cert),
        "AIMASS_KAFKA_SSL_KEYFILE": str(key),
        "AIMASS_KAFKA_SSL_KEY_PASSWORD": KEY_SECRET,
        "AIMASS_CLICKHOUSE_DSN": f"https://alice:{DSN_SECRET}@127.0.0.1:{free_port()}/db",
        "AIMASS_CLICKHOUSE_PASSWORD": CLICKHOUSE_SECRET,
    })  # fmt: skip
    # It got as far as the broker (the key was decrypted): its failure is in the output.
    assert f"Unable to bootstrap from [('127.0.0.1', {kafka_port}" in output, output[-3000:]
    assert_no_sentinel(output)


def test_clickhouse_secrets_stay_out_of_a_worker_that_cannot_connect(
    tmp_path: Path, tiny_encoder_dir: Path, broker_process: BrokerProcess
) -> None:
    clickhouse_port = free_port()  # nothing listens there
    output = run_worker(broker_process.bootstrap, tmp_path, {
        "AIMASS_MODEL_DIR": str(tiny_encoder_dir),
        "AIMASS_RECS_ENABLED": "false",
        # Unused on a plaintext broker, but set: settings dumps would show it.
        "AIMASS_KAFKA_SASL_PASSWORD": SASL_SECRET,
        "AIMASS_CLICKHOUSE_DSN": f"https://alice:{DSN_SECRET}@127.0.0.1:{clickhouse_port}/db",
        "AIMASS_CLICKHOUSE_PASSWORD": CLICKHOUSE_SECRET,
        "AIMASS_SINK_RETRY_MAX_S": "1",
    })  # fmt: skip
    assert f"127.0.0.1:{clickhouse_port}" in output, output[-3000:]
    assert_no_sentinel(output)
