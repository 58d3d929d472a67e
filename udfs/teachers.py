"""The packaged teachers, by name: the outputs each offers, and the model identifier recorded beside a teacher's
score. A leaf module: loading a constitution validates its `teacher:` names here without importing Spark."""

from __future__ import annotations

#: Packaged teachers by name: the outputs each offers. A principle names one as `<teacher>:<output>`.
TEACHERS: dict[str, tuple[str, ...]] = {
    "jigsaw": ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"),
    # udfs/stack_teacher.py: logistic regressions over MiniLM + Jigsaw + profanity, one per output (its OUTPUTS):
    # `toxic` fitted on human toxicity labels, `violence` on violent vs neutral passages
    "stack": ("toxic", "violence"),
}


def check_teacher(spec: str) -> tuple[str, str]:
    """`jigsaw:threat` -> ("jigsaw", "threat"); a ValueError that lists the choices otherwise."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"teacher must be '<teacher>:<output>', got {spec!r}")
    name, output = spec.split(":", 1)
    if name not in TEACHERS or output not in TEACHERS[name]:
        choices = ", ".join(f"{t}:{o}" for t, outs in TEACHERS.items() for o in outs)
        raise ValueError(f"unknown teacher {spec!r} (packaged: {choices})")
    return name, output


def teacher_model(spec: str) -> str:
    """The model identifier recorded beside a teacher's score."""
    name, output = check_teacher(spec)
    if name == "stack":
        from udfs.stack_teacher import GROUP_WORDS, WINDOW_MODE, StackTeacher

        # the weights' digest (a retrain is new) and how a window is read (a page is scored that way)
        return f"{StackTeacher.load(output=output).model.model_id}+{WINDOW_MODE}{GROUP_WORDS}:{output}"
    from udfs.jigsaw import PINNED_VERSION

    return f"{name}-bilstm-{PINNED_VERSION}:{output}"
