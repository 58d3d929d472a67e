"""Exemplar-similarity principle scorer: no LLM, no training, just the constitution's examples.

For each principle, a document's score contrasts its similarity to the positive exemplars with its
similarity to the negative ones:  score = sigmoid(temperature * (top2(pos) - top2(neg)))  where top2 is the
mean of the two highest cosine similarities. The result is on the constitution's [0, 1] scale; 0.5 means
"as close to the violating examples as to the benign ones". It is the teacher of last resort and the
cold-start scorer before a distilled classifier exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from udfs.encoder import Encoder, row_dots

TEMPERATURE = 12.0
TOP_K = 2


@dataclass(frozen=True)
class PrincipleExemplars:
    name: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]


def _topk_mean(sims: np.ndarray, k: int) -> np.ndarray:
    k = min(k, sims.shape[1])
    part = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
    return part.mean(axis=1)


class ExemplarScorer:
    def __init__(self, encoder: Encoder, principles: Sequence[PrincipleExemplars]) -> None:
        self.encoder = encoder
        self.names = [p.name for p in principles]
        self._pos = [encoder.embed(list(p.positive)) for p in principles]
        self._neg = [encoder.embed(list(p.negative)) for p in principles]

    def score_embeddings(self, emb: np.ndarray) -> np.ndarray:
        """(n_docs, n_principles) scores in [0, 1]."""
        cols = []
        for pos, neg in zip(self._pos, self._neg, strict=True):
            # row_dots, not emb @ pos.T: a document's score must not depend on the batch it is in
            margin = _topk_mean(row_dots(emb, pos), TOP_K) - _topk_mean(row_dots(emb, neg), TOP_K)
            cols.append(1.0 / (1.0 + np.exp(-TEMPERATURE * margin)))
        return np.stack(cols, axis=1) if cols else np.zeros((emb.shape[0], 0))

    def score(self, texts: list[str]) -> np.ndarray:
        return self.score_embeddings(self.encoder.embed(texts))
