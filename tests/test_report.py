"""`curate report`: the HTML page about a run, checked in a real headless Chromium, and the copy every successful
`curate run` attaches to its MLflow run.

Two nights on a tiny lake. The expected numbers are written out from the crawl files below, not read from the
report code: night 1 has 2 articles and 1 malformed line; night 2 has 5 documents (one already ingested on night 1,
an exact duplicate pair, a page too short for the quality rules, a council report whose insult is excised) and 3
malformed lines.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from pipelines.chains.run import run_pipeline
from pipelines.cli import main
from pipelines.core.config import load_config
from pipelines.core.execute import RunSummary
from pipelines.core.lake import Lake
from pipelines.core.progress import Progress
from pipelines.ops.report import log_report, render
from pipelines.ops.report_data import ReportData, RevisionSample, TrendPoint
from tests.fixtures import ARTICLES, BAD_LINES, curate_in_process, jsonl_lines, retuned_constitution, write_jsonl
from tests.test_revision import REPORT

# Documents are untrusted: this one carries markup that would run if the page did not escape it.
PAYLOAD = "The council's page once showed <script>document.title='pwned'</script> by mistake."
COUNCIL = f"{REPORT} {PAYLOAD}"
SHORT = "Too short to be a page."
PRINCIPLES = ["toxicity", "violence", "deception", "misaligned_ai", "aligned_ai"]  # the packaged constitution's
# the nightly chain's gates (pipelines/*.py `gates`): a successful run passed every one
GATES = {
    "ingest",
    "pending",
    "quality",
    "secrets",
    "pii",
    "pii_table",
    "dedup",
    "decontaminate",
    "scores",
    "decisions",
    "corpus",
}


def settings(constitution: Path) -> dict[str, object]:
    return {
        # toxicity revised from 0.5 (the packaged teacher, stack:toxic, gives the council report 0.61 and its clean
        # sentences at most 0.30)
        "classify.constitution": str(constitution),
        "revise.method": "excise",  # no LLM: the insult is cut out
        "engine.shuffle_partitions": 2,
        "quality.c4.min_num_sentences": 3,
    }


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("report")
    lake = tmp / "lake"
    constitution = retuned_constitution(
        tmp / "constitution.yaml", "toxicity", revise_threshold=0.5, filter_threshold=0.9999, span_threshold=0.5
    )
    n1 = write_jsonl(tmp / "n1.jsonl", [*jsonl_lines(ARTICLES[:2]), BAD_LINES["malformed_json"]])
    s1 = run_pipeline(lake, n1, load_config(None, settings(constitution)), crawl_id="n1")
    docs = [
        ARTICLES[0],  # already ingested on night 1
        ARTICLES[2],
        ("https://mirror.example/bread", ARTICLES[2][1]),  # exact duplicate of the line above
        ("https://council.example/1", COUNCIL),  # revised: the insult excised
        ("https://tiny.example/", SHORT),  # dropped by the quality rules
    ]
    bad = [BAD_LINES["malformed_json"], BAD_LINES["empty_text"], BAD_LINES["wrong_type:text"]]
    n2 = write_jsonl(tmp / "n2.jsonl", jsonl_lines(docs) + bad)
    sets = [x for k, v in settings(constitution).items() for x in ("--set", f"{k}={v}")]
    # night 2 through `curate run`'s entry point (in this process: one of its own only loaded the imports and models
    # again), night 1 through run_pipeline: both paths attach the report
    assert main(["run", "--lake", str(lake), "--input", str(n2), "--crawl-id", "n2", "--quiet", *sets]) == 0
    return {"tmp": tmp, "lake": lake, "s1": s1}


def _tree(text: str) -> Any:
    return lxml.html.fromstring(text)


def _number(tree: Any, xpath: str) -> int:
    (cell,) = tree.xpath(xpath)
    return int(cell.text_content().replace(",", "").strip())


def funnel(tree: Any) -> dict[str, int]:
    return {
        row.get("id").removeprefix("funnel-"): int(row.xpath("./td[2]")[0].text_content().replace(",", ""))
        for row in tree.xpath("//tr[starts-with(@id, 'funnel-')]")
    }


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("no chromium binary in CI: `make test` installs Debian's chromium when run as root")
    pytest.skip("no chromium binary on PATH: apt-get install chromium (`make test` does it when run as root)")


def browser(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *flags]
    return subprocess.run([*cmd, page.resolve().as_uri()], capture_output=True, text=True, timeout=180, check=True)


def test_the_page_in_a_real_browser(nights: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "night2.html"
    code, out, _ = curate_in_process(capsys, "report", "--lake", str(nights["lake"]), "--out", str(page))
    assert code == 0
    assert "crawl n2, success" in out  # the latest successful run, by default

    dom = browser(page, tmp_path / "profile", "--dump-dom").stdout
    tree = _tree(dom)
    assert tree.xpath("string(//b[@id='crawl-id'])") == "n2"
    f = funnel(tree)
    assert {k: f[k] for k in ("records", "quarantined", "documents", "already_ingested", "decided")} == {
        "records": 8,
        "quarantined": 3,
        "documents": 5,
        "already_ingested": 1,
        "decided": 4,
    }
    assert (f["quarantine-malformed_json"], f["quarantine-empty_text"], f["quarantine-wrong_type:text"]) == (1, 1, 1)
    assert (f["dropped"], f["dropped-quality"], f["dropped-dedup"]) == (2, 1, 1)
    assert (f["revised"], f["tagged"], f["kept"], f["published"]) == (1, 0, 1, 2)
    assert _number(tree, "//tr[@data-stage='dedup'][@data-reason='exact_duplicate']/td[3]") == 1
    assert {r.get("data-stage") for r in tree.xpath("//tr[@data-stage]")} == {"quality", "dedup"}

    # the excision, side by side; the document's markup is text on the page, not an element
    (rev,) = tree.xpath("//div[@class='rev']")
    assert "excise" in rev.text_content() and tree.xpath("string(//tr[@data-method='excise']/td[3])") == "1"
    original, revised = rev.xpath(".//pre[@class='original']")[0], rev.xpath(".//pre[@class='revised']")[0]
    assert PAYLOAD in original.text_content() and PAYLOAD in revised.text_content()
    assert "worthless idiot" in original.text_content() and "worthless idiot" not in revised.text_content()
    assert "worthless idiot" in " ".join(d.text_content() for d in original.xpath(".//del"))
    assert not tree.xpath("//script") and tree.xpath("string(//title)").startswith("curate run ")

    # histograms with the thresholds of the lake's constitution (toxicity retuned), cascade, gates, trend
    assert [d.get("data-principle") for d in tree.xpath("//div[@data-principle]")] == PRINCIPLES
    toxicity = tree.xpath("string(//div[@data-principle='toxicity'])")
    assert "toxicity (2 scored)" in toxicity and "revise 0.5" in toxicity and "filter 0.9999" in toxicity
    assert "revise 0.75" in tree.xpath("string(//div[@data-principle='violence'])")
    assert _number(tree, "//tr[@data-principle='toxicity']/td[2]") == 2  # both scored documents met the teacher
    assert {g.get("data-gate") for g in tree.xpath("//tr[@data-gate]")} == GATES
    assert tree.xpath("string(//p[@id='gates-passed'])") == f"{len(GATES)} gate(s) passed."
    trend = [[c.text_content() for c in row.xpath("./td")] for row in tree.xpath("//tr[@data-run-id]")]
    assert [(r[0], *r[2:]) for r in trend] == [("n1", "3", "2", "0", "1"), ("n2", "8", "2", "2", "3")]
    assert len(tree.xpath("//svg//polyline")) == 4  # records, published, dropped, quarantined over two nights

    # self-contained: nothing to fetch
    html = page.read_text()
    assert "src=" not in html and "href=" not in html and "url(" not in html and "@import" not in html

    shot = tmp_path / "night2.png"
    browser(page, tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,3000", f"--screenshot={shot}")
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1280, 3000)
        assert len(img.convert("RGB").getcolors(1 << 20) or []) > 50  # drawn, not a blank page


def test_every_successful_run_logs_its_report_to_mlflow(nights: dict[str, Any], tmp_path: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{nights['lake'] / '_state' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    by_crawl = {r.data.params["crawl_id"]: r for r in runs}
    assert set(by_crawl) == {"n1", "n2"}
    for crawl, records in (("n1", 3), ("n2", 8)):  # n1 from run_pipeline, n2 from `curate run`
        run = by_crawl[crawl]
        assert "report.html" in {a.path for a in client.list_artifacts(run.info.run_id)}
        local = client.download_artifacts(run.info.run_id, "report.html", str(tmp_path))
        tree = _tree(Path(local).read_text())
        assert tree.xpath("string(//b[@id='crawl-id'])") == crawl
        assert funnel(tree)["records"] == records


def test_an_earlier_run_by_id(nights: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = nights["s1"].run_id
    page = tmp_path / "n1.html"
    assert main(["report", "--lake", str(nights["lake"]), "--run-id", run_id, "--out", str(page)]) == 0
    assert f"run {run_id}, crawl n1, success" in capsys.readouterr().out
    tree = _tree(page.read_text())
    f = funnel(tree)
    assert (f["records"], f["quarantined"], f["decided"], f["dropped"], f["published"]) == (3, 1, 2, 0, 2)
    assert not tree.xpath("//tr[@data-stage]") and not tree.xpath("//div[@class='rev']")
    # the trend stops at the run reported on; its thresholds are its own constitution's (found through MLflow)
    assert [r.get("data-run-id") for r in tree.xpath("//tr[@data-run-id]")] == [run_id]
    assert "filter 0.9999" in tree.xpath("string(//div[@data-principle='toxicity'])")


def test_bad_arguments_are_one_line_errors(
    nights: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = str(nights["lake"])
    cases = [
        (["--lake", str(tmp_path / "nowhere")], "no lake at"),
        (["--lake", lake, "--run-id", "x' OR '1'='1"], "not a run id"),
        (["--lake", lake, "--out", str(tmp_path / "missing" / "r.html")], "does not exist"),
        (["--lake", lake, "--run-id", "20990101T000000Z-deadbeef"], "no run 20990101T000000Z-deadbeef in"),
    ]
    for args, message in cases:
        assert main(["report", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "missing").exists()


def test_a_report_failure_never_fails_the_run(
    nights: dict[str, Any], spark: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from pipelines.core.constitution import load_constitution

    cfg = load_config(None, {})
    s1 = nights["s1"]
    # a run the lake has no row for: the report cannot be written, the (finished) run must not notice
    ghost = RunSummary("20990101T000000Z-deadbeef", "success", "n1", mlflow_run_id=s1.mlflow_run_id)
    with caplog.at_level(logging.WARNING, logger="pipelines.ops.report"):
        log_report(Lake(nights["lake"], spark), ghost, load_constitution(None), cfg.tracking, Progress(enabled=False))
    assert "report was not logged" in caplog.text and "no run 20990101T000000Z-deadbeef" in caplog.text
    assert "no run 20990101T000000Z-deadbeef" in ghost.notes["report"]


def test_untrusted_strings_are_escaped_everywhere() -> None:
    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    run = {
        "run_id": "r1",
        "status": "failed_gate",
        "crawl_id": evil,
        "input_path": evil,
        "engine": evil,
        "config_hash": evil,
        "mlflow_run_id": evil,
        "error": f"gate 'ingest' failed: {evil}",
    }
    counts = {"records": 2, "quarantined": 1, f"quarantine:{evil}": 1, f"cascade:{evil}:teacher": 1, f"gate:{evil}": 3}
    sample = RevisionSample(evil, evil, evil, [evil], f"a {evil} b", f"a b {evil}", 0.9, 0.1, 0.8, [evil], evil)
    data = ReportData(
        run=run,
        counts=counts,
        constitution=None,
        constitution_source=evil,
        drops={(evil, evil): 1},
        drop_stages={evil: 1},
        hists={evil: [1] * 20},
        decided_by={evil: {"teacher": 1}},
        revision_statuses={(evil, evil): 1},
        revisions=[sample],
        trend=[TrendPoint("r1", evil, None, 2, 1, 1, 1)],
        notes=[evil],
    )
    page = render(data)
    tree = _tree(page)
    assert not tree.xpath("//img | //script | //*[@onerror] | //*[@src]")
    assert "<script>alert(2)</script>" in tree.xpath("string(//div[@id='gate-failure'])")
    assert tree.xpath("string(//b[@id='crawl-id'])") == evil
    (rev,) = tree.xpath("//div[@class='rev']")
    assert evil in rev.xpath("string(.//pre[@class='original'])")
    assert evil in rev.xpath("string(.//pre[@class='revised'])")
