"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer, 32-d random BERT with the MiniLM tokenizer: loads and runs in ms."""
    from stream_aimass.testing import make_tiny_encoder

    return make_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_encoder_dir: Path):  # type: ignore[no-untyped-def]
    from stream_aimass.models.encoder import Encoder

    return Encoder(tiny_encoder_dir, device="cpu", dtype="fp32", name="tiny")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="Reliability tests at their full counts (10 kill runs, 10,000+ fuzz messages).",
    )


@pytest.fixture(scope="session")
def long_mode(request: pytest.FixtureRequest) -> bool:
    """True under ``pytest --long``: reliability tests run their full counts."""
    return bool(request.config.getoption("--long"))
