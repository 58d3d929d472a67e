"""What a labeler is given and what it answers: the types every labeler, teacher and the lake's `labels` table share.
A leaf module, so the labelers (udfs/labelers.py) and the packaged teachers (udfs/jigsaw.py, udfs/stack_teacher.py)
import it and not each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

LabelStatus = Literal["ok", "unparsable", "error", "timeout"]


@dataclass(frozen=True)
class PrincipleSpec:
    """What a labeler needs of a principle (a constitution Principle has all of these)."""

    name: str
    description: str
    label_prompt: str
    label_prompt_version: str
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()

    @classmethod
    def of(cls, principle: Any) -> PrincipleSpec:
        return cls(
            name=principle.name,
            description=principle.description,
            label_prompt=principle.label_prompt.text,
            label_prompt_version=principle.label_prompt.version,
            positive=tuple(principle.positive),
            negative=tuple(principle.negative),
        )


@dataclass(frozen=True)
class LabelResult:
    status: LabelStatus
    score: float | None = None
    rationale: str | None = None  # the raw answer (or the digit distribution) for audit
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.status == "ok") != (self.score is not None):
            raise ValueError("a label has a score exactly when its status is ok")
