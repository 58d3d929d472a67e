"""The user notebooks run top to bottom against a real lake built by two nightly runs, and say what the lake holds.

No Jupyter needed: every code cell is executed in order in one namespace, the way a kernel would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import load_config
from pipelines.execute import RunSummary
from pipelines.run import run_pipeline
from tests.fixtures import ARTICLES, BAD_LINES, jsonl_lines, write_jsonl

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

NEW_ARTICLE = (
    "https://news.example/library-reopens",
    "The town library reopened on Saturday after a year of repairs to its roof and heating, and more than "
    "four hundred people came through the doors on the first morning. The children's room has moved to the "
    "ground floor, next to a new reading garden that volunteers planted over the spring. Librarians said the "
    "local history collection, which had been stored in the council offices during the work, is back on the "
    "shelves and can be borrowed again from next week. The cafe by the entrance opens at nine. Entry is free.",
)


def run_cells(notebook: Path) -> dict[str, Any]:
    """Execute the notebook's code cells in order, in one namespace; return the namespace."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4
    ns: dict[str, Any] = {"__name__": "__main__"}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell["outputs"] == [] and cell["execution_count"] is None, f"cell {i} has outputs: clear them"
        src = "".join(cell["source"])
        exec(compile(src, f"{notebook.name}[cell {i}]", "exec"), ns)
    return ns


@pytest.fixture(scope="module")
def two_night_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunSummary, RunSummary]:
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


def test_explore_a_lake_notebook(two_night_lake: tuple[Path, RunSummary, RunSummary], monkeypatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lake, s1, s2 = two_night_lake
    monkeypatch.setenv("CURATE_LAKE", str(lake))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("CURATE_CONSTITUTION", raising=False)
    try:
        ns = run_cells(NOTEBOOKS / "01_explore_a_lake.ipynb")
    finally:
        plt.close("all")

    # corpus sizes per version, read with VERSION AS OF, match what each run reported when it published
    v1, v2 = s1.table_versions["corpus"], s2.table_versions["corpus"]
    assert v1 < v2
    sizes = ns["corpus_sizes"]
    assert (sizes[v1], sizes[v2]) == (s1.counts["corpus_size"], s2.counts["corpus_size"]) == (3, 4)
    assert (ns["first_version"], ns["latest_version"]) == (v1, v2)
    assert dict(zip(ns["added_by_crawl"]["crawl_id"], ns["added_by_crawl"]["added"], strict=True)) == {"night-2": 1}
    assert list(ns["runs"]["corpus_version"]) == [v1, v2]

    # every decided document is counted once, by action; quarantine reasons match the first run's
    decided = s1.counts["pending"] + s2.counts["pending"]
    assert int(ns["actions"]["documents"].sum()) == decided == s2.counts["raw_docs_total"]
    quarantine = dict(zip(ns["quarantine_reasons"]["reason"], ns["quarantine_reasons"]["records"], strict=True))
    assert (
        quarantine
        == {k.split(":", 1)[1]: v for k, v in s1.counts.items() if k.startswith("quarantine:") and v}
        == {"malformed_json": 1, "empty_text": 1}
    )

    # one score per scored document and principle, in the summary and in the histogram bins alike
    principles = [p.name for p in ns["constitution"].principles]
    scored = s1.counts["scored"] + s2.counts["scored"]
    assert sorted(ns["score_summary"]["principle"]) == sorted(principles)
    assert set(ns["score_summary"]["documents"]) == {scored}
    hist = ns["histogram"]
    assert all(int(hist[hist["principle"] == p]["documents"].sum()) == scored for p in principles)
    # the grid drew each principle's two thresholds
    fig = ns["fig"]
    drawn = [ax for ax in fig.axes if ax.get_visible()]
    assert len(drawn) == len(principles)
    for ax, p in zip(drawn, ns["constitution"].principles, strict=True):
        xs = sorted(line.get_xdata()[0] for line in ax.get_lines())
        assert xs == sorted([p.revise_threshold, p.filter_threshold])

    # revision was off: no revisions table, and the audit cell says so instead of failing
    assert "revisions" not in ns["tables"] and ns["audit"].empty
    assert ns["spark"].is_stopped
