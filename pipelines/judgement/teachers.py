"""The packaged teachers a constitution names, as one scorer loaded once per process, without Spark: the cascade's
second tier (pipelines/stages/cascade.py), revision's re-scoring and distillation's reference all use it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from pipelines.judgement.windowed import Windowed, plan, window_max
from udfs.teachers import TEACHERS, check_teacher
from udfs.windows import words_for_tokens

if TYPE_CHECKING:
    from pipelines.core.constitution import Constitution


#: Teachers cheap enough to read every window of every document (the others read the planned windows).
CHEAP_TEACHERS = frozenset({"jigsaw"})
#: Window settings of a scorer built without a run's configuration: `classify`'s defaults.
DEFAULT_WINDOW_WORDS = words_for_tokens(128)
DEFAULT_TOP_K = 3


class TeacherScorer:
    """All packaged teachers a constitution names, loaded once per process (on first use). A document's score is
    the maximum over its windows (pipelines/judgement/windowed.py): the Jigsaw BiLSTM reads every window, the stack
    teachers the first and the `top_k - 1` the cheap tier ranks highest (`top_k` 0: every window)."""

    def __init__(
        self, specs: Sequence[str | None], window_words: int = DEFAULT_WINDOW_WORDS, top_k: int = DEFAULT_TOP_K
    ) -> None:
        self.specs = list(specs)
        self.window_words = window_words
        self.top_k = top_k
        for spec in self.specs:
            if spec is not None:
                check_teacher(spec)

    def _outputs(self, name: str, texts: list[str]) -> np.ndarray:
        """(len(texts), len(TEACHERS[name])): the teacher's scores of each text read as one passage, columns in
        TEACHERS order."""
        if name == "stack":
            from udfs.stack_teacher import WINDOW_MODE, StackTeacher, score_many

            # every stack output in one pass: the models share their features, so a second costs a dot product
            return score_many([StackTeacher.load(output=o) for o in TEACHERS[name]], texts, WINDOW_MODE)
        from udfs.jigsaw import JigsawClassifier

        return JigsawClassifier.load().predict_windows(texts)

    def _by_name(self) -> dict[str, list[int]]:
        by_name: dict[str, list[int]] = {}
        for j, spec in enumerate(self.specs):
            if spec is not None:
                by_name.setdefault(check_teacher(spec)[0], []).append(j)
        return by_name

    def _need(self, n: int, need: np.ndarray | None) -> np.ndarray:
        has = np.array([s is not None for s in self.specs], dtype=bool)
        return np.broadcast_to(has, (n, len(self.specs))) if need is None else need & has

    def _columns(self, name: str, values: np.ndarray, cols: list[int]) -> np.ndarray:
        out = np.full((len(values), len(self.specs)), np.nan)
        for j in cols:
            out[:, j] = values[:, TEACHERS[name].index(check_teacher(self.specs[j])[1])]  # type: ignore[arg-type]
        return out

    def score_passages(self, texts: Sequence[str], need: np.ndarray | None = None) -> np.ndarray:
        """(n_texts, n_principles): each text scored as one passage where `need` (default: every principle with a
        teacher), NaN elsewhere (sentences of a span, windows)."""
        n = len(texts)
        out = np.full((n, len(self.specs)), np.nan)
        need = self._need(n, need)
        for name, cols in self._by_name().items():
            rows = np.flatnonzero(need[:, cols].any(axis=1))
            if not len(rows):
                continue
            got = self._columns(name, self._outputs(name, [texts[i] for i in rows]), cols)
            for j in cols:
                hit = need[rows, j]
                out[rows[hit], j] = got[hit, j]
        return out

    def score_windowed(self, texts: Sequence[str], need: np.ndarray | None = None) -> Windowed:
        """Document scores as the maximum over windows, with the deciding window's range; NaN where not needed."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        n, m = len(texts), len(self.specs)
        out = Windowed.empty(n, m)
        need = self._need(n, need)
        by_name = self._by_name()
        if not n or not by_name:
            return out
        # the cheap tier ranks windows only when an expensive teacher reads a selection of them, and only of the
        # documents some principle needs (the audit passes whole batches of which it needs a few)
        expensive = any(name not in CHEAP_TEACHERS for name in by_name)
        wanted = need.any(axis=1)
        window_plan = plan(
            [t if wanted[i] else "" for i, t in enumerate(texts)], self.window_words, self.top_k if expensive else 0
        )
        for name, cols in by_name.items():
            rows = [int(i) for i in np.flatnonzero(need[:, cols].any(axis=1))]
            if not rows:
                continue
            which = "all" if name in CHEAP_TEACHERS else "read"
            got = window_max(
                texts,
                window_plan,
                lambda ps, name=name, cols=cols: self._columns(name, self._outputs(name, ps), cols),
                m,
                which,
                rows,
            )
            for j in cols:
                hit = need[:, j]
                out.scores[hit, j], out.starts[hit, j], out.ends[hit, j] = (
                    got.scores[hit, j],
                    got.starts[hit, j],
                    got.ends[hit, j],
                )
        return out

    def score(self, texts: Sequence[str], need: np.ndarray | None = None) -> np.ndarray:
        """(n_docs, n_principles): the teacher's document score where `need` (default: every principle with a
        teacher), NaN elsewhere. Each teacher sees only the documents some principle needs it for."""
        return self.score_windowed(texts, need).scores


_LOCK = threading.Lock()


@lru_cache(maxsize=8)
def _scorer(specs: tuple[str | None, ...], window_words: int, top_k: int) -> TeacherScorer:
    return TeacherScorer(specs, window_words, top_k)


def shared_scorer(
    specs: tuple[str | None, ...], window_words: int = DEFAULT_WINDOW_WORDS, top_k: int = DEFAULT_TOP_K
) -> TeacherScorer:
    """One scorer per process, teacher list and window setting (UDF partitions are threads of one process)."""
    with _LOCK:
        return _scorer(specs, window_words, top_k)


def teacher_specs(constitution: Constitution) -> list[str | None]:
    """Per principle, in constitution order, the teacher that judges it: none for a positive principle (it is
    upweighted, never flagged) or one without a `teacher`."""
    return [None if p.positive_kind else p.teacher for p in constitution.principles]


def teacher_scorer(
    constitution: Constitution, top_k: int = DEFAULT_TOP_K, window_words: int = DEFAULT_WINDOW_WORDS
) -> TeacherScorer:
    return shared_scorer(tuple(teacher_specs(constitution)), window_words, top_k)


def has_teachers(constitution: Constitution) -> bool:
    return any(teacher_specs(constitution))


def local_scores(
    constitution: Constitution,
    classifier: Mapping[str, list[float]],
    texts: Mapping[str, str],
    window_words: int = DEFAULT_WINDOW_WORDS,
) -> dict[str, list[float]]:
    """The strongest packaged view of `texts` for re-scoring a revision: per principle the teacher's score where
    the principle has one (revision candidates sit in a revise band, so the teacher decided them), the
    classifier's elsewhere. `window_words`: the run's `classify.window_length`, so a revision is read as the
    original was."""
    if not has_teachers(constitution):
        return dict(classifier)
    keys = list(classifier)
    # every window: a revision is accepted only when no passage of it is still over a threshold
    teacher = teacher_scorer(constitution, top_k=0, window_words=window_words).score([texts[k] for k in keys])
    out = {}
    for k, row in zip(keys, teacher, strict=True):
        out[k] = [c if np.isnan(t) else float(t) for c, t in zip(classifier[k], row, strict=True)]
    return out
