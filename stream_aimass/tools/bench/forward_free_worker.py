"""An enrich worker whose encoder forward pass is free: bench's roles phase runs it.

``python -m stream_aimass.tools.bench.forward_free_worker`` takes its settings from the
environment (``AIMASS_*``), replaces :meth:`Encoder.encode_ids` in this process only with
:class:`~stream_aimass.tools.bench.scenarios.StoredVectors` (unit vectors and token states
of the real shapes), and runs the ordinary ``enrich`` worker: tokenizer, heads, entities,
records, Kafka, all real. Never a way to run the pipeline: its embeddings are random.
"""

from __future__ import annotations

from typing import Any

from stream_aimass.models.encoder import EncodedBatch, Encoder
from stream_aimass.tools.bench.scenarios import StoredVectors

_STORES: dict[int, StoredVectors] = {}


def _stored_encode_ids(self: Encoder, ids: list[list[int]], *, token_states: bool = False) -> Any:
    store = _STORES.get(self.dim)
    if store is None:  # one pool per process: building it costs more than a batch
        store = _STORES[self.dim] = StoredVectors(self.dim)
    batch: EncodedBatch = store(ids, token_states=token_states)
    return batch


def main() -> None:
    from stream_aimass.app import run_worker
    from stream_aimass.observability import configure_logging
    from stream_aimass.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    Encoder.encode_ids = _stored_encode_ids  # type: ignore[method-assign]
    run_worker(settings, "enrich")


if __name__ == "__main__":
    main()
