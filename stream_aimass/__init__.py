"""stream-aimass: real-time AI enrichment of event streams.

Kafka in, micro-batched transformer models (one encoder pass per document shared by every
head), Kafka and ClickHouse out. The public API is what this module exports.
"""

from stream_aimass.batching import Batch, TokenBudgetBatcher
from stream_aimass.decode import DocumentDecoder
from stream_aimass.records import (
    Category,
    DeadLetter,
    Document,
    EnrichedDocument,
    ModelRef,
    Source,
)
from stream_aimass.settings import Settings, load_settings

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "Category",
    "DeadLetter",
    "Document",
    "DocumentDecoder",
    "EnrichedDocument",
    "ModelRef",
    "Settings",
    "Source",
    "TokenBudgetBatcher",
    "__version__",
    "load_settings",
]
