"""One writer per lake, with real processes: a second `curate run` on a lake that a first one is writing refuses at
once and names the holder; a writer killed with SIGKILL leaves a lock the next run takes over, and debris (its
`running` row, its MLflow run, its staging folder) that the next run closes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from pipelines.core.writer_lock import LakeBusy, holder, writer_lock
from tests.fixtures import ARTICLES, curate_process, jsonl_lines, write_jsonl

SETTINGS = ["--set", "revise.enabled=false", "--set", "tracking.experiment=lock-test"]


def _wait_held_by(lake: Path, pid: int, proc: subprocess.Popen[str]) -> dict[str, object]:
    deadline = time.monotonic() + 120
    while True:
        h = holder(lake)
        # with its run id: the CLI takes the lock before it imports the run, which then names itself in the record
        if h and h.get("pid") == pid and not h.get("released") and h.get("run_id"):
            return h
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.1)


def test_the_lock_is_reentrant_in_one_process_and_released_after(tmp_path: Path) -> None:
    with writer_lock(tmp_path, "run", "r1"), writer_lock(tmp_path, "iterate"):  # a round inside a command
        assert holder(tmp_path)["run_id"] == "r1"  # type: ignore[index]
    assert holder(tmp_path)["released"] is True  # type: ignore[index]
    with writer_lock(tmp_path, "run", "r2") as note:
        assert note is None  # released properly last time: nothing to take over


def _runs(lake: Path) -> dict[str, dict[str, object]]:
    return {r["run_id"]: r for r in DeltaTable(str(lake / "runs")).to_pyarrow_table().to_pylist()}


def test_a_second_writer_refuses_and_a_killed_writer_is_taken_over_and_its_debris_closed(tmp_path: Path) -> None:
    """One killed writer, three checks: while it writes, a second `curate run` refuses at once and names it; killed
    with SIGKILL once its `running` row, its MLflow run and some staged data exist, it leaves a lock the next run
    takes over; and that run marks its row and its MLflow run failed and removes its staging folder."""
    import mlflow

    lake = tmp_path / "lake"
    night1 = write_jsonl(tmp_path / "n1.jsonl", jsonl_lines())
    night2 = write_jsonl(tmp_path / "n2.jsonl", jsonl_lines([(u + "?v=2", t + " Updated.") for u, t in ARTICLES]))

    first = curate_process("run", "--lake", str(lake), "--input", str(night1), *SETTINGS, cwd=tmp_path)
    h = _wait_held_by(lake, first.pid, first)
    t0 = time.monotonic()
    second = curate_process("run", "--lake", str(lake), "--input", str(night2), *SETTINGS, cwd=tmp_path)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 4, err
    assert time.monotonic() - t0 < 30  # at once: before any engine starts
    line = next(x for x in err.splitlines() if x.startswith("curate: error:"))
    assert f"pid {first.pid}" in line and f"run {h['run_id']}" in line and "`curate run`" in line, line

    staging = lake / "_state" / "staging"
    deadline = time.monotonic() + 180
    while not (
        (lake / "runs" / "_delta_log").is_dir()
        and staging.is_dir()
        and any(d.is_dir() and any(d.iterdir()) for d in staging.iterdir())
    ):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the run never reached its first staged stage"
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    (dead_id,) = _runs(lake)
    assert _runs(lake)[dead_id]["status"] == "running"  # what a SIGKILL leaves

    rerun = curate_process("run", "--lake", str(lake), "--input", str(night2), *SETTINGS, cwd=tmp_path)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-2000:]
    assert "took over the writer lock left by `curate run`" in out + err and f"pid {first.pid}" in out + err
    record = json.loads((lake / "_state" / "writer.lock").read_text())
    assert record["pid"] == rerun.pid and record["released"] is True

    assert f"marked 1 abandoned run(s) failed: {dead_id}" in out + err
    runs = _runs(lake)
    assert runs[dead_id]["status"] == "failed" and "abandoned" in str(runs[dead_id]["error"])
    assert runs[dead_id]["finished_at"] is not None
    assert {r["status"] for k, r in runs.items() if k != dead_id} == {"success"}
    assert not any(staging.iterdir())  # neither the dead run's nor the finished run's staging is left
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{lake / '_state' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lock-test")
    dead = client.search_runs([exp.experiment_id], f"tags.`curate.run_id` = '{dead_id}'")
    assert len(dead) == 1 and dead[0].info.status == "FAILED"
    assert not client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")


def test_writer_lock_raises_lake_busy_in_process_while_another_process_holds_it(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pipelines.core.writer_lock import writer_lock\n"
        f"with writer_lock({str(tmp_path)!r}, 'iterate', 'it-9'):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with (
            pytest.raises(LakeBusy, match=r"`curate iterate` \(run it-9, host .*, pid \d+"),
            writer_lock(tmp_path, "run"),
        ):
            pass
    finally:
        proc.kill()
        proc.wait()
