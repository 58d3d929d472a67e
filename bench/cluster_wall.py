"""The nightly chain on the same input through three engines: wall time, and whether the lakes agree (issue 13).

Why: tests/test_cluster.py proves that embedded Sail, a separately started `sail spark server` (local mode) and
that server in `local-cluster` mode (driver and workers exchanging tasks and shuffles over RPC) give the same
lake on 300 documents; this measures what the cluster code path costs at a size where it matters, and checks the
same equality there.

Input: bench/chain_scale.py's seeded generator (crawl_dev documents, light edits, new ids; ../shared/data, dev
machines only). Scoring: linear champions from a registry (`--registry`, e.g. an earlier chain_scale bootstrap;
without it, chain_scale's bootstrap builds one first), revision by excision (no LLM sampling in the comparison).
Each engine gets a fresh lake; `curate run` runs as a child process and is timed whole (start-up included); the
servers are started before the clock starts, with the settings deploy/kubernetes/README.md names.

Compared across engines: every corpus row (doc_id -> text, action, tags, weight), every decision (doc_id ->
action, reasons, stage) and the quarantine.

Usage: python bench/cluster_wall.py [--docs 100000] [--work /tmp/curate-cluster-wall] [--registry sqlite:///...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chain_scale import bootstrap, generate
from dedup_common import ROOT, corpus_absent, uptime

PY = sys.executable
sys.path.insert(0, str(ROOT))
from tests.fixtures import sail_server  # noqa: E402  (the same server helper as tests/test_cluster.py)


def run(lake: Path, folder: Path, sets: list[str], remote: str | None, log: Path) -> float:
    cmd = [PY, "-m", "pipelines.cli", "run", "--lake", str(lake), "--input", str(folder), "--crawl-id", "wall"]
    if remote:
        cmd += ["--remote", remote]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RUST_LOG": "error", "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    with log.open("w") as out:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        raise SystemExit(f"curate run exited {rc}; see {log}")
    return time.monotonic() - t0


def lake_state(lake: Path) -> dict[str, Any]:
    from deltalake import DeltaTable

    def rows(name: str) -> list[dict[str, Any]]:
        return DeltaTable(str(lake / name)).to_pyarrow_table().to_pylist()  # type: ignore[no-any-return]

    return {
        "corpus": {r["doc_id"]: (r["text"], r["action"], sorted(r["tags"]), r["weight"]) for r in rows("corpus")},
        "decisions": {r["doc_id"]: (r["action"], sorted(r["reasons"]), r["stage"]) for r in rows("decisions")},
        "quarantine": sorted((r["position"], r["reason"]) for r in rows("quarantine")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/curate-cluster-wall"))
    parser.add_argument("--registry", help="registry with linear champions (default: bootstrap one)")
    parser.add_argument("--set", action="append", default=["revise.method=excise"], help="config overrides")
    args = parser.parse_args()
    if corpus_absent():
        return 0
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    uri = args.registry or bootstrap(work, list(args.set))
    sets = [f"classify.registry_uri={uri}", "engine.shuffle_partitions=4", *args.set]
    folder = work / "input"
    shutil.rmtree(folder, ignore_errors=True)
    generate(folder, args.docs, seed=5, date="2026-03-01")
    results: dict[str, Any] = {"docs": args.docs, "sets": sets, "runs": {}}
    states: dict[str, dict[str, Any]] = {}
    for name, mode in (
        ("embedded (local)", None),
        ("server local", "local"),
        ("server local-cluster", "local-cluster"),
    ):
        lake = work / f"lake-{mode or 'embedded'}"
        shutil.rmtree(lake, ignore_errors=True)
        before = uptime()
        log = work / f"{mode or 'embedded'}.log"
        if mode is None:
            wall = run(lake, folder, sets, None, log)
        else:
            with sail_server(mode, work) as url:
                wall = run(lake, folder, sets, url, log)
        states[name] = lake_state(lake)
        results["runs"][name] = {"wall_s": wall, "load_before": before, "load_after": uptime()}
        print(f"{name}: {wall:.0f} s ({args.docs / wall:,.0f} docs/s); {before} -> {uptime()}", flush=True)
    ref = states["embedded (local)"]
    print("\n| engine | wall s | docs/s | / embedded | corpus rows | same corpus | same decisions | same quarantine |")
    print("|---|---|---|---|---|---|---|---|")
    base_wall = results["runs"]["embedded (local)"]["wall_s"]
    for name, st in states.items():
        wall = results["runs"][name]["wall_s"]
        same = {k: st[k] == ref[k] for k in ("corpus", "decisions", "quarantine")}
        results["runs"][name].update(same=same, corpus_rows=len(st["corpus"]), decisions=len(st["decisions"]))
        print(
            f"| {name} | {wall:.0f} | {args.docs / wall:,.0f} | {wall / base_wall:.2f} | {len(st['corpus']):,} | "
            f"{same['corpus']} | {same['decisions']} | {same['quarantine']} |"
        )
    (work / "results.json").write_text(json.dumps(results, indent=1))
    return 0 if all(all(r["same"].values()) for r in results["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
