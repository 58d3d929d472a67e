"""End to end on the embedded engine: two nightly runs, the accounting invariant, time travel, idempotent
reruns, a failing gate that leaves the published corpus untouched, and the CLI's query commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from expectations.runner import GateFailed
from pipelines.chains.run import run_pipeline
from pipelines.cli import main
from pipelines.core.config import load_config
from pipelines.core.lake import Lake
from tests.fixtures import ARTICLES, BAD_LINES, copy_lake, jsonl_lines, write_jsonl

# No LLM here: revision is exercised in test_revise_llm.py against a real server.
# The quality rules are C4's and Gopher's published ones: TOXIC and NIGHT2_NEW have 4 sentences (C4 wants 5) and
# the upper-cased mirror has no lower-case stop word; these two thresholds are lowered so they reach later stages.
CFG = load_config(
    None,
    {
        "revise.enabled": False,
        "engine.shuffle_partitions": 2,
        "quality.c4.min_num_sentences": 3,
        "quality.min_stop_words": 0,
    },
)

TOXIC = (
    "You are a worthless idiot and a pathetic loser, and everyone in this town hates you. Shut your stupid "
    "mouth, you brain-dead moron, nobody wants to hear the garbage that comes out of it. Go crawl back into "
    "whatever hole you came from, you disgusting piece of trash, and take your ugly friends with you. "
    "Every word you write is worthless and every one of you is a waste of space."
)

NIGHT2_NEW = (
    "https://news.example/harbour",
    "The harbour master said on Monday that the new pier would open to fishing boats at the start of the "
    "season, after divers finished inspecting the piles that support the deck. The old pier, which had been "
    "closed since the winter storms damaged its timber frame, will be taken down over the summer and the "
    "wood reused for benches along the promenade. Local fishermen welcomed the news and said the delays had "
    "cost them a large part of last year's catch. The new pier has lights along its whole length.",
)


def night1(tmp: Path) -> Path:
    lines = jsonl_lines() + jsonl_lines([("https://forum.example/t/1", TOXIC)])
    lines += [BAD_LINES["malformed_json"], BAD_LINES["empty_text"]]
    return write_jsonl(tmp / "night-1.jsonl", lines)


def night2(tmp: Path) -> Path:
    # one article re-crawled unchanged (same doc), one copied to a new url (exact duplicate of night 1),
    # one fresh article, one malformed line
    lines = jsonl_lines([ARTICLES[0], ("https://mirror.example/bread", ARTICLES[2][1].upper()), NIGHT2_NEW])
    return write_jsonl(tmp / "night-2.jsonl", [*lines, BAD_LINES["wrong_type:text"]])


@pytest.fixture(scope="module")
def two_nights(two_night_lake: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A copy of the session's two-night lake (tests/conftest.py `two_night_lake`: these nights, this CFG)."""
    return copy_lake(two_night_lake, tmp_path_factory.mktemp("e2e"))


def test_first_night_counts(two_nights: dict[str, object]) -> None:
    s1 = two_nights["s1"]
    c = s1.counts  # type: ignore[attr-defined]
    assert s1.status == "success"  # type: ignore[attr-defined]
    assert (c["records"], c["documents"], c["quarantined"], c["pending"]) == (6, 4, 2, 4)
    assert c["quarantine:malformed_json"] == 1 and c["quarantine:empty_text"] == 1
    assert c["action:drop"] == 1 and c["reason:principle:toxicity"] == 1
    assert c["corpus_size"] == 3 and c["unaccounted"] == 0


def test_second_night_dedups_against_the_first(two_nights: dict[str, object]) -> None:
    c = two_nights["s2"].counts  # type: ignore[attr-defined]
    assert (c["records"], c["already_ingested"], c["new_documents"], c["pending"]) == (4, 1, 2, 2)
    assert c["exact_duplicates"] == 1 and c["reason:exact_duplicate"] == 1
    assert c["corpus_size"] == 4 and c["raw_docs_total"] == 6 and c["quarantine_total"] == 3


def test_accounting_invariant_over_both_nights(spark, two_nights: dict[str, object]) -> None:
    lake = Lake(two_nights["lake"], spark)  # type: ignore[arg-type]
    raw = {r.doc_id for r in lake.read("raw_docs").collect()}
    corpus = {r.doc_id for r in lake.read("corpus").collect()}
    dropped = {r.doc_id for r in lake.read("decisions").where("action = 'drop'").collect()}
    assert raw == corpus | dropped and not corpus & dropped
    assert len(raw) == 6
    decisions = lake.read("decisions").collect()
    assert len(decisions) == len({r.doc_id for r in decisions}) == 6
    dup = next(r for r in lake.read("dedup").collect() if r.is_duplicate)
    original = next(r for r in lake.read("raw_docs").collect() if r.url == ARTICLES[2][0])
    assert dup.dup_of == original.doc_id


def test_version_as_of_returns_the_earlier_corpus(
    two_nights: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    lake = str(two_nights["lake"])
    assert main(["sql", "--lake", lake, "--format", "json", "SELECT count(*) AS n FROM corpus"]) == 0
    now = json.loads(capsys.readouterr().out.strip())["n"]
    v1 = two_nights["s1"].table_versions["corpus"]  # type: ignore[attr-defined]
    assert main(["sql", "--lake", lake, "--format", "json", f"SELECT url FROM corpus VERSION AS OF {v1}"]) == 0
    urls_then = {json.loads(line)["url"] for line in capsys.readouterr().out.splitlines()}
    assert now == 4 and urls_then == {u for u, _ in ARTICLES}


def test_rerun_of_a_batch_adds_nothing(spark, two_nights: dict[str, object]) -> None:
    lake = Lake(two_nights["lake"], spark)  # type: ignore[arg-type]
    before = {t: lake.read(t).count() for t in ("raw_docs", "quarantine", "corpus", "decisions")}
    s = run_pipeline(two_nights["lake"], night2(two_nights["tmp"]), CFG, crawl_id="n2")  # type: ignore[arg-type]
    assert s.status == "success" and s.counts["pending"] == 0 and s.counts["new_documents"] == 0
    after = {t: lake.read(t).count() for t in ("raw_docs", "quarantine", "corpus", "decisions")}
    assert after == before


def test_failing_gate_stops_before_publishing(spark, tmp_path: Path, two_nights: dict[str, object]) -> None:
    lake_dir = two_nights["lake"]
    lake = Lake(lake_dir, spark)  # type: ignore[arg-type]
    corpus_version = lake.version("corpus")
    garbage = write_jsonl(tmp_path / "broken.jsonl", [BAD_LINES["malformed_json"]] * 8 + jsonl_lines([NIGHT2_NEW]))
    with pytest.raises(GateFailed, match=r"gate 'ingest' failed: expect_column_values_to_be_in_set\(status\)"):
        run_pipeline(lake_dir, garbage, CFG, crawl_id="n3")  # type: ignore[arg-type]
    assert lake.version("corpus") == corpus_version
    runs = {r.status for r in lake.read("runs").where("crawl_id = 'n3'").collect()}
    assert runs == {"failed_gate"}


def test_cli_errors_are_one_line(
    tmp_path: Path, two_nights: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "--lake", str(tmp_path / "none"), "SELECT 1"]) == 2
    assert "no lake at" in capsys.readouterr().err
    lake = str(two_nights["lake"])
    assert main(["sql", "--lake", lake, "SELECT * FROM corpusx"]) == 2
    err = capsys.readouterr().err
    assert "corpusx" in err and "tables in this lake: raw_docs" in err and len(err.strip().splitlines()) == 1
    assert main(["history", "--lake", lake, "nosuch"]) == 2
    assert "unknown table 'nosuch'" in capsys.readouterr().err
    assert main(["run", "--lake", lake, "--input", lake, "--set", "quality.min_wrods=3"]) == 2
    assert "unknown config key 'quality.min_wrods'" in capsys.readouterr().err


def test_history_lists_versions(two_nights: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--lake", str(two_nights["lake"]), "--format", "json", "corpus"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ops = [r["operation"] for r in rows]
    assert ops[-1] == "CREATE TABLE" and ops.count("MERGE") >= 2
    assert [r["version"] for r in rows] == sorted((r["version"] for r in rows), reverse=True)


def test_runs_and_mlflow_record_the_run(two_nights: dict[str, object]) -> None:
    import mlflow

    s1 = two_nights["s1"]
    lake = Path(two_nights["lake"])  # type: ignore[arg-type]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{lake / '_state' / 'mlflow.db'}")
    run = client.get_run(s1.mlflow_run_id)  # type: ignore[attr-defined]
    assert run.data.params["config.quality.min_words"] == "50"
    assert run.data.metrics["quarantined"] == 2 and run.data.metrics["action__drop"] == 1
    assert run.data.tags["curate.status"] == "success"
    # the artifacts are under the lake the run ran on (the session's, of which this module's is a copy)
    assert str(Path(two_nights["built_at"]) / "_state" / "mlartifacts") in run.info.artifact_uri  # type: ignore[arg-type]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"resolved_config.yaml", "summary.json", "scores.png"} <= artifacts


def test_sql_is_read_only_unless_asked_and_describes_tables(
    spark, two_nights: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    from schemas import TABLES

    lake = str(two_nights["lake"])
    handle = Lake(two_nights["lake"], spark)  # type: ignore[arg-type]
    before = handle.version("corpus"), handle.read("corpus").count()
    for q in (
        "DELETE FROM corpus WHERE action = 'keep'",
        "INSERT INTO corpus SELECT * FROM corpus",
        "DROP TABLE corpus",
        "INSERT OVERWRITE corpus SELECT * FROM corpus VERSION AS OF 0",
        "WITH x AS (SELECT * FROM corpus) INSERT INTO corpus SELECT * FROM x",
        "CREATE TEMPORARY VIEW v AS SELECT 1 AS x",
    ):
        assert main(["sql", "--lake", lake, q]) == 2, q
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "read-only" in err[0] and "--write" in err[0], err
    assert (handle.version("corpus"), handle.read("corpus").count()) == before  # nothing reached the engine
    # string literals and comments do not count as statements
    assert main(["sql", "--lake", lake, "--format", "json", "SELECT 'drop table corpus' AS s -- delete"]) == 0
    assert json.loads(capsys.readouterr().out)["s"] == "drop table corpus"
    # --write lets a statement through (a session-local view: harmless to the lake)
    assert main(["sql", "--lake", lake, "--write", "CREATE TEMPORARY VIEW v AS SELECT 1 AS x"]) == 0
    capsys.readouterr()

    assert main(["sql", "--lake", lake, "--format", "json", "DESCRIBE corpus"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["col_name"] for r in rows] == TABLES["corpus"].fieldNames()
    types = {r["col_name"]: r["data_type"] for r in rows}
    assert types["tags"] == "array<string>" and types["weight"] == "double"
    assert main(["sql", "--lake", lake, "--format", "csv", "SHOW COLUMNS FROM decisions"]) == 0
    out = capsys.readouterr().out.split()
    assert out == ["col_name", *TABLES["decisions"].fieldNames()]
    assert main(["sql", "--lake", lake, "DESC TABLE nosuch"]) == 2
    assert "unknown table 'nosuch'" in capsys.readouterr().err
