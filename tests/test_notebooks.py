"""The user notebooks run top to bottom in a real Jupyter kernel against a lake built by two nightly runs.

nbclient starts an ipykernel from this venv, the notebook reads the lake named by CURATE_LAKE (as a user sets it
before starting Jupyter), and the assertions read what a user sees: the tables it displays, the lines it prints and
the plot it draws. Git keeps the notebooks without outputs; `python notebooks/strip_outputs.py` strips them.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections import Counter
from io import StringIO
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from pipelines.chains.run import run_pipeline
from pipelines.core.config import load_config
from pipelines.core.execute import RunSummary
from tests.fixtures import ARTICLES, BAD_LINES, jsonl_lines, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXPLORE = NOTEBOOKS / "01_explore_a_lake.ipynb"
KERNEL = "curate-stage-test"
# Appended to the executed copy only: what the plot holds (a PNG to the eye) and the thresholds it should show.
PROBE = """\
import json as _json
print("PROBE " + _json.dumps({
    "axes": [[ax.get_title(), sorted(float(line.get_xdata()[0]) for line in ax.get_lines())]
             for ax in fig.axes if ax.get_visible()],
    "thresholds": [[p.name, p.mode, p.revise_threshold, p.filter_threshold] for p in constitution.principles],
}))
"""

NEW_ARTICLE = (
    "https://news.example/library-reopens",
    "The town library reopened on Saturday after a year of repairs to its roof and heating, and more than "
    "four hundred people came through the doors on the first morning. The children's room has moved to the "
    "ground floor, next to a new reading garden that volunteers planted over the spring. Librarians said the "
    "local history collection, which had been stored in the council offices during the work, is back on the "
    "shelves and can be borrowed again from next week. The cafe by the entrance opens at nine. Entry is free.",
)

Lake2 = tuple[Path, RunSummary, RunSummary]


def test_committed_notebooks_have_no_outputs() -> None:
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        assert nb["nbformat"] == 4
        dirty = [
            i
            for i, cell in enumerate(nb["cells"])
            if cell["cell_type"] == "code" and (cell["outputs"] or cell["execution_count"] is not None)
        ]
        assert not dirty, f"{path.name}: cells {dirty} have outputs; run: python notebooks/strip_outputs.py"
        assert nb["metadata"]["kernelspec"]["name"] == "python3", f"{path.name}: run python notebooks/strip_outputs.py"


@pytest.fixture(scope="module")
def two_night_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake2:
    tmp = tmp_path_factory.mktemp("notebook-lake")
    lake = tmp / "lake"
    cfg = load_config(None, {"revise.enabled": False, "engine.shuffle_partitions": 2})
    night1 = write_jsonl(tmp / "night-1.jsonl", [*jsonl_lines(), BAD_LINES["malformed_json"], BAD_LINES["empty_text"]])
    # one article crawled again unchanged, one new
    night2 = write_jsonl(tmp / "night-2.jsonl", jsonl_lines([ARTICLES[0], NEW_ARTICLE]))
    s1 = run_pipeline(lake, night1, cfg, crawl_id="night-1")
    s2 = run_pipeline(lake, night2, cfg, crawl_id="night-2")
    assert s1.status == s2.status == "success"
    return lake, s1, s2


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a kernel of this venv's python, registered and run in a temporary Jupyter home.

    Nothing is read from or written to the user's ~/.local, ~/.jupyter or ~/.ipython (kernelspecs, connection files,
    IPython history), and a user's own `python3` kernelspec cannot send the notebook to another interpreter.
    """
    home = tmp_path_factory.mktemp("jupyter")
    spec = home / "data" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    return {
        "JUPYTER_PATH": str(home / "data"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        # the kernel starts in notebooks/, like Jupyter's; it imports this checkout whatever is installed
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }


@pytest.fixture(scope="module")
def executed_explore(two_night_lake: Lake2, jupyter_env: dict[str, str]) -> nbformat.NotebookNode:
    lake, _, _ = two_night_lake
    nb = nbformat.read(EXPLORE, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in jupyter_env.items():
            mp.setenv(key, value)
        mp.setenv("CURATE_LAKE", str(lake))
        mp.delenv("CURATE_CONSTITUTION", raising=False)
        # ipykernel's own inline backend, as a user gets it: a PNG in the cell's outputs
        mp.delenv("MPLBACKEND", raising=False)
        client = NotebookClient(
            nb, kernel_name=KERNEL, timeout=300, startup_timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        client.execute()  # raises CellExecutionError, with the cell and its traceback, on the first failing cell
    return nb


def cell(nb: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    (found,) = [c for c in nb.cells if c.get("id") == cell_id]
    return found


def displayed(nb: nbformat.NotebookNode, cell_id: str) -> list[pd.DataFrame]:
    """The DataFrames a cell displayed, read back from the HTML a user sees."""
    return [
        pd.read_html(StringIO(out.data["text/html"]), index_col=0)[0]
        for out in cell(nb, cell_id).outputs
        if out.output_type == "display_data" and "text/html" in out.data
    ]


def printed(nb: nbformat.NotebookNode, cell_id: str) -> str:
    return "".join(o.text for o in cell(nb, cell_id).outputs if o.output_type == "stream" and o.name == "stdout")


def test_explore_a_lake_notebook(executed_explore: nbformat.NotebookNode, two_night_lake: Lake2) -> None:
    nb = executed_explore
    _, s1, s2 = two_night_lake
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]

    # the lake the parameter cell named, resolved
    (root,) = [o for o in cell(nb, "cell-01").outputs if o.output_type == "execute_result"]
    assert root.data["text/plain"] == f"PosixPath('{two_night_lake[0].resolve()}')"
    tables = printed(nb, "cell-03").strip().removeprefix("tables: ").split(", ")
    assert {"corpus", "decisions", "quarantine", "scores", "runs"} <= set(tables)
    assert "revisions" not in tables  # revision was off

    # every decided document is counted once, by action; quarantine reasons match the first run's
    actions, reasons = displayed(nb, "cell-05")
    decided = s1.counts["pending"] + s2.counts["pending"]
    assert int(actions["documents"].sum()) == decided == s2.counts["raw_docs_total"]
    # four clean, distinct articles: each kept, with no reason
    counted: Counter[str] = Counter()
    for summary in (s1, s2):
        counted.update({k.split(":", 1)[1]: n for k, n in summary.counts.items() if k.startswith("action:") and n})
    assert dict(zip(actions["action"], actions["documents"], strict=True)) == dict(counted) == {"keep": 4}
    assert list(zip(reasons["action"], reasons["reason"], reasons["documents"], strict=True)) == [("keep", "(none)", 4)]
    quarantine_reasons, quarantine_sample = displayed(nb, "cell-07")
    quarantine = dict(zip(quarantine_reasons["reason"], quarantine_reasons["records"], strict=True))
    assert (
        quarantine
        == {k.split(":", 1)[1]: v for k, v in s1.counts.items() if k.startswith("quarantine:") and v}
        == {"malformed_json": 1, "empty_text": 1}
    )
    assert sorted(quarantine_sample["reason"]) == ["empty_text", "malformed_json"]

    # one score per scored document and principle; the plot: one PNG, one panel per principle with its thresholds
    probe = json.loads(printed(nb, nb.cells[-1].id).removeprefix("PROBE "))
    principles = [name for name, *_ in probe["thresholds"]]
    scored = s1.counts["scored"] + s2.counts["scored"]
    (score_summary,) = displayed(nb, "cell-09")
    assert sorted(score_summary["principle"]) == sorted(principles)
    assert set(score_summary["documents"]) == {scored}
    pngs = [o for o in cell(nb, "cell-09").outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(pngs) == 1
    assert [title for title, _ in probe["axes"]] == [
        f"{name} (mode {mode}, {scored} docs)" for name, mode, *_ in probe["thresholds"]
    ]
    assert [xs for _, xs in probe["axes"]] == [sorted([rev, filt]) for _, _, rev, filt in probe["thresholds"]]

    # corpus sizes per version, read with VERSION AS OF, match what each run reported when it published
    v1, v2 = s1.table_versions["corpus"], s2.table_versions["corpus"]
    assert v1 < v2
    history, runs = displayed(nb, "cell-11")
    sizes = dict(zip(history["version"], history["documents"], strict=True))
    assert (sizes[v1], sizes[v2]) == (s1.counts["corpus_size"], s2.counts["corpus_size"]) == (3, 4)
    assert list(runs["corpus_version"]) == [v1, v2] and list(runs["crawl_id"]) == ["night-1", "night-2"]
    assert (
        printed(nb, "cell-12").strip()
        == f"corpus v{v1}: 3 documents -> v{v2}: 4 documents (1 added, 0 removed, 0 with new text)"
    )
    (added_by_crawl,) = displayed(nb, "cell-12")
    assert dict(zip(added_by_crawl["crawl_id"], added_by_crawl["added"], strict=True)) == {"night-2": 1}

    # no revisions table: the audit cell says so instead of failing; the last cell closed the engine
    assert printed(nb, "cell-14").strip() == "no revisions yet: no run of this lake had documents in a revise band"
    assert printed(nb, "cell-16") == "engine stopped: True\n"


def test_strip_outputs_gives_back_the_committed_notebook(
    executed_explore: nbformat.NotebookNode, tmp_path: Path
) -> None:
    executed = tmp_path / EXPLORE.name
    nb = copy.deepcopy(executed_explore)
    assert nb.cells.pop().source == PROBE
    nbformat.write(nb, executed)
    script = [sys.executable, str(NOTEBOOKS / "strip_outputs.py")]

    check = subprocess.run([*script, "--check", str(executed)], capture_output=True, text=True)
    assert check.returncode == 1
    assert f"strip_outputs.py {executed}" in check.stderr

    stripped = subprocess.run([*script, str(executed)], capture_output=True, text=True)
    assert stripped.returncode == 0, stripped.stderr
    assert executed.read_text(encoding="utf-8") == EXPLORE.read_text(encoding="utf-8")
    assert subprocess.run([*script, "--check", str(executed)]).returncode == 0
