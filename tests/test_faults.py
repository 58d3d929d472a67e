"""Faults at every stage: `curate run` (and `curate iterate`) killed with a real SIGKILL at each stage boundary, inside
the long stages and between the Delta commits of publishing, then rerun on the same night. The rerun must converge
to exactly the lake an uninterrupted run leaves (documents, quarantine, dedup, scores, latest revisions, corpus,
decisions), with every input record accounted for and no debris (no `running` row, no staging folder). Revisions
are compared by each document's latest row: a run killed after its `revisions` commit keeps that audit row, and the
rerun adds its own.

The kill points are the `CURATE_KILL_AT` test hook of pipelines/core/faults.py. Every point is one process started
and killed on a lake of its own, then checked and rerun in this process (30-70 s on 2 cores); the next point's
process is started and killed while this process reruns (`KilledRuns`), so the two halves overlap on 2 cores. The
quick set (one point per publish boundary) is in the fast tier, `slow` marks the exhaustive rest (`make test` and
CI run both; `make check` skips them). The lakes before the kills are copies of one lake per module, and the
references run, and are read, once per module.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.chains.iterate import iterate
from pipelines.chains.run import run_pipeline
from pipelines.core import execute, faults, publish
from pipelines.core.config import RunConfig, load_config
from pipelines.core.execute import check_accounting
from pipelines.core.faults import ENV
from pipelines.core.lake import Lake
from pipelines.stages.audit import TeacherAudit
from pipelines.stages.revise import Revise
from tests.fixtures import ARTICLES, BAD_LINES, jsonl_lines, retuned_constitution, write_jsonl
from tests.test_pipeline import NIGHT2_NEW, TOXIC
from tests.test_revision import EXCISED_REPORT, REPORT

ROOT = Path(__file__).resolve().parents[1]

# The revise stage without an LLM: `excise` removes the flagged sentences of a document in the revise band. The
# retuned toxicity policy (as in test_revision.py) puts the council report in that band: it is excised, and the
# rant, insults only, is dropped; the quality thresholds are the lowered ones of test_pipeline.py.
SETTINGS: dict[str, Any] = {
    "revise.method": "excise",
    "engine.shuffle_partitions": 2,
    "quality.c4.min_num_sentences": 3,
    "quality.min_stop_words": 0,
}
REPORT_URL = "https://council.example/1"
NEW_URL, MIRROR_URL = NIGHT2_NEW[0], "https://mirror.example/lighthouse"

# The second night, in two files (so ingest runs two tasks): a re-crawled article (already ingested), the report
# (revised), a new article (kept), a copy of an article under another url (exact duplicate), the rant (dropped),
# and two bad lines (quarantined).
NIGHT_B = {
    "part-0.jsonl": [
        *jsonl_lines([ARTICLES[0], (REPORT_URL, REPORT), NIGHT2_NEW]),
        BAD_LINES["malformed_json"],
    ],
    "part-1.jsonl.gz": [
        *jsonl_lines([(MIRROR_URL, ARTICLES[1][1]), ("https://forum.example/t/9", TOXIC)]),
        BAD_LINES["wrong_type:text"],
    ],
}


def _settings(constitution: Path, **more: Any) -> dict[str, Any]:
    return {**SETTINGS, "classify.constitution": str(constitution), **more}


def _cli_sets(settings: dict[str, Any]) -> list[str]:
    return [x for k, v in settings.items() for x in ("--set", f"{k}={json.dumps(v)}")]


@pytest.fixture(scope="module")
def first_night(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> dict[str, Any]:
    """The inputs, and the lake after the first night (copied for every kill) with its corpus."""
    tmp = tmp_path_factory.mktemp("faults")
    constitution = retuned_constitution(
        tmp / "constitution.yaml", "toxicity", revise_threshold=0.5, filter_threshold=0.9999, span_threshold=0.5
    )
    night_a = write_jsonl(tmp / "night-a.jsonl", [*jsonl_lines(), BAD_LINES["empty_text"]])
    night_b = tmp / "night-b"
    night_b.mkdir()
    for name, lines in NIGHT_B.items():
        write_jsonl(night_b / name, lines)
    base = tmp / "base"
    cfg = load_config(None, _settings(constitution, **{"tracking.experiment": "base"}))
    assert run_pipeline(base, night_a, cfg, crawl_id="a").status == "success"
    corpus = _corpus(Lake(base, spark))
    return {"tmp": tmp, "constitution": constitution, "night_b": night_b, "base": base, "base_corpus": corpus}


@pytest.fixture(scope="module")
def world(first_night: dict[str, Any], killed_runs: KilledRuns, spark: Any) -> dict[str, Any]:
    """The first night, and the reference lake: the same lake after an uninterrupted second night, with what a
    reader sees in it (read once: nothing writes to it), and `fingerprints`: every kill point the night passed, in
    order, with the lake's files at that point (`_files`; no kill is armed in this process, so `kill_point` only
    records). `killed_runs` comes first: the first kill point's run is started and killed in its own process while
    this one builds the reference."""
    reference = _copy(first_night["base"], first_night["tmp"] / "reference")
    cfg = _cfg(first_night["constitution"], reference)
    seen: list[tuple[str, dict[str, tuple[int, int]]]] = []
    with pytest.MonkeyPatch.context() as mp:
        for module in (faults, execute, publish):  # ingest imports kill_point from faults when it parses
            mp.setattr(module, "kill_point", lambda name: seen.append((name, _files(reference))))
        assert run_pipeline(reference, first_night["night_b"], cfg, crawl_id="b").status == "success"
    lake = Lake(reference, spark)
    return {
        **first_night,
        "reference": reference,
        "reference_state": state(lake),
        "reference_corpus": _corpus(lake),
        "fingerprints": seen,
    }


def _cfg(constitution: Path, lake: Path, **more: Any) -> RunConfig:
    return load_config(None, _settings(constitution, **{"tracking.experiment": lake.name, **more}))


def _copy(src: Path, dst: Path) -> Path:
    """A copy of a lake (Delta logs hold relative paths); its runs get an MLflow experiment of their own, whose
    artifacts live under the copy."""
    shutil.copytree(src, dst)
    return dst


def _latest_revisions(lake: Lake) -> dict[str, tuple[Any, ...]]:
    latest: dict[str, Any] = {}
    for r in lake.read("revisions").collect():
        if r.doc_id not in latest or (r.revised_at, r.run_id) > (latest[r.doc_id].revised_at, latest[r.doc_id].run_id):
            latest[r.doc_id] = r
    return {
        d: (r.status, r.method, r.original_text, r.revised_text, tuple(r.principles), tuple(r.reject_reasons))
        for d, r in latest.items()
    }


def state(lake: Lake) -> dict[str, Any]:
    """What a reader of the lake sees, without run ids and timestamps (the rerun has other ones)."""
    rows = lambda t: lake.read(t).collect()  # noqa: E731
    return {
        "raw_docs": sorted((r.doc_id, r.url, r.text, r.crawl_id, r.source_file, r.position) for r in rows("raw_docs")),
        "quarantine": sorted(
            (r.record_id, r.source_file, r.position, r.reason, r.crawl_id) for r in rows("quarantine")
        ),
        "quality": sorted((r.doc_id, r.clean_text, tuple(r.quality_reasons)) for r in rows("quality")),
        "dedup": sorted(
            (r.doc_id, r.exact_hash, r.cluster_id, r.dup_of, r.is_duplicate, r.dup_kind) for r in rows("dedup")
        ),
        "minhash_index": sorted((r.doc_id, r.band, r.bucket, r.scheme) for r in rows("minhash_index")),
        "scores": sorted((r.doc_id, r.principle, round(r.score, 6), r.model_uri) for r in rows("scores")),
        "revisions": _latest_revisions(lake),
        "corpus": sorted(
            (r.doc_id, r.text, r.action, tuple(sorted(r.tags)), r.weight, r.url, r.crawl_id) for r in rows("corpus")
        ),
        # every row: a document decided twice would show here
        "decisions": sorted((r.doc_id, r.crawl_id, r.action, tuple(r.reasons), r.stage) for r in rows("decisions")),
    }


def assert_same_state(got: dict[str, Any], want: dict[str, Any]) -> None:
    """`got == want`, failing with the rows each table has that the other lacks (pytest's diff of two large dicts
    shows their first keys only, which is not where they differ)."""
    if got == want:
        return
    lines = []
    for table in want:
        a, b = got[table], want[table]
        if a == b:
            continue
        rows_a = set(a.items()) if isinstance(a, dict) else set(a)
        rows_b = set(b.items()) if isinstance(b, dict) else set(b)
        lines += [
            f"{table}: rerun only {sorted(rows_a - rows_b, key=repr)!r:.1500}",
            f"{table}: reference only {sorted(rows_b - rows_a, key=repr)!r:.1500}",
        ]
    pytest.fail("the rerun's lake differs from the reference:\n" + "\n".join(lines))


def _corpus(lake: Lake) -> dict[str, tuple[str, str]]:
    return {r.doc_id: (r.text, r.action) for r in lake.read("corpus").collect()}


def assert_no_debris(lake: Lake, killed_run: str | None) -> None:
    runs = {r.run_id: r for r in lake.read("runs").collect()}
    assert not [r for r in runs.values() if r.status == "running"], "a run is still marked running"
    if killed_run is not None:
        assert runs[killed_run].status == "failed" and runs[killed_run].error.startswith("abandoned")
    staging = lake.state_dir / "staging"
    assert not staging.is_dir() or not any(staging.iterdir()), f"staging left behind: {list(staging.iterdir())}"


def assert_index_is_the_corpus(lake: Lake) -> None:
    """The dedup index holds the band keys of exactly the published documents (issue 22 item 2), every band of each:
    a rerun that converges to a reference satisfying this leaves no keys of a dropped or deferred document."""
    index = lake.read("minhash_index").groupBy("doc_id").count().collect()
    assert {r.doc_id for r in index} == {r.doc_id for r in lake.read("corpus").select("doc_id").collect()}
    assert {r["count"] for r in index} == {load_config(None).dedup.bands}


def assert_every_record_accounted(lake: Lake, night_b: Path) -> None:
    """The second night's 7 records: 2 bad lines in quarantine, 5 documents in raw_docs, each of which is in the
    corpus or dropped by its latest decision (check_accounting), written out by hand for this input."""
    acct = check_accounting(lake)
    assert (acct["unaccounted"], acct["double_counted"]) == (0, 0)
    quarantined = {
        (Path(r.source_file).name, r.position, r.reason)
        for r in lake.read("quarantine").collect()
        if Path(r.source_file).parent == night_b.resolve()
    }
    assert quarantined == {("part-0.jsonl", 3, "malformed_json"), ("part-1.jsonl.gz", 2, "wrong_type:text")}
    urls = {r.url for r in lake.read("raw_docs").collect()}
    assert {ARTICLES[0][0], REPORT_URL, NEW_URL, MIRROR_URL, "https://forum.example/t/9"} <= urls
    corpus = {r.url: r for r in lake.read("corpus").collect()}
    assert corpus[REPORT_URL].text == EXCISED_REPORT and corpus[REPORT_URL].action == "revise"
    assert NEW_URL in corpus and MIRROR_URL not in corpus and "https://forum.example/t/9" not in corpus


def test_the_reference_night_exercises_every_stage(world: dict[str, Any], spark: Any) -> None:
    """The uninterrupted run the kills are compared with: something to lose at every stage."""
    lake = Lake(world["reference"], spark)
    assert_every_record_accounted(lake, world["night_b"])
    assert_no_debris(lake, None)
    assert_index_is_the_corpus(lake)
    (b,) = [r for r in lake.read("runs").collect() if r.crawl_id == "b"]
    c = b.counts
    assert (c["records"], c["quarantined"], c["already_ingested"], c["pending"]) == (7, 2, 1, 4)
    assert (c["exact_duplicates"], c["revision:ok"], c["action:revise"], c["action:keep"]) == (1, 1, 1, 1)


def _files(lake_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file of a lake but the runs' staging (which a rerun removes), with its size and modification time."""
    staging = lake_dir / "_state" / "staging"
    return {
        str(p.relative_to(lake_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in lake_dir.rglob("*")
        if p.is_file() and staging not in p.parents
    }


def test_a_run_commits_nothing_between_its_bronze_and_its_publish(world: dict[str, Any]) -> None:
    """Why the kill points below are a selection: every kill point of an uninterrupted second night (the reference
    night, `world`) is passed with a fingerprint of the lake's files, and the points fall into the states listed
    there - the same files at every point of a state, other files in the next. A stage that starts committing (or
    writing MLflow, or any file outside its staging) mid-run fails this, and then the points need another look."""
    seen: list[tuple[str, dict[str, tuple[int, int]]]] = world["fingerprints"]
    names = [n for n, _ in seen]
    assert set(QUICK) | set(SLOW) <= set(names)
    first_publish = next(i for i, n in enumerate(names) if n.startswith("publish:"))
    bounds = [0, names.index("bronze:quarantine"), names.index("bronze:raw_docs"), first_publish]
    assert bounds == sorted(bounds) and names[first_publish - 1] == f"{TeacherAudit.name}:gated"
    for lo, hi in itertools.pairwise(bounds):
        assert all(files == seen[lo][1] for _, files in seen[lo:hi]), f"files changed within {names[lo:hi]}"
    assert all(seen[a][1] != seen[b][1] for a, b in itertools.pairwise(bounds))  # each bound is a commit


# Where a run can die, by what it leaves on disk (the fingerprints of
# test_a_run_commits_nothing_between_its_bronze_and_its_publish): before its first bronze commit; with quarantine
# committed and raw_docs not; with both bronze tables committed and nothing else (every stage from `undecided` to
# the audit only stages, and a rerun removes the staging of a killed run, so a kill at any of their boundaries leaves
# the same lake); between every two published commits; after the end was recorded. Every such state is a kill point
# below, the middle one from three places (its first point, inside a long stage, its last point). A point per stage
# boundary besides (22 before) showed nothing more and cost 5 minutes a suite.
# QUICK: one kill point per publish boundary (the fast tier, `make check`); SLOW: every other point (`make test`).
QUICK = [
    "bronze:quarantine",  # quarantine committed, raw_docs not
    "publish:scores",  # derived tables half published
    "publish:corpus",  # the corpus committed, the decisions not: the rerun must decide those documents again
    "publish:decisions",  # everything published, the run's end not recorded
]
SLOW = [
    "ingest:batch",  # inside ingest: the first file's records handed to the staging writer, nothing committed
    "bronze:raw_docs",  # both bronze tables committed, no stage after ingest run
    "staged:revise_outcomes",  # the excisions done and staged
    f"{TeacherAudit.name}:gated",  # every stage done and gated, nothing published
    "publish:quality",
    "publish:dedup",
    "publish:minhash_index",
    "publish:revisions",
    "run:recorded",  # the run recorded as a success, its staging folder not removed
]
PUBLISHED = ("publish:corpus", "publish:decisions", "run:recorded")  # the corpus moved before the kill

#: One killed command: the lake it starts from (copied first), its `curate` arguments given the copy, and the point.
Job = tuple[Path, Callable[[Path], list[str]], str]


class KilledRuns:
    """The killed command of every selected kill point, each on a copy of its starting lake, started one test
    ahead: while a test reruns in this process, the next point's command is being started and killed in a process
    of its own (on 2 cores the two overlap; one after the other they took twice as long). What each test checks is
    unchanged: the same process killed at the same point, on a lake no other run touches."""

    def __init__(self, folder: Path, keys: list[str], job: Callable[[str], Job]) -> None:
        self.folder, self.keys, self.job = folder, keys, job
        self.started: dict[str, tuple[Path, subprocess.Popen[bytes], Path]] = {}

    def start(self, key: str) -> None:
        if key in self.started:
            return
        source, args, point = self.job(key)
        folder = self.folder / key.replace(":", "-").replace("/", "-")
        lake_dir = _copy(source, folder / "lake")
        err = folder / "stderr.txt"
        with open(err, "wb") as fh:  # a file, not a pipe: nobody reads it while the command goes on
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.cli", *args(lake_dir)],
                cwd=ROOT,
                env={**os.environ, "HF_HUB_OFFLINE": "1", "RUST_LOG": "error", ENV: point},
                stdout=subprocess.DEVNULL,
                stderr=fh,
                start_new_session=True,
            )
        self.started[key] = (lake_dir, proc, err)

    def killed(self, key: str) -> Path:
        """The lake `key`'s command was killed on; asserts it died of SIGKILL there. Starts the next key's."""
        self.start(key)
        if key in self.keys and (i := self.keys.index(key) + 1) < len(self.keys):
            self.start(self.keys[i])
        lake_dir, proc, err = self.started[key]
        proc.wait(timeout=600)
        assert proc.returncode == -signal.SIGKILL, (
            f"not killed at {key} (exit {proc.returncode}):\n{err.read_text(errors='replace')[-3000:]}"
        )
        return lake_dir

    def close(self) -> None:
        for _, proc, _ in self.started.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _selected(request: pytest.FixtureRequest, test: str) -> list[dict[str, Any]]:
    """The parameters of this module's `test` items that this session runs, in their order."""
    return [
        item.callspec.params
        for item in request.session.items
        if item.path == request.path and item.originalname == test and hasattr(item, "callspec")
    ]


@pytest.fixture(scope="module")
def killed_runs(first_night: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[KilledRuns]:
    """`curate run` of the second night on a copy of the first night's lake, killed at each point."""

    def job(point: str) -> Job:
        def args(lake_dir: Path) -> list[str]:
            settings = _settings(first_night["constitution"], **{"tracking.experiment": lake_dir.name})
            run = ["run", "--lake", str(lake_dir), "--input", str(first_night["night_b"]), "--crawl-id", "b"]
            return [*run, "--quiet", *_cli_sets(settings)]

        return first_night["base"], args, point

    points = [p["point"] for p in _selected(request, "test_run_killed_then_rerun_converges")]
    runs = KilledRuns(first_night["tmp"] / "kills", points, job)
    if points:
        runs.start(points[0])
    yield runs
    runs.close()


@pytest.mark.parametrize(
    "point", [*QUICK, *[pytest.param(p, marks=pytest.mark.slow) for p in SLOW]], ids=lambda p: p.replace(":", "-")
)
def test_run_killed_then_rerun_converges(
    world: dict[str, Any], killed_runs: KilledRuns, spark: Any, point: str
) -> None:
    lake_dir = killed_runs.killed(point)  # `curate run` on a copy of the first night's lake, killed at `point`
    lake = Lake(lake_dir, spark)

    (killed,) = [r for r in lake.read("runs").collect() if r.crawl_id == "b"]
    assert killed.status == ("success" if point == "run:recorded" else "running")
    if point not in PUBLISHED:  # nothing a reader sees has moved
        assert _corpus(lake) == world["base_corpus"]

    summary = run_pipeline(lake_dir, world["night_b"], _cfg(world["constitution"], lake_dir), crawl_id="b")

    assert summary.status == "success" and summary.counts["unaccounted"] == 0
    assert_same_state(state(lake), world["reference_state"])
    assert_every_record_accounted(lake, world["night_b"])
    assert_no_debris(lake, None if point == "run:recorded" else killed.run_id)


# ---- curate iterate ---------------------------------------------------------------------------------------------

# Two retunings of the policy the night ran with, each making the first round change something and the second
# find the fixed point: `upsample` upweights every kept document (aligned_ai at 0: its weight and reasons change,
# its action does not); `excise` lowers the toxicity revise threshold below the bread recipe's score (the packaged
# teacher gives it 0.24), so iteration excises it, or drops it when excision fails.
RETUNINGS: dict[str, tuple[str, dict[str, float]]] = {
    "upsample": ("aligned_ai", {"upsample_threshold": 0.0}),
    "excise": ("toxicity", {"revise_threshold": 0.2}),
}


def _retuning(world: dict[str, Any], name: str) -> Path:
    """The constitution of a retuning, written once (a killed command may be reading it)."""
    path = world["tmp"] / f"{name}.yaml"
    if path.exists():
        return path
    principle, changes = RETUNINGS[name]
    return retuned_constitution(path, principle, base=world["constitution"], **changes)


@pytest.fixture(scope="module")
def killed_iterations(world: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[KilledRuns]:
    """`curate iterate` on a copy of the reference night, under a retuning, killed at each point."""

    def job(key: str) -> Job:
        retuning, point = key.split("/")

        def args(lake_dir: Path) -> list[str]:
            extra = {"tracking.experiment": lake_dir.name, "revise.enabled": True}
            settings = _settings(_retuning(world, retuning), **extra)
            cmd = ["iterate", "--lake", str(lake_dir), "--rounds", "2", "--labeler", "human:none", "--quiet"]
            return [*cmd, *_cli_sets(settings)]

        return world["reference"], args, point

    keys = [f"{p['retuning']}/{p['point']}" for p in _selected(request, "test_iterate_killed_then_rerun_converges")]
    runs = KilledRuns(world["tmp"] / "iterate-kills", keys, job)
    if keys:
        runs.start(keys[0])
    yield runs
    runs.close()


@pytest.fixture(scope="module")
def iterated(world: dict[str, Any], killed_iterations: KilledRuns, spark: Any) -> dict[str, dict[str, Any]]:
    """Per retuning: its constitution, and the reference: the second night's lake after an uninterrupted iterate.
    `killed_iterations` comes first: the first kill point's command is killed while this builds the references."""
    out: dict[str, dict[str, Any]] = {}
    for name in RETUNINGS:
        path = _retuning(world, name)
        reference = _copy(world["reference"], world["tmp"] / f"iterated-{name}")
        summary = iterate(Lake(reference, spark), _iterate_cfg(path, reference), rounds=2)
        out[name] = {
            "constitution": path,
            "reference": reference,
            "reference_state": state(Lake(reference, spark)),
            "rounds": [r.status for r in summary.rounds],
        }
    return out


def _iterate_cfg(constitution: Path, lake: Path) -> RunConfig:
    return _cfg(constitution, lake, **{"iterate.labeler": "human:none", "revise.enabled": True})


@pytest.mark.slow
def test_the_reference_iterations_change_something(world: dict[str, Any], iterated: dict[str, Any], spark: Any) -> None:
    night = {r.doc_id: r for r in Lake(world["reference"], spark).read("corpus").collect()}
    for name, it in iterated.items():
        assert it["rounds"] == ["published", "fixed_point"], name
        lake = Lake(it["reference"], spark)
        corpus = {r.doc_id: r for r in lake.read("corpus").collect()}
        acct = check_accounting(lake)
        assert (acct["unaccounted"], acct["double_counted"]) == (0, 0)
        assert_no_debris(lake, None)
        assert_index_is_the_corpus(lake)
        if name == "upsample":  # same documents and actions, every one upweighted
            assert {d: r.action for d, r in corpus.items()} == {d: r.action for d, r in night.items()}
            assert {r.weight for r in night.values()} == {1.0} and {r.weight for r in corpus.values()} == {2.0}
        else:  # the bread recipe left the corpus as it was: excised, or dropped
            (bread,) = [d for d, r in night.items() if r.url == ARTICLES[2][0]]
            assert bread not in corpus or (corpus[bread].action, corpus[bread].text) != ("keep", ARTICLES[2][1])


ITERATE_POINTS = [
    pytest.param("upsample", "publish:corpus", marks=pytest.mark.slow),  # the round's corpus, not its decisions
    pytest.param("excise", f"{Revise.name}:start", marks=pytest.mark.slow),
    pytest.param("excise", "staged:revise_outcomes", marks=pytest.mark.slow),
    pytest.param("excise", "publish:corpus", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("retuning", "point"), ITERATE_POINTS, ids=lambda p: p.replace(":", "-"))
def test_iterate_killed_then_rerun_converges(
    world: dict[str, Any],
    iterated: dict[str, Any],
    killed_iterations: KilledRuns,
    spark: Any,
    retuning: str,
    point: str,
) -> None:
    it = iterated[retuning]
    lake_dir = killed_iterations.killed(f"{retuning}/{point}")  # `curate iterate` on a copy of the reference night
    lake = Lake(lake_dir, spark)

    (killed,) = [r for r in lake.read("runs").collect() if r.status == "running"]
    if point != "publish:corpus":
        assert _corpus(lake) == world["reference_corpus"]

    summary = iterate(lake, _iterate_cfg(it["constitution"], lake_dir), rounds=2)

    assert_same_state(state(lake), it["reference_state"])
    assert [r.status for r in summary.rounds] == it["rounds"]
    acct = check_accounting(lake)
    assert (acct["unaccounted"], acct["double_counted"]) == (0, 0)
    assert_no_debris(lake, killed.run_id)
