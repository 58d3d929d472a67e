"""`curate evaluate` as the research protocol, measured (issue 24): forget/retain rows per principle, the tagged
variant's steering and probe rows, seed spread next to item spread, wall time and load.

    python bench/evaluate_protocol.py --lake demo-lake --lake cdev-lake --size tiny --seeds 3 \
        --budget-tokens 2000000 --out bench/results/evaluate_protocol.json

Each lake is evaluated by the CLI in a child process (`curate evaluate --variants raw,curated,tagged`), timed
whole, with `uptime`'s load average before and after: on a shared machine the wall time means little without
it. The report.json of each evaluation is read back and summarised as markdown rows (value [95% CI], n, seeds,
seed sd vs item sd) for bench/README.md. No GPU here: bench/evaluate_gpu.sh is the GPU run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROWS = ("forget.", "loss.", "steer.", "probe.", "harm.toxicity.expected_max", "capability.perplexity")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def evaluate(lake: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "pipelines.cli", "evaluate", "--lake", str(lake), "--size", args.size,
        "--seeds", str(args.seeds), "--variants", args.variants, "--quiet",
    ]  # fmt: skip
    if args.budget_tokens:
        cmd += ["--budget-tokens", str(args.budget_tokens)]
    for s in args.set or []:
        cmd += ["--set", s]
    before = load()
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = load()
    log = args.out.with_suffix(f".{lake.name}.log")
    log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode:
        raise SystemExit(f"curate evaluate failed on {lake} (exit {proc.returncode}); see {log}")
    reports = sorted((lake / "_state" / "evaluations").glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    report = json.loads(reports[-1].read_text(encoding="utf-8"))
    return {"lake": str(lake), "wall_s": round(wall, 1), "load_before": before, "load_after": after, "report": report}


def _f(e: dict[str, Any] | None, digits: int = 3) -> str:
    if not e:
        return "-"
    return f"{e['value']:+.{digits}f} [{e['low']:+.{digits}f}, {e['high']:+.{digits}f}]"


def _sd(e: dict[str, Any] | None) -> str:
    if not e:
        return "-"
    seed = e.get("seed_sd")
    item = e.get("item_sd")
    return f"{seed:.3f} / {item:.3f}" if seed is not None and item is not None else f"- / {item or 0:.3f}"


def markdown(result: dict[str, Any]) -> str:
    r = result["report"]
    labels = [k for k in ("A", "B", "C") if k in r["models"]]
    diffs = r["pairs"]
    head = ["metric", "n", *labels, *diffs, "seed sd / item sd (first difference)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, by in r["metrics"].items():
        if not name.startswith(ROWS):
            continue
        first = next((by.get(d) for d in diffs if d in by), None)
        n = next((by[k]["n"] for k in (*labels, *diffs) if k in by), "-")
        cells = [name, str(n), *[_f(by.get(k)) for k in labels], *[_f(by.get(d)) for d in diffs], _sd(first)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", action="append", required=True, type=Path)
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--variants", default="raw,curated,tagged")
    ap.add_argument("--budget-tokens", type=int)
    ap.add_argument("--set", action="append", help="extra config overrides, KEY=VALUE")
    ap.add_argument("--out", type=Path, default=Path("bench/results/evaluate_protocol.json"))
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for lake in args.lake:
        res = evaluate(lake, args)
        results.append(res)
        r = res["report"]
        print(f"\n## {lake} ({r['size']}, {r['budget_tokens']:,} tokens, seeds {r['seeds']})")
        print(f"wall {res['wall_s']} s; load before {res['load_before']}, after {res['load_after']}")
        print(f"timings {r['details'].get('timings_s')}; forget sets {r['details'].get('forget_sets')}")
        print(markdown(res))
        for sentence in r["verdict"]:
            print(f"- {sentence}")
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
