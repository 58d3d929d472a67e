"""A killed run leaves no debris behind for long: the next writer marks its `running` row and its MLflow run
failed and removes its staging folder; the embedded LLM server dies with the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from deltalake import DeltaTable

from tests.fixtures import ARTICLES, curate_process, jsonl_lines, write_jsonl

SETTINGS = ["--set", "revise.enabled=false", "--set", "tracking.experiment=debris-test"]


def _runs(lake: Path) -> dict[str, dict[str, object]]:
    return {r["run_id"]: r for r in DeltaTable(str(lake / "runs")).to_pyarrow_table().to_pylist()}


def test_the_next_run_closes_what_a_killed_run_left_open(tmp_path: Path) -> None:
    import mlflow

    lake = tmp_path / "lake"
    night1 = write_jsonl(tmp_path / "n1.jsonl", jsonl_lines())
    killed = curate_process("run", "--lake", str(lake), "--input", str(night1), *SETTINGS, cwd=tmp_path)
    deadline = time.monotonic() + 180
    staging = lake / "_state" / "staging"
    # killed once its `running` row, its MLflow run and some staged data exist
    while not (
        (lake / "runs" / "_delta_log").is_dir()
        and staging.is_dir()
        and any(d.is_dir() and any(d.iterdir()) for d in staging.iterdir())
    ):
        assert killed.poll() is None, killed.communicate()
        assert time.monotonic() < deadline, "the run never reached its first staged stage"
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    (dead_id,) = _runs(lake)
    assert _runs(lake)[dead_id]["status"] == "running"  # what a SIGKILL leaves

    night2 = write_jsonl(tmp_path / "n2.jsonl", jsonl_lines([(u + "?2", t + " Second.") for u, t in ARTICLES]))
    rerun = curate_process("run", "--lake", str(lake), "--input", str(night2), *SETTINGS, cwd=tmp_path)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-2000:]
    assert f"marked 1 abandoned run(s) failed: {dead_id}" in out + err
    runs = _runs(lake)
    assert runs[dead_id]["status"] == "failed" and "abandoned" in str(runs[dead_id]["error"])
    assert runs[dead_id]["finished_at"] is not None
    assert {r["status"] for k, r in runs.items() if k != dead_id} == {"success"}
    assert not any(staging.iterdir())  # neither the dead run's nor the finished run's staging is left
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{lake / '_state' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("debris-test")
    dead = client.search_runs([exp.experiment_id], f"tags.`curate.run_id` = '{dead_id}'")
    assert len(dead) == 1 and dead[0].info.status == "FAILED"
    assert not client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")


def test_a_child_started_with_die_with_parent_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    """The mechanism the embedded LLM server's process is started with (udfs/llm_server.py)."""
    code = (
        "import subprocess, sys, time\n"
        "from udfs.llm_server import die_with_parent\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True,\n"
        "                     preexec_fn=die_with_parent)\n"
        "print(p.pid, flush=True); time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(child, 0)  # alive
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # a zombie until reaped by init is dead too
        if Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0] == "Z":
            break
        assert time.monotonic() < deadline, "the child outlived its SIGKILLed parent"
        time.sleep(0.1)
