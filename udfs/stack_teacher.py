"""Packaged teachers stacked on three packaged scorers: per output, a logistic regression over the MiniLM sentence
embedding of the text, the Jigsaw BiLSTM's six outputs (udfs/jigsaw.py) and alt-profanity-check (udfs/profanity.py).
Outputs (`stack:<output>` in a constitution, `OUTPUTS`): `toxic` (toxicity, fitted on human toxicity labels by
bench/train_stack_teacher.py) and `violence` (fitted on violent vs neutral passages, neutral reporting of violence
among the negatives, by bench/train_violence_teacher.py). Every output reads the same features, so scoring
several costs one MiniLM pass.

    score = sigmoid(w . [embedding (384), logit(jigsaw window-max, 6 outputs), logit(profanity)] + b)

The Jigsaw BiLSTM alone ranks human toxicity labels poorly on implicit hate (ToxiGen) and on tweets (OLID); the
embedding carries what its word-level view misses, and the two packaged scorers carry explicit abuse, which a
linear head on a frozen embedding underrates. `w` and `b` are fitted on the train parts of human-labelled sets by
bench/train_stack_teacher.py and shipped as `pipelines/defaults/toxicity_stack.npz` (a few KB, float32, with its
provenance in `meta`); the Platt scaling fitted on held-out folds of the train split is folded into `w` and `b`,
so the score is a probability and 0.7 means what the revise threshold says. Numbers: bench/README.md.

How a document is read (`MODE`, measured by the training script on held-out data, see bench/README.md):

- `document`: one embedding of the text (the encoder truncates at `max_tokens` tokens, as in training), the
  Jigsaw outputs as maxima over 100-word windows, profanity of the whole text.
- `windows`: each 100-word window scored as above, the document's score is the maximum. A window costs a
  MiniLM pass, so a 1,000-word page costs ten.
- `groups` (what the cascade's windows are read with, `WINDOW_MODE`): each run of whole sentences of at most
  `GROUP_WORDS` words (udfs/windows.py `sentence_groups`) scored as a passage, the maximum over them. A threat
  of one sentence is a third of its group's embedding instead of a sixth of a window's, and the total tokens
  encoded are those of the window. The violence model is fitted with such groups of ordinary prose among its
  negatives, so a short quote from a news page is not a short threat to it (bench/README.md).

The features are computed here and nowhere else, for training too, so the model and the teacher cannot drift.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from udfs.encoder import row_dots

if TYPE_CHECKING:
    from udfs.label_types import LabelResult, PrincipleSpec

#: Version of the feature layout below; a model file records the version it was fitted on, and loading a file
#: of another version is an error (its weights would multiply the wrong numbers).
FEATURES_VERSION = "stack-features-v1"
EMBED_DIM = 384
N_FEATURES = EMBED_DIM + 6 + 1
#: Encoder settings of the features: those of `udfs.encoder.shared_encoder()`'s defaults, which training used.
MAX_TOKENS = 256
MODES = ("document", "windows", "groups")
#: How a labeler reads a text it is given (one passage).
MODE = "document"
#: How the cascade, revision's re-score and the audit read each window of a page (pipelines/judgement/teachers.py).
WINDOW_MODE = "groups"
#: Words per sentence group in `groups` mode: about a comment or two sentences of prose. Measured on the spliced
#: pages' train split (bench/README.md): 20 words false-flags more short quotes, 40 dilutes a one-line insult.
GROUP_WORDS = 32
#: The packaged models by output: the weights file under pipelines/defaults.
OUTPUTS: dict[str, str] = {"toxic": "toxicity_stack.npz", "violence": "violence_stack.npz"}
#: The principle each output was fitted to judge (the `stack` labeler's map from a principle to its model).
PRINCIPLES: dict[str, str] = {"toxicity": "toxic", "violence": "violence"}
EPS = 1e-6


def default_path(output: str = "toxic") -> Path:
    if output not in OUTPUTS:
        raise ValueError(f"no packaged stack model for {output!r} (packaged: {', '.join(OUTPUTS)})")
    return Path(str(resources.files("pipelines") / "defaults" / OUTPUTS[output]))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


Embed = Callable[[list[str]], np.ndarray]


def document_features(texts: Sequence[str], embed: Embed) -> np.ndarray:
    """(n, N_FEATURES) float64: `embed(texts)`, logit of the Jigsaw window-max outputs, logit of profanity."""
    from udfs.jigsaw import JigsawClassifier
    from udfs.profanity import ProfanityClassifier

    texts = list(texts)
    if not texts:
        return np.zeros((0, N_FEATURES))
    e = np.asarray(embed(texts), dtype=np.float64)
    if e.shape != (len(texts), EMBED_DIM):
        raise ValueError(f"embeddings of shape {e.shape}, expected ({len(texts)}, {EMBED_DIM})")
    j = JigsawClassifier.load().predict_windows(texts)
    p = ProfanityClassifier.load().predict(texts)
    return np.hstack([e, logit(j), logit(p)[:, None]])


@dataclass(frozen=True)
class StackModel:
    coef: np.ndarray  # (N_FEATURES,) float32
    intercept: float
    meta: dict[str, Any]
    digest: str  # first 10 hex digits of the file's sha256

    @classmethod
    def read(cls, path: Path) -> StackModel:
        blob = path.read_bytes()
        with np.load(path, allow_pickle=False) as f:
            coef = np.asarray(f["coef"], dtype=np.float32)
            intercept = float(f["intercept"])
            meta = json.loads(str(f["meta"]))
        if coef.shape != (N_FEATURES,) or meta.get("features") != FEATURES_VERSION:
            raise ValueError(
                f"{path}: coefficients of shape {coef.shape} for features {meta.get('features')!r}, this code "
                f"computes {N_FEATURES} features of {FEATURES_VERSION!r}: retrain it (bench/train_stack_teacher.py, "
                "bench/train_violence_teacher.py)"
            )
        return cls(coef, intercept, meta, hashlib.sha256(blob).hexdigest()[:10])

    @property
    def model_id(self) -> str:
        """Names the file's exact weights: recorded beside every score and part of the label cache key."""
        return f"stack-lr-{self.digest}"

    def probability(self, x: np.ndarray) -> np.ndarray:
        # row by row: a BLAS product's rows depend on how many are multiplied together (udfs/encoder.py row_dots)
        coef = self.coef.astype(np.float64)[None, :]
        return _sigmoid(row_dots(np.asarray(x, dtype=np.float64), coef)[:, 0] + self.intercept)


def save_model(path: Path, coef: np.ndarray, intercept: float, meta: dict[str, Any]) -> None:
    if np.asarray(coef).shape != (N_FEATURES,):
        raise ValueError(f"coef of shape {np.asarray(coef).shape}, expected ({N_FEATURES},)")
    meta = {**meta, "features": FEATURES_VERSION}
    with path.open("wb") as fh:  # np.savez on a path would append .npz to another suffix
        np.savez(
            fh,
            coef=np.asarray(coef, np.float32),
            intercept=np.float32(intercept),
            meta=np.array(json.dumps(meta, sort_keys=True)),
        )


class StackTeacher:
    """The model plus its scorers; `load()` is one shared instance per process and file (thread-safe).

    The encoder is loaded on the first score, not with the coefficients: naming the model (`model_id`) must not
    cost a MiniLM load."""

    _cache: ClassVar[dict[Path, StackTeacher]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, model: StackModel, device: str = "auto", embed: Embed | None = None) -> None:
        """`embed`: another source of the same embeddings (the training script's cache); default the encoder."""
        self.model = model
        self.device = device
        self._embed = embed

    @classmethod
    def load(cls, path: Path | None = None, output: str = "toxic") -> StackTeacher:
        """The model at `path`, default the packaged model of `output`."""
        path = (path or default_path(output)).resolve()
        with cls._lock:
            if path not in cls._cache:
                cls._cache[path] = cls(StackModel.read(path))
            return cls._cache[path]

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._embed is not None:
            return self._embed(texts)
        from udfs.encoder import shared_encoder

        return shared_encoder(self.device, int(self.model.meta.get("max_tokens", MAX_TOKENS))).embed(texts)

    def score(self, texts: Sequence[str], mode: str = MODE) -> np.ndarray:
        """(len(texts),) probabilities that a human would call the text what the model was fitted on."""
        return score_many([self], texts, mode)[:, 0]


def score_many(teachers: Sequence[StackTeacher], texts: Sequence[str], mode: str = MODE) -> np.ndarray:
    """(len(texts), len(teachers)): every model on the same features, computed once (the first teacher's encoder:
    the models must share the encoder settings, checked here, or one of them would read other features)."""
    if isinstance(texts, str):
        raise TypeError("score takes a sequence of texts, not one string")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not teachers:
        raise ValueError("no teachers to score with")
    tokens = {int(t.model.meta.get("max_tokens", MAX_TOKENS)) for t in teachers}
    if len(tokens) > 1:
        raise ValueError(f"the models were fitted on embeddings of different lengths {sorted(tokens)}")
    texts = [t if isinstance(t, str) else "" for t in texts]
    embed = teachers[0].embed
    if mode == "document":
        x = document_features(texts, embed)
        return np.stack([t.model.probability(x) for t in teachers], axis=1)
    if mode == "groups":
        from udfs.windows import sentence_groups

        pieces = [
            (i, t[a:b]) for i, t in enumerate(texts) for a, b in (sentence_groups(t, GROUP_WORDS) or [(0, len(t))])
        ]
    else:
        from udfs.jigsaw import word_windows

        pieces = [(i, w) for i, t in enumerate(texts) for w in word_windows(t)]
    x = document_features([w for _, w in pieces], embed)
    values = np.stack([t.model.probability(x) for t in teachers], axis=1)
    out = np.zeros((len(texts), len(teachers)))
    for (i, _), v in zip(pieces, values, strict=True):
        out[i] = np.maximum(out[i], v)
    return out


class StackLabeler:
    """The stacked models as a teacher labeler (registered as `stack` in udfs/labelers.py): each principle in
    `PRINCIPLES` by its own model; another principle gets an `error` label saying so, never a made-up score."""

    name = "stack"

    def __init__(self, teacher: StackTeacher | None = None) -> None:
        """`teacher`: the toxicity model to use instead of the packaged one (tests)."""
        self._teachers: dict[str, StackTeacher] = {} if teacher is None else {"toxic": teacher}

    def teacher(self, principle: str) -> StackTeacher | None:
        output = PRINCIPLES.get(principle)
        if output is None:
            return None
        if output not in self._teachers:
            self._teachers[output] = StackTeacher.load(output=output)
        return self._teachers[output]

    def prompt_version(self, principle: PrincipleSpec) -> str:
        teacher = self.teacher(principle.name)
        return f"{teacher.model.model_id}:{MODE}" if teacher is not None else f"stack-none:{MODE}"

    def label(
        self,
        principle: PrincipleSpec,
        texts: Sequence[str],
        progress: Callable[[int], None] | None = None,
    ) -> list[LabelResult]:
        from udfs.label_types import LabelResult

        teacher = self.teacher(principle.name)
        if teacher is None:
            error = f"the stack labeler scores only {', '.join(PRINCIPLES)}, not {principle.name!r}"
            results = [LabelResult(status="error", error=error) for _ in texts]
        else:
            results = [LabelResult(status="ok", score=float(s)) for s in teacher.score(list(texts))]
        if progress is not None:
            progress(len(texts))
        return results

    def close(self) -> None:
        pass
