"""Synthetic sample streams for demos, tests and benchmarks (see :mod:`.generate`): news-like
documents, user events and malformed messages, deterministic for a seed."""

from stream_aimass.tools.corpus.generate import (
    CATEGORIES,
    DEFAULT_START_TS_MS,
    bad_messages,
    generate_documents,
    generate_events,
    write_jsonl,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_START_TS_MS",
    "bad_messages",
    "generate_documents",
    "generate_events",
    "write_jsonl",
]
