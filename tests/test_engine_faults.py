"""An engine that is not there fails fast; an engine lost mid-run fails the run cleanly.

Both against real processes: `curate` in a subprocess, and for the lost connection a standalone `sail spark server`
(the same Spark Connect server a cluster deployment runs) that the test kills while the run is in progress.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures import curate_process, free_port, jsonl_lines, write_jsonl

SAIL = Path(sys.executable).parent / "sail"


def test_a_closed_port_fails_within_the_timeout_with_one_line(tmp_path: Path) -> None:
    port = free_port()  # bound and released: nothing listens there
    t0 = time.monotonic()
    crawl = write_jsonl(tmp_path / "in.jsonl", jsonl_lines())
    proc = curate_process(
        "run", "--lake", str(tmp_path / "lake"), "--input", str(crawl), "--remote", f"sc://127.0.0.1:{port}",
        "--set", "engine.connect_timeout_s=3",
        cwd=tmp_path,
    )  # fmt: skip
    _out, err = proc.communicate(timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, err
    assert elapsed < 30, elapsed  # was: ten minutes of silent retries, then a process that never exited
    errors = [line for line in err.splitlines() if line.startswith("curate: error:")]
    assert len(errors) == 1 and "nothing accepts connections" in errors[0] and f":{port}" in errors[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "lake" / "runs").exists()  # nothing started, nothing to clean up


@pytest.mark.skipif(not SAIL.exists(), reason="the sail CLI comes with pysail")
def test_an_engine_lost_mid_run_fails_the_run_and_leaves_no_running_row(tmp_path: Path) -> None:
    from deltalake import DeltaTable

    port = free_port()
    server = subprocess.Popen(
        [str(SAIL), "spark", "server", "--ip", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "RUST_LOG": "error"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        crawl = write_jsonl(tmp_path / "in.jsonl", jsonl_lines())
        lake = tmp_path / "lake"
        run = curate_process(
            "run", "--lake", str(lake), "--input", str(crawl), "--remote", f"sc://127.0.0.1:{port}",
            "--set", "engine.connect_timeout_s=5",
            cwd=tmp_path,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not (lake / "runs" / "_delta_log").is_dir():  # the run has started and written its `running` row
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.2)
        time.sleep(1.0)
        os.killpg(server.pid, signal.SIGKILL)
        killed = time.monotonic()
        out, err = run.communicate(timeout=180)
        assert time.monotonic() - killed < 90, "the run must end soon after its engine is gone"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    assert run.returncode == 3, (out, err)
    assert "lost the connection to the Spark engine" in err and "Traceback" not in err, err
    rows = DeltaTable(str(lake / "runs")).to_pyarrow_table().to_pylist()
    assert len(rows) == 1 and rows[0]["status"] == "failed" and rows[0]["finished_at"] is not None, rows
    assert "UNAVAILABLE" in (rows[0]["error"] or "")
    assert not (lake / "corpus" / "_delta_log").is_dir()  # nothing was published


def test_the_embedded_engine_is_retried_for_minutes_not_the_connect_timeout() -> None:
    # the in-process server can only be slow, not gone; a remote endpoint can be gone (the tests above)
    from pipelines.core.config import EngineConfig
    from pipelines.core.engine import spark_session

    with spark_session(EngineConfig(connect_timeout_s=20)) as spark:
        (policy,) = spark.client.get_retry_policies()  # type: ignore[attr-defined]
    # waits 0.05, 0.2, 0.8, 3.2 s, then 5 s each: 300 s of retrying takes 4 + 59 waits (20 s would take 4 + 3)
    assert policy.max_retries == 63
