"""Fit the entity linker's weights on a labelled linking file.

Each candidate of each gold mention becomes a row of the linker's features (see
:mod:`stream_aimass.entities.linking`): cosine of the mention vector, cosine of the document
vector, log prior, exact alias. A conditional logit (a softmax over each mention's
candidates and NIL, L2 on the weights, Newton's method) learns the weights and NIL's score
together: the linker's own decision rule (the best candidate when its score reaches the NIL
threshold, else NIL) is the model's most likely choice. The type weight is not fitted: gold
mentions carry no NER label, so the type feature is 0 on every row; it keeps its default.

The weights depend on the encoder that made the vectors: fit again after changing it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_aimass.entities.extract import EntityExtractor
from stream_aimass.entities.linking import FEATURES as ALL_FEATURES
from stream_aimass.entities.linking import LinkWeights, Stacked
from stream_aimass.evaluation.linking import LinkingExample, gold_mentions
from stream_aimass.models.encoder import Encoder

# The type term is left out: gold mentions carry no NER label, so it is 0 on every row.
FEATURES = ("mention", "context", "prior", "exact")


@dataclass(frozen=True)
class CandidateRows:
    """The features of every candidate of every mention (rows in mention order)."""

    features: np.ndarray  # (rows, len(FEATURES))
    gold: np.ndarray  # (rows,) bool: this candidate is the mention's gold entity
    owner: np.ndarray  # (rows,) the mention of each row
    mentions: int
    nil: np.ndarray  # (mentions,) bool: the gold is NIL (no entity of the KB)


def candidate_rows(
    examples: list[LinkingExample], extractor: EntityExtractor, encoder: Encoder
) -> CandidateRows:
    """The linker's own features (:meth:`EntityLinker.candidate_features`) of every
    candidate of every gold mention, with which one is gold."""
    linker = extractor.linker
    ids = [e.id for e in extractor.kb.entities]
    found = list(gold_mentions(examples, extractor, encoder))
    mentions = [mention for _, _, mention, _, _ in found]
    dim = linker.vectors.shape[1]
    features, sizes = linker.candidate_features(
        mentions,
        Stacked.of([vector for _, _, _, vector, _ in found], dim),
        Stacked.of([context for _, _, _, _, context in found], dim),
    )
    gold_ids = [gold.entity_id for _, gold, _, _, _ in found]
    owner = np.repeat(np.arange(len(found)), sizes)
    gold = np.array(
        [ids[c] == gold_ids[m] for m, mention in enumerate(mentions) for c in mention.candidates],
        dtype=bool,
    )
    columns = [ALL_FEATURES.index(f) for f in FEATURES]
    return CandidateRows(
        features[:, columns],
        gold,
        owner,
        len(found),
        np.array([g is None for g in gold_ids], dtype=bool),
    )


def conditional_logit(rows: CandidateRows, l2: float = 1.0, steps: int = 100) -> np.ndarray:
    """Weights and NIL score maximising the likelihood of each mention's gold choice among
    its candidates and NIL (a softmax over them; NIL's score is the last parameter), plus
    ``l2``/2 ||w||² on the weights (Newton's method). Mentions without candidates carry no
    information and are left out."""
    k = rows.features.shape[1]
    mentions = np.unique(rows.owner)
    # Each mention's options: its candidate rows, then NIL (features (0, ..., 0, 1)).
    blocks = []
    for m in mentions:
        f = rows.features[rows.owner == m]
        g = np.vstack([np.hstack([f, np.zeros((len(f), 1))]), np.eye(k + 1)[-1]])
        target = np.append(rows.gold[rows.owner == m], rows.nil[m]).astype(np.float64)
        if target.sum() != 1.0:
            continue  # gold in the KB but not among the candidates: no choice to learn
        blocks.append((g, target))
    theta = np.zeros(k + 1)
    ridge = np.full(k + 1, l2)
    ridge[-1] = 0.0
    for _ in range(steps):
        grad = ridge * theta
        hess = np.diag(ridge) + 1e-9 * np.eye(k + 1)
        for g, target in blocks:
            z = g @ theta
            p = np.exp(z - z.max())
            p /= p.sum()
            grad += g.T @ (p - target)
            mean = g.T @ p
            hess += (g * p[:, None]).T @ g - np.outer(mean, mean)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta


def decisions(rows: CandidateRows, weights: np.ndarray, threshold: float) -> np.ndarray:
    """Per mention: True when the linker decides it right with these weights and cut."""
    score = rows.features @ weights
    right = rows.nil.copy()  # a mention without candidates is NIL, right when gold is NIL
    if not len(score):
        return right
    order = np.lexsort((-score, rows.owner))  # each mention's rows, best first (stable)
    first = order[np.r_[True, rows.owner[order][1:] != rows.owner[order][:-1]]]
    linked = score[first] >= threshold
    mention = rows.owner[first]
    right[mention] = np.where(linked, rows.gold[first], rows.nil[mention])
    return right


def fit_link_weights(rows: CandidateRows, l2: float = 1.0) -> LinkWeights:
    if not rows.gold.any():
        raise ValueError("no mention has its gold entity among its candidates: nothing to fit")
    theta = conditional_logit(rows, l2)
    fitted = dict(zip(FEATURES, (round(float(c), 4) for c in theta[:-1]), strict=True))
    return LinkWeights(**fitted, type=LinkWeights().type, nil_threshold=round(float(theta[-1]), 4))


def write_weights(path: Path, weights: LinkWeights, provenance: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**asdict(weights), "fitted": provenance}, indent=2) + "\n")
