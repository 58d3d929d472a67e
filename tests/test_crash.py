"""A run killed mid-way (SIGKILL, a real crash, no fakes) leaves the published corpus as it was, and the rerun
converges to exactly what an uninterrupted run publishes, with every document accounted for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.chains.run import run_pipeline
from pipelines.core.config import load_config
from pipelines.core.execute import check_accounting
from pipelines.core.lake import Lake
from tests.test_pipeline import night1, night2

ROOT = Path(__file__).resolve().parents[1]
SETS = ["--set", "revise.enabled=false", "--set", "engine.shuffle_partitions=2"]
CFG = load_config(None, {"revise.enabled": False, "engine.shuffle_partitions": 2})


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


@pytest.mark.parametrize("kill_after", ["ok dedup", "ok gate: corpus"])
def test_killed_run_then_rerun_converges(spark, tmp_path: Path, kill_after: str) -> None:
    clean_dir, crash_dir = tmp_path / "clean", tmp_path / "crash"
    for d in (clean_dir, crash_dir):
        run_pipeline(d, night1(tmp_path), CFG, crawl_id="n1")
    run_pipeline(clean_dir, night2(tmp_path), CFG, crawl_id="n2")
    clean, crash = Lake(clean_dir, spark), Lake(crash_dir, spark)
    corpus_before = _corpus(crash)
    version_before = crash.version("corpus")

    assert _run_and_kill(crash_dir, night2(tmp_path), kill_after) == -signal.SIGKILL
    if kill_after == "ok dedup":  # killed before publishing: the published corpus is exactly as it was
        assert crash.version("corpus") == version_before and _corpus(crash) == corpus_before
        # bronze was written, so two new documents await a decision
        assert check_accounting(crash)["unaccounted"] == 2
        # the killed run is visible as still `running`, so a scheduler or a person can see it died
        assert [r.status for r in crash.read("runs").where("crawl_id = 'n2'").collect()] == ["running"]

    summary = run_pipeline(crash_dir, night2(tmp_path), CFG, crawl_id="n2")
    assert summary.status == "success" and summary.counts["unaccounted"] == 0
    assert _corpus(crash) == _corpus(clean)
    decided = lambda lake: sorted((r.doc_id, r.action, tuple(r.reasons)) for r in lake.read("decisions").collect())  # noqa: E731
    assert decided(crash) == decided(clean)
