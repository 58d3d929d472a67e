"""The constitution: user-defined principles with exemplars, prompts, thresholds and a policy mode.

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

import yaml

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MODES = ("drop", "revise", "tag")


class ConstitutionError(ValueError):
    """The constitution file is malformed: the message names the principle and key."""


@dataclass(frozen=True)
class Prompt:
    version: str
    text: str


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
}


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
    mode = raw.get("mode", "drop")
    if mode not in MODES:
        raise ConstitutionError(f"{where}: mode must be one of {MODES}, got {mode!r}")
    numbers: dict[str, float] = {}
    for key, default in (
        ("revise_threshold", None),
        ("filter_threshold", None),
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
    if not 0.0 <= numbers["revise_threshold"] <= numbers["filter_threshold"] <= 1.0:
        raise ConstitutionError(f"{where}: need 0 <= revise_threshold <= filter_threshold <= 1")
    if not 0.0 <= numbers["retain_fraction"] <= 1.0:
        raise ConstitutionError(f"{where}: retain_fraction must lie in [0, 1]")
    if numbers["upsample"] <= 0:
        raise ConstitutionError(f"{where}: upsample must be positive")
    for key in ("label_threshold", "span_threshold"):
        if key in raw and not 0.0 <= numbers[key] <= 1.0:
            raise ConstitutionError(f"{where}: {key} must lie in [0, 1] (the shared score scale)")
    exemplars = _req(raw, "exemplars", where)
    if not isinstance(exemplars, dict):
        raise ConstitutionError(f"{where}: exemplars must be a mapping with 'positive' and 'negative'")
    prompts = _req(raw, "prompts", where)
    if not isinstance(prompts, dict):
        raise ConstitutionError(f"{where}: prompts must be a mapping with 'label' and 'revise'")
    description = _req(raw, "description", where)
    if not isinstance(description, str) or not description.strip():
        raise ConstitutionError(f"{where}: description must be a non-empty string")
    return Principle(
        name=name,
        description=description.strip(),
        mode=mode,
        revise_threshold=numbers["revise_threshold"],
        filter_threshold=numbers["filter_threshold"],
        retain_fraction=numbers["retain_fraction"],
        upsample=numbers["upsample"],
        label_threshold=numbers["label_threshold"],
        span_threshold=numbers["span_threshold"] if "span_threshold" in raw else None,
        positive=_texts(_req(exemplars, "positive", f"{where}.exemplars"), f"{where}.exemplars.positive"),
        negative=_negatives(exemplars, where),
        label_prompt=_prompt(_req(prompts, "label", f"{where}.prompts"), f"{where}.prompts.label"),
        revise_prompt=_prompt(_req(prompts, "revise", f"{where}.prompts"), f"{where}.prompts.revise"),
    )


def load_constitution(path: str | Path | None = None) -> Constitution:
    p = Path(path) if path is not None else default_constitution_path()
    if not p.is_file():
        raise ConstitutionError(f"constitution file not found: {p}")
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
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
