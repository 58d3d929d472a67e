"""The whole nightly chain at 1M documents on this machine, then five nights of 100k new documents each (issue 13).

Why: the promise is that a night costs what the new crawl costs, not what the corpus costs, and that one
machine carries a million documents. This runs `curate run` (the CLI, a child process per night, default engine
config) and reports per stage its wall seconds, docs/s (input documents of the night / stage seconds) and the peak
resident memory of the whole process tree (the CLI with the embedded engine, which runs in-process, plus any
child such as the embedded LLM server) while that stage ran, sampled every 0.2 s from /proc.

Input: a seeded generator (`generate`) draws crawl_dev documents (../shared/data, dev machines only) with
replacement: 10% verbatim, the rest with a light edit (0-10% of the words dropped, replaced or swapped with a
neighbour: bench/dedup_scale.py's `light_edit`), each under a new id and url, written as JSONL.gz shards in the
crawl format (`id`, `url`, `source`, `crawl_date`, `text`). Nights draw from disjoint seeds, so later nights carry
exact and near duplicates of earlier nights' documents - the incremental dedup is exercised as on a real crawl.

Scoring: the classifier is the cheap scorer - a `linear` (hashed n-gram) champion per principle, distilled once in
a small bootstrap lake (exemplar teacher, jigsaw for toxicity; 1,000 labels each) whose registry every measured
run reads through `classify.registry_uri` (as a cluster shares one registry). The bootstrap moves the champion
alias itself when distill's reference check keeps the cold-start scorer: this benchmark measures cost, and the
cold-start exemplar scorer runs MiniLM on every document (~50 docs/s here). The cascade sends the toxicity band
to the packaged teacher as in production. Revision excises (`revise.method=excise`, capped at
`revise.max_excise_docs`, 1,000): the LLM's own throughput is bench/revision_throughput.py's subject.

Measured runs:
1. `fresh-100k`: a first night of 100k documents on an empty lake (the reference for "a night of that size").
2. `night-1`: 1M documents on another empty lake.
3. `night-2` .. `night-6`: 100k new documents each on that lake, against the growing corpus.
Ratios: each of nights 2-6 over `fresh-100k` (goal: <= 1.5 when the corpus is >= 5x larger).

The deferred backlog (issue 22 item 1): a revise-band document the night had no revision budget for
(`revise.max_excise_docs`, `revise.max_docs`, `revise.time_budget_s`) gets the action `defer` (`revise.over_budget:
defer`, the default) and the next night takes it first. After every night this reads the lake's Delta tables with
`deltalake` (no engine) and reports the documents deferred that night (and why, by `reasons`; how many of them an
earlier night had deferred already), the backlog left (documents whose latest decision is `defer`, "latest" ordered
as pipelines/core/decisions.py orders it: the run's `seq`, then `started_at`, then the run id) and its age (the
night that ingested its oldest document, and hours since, as the run's own `deferred_oldest_age_h`). The counts are
checked against what the run recorded in `runs.counts` (`action:defer`, `pending_deferred`, `deferred_total`).
`--no-fresh` skips the `fresh-100k` reference night; `--until-clear` runs 100k nights after night 1 until the
backlog is 0 (at most `--max-nights`).

Usage: python bench/chain_scale.py [--first 1000000] [--nightly 100000] [--nights 5] [--work /tmp/curate-chain]
       [--no-fresh] [--until-clear [--max-nights 10]] [--set revise.max_excise_docs=200] [--registry URI]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dedup_common import ROOT, corpus_absent, load_corpus, uptime
from dedup_scale import light_edit

PY = sys.executable
STAGE_LINE = re.compile(r"^(?:ok|x) (.+?) \((\d+(?:\.\d+)?)s\)\s*$")
PRINCIPLES = ("toxicity", "violence", "deception", "misaligned_ai", "aligned_ai")


def generate(folder: Path, n: int, seed: int, date: str, shards: int = 8) -> int:
    """`n` documents into `shards` JSONL.gz files; returns the number written."""
    docs = load_corpus()
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"part-{i:03d}.jsonl.gz" for i in range(shards)]
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(gzip.open(p, "wt", encoding="utf-8", compresslevel=1)) for p in paths]
        for i in range(n):
            d = docs[rng.randrange(len(docs))]
            text = d.text if rng.random() < 0.1 else " ".join(light_edit(d.text.split(" "), rng.random() * 0.1, rng))
            doc_id = f"s{seed}-{i:08d}"
            row = {"id": doc_id, "url": f"{d.url}#{doc_id}", "source": "generated", "crawl_date": date, "text": text}
            files[i % shards].write(json.dumps(row) + "\n")
    return n


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants (MB), from /proc."""
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as fh:
                stack.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / 1024


def run_night(lake: Path, folder: Path, crawl_id: str, sets: list[str], log: Path) -> dict[str, Any]:
    """`curate run` in a child; per stage: seconds (from its progress lines) and the tree's peak RSS meanwhile."""
    cmd = [PY, "-m", "pipelines.cli", "run", "--lake", str(lake), "--input", str(folder), "--crawl-id", crawl_id]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RUST_LOG": "error", "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = {"now": 0.0, "all": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = tree_rss_mb(proc.pid)
            peak["now"], peak["all"] = max(peak["now"], rss), max(peak["all"], rss)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stages: list[dict[str, Any]] = []
    assert proc.stdout is not None
    with log.open("w") as out:
        for line in proc.stdout:
            out.write(line)
            out.flush()  # a night's progress is readable while it runs
            m = STAGE_LINE.match(line.strip())
            if m:
                stages.append({"stage": m.group(1), "seconds": float(m.group(2)), "peak_rss_mb": peak["now"]})
                peak["now"] = tree_rss_mb(proc.pid)
    rc = proc.wait()
    done.set()
    sampler.join()
    wall = time.monotonic() - t0
    if rc != 0:
        raise SystemExit(f"{crawl_id}: curate run exited {rc}; see {log}")
    return {"wall_s": wall, "peak_rss_mb": peak["all"], "stages": stages, "uptime": uptime()}


def bootstrap(work: Path, sets: list[str]) -> str:
    """A small lake whose registry holds a linear champion per principle; returns its registry URI."""
    boot = work / "boot"
    shutil.rmtree(boot, ignore_errors=True)
    generate(work / "input-boot", 3_000, seed=99, date="2026-01-01", shards=2)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RUST_LOG": "error"}

    def curate(*args: str) -> None:
        subprocess.run([PY, "-m", "pipelines.cli", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)

    sset = [x for s in sets for x in ("--set", s)]
    boot_in = str(work / "input-boot")
    curate("run", "--set", "revise.enabled=false", "--lake", str(boot), "--input", boot_in, "--crawl-id", "boot", *sset)
    for p in PRINCIPLES:
        labeler = "jigsaw" if p == "toxicity" else "exemplar"
        curate("label", "--lake", str(boot), "--principle", p, "--labeler", labeler, "--sample", "1000", *sset)
        # distill learns by default only from the labelers the constitution names (issue 22 item 3): jigsaw is not
        # toxicity's, so it is named here; the exemplar labeler is (iterate.labeler)
        named = ["--labelers", labeler] if p == "toxicity" else []
        curate("distill", "--lake", str(boot), "--principle", p, "--kind", "linear", *named, *sset)
    uri = f"sqlite:///{boot / '_state' / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for p in PRINCIPLES:
        name = f"curate_{p}"
        latest = max(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        client.set_registered_model_alias(name, "champion", str(latest))
    return uri


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first", type=int, default=1_000_000)
    parser.add_argument("--nightly", type=int, default=100_000)
    parser.add_argument("--nights", type=int, default=5, help="100k nights after night 1 (without --until-clear)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/curate-chain"))
    # revision by excision (no LLM): the LLM path's throughput is bench/revision_throughput.py's subject
    parser.add_argument("--set", action="append", default=["revise.method=excise"], help="config overrides")
    parser.add_argument("--out", type=Path, help="results JSON (default WORK/results.json)")
    parser.add_argument("--registry", help="reuse the registry of an earlier bootstrap (sqlite:///.../mlflow.db)")
    parser.add_argument("--no-fresh", action="store_true", help="skip the fresh-100k reference night")
    parser.add_argument("--until-clear", action="store_true", help="nights after night 1 until the backlog is 0")
    parser.add_argument("--max-nights", type=int, default=10, help="with --until-clear: at most this many nights")
    args = parser.parse_args()
    if corpus_absent():
        return 0
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    print(f"uptime at start: {uptime()}", flush=True)
    t0 = time.monotonic()
    uri = args.registry or bootstrap(work, list(args.set))
    print(f"bootstrap (3k docs, 5 linear champions): {time.monotonic() - t0:.0f} s; registry {uri}", flush=True)
    sets = [f"classify.registry_uri={uri}", *args.set]
    plan = [] if args.no_fresh else [("fresh", "fresh-100k", args.nightly, 1000)]
    plan += [("main", "night-1", args.first, 1)]
    later = args.max_nights if args.until_clear else args.nights
    plan += [("main", f"night-{i}", args.nightly, i) for i in range(2, later + 2)]
    results: dict[str, Any] = {"first": args.first, "nightly": args.nightly, "sets": sets, "runs": {}}
    results["uptime_start"] = uptime()
    for lake_name, crawl_id, n, seed in plan:
        lake = work / f"lake-{lake_name}"
        if crawl_id in ("fresh-100k", "night-1"):
            shutil.rmtree(lake, ignore_errors=True)
        folder = work / f"input-{crawl_id}"
        shutil.rmtree(folder, ignore_errors=True)
        g0 = time.monotonic()
        generate(folder, n, seed=seed, date=f"2026-02-{seed % 28 + 1:02d}")
        gen_s = time.monotonic() - g0
        r = run_night(lake, folder, crawl_id, sets, work / f"{crawl_id}.log")
        r.update(docs=n, generate_s=gen_s, corpus_rows=corpus_rows(lake), backlog=backlog(lake, crawl_id))
        results["runs"][crawl_id] = r
        b = r["backlog"]
        print(
            f"\n## {crawl_id}: {n:,} new documents, corpus after {r['corpus_rows']:,} rows; "
            f"wall {r['wall_s']:.0f} s, peak RSS {r['peak_rss_mb']:,.0f} MB; {r['uptime']}",
            flush=True,
        )
        print(
            f"deferred tonight {b['deferred_tonight']:,} ({b['deferred_reasons'] or 'none'}; "
            f"{b['redeferred']:,} of them deferred before), backlog taken first {b['backlog_before']:,}, "
            f"backlog after {b['backlog_after']:,} (oldest from {b['oldest_crawl'] or '-'}); "
            f"revisions {b['revisions'] or 'none'}",
            flush=True,
        )
        print("| stage | s | docs/s | peak RSS MB |\n|---|---|---|---|")
        for s in r["stages"]:
            rate = n / s["seconds"] if s["seconds"] > 0 else float("inf")
            print(f"| {s['stage']} | {s['seconds']:.1f} | {rate:,.0f} | {s['peak_rss_mb']:,.0f} |", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        # after every night, so a run stopped early keeps the nights it finished
        (args.out or work / "results.json").write_text(json.dumps(results, indent=1, default=str))
        if args.until_clear and lake_name == "main" and b["backlog_after"] == 0:
            break
    results["uptime_end"] = uptime()
    fresh = results["runs"].get("fresh-100k", {}).get("wall_s")
    print("\n| night | new docs | corpus rows after | wall s | / fresh-100k |\n|---|---|---|---|---|")
    for crawl_id, r in results["runs"].items():
        ratio = f"{r['wall_s'] / fresh:.2f}" if fresh else "-"
        print(f"| {crawl_id} | {r['docs']:,} | {r['corpus_rows']:,} | {r['wall_s']:.0f} | {ratio} |")
    print(backlog_table(results["runs"]))
    out = args.out or work / "results.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nuptime at end: {uptime()}; results in {out}")
    return 0


def backlog_table(runs: dict[str, dict[str, Any]]) -> str:
    """The deferred backlog night by night, and how many nights after the first it took to clear."""
    lines = [
        "\n| night | new docs | backlog taken first | deferred tonight | of them deferred before | backlog after "
        "| oldest backlog ingested by | its age (nights, h) | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = [c for c in runs if c != "fresh-100k"]
    for crawl_id in ["fresh-100k", *names] if "fresh-100k" in runs else names:
        r, b = runs[crawl_id], runs[crawl_id]["backlog"]
        age = f"{b['oldest_age_nights']}, {b['oldest_age_h']:.2f}" if b["oldest_crawl"] else "-"
        lines.append(
            f"| {crawl_id} | {r['docs']:,} | {b['backlog_before']:,} | {b['deferred_tonight']:,} | "
            f"{b['redeferred']:,} | {b['backlog_after']:,} | {b['oldest_crawl'] or '-'} | {age} | {r['wall_s']:.0f} |"
        )
    after = [runs[c]["backlog"]["backlog_after"] for c in names]
    if after and after[0]:
        cleared = next((i for i, x in enumerate(after) if x == 0), None)
        lines.append(
            f"\nbacklog after night-1: {after[0]:,}; "
            + (f"cleared after {cleared} more night(s)" if cleared is not None else "not cleared in the nights run")
        )
    elif after:
        lines.append("\nnight-1 deferred nothing: no backlog")
    return "\n".join(lines)


def backlog(lake: Path, crawl_id: str) -> dict[str, Any]:
    """The deferred backlog after the night `crawl_id`, from the lake's Delta tables (deltalake, no engine).

    "Latest decision" as pipelines/core/decisions.py defines it: a document's decisions ordered by their run's `seq`
    (null: 0), then the run's `started_at`, then the run id; a decision whose run has no `runs` row sorts first.
    The numbers are checked against the run's own `runs.counts`."""
    import pandas as pd
    from deltalake import DeltaTable

    cols = ["run_id", "crawl_id", "status", "seq", "started_at", "counts"]
    runs = DeltaTable(str(lake / "runs")).to_pandas(columns=cols)
    # the night's successful run (an interrupted one published nothing; its counts are not the lake's)
    mine = runs[(runs["crawl_id"] == crawl_id) & (runs["status"] == "success")].sort_values(["seq", "started_at"])
    if mine.empty:
        raise SystemExit(f"{crawl_id}: no runs row in {lake}")
    run = mine.iloc[-1]
    counts = dict(run["counts"]) if run["counts"] is not None else {}
    dec = DeltaTable(str(lake / "decisions")).to_pandas(columns=["doc_id", "run_id", "action", "reasons"])
    order = runs[["run_id", "seq", "started_at"]].assign(known=1)
    dec = dec.merge(order, on="run_id", how="left")
    dec["known"] = dec["known"].fillna(0)
    dec["seq"] = dec["seq"].fillna(0)
    dec = dec.sort_values(["doc_id", "known", "seq", "started_at", "run_id"], na_position="first", kind="stable")
    latest = dec.drop_duplicates("doc_id", keep="last")
    pending = latest[latest["action"] == "defer"]
    tonight = dec[(dec["run_id"] == run["run_id"]) & (dec["action"] == "defer")]
    reasons: dict[str, int] = {}
    for rs in tonight["reasons"]:
        key = "+".join(sorted(rs)) if rs is not None else "-"
        reasons[key] = reasons.get(key, 0) + 1
    raw = DeltaTable(str(lake / "raw_docs")).to_pandas(columns=["doc_id", "crawl_id", "ingested_at"])
    redeferred = int(raw[raw["doc_id"].isin(tonight["doc_id"]) & (raw["crawl_id"] != crawl_id)]["doc_id"].nunique())
    out: dict[str, Any] = {
        "run_id": run["run_id"],
        "deferred_tonight": len(tonight),
        "deferred_reasons": reasons,
        "redeferred": redeferred,
        "backlog_before": int(counts.get("pending_deferred", 0)),
        "backlog_after": len(pending),
        "revisions": {k: int(v) for k, v in counts.items() if k.startswith("revision:")},
        "oldest_crawl": None,
        "oldest_age_nights": None,
        "oldest_age_h": 0.0,
        "by_crawl": {},
        "run_counts": {k: int(v) for k, v in counts.items() if "defer" in k},
        # the members stage: judged, published in a dropped page's place, dropped or cut by the passage guard
        "members": {k: int(v) for k, v in counts.items() if k.startswith("members_")},
    }
    if len(pending):
        held = raw[raw["doc_id"].isin(pending["doc_id"])]
        out["by_crawl"] = {str(k): int(v) for k, v in held.groupby("crawl_id").size().items()}
        first = held.sort_values("ingested_at").iloc[0]
        out["oldest_crawl"] = first["crawl_id"]
        out["oldest_age_nights"] = night_number(crawl_id) - night_number(first["crawl_id"])
        ts = pd.Timestamp(first["ingested_at"])
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
        out["oldest_age_h"] = (pd.Timestamp.now(tz="UTC") - ts).total_seconds() / 3600
    # what the run recorded must agree: its own count of defers, and the backlog its accounting check left
    recorded = (int(counts.get("action:defer", 0)), int(counts.get("deferred_total", 0)))
    if recorded != (out["deferred_tonight"], out["backlog_after"]):
        print(f"WARNING {crawl_id}: runs.counts says deferred/backlog {recorded}, the tables {out}", flush=True)
        out["mismatch"] = recorded
    return out


def night_number(crawl_id: str) -> int:
    return int(crawl_id.rsplit("-", 1)[1]) if crawl_id.startswith("night-") else 0


def corpus_rows(lake: Path) -> int:
    from deltalake import DeltaTable

    if not (lake / "corpus").is_dir():
        return 0
    return int(DeltaTable(str(lake / "corpus")).to_pyarrow_dataset().count_rows())


if __name__ == "__main__":
    sys.exit(main())
