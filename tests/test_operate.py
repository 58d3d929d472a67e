"""`curate diff`, `curate restore` and `curate maintain` on real lakes: two (and three) nightly runs on the embedded
engine, Delta tables read back through delta-rs and the engine, a second writer in a process of its own.

Expected corpora are written out from the crawl inputs (url, text, action, weight, tags, crawl), never computed by
the code under test."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from pipelines.chains.run import run_pipeline
from pipelines.cli import main, pending_crawls
from pipelines.core.config import load_config
from pipelines.core.lake import Lake
from pipelines.core.writer_lock import writer_lock
from pipelines.ops.versions import live_crawls, missing_files, read_runs
from tests.fixtures import ARTICLES, copy_lake, curate_process, jsonl_lines, write_jsonl
from tests.test_pipeline import NIGHT2_NEW, TOXIC, night2

# as tests/test_pipeline.py (its nights pass these rules), without MLflow: lakes here are copied between tests
SETTINGS = {
    "revise.enabled": False,
    "engine.shuffle_partitions": 2,
    "quality.c4.min_num_sentences": 3,
    "quality.min_stop_words": 0,
    "tracking.enabled": False,
}
CFG = load_config(None, SETTINGS)
SET = [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}")]

NIGHT3_NEW = (
    "https://news.example/library",
    "The town library reopened on Saturday after a year of repairs to its roof and the old reading room, which "
    "had been closed since a storm broke several of its tall windows. Volunteers carried the books back from the "
    "school hall where they had been stored, and the librarian said that not a single volume had been lost. "
    "Children queued at the door before it opened to borrow the first stories of the summer. The library will "
    "now stay open until eight in the evening on weekdays.",
)


def corpus_of(*articles: tuple[str, str], crawl: dict[str, str]) -> set[tuple[Any, ...]]:
    """The corpus rows those articles become when every one is kept as is: (url, text, action, weight, tags, crawl)."""
    return {(url, text, "keep", 1.0, (), crawl[url]) for url, text in articles}


NIGHT4_NEW = (
    "https://news.example/market",
    "The weekly market moved back to the square on Friday after the paving work was finished, and the traders "
    "said the first morning was the busiest they had seen since the spring. The council had promised that the "
    "new stones would drain better than the old ones, and the heavy rain before dawn left no puddles at all. "
    "Stalls selling bread, cheese and flowers were sold out before noon. The market will open on Tuesdays too "
    "from next month.",
)


NIGHT1_CORPUS = corpus_of(*ARTICLES, crawl={u: "n1" for u, _ in ARTICLES})
NIGHT2_CORPUS = NIGHT1_CORPUS | corpus_of(NIGHT2_NEW, crawl={NIGHT2_NEW[0]: "n2"})
NIGHT1_RAW_URLS = {u for u, _ in ARTICLES} | {"https://forum.example/t/1"}  # the toxic post is ingested, then dropped
NIGHT2_RAW_URLS = NIGHT1_RAW_URLS | {"https://mirror.example/bread", NIGHT2_NEW[0]}


def corpus_rows(lake: Path, version: int | None = None) -> set[tuple[Any, ...]]:
    rows = DeltaTable(str(lake / "corpus"), version=version).to_pyarrow_table().to_pylist()
    return {(r["url"], r["text"], r["action"], r["weight"], tuple(r["tags"]), r["crawl_id"]) for r in rows}


def raw_urls(lake: Path) -> set[str]:
    return {r["url"] for r in DeltaTable(str(lake / "raw_docs")).to_pyarrow_table().to_pylist()}


def one_error_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if not x.startswith("curate: using the config")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def base(two_night_lake: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the session's two-night lake (tests/conftest.py `two_night_lake`: tests/test_pipeline.py's nights
    and rules, which these SETTINGS repeat, with MLflow on for those two runs only)."""
    return copy_lake(two_night_lake, tmp_path_factory.mktemp("ops"))


def copy_of(base: dict[str, Any], tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    shutil.copytree(base["lake"], lake)  # Delta logs hold relative paths: the copy is a lake of its own
    return lake


def test_restore_brings_night_one_back_then_night_two_runs_again_and_the_restore_undoes(
    base: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = copy_of(base, tmp_path)
    v1, v2 = base["s1"].table_versions["corpus"], base["s2"].table_versions["corpus"]
    assert corpus_rows(lake) == NIGHT2_CORPUS and raw_urls(lake) == NIGHT2_RAW_URLS

    assert main(["restore", "--lake", str(lake), "--version", str(v1), *SET]) == 0
    out = capsys.readouterr().out
    assert corpus_rows(lake) == NIGHT1_CORPUS
    assert raw_urls(lake) == NIGHT1_RAW_URLS  # bronze moved with it: night 2's documents are not ingested any more
    decisions = DeltaTable(str(lake / "decisions")).to_pyarrow_table().to_pylist()
    assert {r["run_id"] for r in decisions} == {base["s1"].run_id} and len(decisions) == 4
    assert "accounting invariant holds (4 ingested documents, 0 unaccounted)" in out
    undo = int(re.search(r"Undo: curate restore --lake \S+ --version (\d+)", out).group(1))  # type: ignore[union-attr]
    assert undo == v2

    # recorded in runs, visible in history, and night 2 counts as not done for catch-up
    (row,) = [r for r in read_runs(Lake(lake)) if r.command == "restore"]
    assert (row.status, row.target_run_id, row.crawl_id) == ("success", base["s1"].run_id, None)
    restored_version = row.table_versions["corpus"]
    assert main(["history", "--lake", str(lake), "--format", "json", "corpus"]) == 0
    top = capsys.readouterr().out.splitlines()[0]
    assert '"operation": "RESTORE"' in top and f"restore to corpus version {v1}" in top and row.run_id in top
    assert live_crawls(read_runs(Lake(lake))) == {"n1"}
    crawls = tmp_path / "crawls"
    for night in ("n1", "n2"):
        (crawls / night).mkdir(parents=True)
    assert [p.name for p in pending_crawls(lake, crawls)[0]] == ["n2"]

    # the diff across the restore names it
    assert main(["diff", "--lake", str(lake), str(v2), str(restored_version), "--format", "json", *SET]) == 0
    captured = capsys.readouterr()
    (removed,) = [json.loads(x) for x in captured.out.splitlines()]
    assert (removed["change"], removed["url"], removed["run_id"]) == ("removed", NIGHT2_NEW[0], row.run_id)
    assert removed["reasons"] == [f"restored to corpus version {v1}"]
    assert "0 added, 1 removed, 0 changed" in captured.err

    # the next nightly run of night 2 proceeds as on the first night 2 and passes its accounting
    again = run_pipeline(lake, night2(base["tmp"]), CFG, crawl_id="n2")
    c = again.counts
    assert again.status == "success"
    assert (c["already_ingested"], c["new_documents"], c["pending"], c["exact_duplicates"]) == (1, 2, 2, 1)
    assert (c["unaccounted"], c["raw_docs_total"], c["corpus_size"]) == (0, 6, 4)
    assert corpus_rows(lake) == NIGHT2_CORPUS

    # undo: the state before the restore comes back (night 2's decisions are the original run's again)
    assert main(["restore", "--lake", str(lake), "--version", str(undo), *SET]) == 0
    capsys.readouterr()
    assert corpus_rows(lake) == NIGHT2_CORPUS and raw_urls(lake) == NIGHT2_RAW_URLS
    decisions = DeltaTable(str(lake / "decisions")).to_pyarrow_table().to_pylist()
    assert {r["run_id"] for r in decisions} == {base["s1"].run_id, base["s2"].run_id} and len(decisions) == 6
    assert live_crawls(read_runs(Lake(lake))) == {"n1", "n2"}


def test_restore_and_diff_refuse_bad_versions_in_one_line(
    base: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = str(base["lake"])
    corpus_before = DeltaTable(f"{lake}/corpus").version()
    assert main(["restore", "--lake", lake, "--version", "99", *SET]) == 2
    assert one_error_line(capsys.readouterr().err) == "curate: error: corpus has no version 99 (corpus versions: 0-2)"
    # version 0 is the empty table night 1 created before it merged: the middle of a run
    assert main(["restore", "--lake", lake, "--version", "0", *SET]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "corpus version 0 is not the end of a successful run" in line and "restorable corpus versions: 1-2" in line
    assert main(["diff", "--lake", lake, "1", "two", *SET]) == 2
    assert (
        one_error_line(capsys.readouterr().err) == "curate: error: not a corpus version: 'two' (corpus versions: 0-2)"
    )
    assert main(["restore", "--lake", lake, "--version", "2", *SET]) == 0  # already there: nothing happens
    assert "nothing to restore" in capsys.readouterr().out
    assert DeltaTable(f"{lake}/corpus").version() == corpus_before


def test_a_second_writer_is_refused_while_the_lake_is_locked(base: dict[str, Any], tmp_path: Path) -> None:
    lake = copy_of(base, tmp_path)
    with writer_lock(lake, "run", "holder-run"):
        for args in (["restore", "--lake", str(lake), "--version", "1", *SET], ["maintain", "--lake", str(lake)]):
            proc = curate_process(*args, cwd=tmp_path)
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 4, err
            line = one_error_line(err)
            assert line.startswith("curate: error: lake") and "run holder-run" in line, line
    assert corpus_rows(lake) == NIGHT2_CORPUS and DeltaTable(str(lake / "corpus")).version() == 2


def test_diff_explains_changes_with_the_decisions_and_revisions_of_the_runs_between(
    spark: Any, base: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A round that re-decides three documents (as `curate iterate` writes it: one corpus MERGE with deletes, its
    decisions, revisions and runs rows): the diff lists each with the decision and revision that explain it."""
    from schemas import TABLES

    root = copy_of(base, tmp_path)
    lake = Lake(root, spark)
    corpus = {
        r["url"]: {**r, "scores": dict(r["scores"] or [])}  # Arrow gives a map as pairs; Spark wants a dict
        for r in DeltaTable(str(root / "corpus")).to_pyarrow_table().to_pylist()
    }
    bread, lighthouse, barrier = (corpus[u] for u, _ in (ARTICLES[2], ARTICLES[1], ARTICLES[0]))
    rid, now = "round-1", datetime.now(UTC)
    shorter = ARTICLES[1][1].rsplit(" Many old towers", 1)[0]
    cols = TABLES["corpus"].fieldNames()
    updates = [
        {**bread, "weight": 2.0, "tags": ["aligned_ai"], "action": "tag", "run_id": rid, "_delete": False},
        {**lighthouse, "text": shorter, "action": "revise", "run_id": rid, "_delete": False},
        {**barrier, "run_id": rid, "_delete": True},
    ]
    from pyspark.sql.types import BooleanType, StructField, StructType

    schema = StructType([*TABLES["corpus"].fields, StructField("_delete", BooleanType())])
    lake.merge_with_deletes(
        spark.createDataFrame([tuple(u[c] for c in [*cols, "_delete"]) for u in updates], schema),
        "corpus",
        ("doc_id",),
        "_delete",
    )
    decisions = [
        (bread["doc_id"], rid, "n1", "tag", ["upsampled:aligned_ai"], "classify", now),
        (lighthouse["doc_id"], rid, "n1", "revise", ["revised:violence"], "revise", now),
        (barrier["doc_id"], rid, "n1", "drop", ["principle:deception"], "classify", now),
    ]
    lake.insert_new(spark.createDataFrame(decisions, TABLES["decisions"]), "decisions", ("doc_id", "run_id"))
    revision = {n: None for n in TABLES["revisions"].fieldNames()}
    revision |= {
        "doc_id": lighthouse["doc_id"],
        "run_id": rid,
        "original_text": ARTICLES[1][1],
        "revised_text": shorter,
        "principles": ["violence"],
        "method": "excise",
        "status": "ok",
        "model": "excise:v1",
        "revised_at": now,
    }
    lake.merge(
        spark.createDataFrame([tuple(revision.values())], TABLES["revisions"]), "revisions", ("doc_id", "run_id")
    )
    versions = lake.versions()
    run = {n: None for n in TABLES["runs"].fieldNames()}
    run |= {"run_id": rid, "status": "published", "crawl_id": "iterate", "table_versions": versions}
    run |= {"started_at": now, "finished_at": datetime.now(UTC), "command": "iterate", "counts": {}}
    lake.merge(spark.createDataFrame([tuple(run.values())], TABLES["runs"]), "runs", ("run_id",))

    assert main(["diff", "--lake", str(root), "2", str(versions["corpus"]), "--format", "json", *SET]) == 0
    captured = capsys.readouterr()
    rows = {r["url"]: r for r in (json.loads(x) for x in captured.out.splitlines())}
    assert "0 added, 1 removed, 2 changed" in captured.err and "round-1 (iterate)" in captured.err
    assert set(rows) == {ARTICLES[0][0], ARTICLES[1][0], ARTICLES[2][0]}
    got = {u: (r["change"], r["fields"], r["action_before"], r["action_after"]) for u, r in rows.items()}
    assert got == {
        ARTICLES[2][0]: ("changed", "weight 1->2, tags []->['aligned_ai']", "keep", "tag"),
        ARTICLES[1][0]: ("changed", "text", "keep", "revise"),
        ARTICLES[0][0]: ("removed", "", "keep", None),
    }
    why = {
        u: (r["run_id"], r["command"], r["decision"], r["reasons"], r["stage"], r["revision"]) for u, r in rows.items()
    }
    assert why == {
        ARTICLES[2][0]: (rid, "iterate", "tag", ["upsampled:aligned_ai"], "classify", None),
        ARTICLES[1][0]: (rid, "iterate", "revise", ["revised:violence"], "revise", "excise ok (excise:v1)"),
        ARTICLES[0][0]: (rid, "iterate", "drop", ["principle:deception"], "classify", None),
    }
    # --limit: the summary still counts everything; csv has a header and the shown rows
    assert (
        main(["diff", "--lake", str(root), "2", str(versions["corpus"]), "--format", "csv", "--limit", "1", *SET]) == 0
    )
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 2 and "showing 1 of 3: 2 row(s) left out" in captured.err


def test_maintain_compacts_vacuums_and_keeps_retained_versions_readable(
    spark: Any, base: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_of(base, tmp_path)
    night3 = write_jsonl(tmp_path / "night-3.jsonl", jsonl_lines([NIGHT3_NEW, ("https://forum.example/t/9", TOXIC)]))
    assert run_pipeline(root, night3, CFG, crawl_id="n3").status == "success"
    lake = Lake(root, spark)
    v2, v3 = 2, lake.version("corpus")
    assert v3 == 3

    def files(table: str) -> int:
        return sum(1 for p in (root / table).rglob("*") if p.is_file() and "_delta_log" not in p.parts)

    def snapshot(version: int) -> list[dict[str, Any]]:
        rows = lake.read("corpus", version=version).collect()
        return sorted((r.asDict(recursive=True) for r in rows), key=lambda r: r["doc_id"])

    tables = [t for t in ("raw_docs", "quality", "dedup", "scores", "decisions", "corpus", "runs") if lake.exists(t)]
    before_files = {t: files(t) for t in tables}
    before_active = {t: len(DeltaTable(str(root / t)).file_uris()) for t in tables}
    before_rows = {v: snapshot(v) for v in (1, v2, v3)}
    raw_at_v2 = sorted(r.doc_id for r in lake.read("raw_docs", version=2).collect())
    assert before_active["corpus"] == 3 and {u for u, *_ in corpus_rows(root, v3)} == {
        *(u for u, _ in ARTICLES),
        NIGHT2_NEW[0],
        NIGHT3_NEW[0],
    }

    # a dry run changes nothing
    assert main(["maintain", "--lake", str(root), "--retain-versions", "2", "--dry-run"]) == 0
    assert "dry run: nothing changed" in capsys.readouterr().out
    assert {t: files(t) for t in tables} == before_files

    assert main(["maintain", "--lake", str(root), "--retain-versions", "2"]) == 0
    out = capsys.readouterr().out
    assert "keep everything needed to time-travel to the last 2 corpus version(s)" in out
    assert f"corpus version {v2} and later stay restorable" in out
    assert "outside retention (restorable while their files remain): corpus versions 0-1" in out
    # compaction: a read of the latest version opens one file per table; the files the retained versions read
    # stay on disk, so they still read the same rows
    after_active = {t: len(DeltaTable(str(root / t)).file_uris()) for t in tables}
    assert all(after_active[t] == 1 < before_active[t] for t in tables), (before_active, after_active)
    assert {v: snapshot(v) for v in (v2, v3)} == {v: before_rows[v] for v in (v2, v3)}
    assert sorted(r.doc_id for r in lake.read("raw_docs", version=2).collect()) == raw_at_v2
    # version 1 is outside the retention, but the vacuum removed none of the files it reads (the later nights only
    # added to them): it is still restorable, on a copy of the lake, and holds night 1's rows
    assert missing_files(lake, "corpus", 1) == 0  # the premise: its corpus files are all there
    restorable_copy = tmp_path / "restorable"
    shutil.copytree(root, restorable_copy)
    assert main(["restore", "--lake", str(restorable_copy), "--version", "1", *SET]) == 0
    capsys.readouterr()
    restored = Lake(restorable_copy, spark).read("corpus").collect()
    assert sorted((r.asDict(recursive=True) for r in restored), key=lambda r: r["doc_id"]) == before_rows[1]
    (m,) = [r for r in read_runs(Lake(root)) if r.command == "maintain"]
    assert m.status == "success" and m.counts["oldest_restorable:corpus"] == v2

    # the next night runs on the compacted lake and passes its accounting (its one document is a duplicate)
    night4 = write_jsonl(tmp_path / "night-4.jsonl", jsonl_lines([(NIGHT3_NEW[0] + "?p=2", NIGHT2_NEW[1]), NIGHT4_NEW]))
    s4 = run_pipeline(root, night4, CFG, crawl_id="n4")
    assert s4.status == "success" and s4.counts["unaccounted"] == 0 and s4.counts["exact_duplicates"] == 1
    v4 = lake.version("corpus")
    latest_rows = snapshot(v4)
    assert {r["url"] for r in latest_rows} == {*(u for u, _ in ARTICLES), NIGHT2_NEW[0], NIGHT3_NEW[0], NIGHT4_NEW[0]}

    # now the pre-compaction versions fall out of retention: vacuum removes their files from disk
    data = ("raw_docs", "quality", "dedup", "scores", "decisions", "corpus")
    before_files = {t: files(t) for t in data}
    assert main(["maintain", "--lake", str(root), "--retain-versions", "1"]) == 0
    out = capsys.readouterr().out
    assert f"corpus version {v4} and later stay restorable" in out
    assert f"outside retention (restorable while their files remain): corpus versions 0-{v4 - 1}" in out
    after_files = {t: files(t) for t in data}
    assert all(after_files[t] < before_files[t] for t in data), (before_files, after_files)
    assert snapshot(v4) == latest_rows
    assert main(["restore", "--lake", str(root), "--version", str(v3), *SET]) == 2  # its files are gone now
    line = one_error_line(capsys.readouterr().err)
    assert f"corpus version {v3} is outside retention: `curate maintain` removed files it needs" in line, line
