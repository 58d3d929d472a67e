"""A fast second-opinion scorer: `alt-profanity-check` (MIT), TF-IDF + a calibrated linear SVM.

It scores profanity and insults from single words (no context, no word order), so it is no substitute for the
Jigsaw teacher (udfs/jigsaw.py), but it is 10-30x faster and independent of it: a cheap cross-check of that
teacher and of the distilled classifiers. Numbers on human labels: bench/scorers_human.py.

The package loads its vectorizer and model (joblib, sklearn 1.9.1, which it pins exactly and the project
pins too) when its module is imported; that happens once per process, under Python's import lock, on the first
`ProfanityClassifier.load()`.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

DISTRIBUTION = "alt-profanity-check"
PINNED_VERSION = "1.9.1"


class ProfanityUnavailable(ImportError):
    """The `alt-profanity-check` wheel is not installed."""


class ProfanityClassifier:
    """`.predict(texts)` -> (n,) probability of profanity; `load()` returns one shared instance per process."""

    _instance: ClassVar[ProfanityClassifier | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, vectorizer: Any, model: Any, version: str) -> None:
        self.vectorizer = vectorizer
        self.model = model
        self.version = version
        # predict_proba's columns follow model.classes_; the positive class is 1
        self.positive = int(np.flatnonzero(np.asarray(model.classes_) == 1)[0])

    @classmethod
    def load(cls) -> ProfanityClassifier:
        with cls._lock:
            if cls._instance is None:
                try:
                    from profanity_check import profanity_check as package
                except ImportError as exc:
                    raise ProfanityUnavailable(
                        f"the profanity scorer needs `{DISTRIBUTION}`: pip install {DISTRIBUTION}=={PINNED_VERSION} "
                        f"(a project dependency: `make setup` installs it); import failed with: {exc}"
                    ) from exc
                version = importlib.metadata.version(DISTRIBUTION)
                cls._instance = cls(package.vectorizer, package.model, version)
            return cls._instance

    def predict(self, texts: Sequence[str], batch_size: int = 4096) -> np.ndarray:
        """(len(texts), ) float64 probabilities, in input order; an empty input gives an empty array."""
        if isinstance(texts, str):
            raise TypeError("predict takes a sequence of texts, not one string")
        texts = list(texts)
        out = np.zeros(len(texts), np.float64)
        for lo in range(0, len(texts), batch_size):
            chunk = texts[lo : lo + batch_size]
            out[lo : lo + len(chunk)] = self.model.predict_proba(self.vectorizer.transform(chunk))[:, self.positive]
        return out
