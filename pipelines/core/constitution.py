"""The constitution: user-defined principles with exemplars, prompts, thresholds and a policy mode.

A principle is `kind: negative` (the default: what the corpus should not teach; mode drop / revise / tag, optional
retain_fraction and tag_token) or `kind: positive` (what it should teach more of: mode upsample, an
upsample_threshold and an upsample weight, never dropped, revised or tagged for). pipelines/stages/decide.py applies
them.

Scores share one scale, [0, 1] (see the default constitution's header): teacher labels (an LLM's digit
0-9 divided by 9, a human's 0/1, an exemplar similarity), classifier scores and thresholds all live on it.
Validation happens before any engine starts and names the principle and key that are wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MODES = ("drop", "revise", "tag")
#: negative: describes what the corpus should not teach (drop / revise / tag); positive: what it should teach
#: more of (mode `upsample`: never dropped, revised or tagged for it, only weighted).
KINDS = ("negative", "positive")
TAG_TOKEN_RE = re.compile(r"^\S{1,64}$")


class ConstitutionError(ValueError):
    """The constitution file is malformed: the message names the principle and key."""


@dataclass(frozen=True)
class Prompt:
    version: str
    text: str


#: A positive principle is never revised: it needs no revise prompt.
NO_REVISE_PROMPT = Prompt(version="none", text="")


@dataclass(frozen=True)
class Principle:
    name: str
    description: str
    mode: str
    revise_threshold: float
    filter_threshold: float
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    label_prompt: Prompt
    revise_prompt: Prompt
    retain_fraction: float = 0.0
    upsample: float = 1.0
    # A teacher score at or above this counts as a positive when a classifier is distilled from labels.
    label_threshold: float = 0.5
    # Sentences scoring at or above this become character spans in `scores` (None = revise_threshold).
    span_threshold: float | None = None
    kind: str = "negative"
    # Optional token export prepends to the text of a document tagged for this principle (e.g. <|toxicity|>).
    tag_token: str | None = None
    # The packaged teacher the scoring cascade consults (`jigsaw:<output>`, pipelines/stages/cascade.py), or None.
    teacher: str | None = None

    @property
    def positive_kind(self) -> bool:
        return self.kind == "positive"

    @property
    def upsample_threshold(self) -> float:
        """A positive principle's score at or above this earns its `upsample` weight (stored as both thresholds)."""
        return self.filter_threshold

    @property
    def spans_from(self) -> float:
        return self.revise_threshold if self.span_threshold is None else self.span_threshold


@dataclass(frozen=True)
class Constitution:
    version: int
    principles: tuple[Principle, ...]
    source: str

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.principles]

    def get(self, name: str) -> Principle:
        for p in self.principles:
            if p.name == name:
                return p
        raise ConstitutionError(f"no principle named {name!r} (have: {', '.join(self.names)})")

    @property
    def negative(self) -> tuple[Principle, ...]:
        return tuple(p for p in self.principles if not p.positive_kind)

    @property
    def positive(self) -> tuple[Principle, ...]:
        return tuple(p for p in self.principles if p.positive_kind)

    def fingerprint(self) -> str:
        blob = json.dumps([asdict(p) for p in self.principles], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def default_constitution_path() -> Path:
    return Path(str(resources.files("pipelines") / "defaults" / "constitution.yaml"))


def _req(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ConstitutionError(f"{where}: missing key '{key}'")
    return d[key]


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise ConstitutionError(f"{where}: must be a non-empty list of non-empty strings")
    return tuple(value)


def _negatives(exemplars: dict[str, Any], where: str) -> tuple[str, ...]:
    """Principle-specific negatives plus an optional shared pool (a YAML anchor in the default file)."""
    own = _texts(_req(exemplars, "negative", f"{where}.exemplars"), f"{where}.exemplars.negative")
    if "negative_pool" not in exemplars:
        return own
    return own + _texts(exemplars["negative_pool"], f"{where}.exemplars.negative_pool")


def _prompt(value: Any, where: str) -> Prompt:
    if not isinstance(value, dict):
        raise ConstitutionError(f"{where}: must be a mapping with 'version' and 'text'")
    version, text = _req(value, "version", where), _req(value, "text", where)
    if not isinstance(version, str) or not isinstance(text, str) or not text.strip():
        raise ConstitutionError(f"{where}: 'version' and 'text' must be non-empty strings")
    return Prompt(version=version, text=text.strip())


_KNOWN = {
    "name",
    "teacher",
    "description",
    "mode",
    "revise_threshold",
    "filter_threshold",
    "retain_fraction",
    "upsample",
    "label_threshold",
    "span_threshold",
    "exemplars",
    "prompts",
    "kind",
    "upsample_threshold",
    "tag_token",
}
# Keys that only make sense for one kind: a positive principle is never dropped, revised, tagged or retained.
_NEGATIVE_ONLY = ("revise_threshold", "filter_threshold", "retain_fraction", "tag_token")


def _principle(raw: Any, index: int) -> Principle:
    where = f"principles[{index}]"
    if not isinstance(raw, dict):
        raise ConstitutionError(f"{where}: must be a mapping")
    name = _req(raw, "name", where)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConstitutionError(f"{where}: name {name!r} must match {NAME_RE.pattern} (it becomes a column name)")
    where = f"principle '{name}'"
    unknown = set(raw) - _KNOWN
    if unknown:
        raise ConstitutionError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    kind = raw.get("kind", "negative")
    if kind not in KINDS:
        raise ConstitutionError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    if kind == "positive":
        return _positive(raw, name, where)
    if "upsample_threshold" in raw:
        raise ConstitutionError(f"{where}: upsample_threshold needs kind: positive")
    mode = raw.get("mode", "drop")
    if mode not in MODES:
        raise ConstitutionError(f"{where}: mode must be one of {MODES}, got {mode!r}")
    tag_token = raw.get("tag_token")
    if tag_token is not None and (not isinstance(tag_token, str) or not TAG_TOKEN_RE.match(tag_token)):
        raise ConstitutionError(f"{where}: tag_token must be 1-64 characters without whitespace, got {tag_token!r}")
    numbers = _numbers(raw, where, (("revise_threshold", None), ("filter_threshold", None)))
    if not 0.0 <= numbers["revise_threshold"] <= numbers["filter_threshold"] <= 1.0:
        raise ConstitutionError(f"{where}: need 0 <= revise_threshold <= filter_threshold <= 1")
    if not 0.0 <= numbers["retain_fraction"] <= 1.0:
        raise ConstitutionError(f"{where}: retain_fraction must lie in [0, 1]")
    if numbers["upsample"] != 1.0:
        # a weight belongs to what the corpus should teach more of; a negative principle drops, revises or tags
        raise ConstitutionError(f"{where}: upsample needs kind: positive (a negative principle is never upweighted)")
    return Principle(
        name=name,
        mode=mode,
        revise_threshold=numbers["revise_threshold"],
        filter_threshold=numbers["filter_threshold"],
        retain_fraction=numbers["retain_fraction"],
        tag_token=tag_token,
        **_common(raw, where, numbers),
    )


def _positive(raw: dict[str, Any], name: str, where: str) -> Principle:
    wrong = sorted(k for k in _NEGATIVE_ONLY if k in raw)
    if wrong:
        raise ConstitutionError(
            f"{where}: a positive principle is only upweighted, never dropped, revised or tagged: remove "
            f"{', '.join(wrong)} (use upsample_threshold and upsample)"
        )
    if raw.get("mode", "upsample") != "upsample":
        raise ConstitutionError(f"{where}: a positive principle has mode 'upsample', got {raw['mode']!r}")
    numbers = _numbers(raw, where, (("upsample_threshold", None),))
    if not 0.0 <= numbers["upsample_threshold"] <= 1.0:
        raise ConstitutionError(f"{where}: upsample_threshold must lie in [0, 1]")
    if "upsample" not in raw:
        raise ConstitutionError(f"{where}: missing key 'upsample' (the weight of a document above the threshold)")
    if numbers["upsample"] > 100:
        raise ConstitutionError(f"{where}: upsample must be at most 100")
    threshold = numbers["upsample_threshold"]
    return Principle(
        name=name,
        mode="upsample",
        kind="positive",
        revise_threshold=threshold,
        filter_threshold=threshold,
        **_common(raw, where, numbers),
    )


def _numbers(raw: dict[str, Any], where: str, required: tuple[tuple[str, None], ...]) -> dict[str, float]:
    numbers: dict[str, float] = {}
    for key, default in (
        *required,
        ("retain_fraction", 0.0),
        ("upsample", 1.0),
        ("label_threshold", 0.5),
        ("span_threshold", -1.0),
    ):
        value = raw.get(key, default)
        if value is None:
            raise ConstitutionError(f"{where}: missing key '{key}'")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConstitutionError(f"{where}: '{key}' must be a number, got {value!r}")
        numbers[key] = float(value)
    if numbers["upsample"] <= 0:
        raise ConstitutionError(f"{where}: upsample must be positive")
    for key in ("label_threshold", "span_threshold"):
        if key in raw and not 0.0 <= numbers[key] <= 1.0:
            raise ConstitutionError(f"{where}: {key} must lie in [0, 1] (the shared score scale)")
    return numbers


def _common(raw: dict[str, Any], where: str, numbers: dict[str, float]) -> dict[str, Any]:
    """The Principle fields both kinds share: description, exemplars, prompts, label and span thresholds."""
    exemplars = _req(raw, "exemplars", where)
    if not isinstance(exemplars, dict):
        raise ConstitutionError(f"{where}: exemplars must be a mapping with 'positive' and 'negative'")
    prompts = _req(raw, "prompts", where)
    if not isinstance(prompts, dict):
        raise ConstitutionError(f"{where}: prompts must be a mapping with 'label' and 'revise'")
    if "revise" not in prompts and raw.get("kind", "negative") == "negative":
        raise ConstitutionError(f"{where}.prompts: missing key 'revise'")
    description = _req(raw, "description", where)
    if not isinstance(description, str) or not description.strip():
        raise ConstitutionError(f"{where}: description must be a non-empty string")
    teacher = raw.get("teacher")
    if teacher is not None:
        from udfs.teachers import check_teacher

        try:
            check_teacher(teacher)
        except ValueError as exc:
            raise ConstitutionError(f"{where}: {exc}") from exc
    return {
        "teacher": teacher,
        "description": description.strip(),
        "upsample": numbers["upsample"],
        "label_threshold": numbers["label_threshold"],
        "span_threshold": numbers["span_threshold"] if "span_threshold" in raw else None,
        "positive": _texts(_req(exemplars, "positive", f"{where}.exemplars"), f"{where}.exemplars.positive"),
        "negative": _negatives(exemplars, where),
        "label_prompt": _prompt(_req(prompts, "label", f"{where}.prompts"), f"{where}.prompts.label"),
        "revise_prompt": (
            _prompt(prompts["revise"], f"{where}.prompts.revise")
            if "revise" in prompts or raw.get("kind", "negative") == "negative"
            else NO_REVISE_PROMPT
        ),
    }


def load_constitution(path: str | Path | None = None) -> Constitution:
    p = Path(path) if path is not None else default_constitution_path()
    if not p.is_file():
        raise ConstitutionError(f"constitution file not found: {p}")
    from pipelines.core.config import safe_load_file

    data = safe_load_file(p, ConstitutionError)
    if not isinstance(data, dict) or not isinstance(data.get("principles"), list) or not data["principles"]:
        raise ConstitutionError(f"{p}: needs a non-empty 'principles' list")
    principles = tuple(_principle(raw, i) for i, raw in enumerate(data["principles"]))
    names = [pr.name for pr in principles]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConstitutionError(f"{p}: duplicate principle name(s) {', '.join(dupes)}")
    label_versions = [pr.label_prompt.version for pr in principles]
    shared = sorted({v for v in label_versions if label_versions.count(v) > 1})
    if shared:
        # Labels are cached by prompt version: two principles sharing one would share cached labels.
        raise ConstitutionError(f"{p}: label prompt version(s) {', '.join(shared)} used by several principles")
    version = data.get("version", 1)
    if not isinstance(version, int):
        raise ConstitutionError(f"{p}: version must be an integer")
    return Constitution(version=version, principles=principles, source=str(p))
