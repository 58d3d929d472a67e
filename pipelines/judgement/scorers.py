"""The principle scorer behind the classify stage, without Spark: per principle the registered champion where the
lake has one, exemplar similarity on MiniLM otherwise (the cold start). The stage wraps it in a pandas UDF
(pipelines/stages/classify.py); distillation and revision call it directly.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.core.config import ClassifyConfig
from pipelines.core.constitution import Constitution
from pipelines.core.registry import Champion
from udfs.sentences import split_sentences  # the spans' sentences are the ones excision removes

if TYPE_CHECKING:
    pass


# Spans cost one extra encoding per sentence of a flagged document; a very long flagged document gets spans
# for its first MAX_SPAN_SENTENCES sentences only (its document-level score still covers all of it).
MAX_SPAN_SENTENCES = 64


def model_uri(constitution: Constitution) -> str:
    """The URI recorded for principles scored by the exemplar scorer."""
    from udfs.encoder import ENCODER_NAME

    return f"exemplar:{ENCODER_NAME}@{constitution.fingerprint()}"


def scorer_spec(
    constitution: Constitution, cfg: ClassifyConfig, champions: Mapping[str, Champion] | None = None
) -> str:
    """Everything a worker needs to build the scorer, as a JSON string (hashable, shippable)."""
    champions = champions or {}
    return json.dumps(
        {
            "principles": [
                {
                    "name": p.name,
                    "positive": list(p.positive),
                    "negative": list(p.negative),
                    # where the worker fetches the champion from: a URI, never a driver path (models travel)
                    "model_uri": champions[p.name].model_uri if p.name in champions else None,
                    "artifact_uri": champions[p.name].artifact_uri if p.name in champions else None,
                    # spans are for masking what the corpus should not teach; a positive principle has none
                    "span_threshold": math.inf if p.positive_kind else p.spans_from,
                }
                for p in constitution.principles
            ],
            "device": cfg.device,
            "max_tokens": cfg.max_tokens,
            "batch_size": cfg.batch_size,
            "threads": cfg.threads,
            "registry_uri": cfg.registry_uri,
        },
        sort_keys=True,
    )


class PrincipleScorer:
    """Scores texts against every principle: champions where loaded, exemplars elsewhere."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from udfs.exemplar import ExemplarScorer, PrincipleExemplars
        from udfs.heads import EncoderHead

        self.names = [p["name"] for p in spec["principles"]]
        self.span_thresholds = np.array([p["span_threshold"] for p in spec["principles"]], dtype=float)
        self._encoder: Any = None
        self._spec = spec
        self.heads: dict[int, Any] = {}
        exemplar_idx = [i for i, p in enumerate(spec["principles"]) if not p["artifact_uri"]]
        for i, p in enumerate(spec["principles"]):
            if p["artifact_uri"]:
                import mlflow.pyfunc

                from pipelines.core.registry import fetch_model

                local = fetch_model(p["artifact_uri"], spec.get("registry_uri"))
                head = mlflow.pyfunc.load_model(str(local)).unwrap_python_model().head
                if type(head) is EncoderHead:
                    head.use_encoder(self.encoder)
                self.heads[i] = head
        self.needs_embedding = bool(exemplar_idx) or any(type(h) is EncoderHead for h in self.heads.values())
        self._exemplar_idx = exemplar_idx
        self._exemplars = (
            ExemplarScorer(
                self.encoder,
                [
                    PrincipleExemplars(p["name"], tuple(p["positive"]), tuple(p["negative"]))
                    for p in (spec["principles"][i] for i in exemplar_idx)
                ],
            )
            if exemplar_idx
            else None
        )

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from udfs.encoder import shared_encoder

            s = self._spec
            self._encoder = shared_encoder(s["device"], s["max_tokens"], s["batch_size"], s["threads"])
        return self._encoder

    def score(self, texts: list[str]) -> np.ndarray:
        """(n_docs, n_principles) scores in [0, 1]."""
        from udfs.heads import EncoderHead

        out = np.zeros((len(texts), len(self.names)))
        if not texts:
            return out
        emb = self.encoder.embed(texts) if self.needs_embedding else None
        if self._exemplars is not None:
            out[:, self._exemplar_idx] = self._exemplars.score_embeddings(emb)
        for i, head in self.heads.items():
            out[:, i] = head.predict_embeddings(emb) if type(head) is EncoderHead else head.predict(texts)
        return out

    def spans(self, texts: list[str], scores: np.ndarray) -> list[list[list[dict[str, Any]]]]:
        """Per document, per principle: sentences scoring >= the span threshold, for flagged documents."""
        result: list[list[list[dict[str, Any]]]] = [[[] for _ in self.names] for _ in texts]
        flagged = [i for i in range(len(texts)) if (scores[i] >= self.span_thresholds).any()]
        pieces: list[tuple[int, int, int]] = []
        for i in flagged:
            pieces += [(i, s, e) for s, e in split_sentences(texts[i])[:MAX_SPAN_SENTENCES]]
        if not pieces:
            return result
        sentence_scores = self.score([texts[i][s:e] for i, s, e in pieces])
        for (i, s, e), row in zip(pieces, sentence_scores, strict=True):
            for j, value in enumerate(row):
                if scores[i, j] >= self.span_thresholds[j] and value >= self.span_thresholds[j]:
                    result[i][j].append({"start": s, "end": e, "score": float(value)})
        return result


# Sail runs UDF partitions as threads of one process: the first import of transformers and the model load
# must not race (transformers' lazy module raises ImportError when two threads import it at once).
_LOAD_LOCK = threading.Lock()


def load_scorer(spec: str) -> PrincipleScorer:
    with _LOAD_LOCK:
        return _load_scorer(spec)


@lru_cache(maxsize=4)
def _load_scorer(spec: str) -> PrincipleScorer:
    return PrincipleScorer(json.loads(spec))
