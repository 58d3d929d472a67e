"""The packaged teachers a constitution names, as one scorer loaded once per process, without Spark: the cascade's
second tier (pipelines/stages/cascade.py), revision's re-scoring and distillation's reference all use it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from udfs.teachers import TEACHERS, check_teacher

if TYPE_CHECKING:
    from pipelines.core.constitution import Constitution


class TeacherScorer:
    """All packaged teachers a constitution names, loaded once per process (on first use); the Jigsaw BiLSTM scores a
    document by its window maximum, the stack as udfs/stack_teacher.py's `MODE` says."""

    def __init__(self, specs: Sequence[str | None]) -> None:
        self.specs = list(specs)
        for spec in self.specs:
            if spec is not None:
                check_teacher(spec)

    def _outputs(self, name: str, texts: list[str]) -> np.ndarray:
        """(len(texts), len(TEACHERS[name])): the teacher's document scores, columns in TEACHERS order."""
        if name == "stack":
            from udfs.stack_teacher import StackTeacher

            return StackTeacher.load().score(texts)[:, None]
        from udfs.jigsaw import JigsawClassifier

        return JigsawClassifier.load().predict_windows(texts)

    def score(self, texts: Sequence[str], need: np.ndarray | None = None) -> np.ndarray:
        """(n_docs, n_principles): the teacher's document score where `need` (default: every principle with a
        teacher), NaN elsewhere. Each teacher sees only the documents some principle needs it for."""
        n, m = len(texts), len(self.specs)
        out = np.full((n, m), np.nan)
        has = np.array([s is not None for s in self.specs], dtype=bool)
        need = np.broadcast_to(has, (n, m)) if need is None else need & has
        by_name: dict[str, list[int]] = {}
        for j, spec in enumerate(self.specs):
            if spec is not None:
                by_name.setdefault(check_teacher(spec)[0], []).append(j)
        for name, cols in by_name.items():
            rows = np.flatnonzero(need[:, cols].any(axis=1))
            if not len(rows):
                continue
            values = self._outputs(name, [texts[i] for i in rows])
            for j in cols:
                col = TEACHERS[name].index(check_teacher(self.specs[j])[1])  # type: ignore[arg-type]
                hit = need[rows, j]
                out[rows[hit], j] = values[hit, col]
        return out


_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _scorer(specs: tuple[str | None, ...]) -> TeacherScorer:
    return TeacherScorer(specs)


def shared_scorer(specs: tuple[str | None, ...]) -> TeacherScorer:
    """One scorer per process and teacher list (UDF partitions are threads of one process on Sail)."""
    with _LOCK:
        return _scorer(specs)


def teacher_specs(constitution: Constitution) -> list[str | None]:
    """Per principle, in constitution order, the teacher that judges it: none for a positive principle (it is
    upweighted, never flagged) or one without a `teacher`."""
    return [None if p.positive_kind else p.teacher for p in constitution.principles]


def teacher_scorer(constitution: Constitution) -> TeacherScorer:
    return shared_scorer(tuple(teacher_specs(constitution)))


def has_teachers(constitution: Constitution) -> bool:
    return any(teacher_specs(constitution))


def local_scores(
    constitution: Constitution, classifier: Mapping[str, list[float]], texts: Mapping[str, str]
) -> dict[str, list[float]]:
    """The strongest packaged view of `texts` for re-scoring a revision: per principle the teacher's score where
    the principle has one (revision candidates sit in a revise band, so the teacher decided them), the
    classifier's elsewhere."""
    if not has_teachers(constitution):
        return dict(classifier)
    keys = list(classifier)
    teacher = teacher_scorer(constitution).score([texts[k] for k in keys])
    out = {}
    for k, row in zip(keys, teacher, strict=True):
        out[k] = [c if np.isnan(t) else float(t) for c, t in zip(classifier[k], row, strict=True)]
    return out
