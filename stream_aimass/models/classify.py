"""Zero-shot classification: cosine between the document embedding and label prototypes."""

from __future__ import annotations

import numpy as np

from stream_aimass.models.encoder import Encoder


class ZeroShotClassifier:
    """Labels described in words; each description is embedded once at start-up.

    Scores are cosine similarities in [-1, 1]: the highest is the top category.
    """

    name = "zero-shot"

    def __init__(self, encoder: Encoder, labels: dict[str, str]) -> None:
        if not labels:
            raise ValueError("a zero-shot classifier needs at least one label")
        self.labels = list(labels)
        self.prototypes = encoder.encode_texts(list(labels.values()))  # (L, dim), unit norm

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, L) cosine scores for (n, dim) unit-norm embeddings."""
        result: np.ndarray = embeddings @ self.prototypes.T
        return result
