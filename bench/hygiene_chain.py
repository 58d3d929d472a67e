"""The nightly chain with the two hygiene stages on and off, on the same generated crawl (issue 23: "at most 10%
slower"). Reuses bench/chain_scale.py: its generator, its `curate run` child process with per-stage seconds from
the CLI's progress lines, and optionally its bootstrap. Each variant runs on a fresh lake; `off` sets
`pii.enabled=false` and `decontaminate.enabled=false` (the stages still run, as pass-throughs).

Scoring: by default no bootstrap - a fresh lake has no champion, so the classify stage scores with the packaged
cold-start scorers (MiniLM exemplars; the cascade's packaged teachers on the band), as a first night does. That
scorer is slower than a distilled linear champion, so the whole night is slower and the hygiene stages' share of
it smaller than with champions; `--bootstrap` distils chain_scale's linear champions first (its bootstrap took
over 20 minutes on this shared machine), `--registry` reuses the registry of an earlier one.

    cd bench && PYTHONPATH=.. ../.venv/bin/python hygiene_chain.py [--docs 30000] [--work /tmp/curate-hygiene]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chain_scale import bootstrap, generate, run_night
from dedup_common import corpus_absent, uptime

OFF = ["pii.enabled=false", "decontaminate.enabled=false"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=30_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/curate-hygiene"))
    ap.add_argument("--bootstrap", action="store_true", help="distil linear champions first (chain_scale's)")
    ap.add_argument("--registry", help="reuse the registry of an earlier bootstrap (sqlite:///.../mlflow.db)")
    args = ap.parse_args()
    if corpus_absent():
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"uptime at start: {uptime()}", flush=True)
    base = ["revise.method=excise"]
    uri = args.registry or (bootstrap(args.work, base) if args.bootstrap else None)
    scoring = [f"classify.registry_uri={uri}"] if uri else []  # no registry: each fresh lake's own, empty one
    folder = args.work / "input"
    shutil.rmtree(folder, ignore_errors=True)
    generate(folder, args.docs, seed=1000, date="2026-02-01")
    # a small night first, on a lake of its own: the first run on a machine reads the models from a cold disk (a
    # 2,000-document trial measured its classify stage at 78 s against 37 s for the same night run second)
    warm = args.work / "input-warmup"
    shutil.rmtree(warm, ignore_errors=True)
    generate(warm, 500, seed=7, date="2026-01-15", shards=1)
    shutil.rmtree(args.work / "lake-warmup", ignore_errors=True)
    run_night(args.work / "lake-warmup", warm, "warmup", [*scoring, *base], args.work / "warmup.log")
    print(f"warm-up night done; {uptime()}", flush=True)
    results = {}
    for name, extra in (("off", OFF), ("on", [])):
        lake = args.work / f"lake-{name}"
        shutil.rmtree(lake, ignore_errors=True)
        t0 = time.monotonic()
        r = run_night(lake, folder, f"hygiene-{name}", [*scoring, *base, *extra], args.work / f"{name}.log")
        r["elapsed"] = time.monotonic() - t0
        results[name] = r
        print(
            f"\n## {name}: wall {r['wall_s']:.0f} s ({args.docs / r['wall_s']:,.0f} docs/s); {r['uptime']}", flush=True
        )
        for s in r["stages"]:
            print(f"| {s['stage']} | {s['seconds']:.1f} |", flush=True)
    ratio = results["on"]["wall_s"] / results["off"]["wall_s"]
    print(f"\non/off wall ratio: {ratio:.3f}; uptime at end: {uptime()}")
    (args.work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
