"""Speed against datatrove 0.10.1, as whole processes, pair by pair: the quality chain and the default near-dedup.

Why: the ratios in bench/README.md (issue 25) must be reproducible with one command, measured the one way that
holds on a shared machine: both tools started as whole processes (interpreter, imports, engine or executor start,
reading, work, writing), in turn, one pair after another, the ratio taken per pair and the median of the pairs
quoted, with the load average recorded at every run.

Work compared, on ../shared/data/crawl_dev.jsonl.gz (68,135 documents) written as 2 gzipped JSONL shards:

- `quality`: datatrove's executor (2 tasks, 2 workers) with GopherRepetition -> GopherQuality -> C4 -> FineWeb
  (bench/quality_peer.py `chain`) against ours: bench/quality_ours.py --no-lang (the same rule sets as columns);
- `dedup`: datatrove's 4 MinHash stages at FineWeb's parameters (word 5-grams, 14 x 8; bench/dedup_datatrove.py)
  against our default near-dedup (char 5-grams, 14 x 8, verification; `bench/dedup_vs_datatrove.py ours --cfg {}`).

`--ours LABEL=ROOT` (repeatable) times the checkout at ROOT as one more "ours" column in the same pairs, e.g. a
`git worktree add /tmp/curate-before <commit>` for a before/after on the same machine at the same load.

Usage: python bench/speed_vs_datatrove.py [--datatrove-python /tmp/dtvenv/bin/python] [--pairs 2]
       [--only quality,dedup] [--ours before=/tmp/curate-before --ours after=.] [--work /tmp/curate-speed]
Prints a Markdown table; writes <work>/speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dedup_common import ROOT, corpus_absent, load_corpus, write_shards

WORKS = ("quality", "dedup")


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run(cmd: list[str], cwd: Path, ours: bool) -> tuple[float, float, float]:
    """(wall seconds, 1-minute load average before, after) of one whole process; its output is thrown away."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if ours:  # the checkout being timed, not this one
        env["PYTHONPATH"] = str(cwd)
    before = load()
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, before, load()


def commands(work: str, dt_python: str, ours: Path, shards: Path, out: Path) -> tuple[list[str], list[str]]:
    """(datatrove's command, ours) for one work; `ours` is the checkout whose bench scripts run."""
    py = sys.executable
    files = sorted(str(p) for p in shards.glob("*.jsonl.gz"))
    if work == "quality":
        dt = [dt_python, str(ROOT / "bench" / "quality_peer.py"), "chain", str(shards), str(out / "dt-quality")]
        return dt, [py, str(ours / "bench" / "quality_ours.py"), str(out / "ours-quality"), *files, "--no-lang"]
    dt = [dt_python, str(ROOT / "bench" / "dedup_datatrove.py"), "--shards", str(shards), "--work", str(out / "dt-w")]
    ours_cmd = [py, str(ours / "bench" / "dedup_vs_datatrove.py"), "ours", "--cfg", "{}", "--shards", str(shards)]
    return [*dt, "--out", str(out / "dt-dedup.jsonl")], [
        *ours_cmd,
        "--out",
        str(out / "ours-dedup.parquet"),
        "--work",
        str(out / "ours-w"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datatrove-python", default="/tmp/dtvenv/bin/python")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--only", default=",".join(WORKS))
    ap.add_argument("--ours", action="append", default=None, help="LABEL=ROOT of a checkout to time (repeatable)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/curate-speed"))
    a = ap.parse_args()
    if corpus_absent():
        return
    roots = dict(o.split("=", 1) for o in (a.ours or [f"ours={ROOT}"]))
    ours = {label: Path(r).resolve() for label, r in roots.items()}
    works = [w for w in a.only.split(",") if w in WORKS]
    shards = a.work / "shards"
    if not shards.is_dir():
        write_shards(load_corpus(), shards, 2)
    out = a.work / "out"
    runs: dict[str, dict[str, list[tuple[float, float, float]]]] = {w: {} for w in works}
    for pair in range(a.pairs):
        for w in works:
            for label in ["datatrove", *ours]:
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                dt, mine = commands(w, a.datatrove_python, ours.get(label, ROOT), shards, out)
                r = run(dt if label == "datatrove" else mine, ours.get(label, ROOT), label != "datatrove")
                runs[w].setdefault(label, []).append(r)
                print(f"pair {pair + 1} {w} {label}: {r[0]:.1f} s (load {r[1]:.2f} -> {r[2]:.2f})", flush=True)
    (a.work / "speed.json").write_text(json.dumps(runs, indent=2))
    report(runs, list(ours))


def report(runs: dict[str, dict[str, list[tuple[float, float, float]]]], labels: list[str]) -> None:
    print("\n| work | " + " | ".join(f"{x} s (runs)" for x in ["datatrove", *labels]), end="")
    print(" | " + " | ".join(f"ratio {x} (per pair)" for x in labels) + " | load average (1 min) |")
    print("|---" * (2 + 2 * len(labels) + 1) + "|")
    for w, by in runs.items():
        cells = [
            f"{statistics.median(r[0] for r in by[x]):.1f} ({', '.join(f'{r[0]:.1f}' for r in by[x])})"
            for x in ["datatrove", *labels]
        ]
        ratios = []
        for x in labels:
            per = [d[0] / o[0] for d, o in zip(by["datatrove"], by[x], strict=True)]
            ratios.append(f"**{statistics.median(per):.1f}x** ({', '.join(f'{p:.1f}' for p in per)})")
        loads = [v for rs in by.values() for r in rs for v in r[1:]]
        print(f"| {w} | " + " | ".join(cells + ratios) + f" | {min(loads):.1f}-{max(loads):.1f} |")


if __name__ == "__main__":
    main()
