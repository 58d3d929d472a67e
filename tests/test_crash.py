"""A run killed mid-way (SIGKILL, a real crash, no fakes) leaves the published corpus as it was, and the rerun
converges to exactly what an uninterrupted run publishes, with every document accounted for."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.chains.run import run_pipeline
from pipelines.core.config import RunConfig, load_config
from pipelines.core.execute import check_accounting
from pipelines.core.lake import Lake
from tests.test_pipeline import night1, night2

ROOT = Path(__file__).resolve().parents[1]
SETS = ["--set", "revise.enabled=false", "--set", "engine.shuffle_partitions=2"]
SETTINGS = {"revise.enabled": False, "engine.shuffle_partitions": 2}
CFG = load_config(None, SETTINGS)


def _cfg(lake: Path) -> RunConfig:
    """CFG with an MLflow experiment of the lake's own: a copied lake's store names the original's artifact folder
    for the experiments it already has."""
    return load_config(
        None, {"revise.enabled": False, "engine.shuffle_partitions": 2, "tracking.experiment": lake.name}
    )


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The lake after night 1 (copied for every kill) and the clean lake: a copy after an uninterrupted night 2."""
    tmp = tmp_path_factory.mktemp("crash")
    base = tmp / "base"
    assert run_pipeline(base, night1(tmp), CFG, crawl_id="n1").status == "success"
    clean = tmp / "clean"
    shutil.copytree(base, clean)  # Delta logs hold relative paths: the copy is a lake of its own
    n2 = night2(tmp)  # one input file, so the killed runs read the very file the clean run read
    assert run_pipeline(clean, n2, _cfg(clean), crawl_id="n2").status == "success"
    return {"night2": n2, "base": base, "clean": clean}


def _run_and_kill(lake: Path, crawl: Path, kill_after: str) -> int:
    """Start `curate run`, SIGKILL it as soon as the progress line `kill_after` appears; return its status."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "--lake",
            str(lake),
            "--input",
            str(crawl),
            "--crawl-id",
            "n2",
            *SETS,
            "--set",
            f"tracking.experiment={lake.name}",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 240
    for line in proc.stderr:
        if kill_after in line:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "the run never reached the kill point"
    return proc.wait(timeout=60)


def _corpus(lake: Lake) -> dict[str, tuple[str, str]]:
    return {r.doc_id: (r.text, r.action) for r in lake.read("corpus").collect()}


# Killed where a user would see it, by the progress line, without the test hook (pipelines/core/faults.py) that
# tests/test_faults.py kills at: once the documents are ingested and deduplicated, before anything is published.
# (A second kill at "ok gate: corpus" landed anywhere in the publish that follows; tests/test_faults.py kills
# between every two of its commits instead.)
KILL_AFTER = "ok dedup"


def test_killed_run_then_rerun_converges(spark, nights: dict[str, Path], tmp_path: Path) -> None:
    crash_dir = tmp_path / "crash"
    shutil.copytree(nights["base"], crash_dir)
    clean, crash = Lake(nights["clean"], spark), Lake(crash_dir, spark)
    corpus_before = _corpus(crash)
    version_before = crash.version("corpus")

    assert _run_and_kill(crash_dir, nights["night2"], KILL_AFTER) == -signal.SIGKILL
    # killed before publishing: the published corpus is exactly as it was
    assert crash.version("corpus") == version_before and _corpus(crash) == corpus_before
    # bronze was written, so two new documents await a decision
    assert check_accounting(crash)["unaccounted"] == 2
    # the killed run is visible as still `running`, so a scheduler or a person can see it died
    assert [r.status for r in crash.read("runs").where("crawl_id = 'n2'").collect()] == ["running"]

    summary = run_pipeline(crash_dir, nights["night2"], _cfg(crash_dir), crawl_id="n2")
    assert summary.status == "success" and summary.counts["unaccounted"] == 0
    assert _corpus(crash) == _corpus(clean)
    decided = lambda lake: sorted((r.doc_id, r.action, tuple(r.reasons)) for r in lake.read("decisions").collect())  # noqa: E731
    assert decided(crash) == decided(clean)
