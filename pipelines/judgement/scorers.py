"""The principle scorer behind the classify stage, without Spark: per principle the registered champion where the
lake has one, exemplar similarity on MiniLM otherwise (the cold start). The stage wraps it in a pandas UDF
(pipelines/stages/classify.py); distillation and revision call it directly.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.core.config import ClassifyConfig
from pipelines.core.constitution import Constitution
from pipelines.core.registry import Champion
from pipelines.judgement.windowed import Windowed, WindowPlan, deciding_range, plan, resolve_top_k, window_max
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
                    # the teacher that scores the sentences of a document it (or the judge after it) decided
                    "teacher": None if p.positive_kind else p.teacher,
                }
                for p in constitution.principles
            ],
            "device": cfg.device,
            "max_tokens": cfg.max_tokens,
            "windows": cfg.windows,
            "top_k": cfg.top_k,
            "window_words": cfg.window_length,
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

    @property
    def top_k(self) -> int:
        """Windows the encoder reads per document (0 = all): `classify.windows` resolved on the worker's device."""
        return resolve_top_k(self._spec.get("windows", "top_k"), int(self._spec.get("top_k", 3)), self._spec["device"])

    def _encoder_columns(self) -> list[int]:
        from udfs.heads import EncoderHead

        return sorted([*self._exemplar_idx, *(i for i, h in self.heads.items() if type(h) is EncoderHead)])

    def score_passages(self, texts: list[str], columns: Sequence[int] | None = None) -> np.ndarray:
        """(n_texts, n_principles): each text scored as one passage (the encoder truncates it at `max_tokens`);
        NaN outside `columns` (default: all)."""
        from udfs.heads import EncoderHead

        wanted = set(range(len(self.names)) if columns is None else columns)
        out = np.full((len(texts), len(self.names)), np.nan)
        if not texts or not wanted:
            return out
        enc = [i for i in self._encoder_columns() if i in wanted]
        emb = self.encoder.embed(texts) if enc else None
        if self._exemplars is not None and set(self._exemplar_idx) & wanted:
            out[:, self._exemplar_idx] = self._exemplars.score_embeddings(emb)
        for i, head in self.heads.items():
            if i in wanted:
                out[:, i] = head.predict_embeddings(emb) if type(head) is EncoderHead else head.predict(texts)
        for i in set(range(len(self.names))) - wanted:
            out[:, i] = np.nan
        return out

    @property
    def window_words(self) -> int:
        return int(self._spec["window_words"])  # scorer_spec writes ClassifyConfig.window_length

    def score_windowed(self, texts: list[str], window_plan: WindowPlan | None = None) -> Windowed:
        """Document scores as the maximum over windows (pipelines/judgement/windowed.py): encoder-based principles
        over the windows the plan reads, the others (linear champions) over every window."""
        n, m = len(texts), len(self.names)
        if not texts:
            return Windowed.empty(0, m)
        enc = self._encoder_columns()
        # the cheap tier ranks windows only for a scorer that reads a selection of them
        window_plan = window_plan or plan(texts, self.window_words, self.top_k if enc else 0)
        cheap = [i for i in range(m) if i not in enc]
        parts = []
        if enc:
            parts.append(window_max(texts, window_plan, lambda ps: self.score_passages(ps, enc), m, "read"))
        if cheap:
            parts.append(window_max(texts, window_plan, lambda ps: self.score_passages(ps, cheap), m, "all"))
        out = Windowed.empty(n, m)
        for part, cols in zip(parts, [c for c in (enc, cheap) if c], strict=True):
            out.scores[:, cols], out.starts[:, cols], out.ends[:, cols] = (
                part.scores[:, cols],
                part.starts[:, cols],
                part.ends[:, cols],
            )
        return out

    def score(self, texts: list[str]) -> np.ndarray:
        """(n_docs, n_principles) document scores in [0, 1]: the maximum over each document's windows."""
        return np.nan_to_num(self.score_windowed(texts).scores, nan=0.0)

    def _teachers(self) -> Any:
        from pipelines.judgement.teachers import shared_scorer

        teachers = tuple(p.get("teacher") for p in self._spec["principles"])
        return shared_scorer(teachers, self.window_words, self.top_k)

    def spans(
        self,
        texts: list[str],
        scores: np.ndarray,
        deciders: Sequence[Sequence[str]] | None = None,
        starts: np.ndarray | None = None,
        ends: np.ndarray | None = None,
    ) -> tuple[list[list[list[dict[str, Any]]]], list[list[str | None]]]:
        """Per document and principle at or above its span threshold: the spans, and whose judgement they are.

        The spans are the sentences that the scorer which decided (`deciders`: classifier | teacher | judge) puts at
        or above the span threshold; a judge's document is read by the strongest packaged scorer (its teacher, else
        the classifier) within the window the judge saw. Sentences of the deciding window (`starts`/`ends`) and
        its neighbours come first, then the rest of the document, at most MAX_SPAN_SENTENCES. Where no single
        sentence crosses the threshold (the harm is spread over several), the deciding window itself is the span
        (`<decider>:window`): a flagged document always has spans."""
        n, m = len(texts), len(self.names)
        result: list[list[list[dict[str, Any]]]] = [[[] for _ in self.names] for _ in texts]
        by: list[list[str | None]] = [[None] * m for _ in texts]
        deciders = deciders if deciders is not None else [["classifier"] * m for _ in texts]
        starts = starts if starts is not None else np.zeros((n, m), np.int64)
        ends = ends if ends is not None else np.array([[len(t)] * m for t in texts], np.int64).reshape(n, m)
        flagged = scores >= self.span_thresholds
        teachers = [p.get("teacher") for p in self._spec["principles"]]
        # (doc, sentence range) -> which scorer must read it: the classifier or the teacher
        wanted: dict[str, dict[tuple[int, int, int], None]] = {"classifier": {}, "teacher": {}}
        plan_of: dict[tuple[int, int], tuple[str, list[tuple[int, int]]]] = {}
        sentences = {i: split_sentences(texts[i]) for i in range(n) if flagged[i].any()}
        for i, sents in sentences.items():
            for j in np.flatnonzero(flagged[i]):
                decider = deciders[i][j] or "classifier"
                reader = "teacher" if decider in ("teacher", "judge") and teachers[j] else "classifier"
                lo, hi = deciding_range(texts[i], starts[i, j], ends[i, j])
                near = [(s, e) for s, e in sents if e > lo and s < hi]
                if decider == "judge":
                    chosen = near
                else:
                    rest = [(s, e) for s, e in sents if not (e > lo and s < hi)]
                    chosen = (near + rest)[:MAX_SPAN_SENTENCES]
                plan_of[(i, int(j))] = (reader, sorted(chosen))
                for s, e in chosen:
                    wanted[reader][(i, s, e)] = None
        found: dict[str, dict[tuple[int, int, int], np.ndarray]] = {}
        for reader, keys in wanted.items():
            if not keys:
                continue
            pieces = list(keys)
            passages = [texts[i][s:e] for i, s, e in pieces]
            values = (
                self.score_passages(passages) if reader == "classifier" else self._teachers().score_passages(passages)
            )
            found[reader] = dict(zip(pieces, values, strict=True))
        for (i, j), (reader, chosen) in plan_of.items():
            threshold = self.span_thresholds[j]
            for s, e in chosen:
                value = found[reader][(i, s, e)][j]
                if not np.isnan(value) and value >= threshold:
                    result[i][j].append({"start": s, "end": e, "score": float(value)})
            decider = deciders[i][j] or "classifier"
            if result[i][j]:
                by[i][j] = reader
            else:
                lo, hi = deciding_range(texts[i], starts[i, j], ends[i, j])
                result[i][j] = [{"start": lo, "end": hi, "score": float(scores[i, j])}]
                by[i][j] = f"{decider}:window"
        return result, by


# Sail runs UDF partitions as threads of one process: the first import of transformers and the model load
# must not race (transformers' lazy module raises ImportError when two threads import it at once).
_LOAD_LOCK = threading.Lock()


def load_scorer(spec: str) -> PrincipleScorer:
    with _LOAD_LOCK:
        return _load_scorer(spec)


@lru_cache(maxsize=4)
def _load_scorer(spec: str) -> PrincipleScorer:
    return PrincipleScorer(json.loads(spec))
