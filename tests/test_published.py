"""Readers never see half a night: `curate sql`, `export`, `diff` and `report` read the published state (the table
versions of the last successful run, pipelines/core/published.py) by default, and `--latest-commit` shows what a
running or killed night wrote.

The killed night is a real crash: `curate run` of the second night started with the fault injection
`CURATE_KILL_AT=publish:corpus` (pipelines/core/faults.py), which SIGKILLs the process right after its `corpus`
commit and before its `decisions` commit, so the latest `corpus` holds a document no decision explains. One lake per
module: the first night, then the killed second night; the rerun works on a copy.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines.chains.run import run_pipeline
from pipelines.cli import main
from pipelines.core import publish
from pipelines.core.config import load_config
from pipelines.core.faults import ENV
from pipelines.core.lake import Lake, LakeError
from pipelines.core.published import PINNED, published_versions, time_travel_to_paths
from tests import test_notebooks
from tests.test_notebooks import EXPLORE, KERNEL, displayed, printed
from tests.test_pipeline import night2

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "revise.enabled": False,
    "engine.shuffle_partitions": 2,
    "quality.c4.min_num_sentences": 3,
    "quality.min_stop_words": 0,
}
# The counts of tests/test_pipeline.py's two nights: night 1 decides 4 documents and keeps 3; night 2 decides 2
# more (a new article kept, an exact duplicate dropped), so its corpus holds 4.
NIGHT1_CORPUS, NIGHT1_DECISIONS, NIGHT2_CORPUS, NIGHT2_DECISIONS = 3, 4, 4, 6

jupyter_env = test_notebooks.jupyter_env  # the fixture: a kernel of this venv in a Jupyter home of its own

# one query for what a reader sees: corpus, decisions, and corpus documents without a decision (half a night)
COUNTS = (
    "SELECT c.n AS corpus, d.n AS decisions, u.n AS undecided FROM (SELECT count(*) AS n FROM corpus) c "
    "CROSS JOIN (SELECT count(*) AS n FROM decisions) d CROSS JOIN (SELECT count(*) AS n FROM corpus x "
    "LEFT ANTI JOIN decisions y ON x.doc_id = y.doc_id) u"
)


# The killed lake (a first night, then a second killed in a process of its own) costs about a minute to build: the
# tests that read it are in the full tier (`make test`, CI); the fast tier keeps the pure rules below them.
on_the_killed_lake = pytest.mark.slow


@pytest.fixture(scope="module")
def killed(two_night_lake: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The lake after night 1, and night 2 killed (fault injection: `CURATE_KILL_AT=publish:corpus`) between its
    `corpus` and `decisions` commits. Night 1 is the session's (tests/conftest.py `two_night_lake`: test_pipeline's
    night 1 and CFG), copied as it left the lake."""
    tmp = tmp_path_factory.mktemp("published")
    lake = tmp / "lake"
    shutil.copytree(two_night_lake["after_night_1"], lake)  # Delta logs hold relative paths: a lake of its own
    s1 = two_night_lake["s1"]
    n2 = night2(tmp)
    sets = [x for k, v in SETS.items() for x in ("--set", f"{k}={json.dumps(v)}")]
    argv = ["run", "--lake", str(lake), "--input", str(n2), "--crawl-id", "n2", *sets, "--quiet"]
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *argv],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "RUST_LOG": "error", ENV: "publish:corpus"},
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,  # the kill takes the process group: never pytest's
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    versions = Lake(lake).versions()
    assert versions["corpus"] > s1.table_versions["corpus"] and versions["decisions"] == s1.table_versions["decisions"]
    return {"tmp": tmp, "lake": lake, "night2": n2, "s1": s1, "latest_corpus": versions["corpus"]}


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[list[dict[str, Any]], str]:
    assert main(argv) == 0
    out = capsys.readouterr()
    return [json.loads(line) for line in out.out.splitlines()], out.err


@on_the_killed_lake
def test_sql_shows_the_previous_night_until_a_night_finishes(
    killed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    lake = str(killed["lake"])
    (seen,), err = _json(capsys, ["sql", "--lake", lake, "--format", "json", COUNTS])
    assert seen == {"corpus": NIGHT1_CORPUS, "decisions": NIGHT1_DECISIONS, "undecided": 0}
    assert "read the published state" in err and "corpus" in err

    # what the killed night wrote: its corpus commit, no decisions - a corpus document nothing explains
    (latest,), err = _json(capsys, ["sql", "--lake", lake, "--format", "json", "--latest-commit", COUNTS])
    assert latest == {"corpus": NIGHT2_CORPUS, "decisions": NIGHT1_DECISIONS, "undecided": 1}
    assert "published state" not in err

    # explicit time travel still reaches every version, the killed night's included, by name or quoted
    query = (
        f"SELECT count(*) AS n FROM corpus VERSION AS OF {killed['latest_corpus']} UNION ALL "
        f"SELECT count(*) AS n FROM `corpus` version as of {killed['s1'].table_versions['corpus']}"
    )
    rows, _ = _json(capsys, ["sql", "--lake", lake, "--format", "json", query])
    assert [r["n"] for r in rows] == [NIGHT2_CORPUS, NIGHT1_CORPUS]
    # `runs` is the ledger, never pinned: the killed night shows as still running
    rows, _ = _json(capsys, ["sql", "--lake", lake, "--format", "json", "SELECT crawl_id, status FROM runs"])
    assert sorted((r["crawl_id"], r["status"]) for r in rows) == [("n1", "success"), ("n2", "running")]


@on_the_killed_lake
def test_export_writes_the_previous_night(
    killed: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = str(killed["lake"])
    assert main(["export", "--lake", lake, "--out", str(tmp_path / "published"), "--quiet"]) == 0
    manifest = json.loads((tmp_path / "published" / "manifest.json").read_text())
    assert manifest["documents"] == NIGHT1_CORPUS
    assert manifest["source"]["version"] == killed["s1"].table_versions["corpus"]
    assert manifest["source"]["latest_version"] == killed["latest_corpus"]

    assert main(["export", "--lake", lake, "--out", str(tmp_path / "latest"), "--quiet", "--latest-commit"]) == 0
    manifest = json.loads((tmp_path / "latest" / "manifest.json").read_text())
    assert (manifest["documents"], manifest["source"]["version"]) == (NIGHT2_CORPUS, killed["latest_corpus"])
    capsys.readouterr()


@on_the_killed_lake
def test_diff_ends_at_the_published_corpus_by_default(
    killed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    lake, v1 = str(killed["lake"]), str(killed["s1"].table_versions["corpus"])
    assert main(["diff", "--lake", lake, v1]) == 0
    assert f"corpus {v1} -> {v1}: 0 added, 0 removed, 0 changed" in capsys.readouterr().out

    rows, err = _json(capsys, ["diff", "--lake", lake, v1, "--latest-commit", "--format", "json"])
    assert f"corpus {v1} -> {killed['latest_corpus']}: 1 added, 0 removed, 0 changed" in err
    # added by a night that never decided it: no decision explains it
    assert [(r["change"], r["decision"]) for r in rows] == [("added", None)]


@on_the_killed_lake
def test_report_shows_the_previous_night_and_the_killed_one_on_request(
    killed: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake, s1 = str(killed["lake"]), killed["s1"]
    assert main(["report", "--lake", lake, "--out", str(tmp_path / "published.html")]) == 0
    assert f"(run {s1.run_id}, crawl n1, success)" in capsys.readouterr().out

    assert main(["report", "--lake", lake, "--out", str(tmp_path / "latest.html"), "--latest-commit"]) == 0
    out = capsys.readouterr().out
    killed_run = out.split("(run ", 1)[1].split(",", 1)[0]
    assert f"(run {killed_run}, crawl n2, running)" in out
    # the killed night committed its scores before its corpus: read at the latest commits, its page shows them; read
    # as published (the night named by --run-id), they are not there yet
    unscored = "No document was scored in this run."
    assert unscored not in (tmp_path / "latest.html").read_text(encoding="utf-8")
    assert main(["report", "--lake", lake, "--run-id", killed_run, "--out", str(tmp_path / "killed.html")]) == 0
    assert unscored in (tmp_path / "killed.html").read_text(encoding="utf-8")
    capsys.readouterr()


@on_the_killed_lake
def test_a_rerun_publishes_the_new_night(
    killed: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "lake"
    shutil.copytree(killed["lake"], root)  # Delta logs hold relative paths: the copy is a lake of its own
    cfg = load_config(None, {**SETS, "tracking.experiment": "rerun"})
    s2 = run_pipeline(root, killed["night2"], cfg, crawl_id="n2")
    assert s2.status == "success"

    (seen,), err = _json(capsys, ["sql", "--lake", str(root), "--format", "json", COUNTS])
    assert seen == {"corpus": NIGHT2_CORPUS, "decisions": NIGHT2_DECISIONS, "undecided": 0}
    assert "published state" not in err  # nothing left out: the published state is the latest
    v1 = str(killed["s1"].table_versions["corpus"])
    assert main(["diff", "--lake", str(root), v1]) == 0
    assert f"corpus {v1} -> {s2.table_versions['corpus']}: 1 added, 0 removed, 0 changed" in capsys.readouterr().out
    assert main(["export", "--lake", str(root), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["documents"] == NIGHT2_CORPUS
    assert main(["report", "--lake", str(root), "--out", str(tmp_path / "r.html")]) == 0
    assert f"(run {s2.run_id}, crawl n2, success)" in capsys.readouterr().out


@on_the_killed_lake
def test_a_repair_does_not_publish_half_a_night(
    killed: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`curate repair` closes the killed night's `running` row and records itself in `runs`; the lake it leaves
    holds a corpus document without its decision, so readers keep night 1 until a run decides it."""
    root = tmp_path / "lake"
    shutil.copytree(killed["lake"], root)
    assert main(["repair", "--lake", str(root)]) == 0
    out = capsys.readouterr().out
    assert "not published yet" in out and "1 corpus row(s) have no decision yet" in out
    (seen,), _ = _json(capsys, ["sql", "--lake", str(root), "--format", "json", COUNTS])
    assert seen == {"corpus": NIGHT1_CORPUS, "decisions": NIGHT1_DECISIONS, "undecided": 0}
    rows, _ = _json(capsys, ["sql", "--lake", str(root), "--format", "json", "SELECT command, status FROM runs"])
    assert sorted((r["command"], r["status"]) for r in rows) == [
        ("repair", "success"),
        ("run", "failed"),
        ("run", "success"),
    ]


@pytest.mark.slow  # a Jupyter kernel
def test_the_notebook_reads_the_previous_night(killed: dict[str, Any], jupyter_env: dict[str, str]) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(EXPLORE, as_version=4)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**jupyter_env, "CURATE_LAKE": str(killed["lake"]), "MPLBACKEND": "agg"}.items():
            mp.setenv(key, value)
        mp.delenv("CURATE_LATEST_COMMIT", raising=False)
        NotebookClient(
            nb, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(EXPLORE.parent)}}
        ).execute()
    actions, _ = displayed(nb, "cell-05")
    assert int(actions["documents"].sum()) == NIGHT1_DECISIONS
    v1, latest = killed["s1"].table_versions["corpus"], killed["latest_corpus"]
    history, _ = displayed(nb, "cell-11")
    # time travel still reaches the killed night's corpus version; the comparison stops at the published one
    assert dict(zip(history["version"], history["documents"], strict=True))[latest] == NIGHT2_CORPUS
    assert printed(nb, "cell-12").startswith(f"corpus v{v1}: {NIGHT1_CORPUS} documents -> v{v1}: {NIGHT1_CORPUS}")


@on_the_killed_lake
def test_a_published_handle_only_reads(killed: dict[str, Any], spark: Any) -> None:
    lake = Lake(killed["lake"], spark).published()
    assert lake.read_version("corpus") == killed["s1"].table_versions["corpus"]
    assert lake.read("corpus").count() == NIGHT1_CORPUS
    # every table the killed night committed to before it died, never `decisions` (it died before that commit)
    assert {"raw_docs", "scores", "corpus"} <= set(lake.unpublished()) and "decisions" not in lake.unpublished()
    with pytest.raises(LakeError, match="only reads"):
        lake.append(lake.read("corpus"), "corpus")


# --- the pure parts, no engine ---


def test_the_pinned_tables_are_the_tables_a_night_publishes() -> None:
    assert set(PINNED) == set(publish.KEYS) - {publish.REDACT_BRONZE}


def test_the_published_state_is_the_last_good_row() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def row(status: str, minutes: int, **versions: int) -> dict[str, Any]:
        return {"status": status, "table_versions": versions, "started_at": t0 + timedelta(minutes=minutes)}

    assert published_versions([]) == {}  # no runs at all: nothing to pin by, read the latest
    nothing = published_versions([row("running", 0)])
    assert set(nothing) == set(PINNED) and set(nothing.values()) == {None}  # nothing published yet
    rows = [
        row("success", 0, corpus=1, decisions=1),
        row("success", 10, corpus=3, decisions=2, runs=4),
        row("failed", 20, corpus=4, decisions=2),  # a failed run records its versions too: never published
        {**row("running", 30), "table_versions": {}},
    ]
    pins = published_versions(rows)
    assert (pins["corpus"], pins["decisions"], pins["revisions"]) == (3, 2, None)
    assert "runs" not in pins
    # an iteration round and a restore publish too; a restore to an older state moves the pins back
    assert published_versions([*rows, row("published", 40, corpus=5)])["corpus"] == 5
    assert published_versions([*rows, {**row("success", 50, corpus=6), "finished_at": t0}])["corpus"] == 3


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT * FROM corpus VERSION AS OF 3", "SELECT * FROM delta.`/l/corpus` VERSION AS OF 3"),
        (
            "select * from `Corpus`  timestamp as of '2026-01-01'",
            "select * from delta.`/l/corpus`  timestamp as of '2026-01-01'",
        ),
        (
            "SELECT * FROM corpus FOR SYSTEM_VERSION AS OF 2 c",
            "SELECT * FROM delta.`/l/corpus` FOR SYSTEM_VERSION AS OF 2 c",
        ),
        ("SELECT * FROM corpus", "SELECT * FROM corpus"),
        ("SELECT * FROM runs VERSION AS OF 1", "SELECT * FROM runs VERSION AS OF 1"),  # not pinned: a catalog table
        ("SELECT 'corpus VERSION AS OF 1' FROM corpus", "SELECT 'corpus VERSION AS OF 1' FROM corpus"),
        ("SELECT 1 -- corpus VERSION AS OF 1\nFROM corpus", "SELECT 1 -- corpus VERSION AS OF 1\nFROM corpus"),
        ("SELECT * FROM db.corpus VERSION AS OF 1", "SELECT * FROM db.corpus VERSION AS OF 1"),
        ("SELECT * FROM my_corpus VERSION AS OF 1", "SELECT * FROM my_corpus VERSION AS OF 1"),
    ],
)
def test_time_travel_on_a_pinned_name_reaches_the_delta_table(query: str, expected: str) -> None:
    assert time_travel_to_paths(query, {"corpus": "/l/corpus"}) == expected
