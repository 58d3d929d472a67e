"""A test hook for the crash tests (tests/test_faults.py): `CURATE_KILL_AT=<point>` makes the process SIGKILL its
own process group when it reaches the named point, a real crash with no chance to clean up, exactly like the OOM
killer or a lost node. Never set in production. Unset, `kill_point` costs one comparison.

Points, in the order a run reaches them (see pipelines/core/execute.py and pipelines/core/publish.py):

- `<stage>:start` before a stage runs, `<stage>:staged` when its output is materialised and counted,
  `<stage>:gated` when its gates have passed (stage names as in the chain: `ingest_v2`, `quality_v3`, ...);
- `staged:<name>` after each staging write under `_state/staging/<run_id>` (inside the long stages: the quality
  metrics, the dedup batch, the classifier's scores, the revision outcomes, ...);
- `ingest:batch` inside the parsing task, after it handed its first batch of records to the writer;
- `bronze:<table>` after each bronze commit, `publish:<table>` after each published table's commit;
- `run:recorded` after the final `runs` row, before the staging folder is removed.
"""

from __future__ import annotations

import os
import signal

ENV = "CURATE_KILL_AT"
_AT = os.environ.get(ENV) or None


def kill_point(name: str) -> None:
    if _AT is not None and name == _AT:
        # The whole group when this process leads it (the tests start the run in a session of its own): a run's
        # helpers (an LLM server, engine workers) die with it, as on a lost machine. Never a shell's group.
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
