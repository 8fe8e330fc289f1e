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
from stream_aimass.entities.linking import LinkWeights, mention_vectors
from stream_aimass.evaluation.linking import LinkingExample
from stream_aimass.models.encoder import Encoder

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
    linker, index = extractor.linker, extractor.index
    ids = [e.id for e in extractor.kb.entities]
    rows: list[list[float]] = []
    gold: list[bool] = []
    owner: list[int] = []
    nil: list[bool] = []
    for start in range(0, len(examples), 32):
        chunk = examples[start : start + 32]
        tokenized = encoder.tokenize_with_offsets([e.text for e in chunk])
        encoded = encoder.encode_ids(tokenized.ids, token_states=True)
        states = encoded.token_states or []
        for row, example in enumerate(chunk):
            spans = [(m.start, m.end) for m in example.mentions]
            vectors = mention_vectors(states[row], tokenized.offsets[row], spans)
            context = encoded.embeddings[row]
            for mention, vector in zip(example.mentions, vectors, strict=True):
                surface = example.text[mention.start : mention.end]
                candidates, exact = index.candidates_and_match(surface)
                number = len(nil)
                nil.append(mention.entity_id is None)
                if not candidates:
                    continue
                chosen = list(candidates)
                pop = linker.popularity[chosen]
                ev = linker.vectors[chosen]
                cos_m = ev @ vector if vector is not None else np.zeros(len(candidates))
                cos_c = ev @ context
                for k, c in enumerate(candidates):
                    rows.append([
                        float(cos_m[k]), float(cos_c[k]),
                        float(np.log(pop[k] / pop.sum())), float(exact),
                    ])  # fmt: skip
                    gold.append(ids[c] == mention.entity_id)
                    owner.append(number)
    return CandidateRows(
        np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES)),
        np.asarray(gold, dtype=bool),
        np.asarray(owner, dtype=np.int64),
        len(nil),
        np.asarray(nil, dtype=bool),
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
