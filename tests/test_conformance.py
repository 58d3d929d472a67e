"""Conformance: the stage transforms give the same answers on classic (JVM) PySpark as on Sail.

Classic PySpark has no Delta JARs here, so both engines read the same JSONL and Parquet input. Everything
that decides a document's fate runs on both (tests/conformance_job.py): parsing in mapInPandas, quality
metrics and reasons, exact dedup against an earlier crawl, principle flags and the decision step with its
hash-based retain sample. Each engine runs in its own process (see conformance_job's docstring).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import ARTICLES, BAD_LINES, jsonl_lines, write_jsonl

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="classic PySpark needs a JVM")
ROOT = Path(__file__).resolve().parents[1]
# this test process runs Sail, which sets the Connect flag; the engine processes must not inherit it
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE")}
# The JVM compiles with C1 only and collects garbage on one thread: a JVM that lives a minute on a few kilobytes
# spends most of its CPU in the C2 compiler's and the parallel collector's threads (on 2 cores: 71 s -> 50 s for the
# classic job). Neither changes what Spark computes.
CLEAN_ENV["JAVA_TOOL_OPTIONS"] = " ".join(
    filter(None, [CLEAN_ENV.get("JAVA_TOOL_OPTIONS"), "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"])
)


def _inputs(tmp: Path) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = [
        *ARTICLES,
        ("https://mirror.example/1", ARTICLES[0][1].upper() + "!!"),  # exact duplicate after normalisation
        ("https://old.example/copy", ARTICLES[1][1]),  # duplicate of an earlier crawl's document
        ("https://short.example", "Too short to be a page."),
        ("https://hash.example", " ".join(["#trend"] * 80)),
        ("https://cyrillic.example", "Это документ на русском языке, и в нём много слов. " * 12),
        ("https://ellipsis.example", " ".join(["and so the story went on..."] * 15)),
    ]
    crawl = write_jsonl(tmp / "crawl.jsonl", jsonl_lines(docs) + list(BAD_LINES.values()))
    prior = tmp / "prior.parquet"
    pq.write_table(pa.table({"doc_id": ["earlier-1"], "crawl_id": ["2026-10-31"], "text": [ARTICLES[1][1]]}), prior)
    return crawl, prior


def _run(engine: str, crawl: Path, prior: Path, out: Path) -> dict[str, list[dict[str, object]]]:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.conformance_job", engine, str(crawl), str(prior), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=CLEAN_ENV,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_transforms_agree_between_sail_and_classic(tmp_path: Path) -> None:
    crawl, prior = _inputs(tmp_path)
    on_sail = _run("sail", crawl, prior, tmp_path / "sail.json")
    on_classic = _run("classic", crawl, prior, tmp_path / "classic.json")
    assert len(on_sail["raw"]) == 9 and len(on_sail["parsed"]) == 9 + len(BAD_LINES)
    for name in on_sail:
        assert on_sail[name] == on_classic[name], name
    actions = {r["action"] for r in on_sail["decisions"]}
    reasons = {x for r in on_sail["decisions"] for x in r["reasons"]}
    # the input exercises the branches that matter
    assert {"drop", "keep", "tag"} <= actions
    assert {r["weight"] for r in on_sail["decisions"]} == {0.0, 1.0, 2.0}  # upsampled by the positive principle
    assert {"exact_duplicate", "gopher_short_doc", "gopher_too_many_hashes"} <= reasons
    assert {r["dup_kind"] for r in on_sail["dedup"]} == {None, "exact_duplicate", "near_duplicate"}
    assert {r["dup_of"] for r in on_sail["dedup"]} >= {"earlier-1"}


def test_classic_refuses_to_share_a_process_with_connect(spark) -> None:
    from pipelines.core.config import EngineConfig
    from pipelines.core.engine import EngineError, spark_session

    with pytest.raises(EngineError, match="new process"), spark_session(EngineConfig(kind="classic")):
        pass


def test_classic_without_delta_jars_says_what_to_do(tmp_path: Path) -> None:
    crawl = write_jsonl(tmp_path / "c.jsonl", jsonl_lines())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "--engine",
            "classic",
            "--lake",
            str(tmp_path / "lake"),
            "--input",
            str(crawl),
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=CLEAN_ENV,
    )
    assert proc.returncode == 2
    assert "curate: error: classic PySpark here has no Delta Lake JARs" in proc.stderr
