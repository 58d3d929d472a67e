"""A killed run leaves no debris behind for long: the embedded LLM server dies with the process that started it.
(The next writer marking a killed run's `running` row and MLflow run failed and removing its staging folder is
checked on the killed writer of tests/test_writer_lock.py, which this module once killed a second time.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


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
