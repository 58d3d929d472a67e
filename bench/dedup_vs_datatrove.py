"""Near-dedup quality and speed: curate's MinHash-LSH against datatrove 0.10.1's, on crawl_dev, in one run.

Why: FineWeb's MinHash parameters (5-word shingles, 14 bands x 8 rows) are the reference; the question is
whether our Spark implementation finds the same duplicates, how fast, and which parameters reach 95%
recall of the injected near duplicates without giving up precision.

What it does, on ../shared/data/crawl_dev.jsonl.gz (68,135 documents, 3 crawls), in one invocation so that
both tools see the same machine load (`uptime` is recorded before and after):

1. writes the corpus as 2 JSONL.gz shards (datatrove parallelises over files);
2. runs datatrove's 4 MinHash stages in its own venv (`--datatrove-python`), 2 tasks / 2 workers;
3. runs curate's dedup stage (`pipelines/stages/dedup.py`, embedded Sail, default engine config: 2 cores) on the
   same shards - FineWeb's parameters first, then the other configurations in `CONFIGS`; each run is a child
   process timed end to end (interpreter and engine start, reading, signatures, LSH, clusters, writing);
4. evaluates every result with bench/dedup_common.py: injected recall (by edit rate), precision and recall of
   true pairs (Jaccard >= `--threshold` of the configuration's own shingles; datatrove is scored with our
   5-word shingles, its tokeniser differs slightly) on `--sample` random documents, removal precision.

Usage: python bench/dedup_vs_datatrove.py [--datatrove-python /tmp/dtvenv-dedup/bin/python]
       [--work /tmp/curate-dedup-bench] [--sample 2000] [--threshold 0.7] [--only fineweb,...] [--repeat 1]
       [--eval-only]
Results: printed as Markdown tables and written to <work>/results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

from dedup_common import (
    ROOT,
    ShingleIndex,
    evaluate,
    load_corpus,
    read_clusters,
    run_ours,
    timed,
    uptime,
    write_shards,
)

sys.path.insert(0, str(ROOT))

from pipelines.core.config import DEDUP_PRESETS, DedupConfig
from pipelines.stages.dedup import params_of

CONFIGS: dict[str, dict[str, object]] = {
    # named explicitly: `{}` is the product's default (edit-robust), not FineWeb's parameters
    "fineweb": {"preset": "fineweb"},  # 5-word shingles, 14 x 8, no verification
    "fineweb+verify": {"preset": "fineweb", "verify": True},
    "w5 20x5+verify": {"preset": "fineweb", "bands": 20, "rows": 5, "num_perm": 100, "verify": True},
    "w3 20x5+verify": {"preset": "fineweb", "ngram": 3, "bands": 20, "rows": 5, "num_perm": 100, "verify": True},
    "char5 14x8": {"shingle": "char", "verify": False},
    "char5 14x8+verify (default)": {},
}


def dedup_config(settings: dict[str, object]) -> DedupConfig:
    """As `dedup:` in a config file reads: a preset's keys, then the keys given beside it."""
    preset = settings.get("preset")
    return DedupConfig(**{**(DEDUP_PRESETS[str(preset)] if preset else {}), **settings})


def job_ours(args: argparse.Namespace) -> None:
    cfg = dedup_config(json.loads(args.cfg))
    shutil.rmtree(args.work, ignore_errors=True)
    seconds = run_ours(args.shards, cfg, args.out, args.work)
    (args.out.parent / (args.out.name + ".seconds.json")).write_text(json.dumps(seconds))


def datatrove_clusters(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    cluster, kept = {}, {}
    with path.open() as f:
        for line in f:
            r = json.loads(line)
            c = f"dt-{r['cluster']}" if r["cluster"] != -1 else r["id"]
            cluster[r["id"]] = c
            if not r["removed"]:
                kept[c] = r["id"]
    return cluster, kept


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("job", nargs="?", default="bench", choices=["bench", "ours"])
    ap.add_argument("--datatrove-python", default="/tmp/dtvenv-dedup/bin/python")
    ap.add_argument("--work", type=Path, default=Path("/tmp/curate-dedup-bench"))
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--only", default=None, help="comma-separated names: fineweb, datatrove, ...")
    ap.add_argument("--shards", type=Path)
    ap.add_argument("--cfg", default="{}")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--eval-only", action="store_true", help="re-evaluate the outputs of the last run")
    ap.add_argument("--repeat", type=int, default=1, help="datatrove / fineweb alternations for the speed ratio")
    args = ap.parse_args()
    if args.job == "ours":
        job_ours(args)
        return

    only = set(args.only.split(",")) if args.only else None
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    docs = load_corpus()
    results = json.loads((work / "runs.json").read_text()) if args.eval_only else run_all(args, work, docs, only)
    if only is not None:
        results = {k: v for k, v in results.items() if k.startswith("_") or k in only}
    runs: dict[str, tuple[dict[str, str], dict[str, str], DedupConfig]] = {}
    for name, r in results.items():
        if name == "datatrove":
            cluster, kept = datatrove_clusters(work / "datatrove.jsonl")
            runs[name] = (cluster, kept, DedupConfig())
        elif not name.startswith("_"):
            cluster = read_clusters(Path(r["output"]))
            runs[name] = (cluster, {c: c for c in set(cluster.values())}, dedup_config(r["config"]))

    indexes: dict[str, ShingleIndex] = {}
    for name, (cluster, kept, cfg) in runs.items():
        params = params_of(cfg)
        key = f"{params.shingle}{params.ngram}"
        if key not in indexes:
            indexes[key] = ShingleIndex(docs, params)
        results[name]["shingles"] = key
        results[name].update(evaluate(docs, cluster, kept, indexes[key], args.threshold, args.sample))
        print(f"evaluated {name}", flush=True)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    report(results, args.threshold, args.sample)


def run_all(args: argparse.Namespace, work: Path, docs: list, only: set[str] | None) -> dict[str, dict]:  # type: ignore[type-arg]
    """Run datatrove and our configurations; datatrove and `fineweb` alternate `--repeat` times (medians)."""
    shards = work / "shards"
    shutil.rmtree(shards, ignore_errors=True)
    write_shards(docs, shards, 2)
    results: dict[str, dict[str, object]] = {"_load": {"before": uptime()}}
    walls: dict[str, list[float]] = {}

    def datatrove() -> None:
        shutil.rmtree(work / "dt", ignore_errors=True)
        out = work / "datatrove.jsonl"
        cmd = [args.datatrove_python, str(Path(__file__).with_name("dedup_datatrove.py")), "--shards", str(shards)]
        wall, rss = timed([*cmd, "--work", str(work / "dt"), "--out", str(out)])
        stages = json.loads(out.with_suffix(".seconds.json").read_text())
        walls.setdefault("datatrove", []).append(wall)
        results["datatrove"] = {"wall_s": wall, "peak_rss_mb": rss, "stages_s": stages}
        print(f"datatrove: {wall:.1f}s  ({uptime()})", flush=True)

    def ours(name: str) -> None:
        overrides = CONFIGS[name]
        out = work / f"ours-{name.replace(' ', '_').replace('+', '-')}.parquet"
        cmd = [sys.executable, __file__, "ours", "--shards", str(shards), "--out", str(out)]
        wall, rss = timed([*cmd, "--work", str(work / "ours-work"), "--cfg", json.dumps(overrides)])
        seconds = json.loads((out.parent / (out.name + ".seconds.json")).read_text())
        walls.setdefault(name, []).append(wall)
        results[name] = {"wall_s": wall, "peak_rss_mb": rss, **seconds, "config": overrides, "output": str(out)}
        print(f"{name}: {wall:.1f}s  ({uptime()})", flush=True)

    for _ in range(args.repeat):
        if only is None or "datatrove" in only:
            datatrove()
        if only is None or "fineweb" in only:
            ours("fineweb")
    for name in CONFIGS:
        if name != "fineweb" and (only is None or name in only):
            ours(name)
    for name, w in walls.items():
        results[name]["wall_s"] = statistics.median(w)
        results[name]["wall_runs_s"] = w
    results["_load"]["after"] = uptime()  # type: ignore[index]
    (work / "runs.json").write_text(json.dumps(results, indent=2))
    return results


def report(results: dict[str, dict[str, object]], threshold: float, sample: int) -> None:
    print(f"\nload before: {results['_load']['before']}\nload after:  {results['_load']['after']}\n")
    print(
        f"| run | shingles | injected recall (2% / 5% / 10% edits) | precision / recall of true pairs "
        f"(J >= {threshold}, {sample} docs) | removal precision | removed | wall s | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        if name.startswith("_"):
            continue
        inj, pairs = r["injected_recall"], r["pairs"]
        print(
            f"| {name} | {r['shingles']} | **{inj['all']:.3f}** ({inj['edit_0.02']:.2f} / {inj['edit_0.05']:.2f} / "
            f"{inj['edit_0.10']:.2f}) | {pairs['precision']:.3f} / {pairs['recall']:.3f} "
            f"({pairs['true_pairs']} true) | {r['removal_precision']:.3f} | {r['removed']} | {r['wall_s']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    if "datatrove" in results and "fineweb" in results:
        dt, fw = results["datatrove"], results["fineweb"]
        ratio = dt["wall_s"] / fw["wall_s"]
        print(f"\nspeed ratio at FineWeb's parameters (datatrove wall / curate wall, medians): {ratio:.2f}x")
        print(f"datatrove runs {dt.get('wall_runs_s')}, stages of the last {dt.get('stages_s')}")
        print(f"curate runs {fw.get('wall_runs_s')}, engine start {fw.get('engine_start_s', 0):.1f}s")


if __name__ == "__main__":
    main()
