"""Fixtures for end-to-end tests on the embedded stack.

chdb allows one data path per process, so in-process tests share one session path and
each test gets its own database; multi-process tests give each worker its own data dir and
read it afterwards in a fresh subprocess (``stream_aimass.testing.query_data_dir``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream_aimass.settings import Settings
from stream_aimass.testing import BrokerProcess, start_broker


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture()
def settings(chdb_path: Path, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        clickhouse_dsn=f"chdb://{chdb_path}",
        clickhouse_database=f"t_{uuid.uuid4().hex[:12]}",
        batch_max_documents=32,
        batch_max_wait_ms=20,
        sink_max_wait_ms=50,
        recs_store="memory://",
    )


@pytest.fixture(scope="session")
def enricher() -> Any:
    from stream_aimass.enrich.enricher import DocumentEnricher

    return DocumentEnricher.from_settings(Settings())


@pytest.fixture()
def broker_process(tmp_path: Path) -> Iterator[BrokerProcess]:
    broker = start_broker(tmp_path / "broker")
    yield broker
    broker.stop()
