"""Input formats beyond JSONL (.txt, .csv, .json arrays), binary input accounted for in `quarantine`, `curate score`
on every format, and `curate repair` of a lake whose accounting broke the way two concurrent runs break it."""

from __future__ import annotations

import codecs
import gzip
import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from pipelines.chains.run import run_pipeline
from pipelines.core.config import IngestConfig, load_config
from pipelines.core.published import published_versions
from pipelines.stages import ingest
from tests.fixtures import ARTICLES, curate_in_process, curate_process, jsonl_lines, write_jsonl
from udfs.parse import parse_file

OPTS = IngestConfig(max_doc_bytes=10_000)
SETTINGS = ["--set", "revise.enabled=false", "--set", "tracking.experiment=inputs-test"]
RUN_CFG = load_config(None, {"revise.enabled": False, "tracking.experiment": "inputs-test"})  # SETTINGS in process


def _parse(path: Path, name: str | None = None) -> list:
    (f,) = ingest.list_inputs(path)
    return list(parse_file(f.path, f.fmt, OPTS, name or f.name))


def _random_bytes(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


# --- formats -------------------------------------------------------------------------------------------------


def test_a_txt_file_is_one_document_identified_by_its_relative_path(tmp_path: Path) -> None:
    text = ARTICLES[0][1]
    for root in ("night1", "copy"):
        (tmp_path / root / "news").mkdir(parents=True)
        (tmp_path / root / "news" / "flood.txt").write_bytes(b"\xef\xbb\xbf" + text.encode())  # with a BOM
    (tmp_path / "night1" / "news" / "other.txt").write_text(text)
    files = ingest.list_inputs(tmp_path / "night1")
    assert [(f.name, f.fmt) for f in files] == [("news/flood.txt", "txt"), ("news/other.txt", "txt")]
    (doc,) = parse_file(files[0].path, files[0].fmt, OPTS, files[0].name)
    assert doc.reason is None and doc.text == text and doc.url is None  # the BOM is not text
    assert doc.meta == {"id": "news/flood.txt"}
    copy = ingest.list_inputs(tmp_path / "copy")[0]
    (same,) = parse_file(copy.path, copy.fmt, OPTS, copy.name)
    (other,) = parse_file(files[1].path, files[1].fmt, OPTS, files[1].name)
    from udfs.records import doc_id_for

    ids = [doc_id_for(r.text or "", r.url, r.ext_id) for r in (doc, same, other)]
    # the same relative path and text is the same document wherever the folder was copied; another name is not
    assert ids[0] == ids[1] != ids[2]


def test_a_txt_file_that_is_not_utf8_or_too_large_or_empty_is_quarantined(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
    (tmp_path / "big.txt").write_text("word " * 3000)
    (tmp_path / "blank.txt").write_text("  \n\n ")
    out = {p.name: _parse(p) for p in tmp_path.iterdir()}
    assert [(r.reason, r.raw) for r in out["latin1.txt"]] == [("invalid_utf8", "caf\\xe9 au lait")]
    assert [r.reason for r in out["big.txt"]] == ["too_large"]
    assert [r.reason for r in out["blank.txt"]] == ["empty_text"]


def test_csv_rows_are_documents_and_malformed_rows_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "id,url,text,lang\n"
        '1,https://a.example/x,"A quoted text, with a comma\nand a second line.",en\n'
        "2,https://a.example/y,,en\n"  # empty text
        "3,https://a.example/z,too,many,cells\n"
        "\n"  # a blank line is no record
        f"4,,{'long ' * 2500},en\n"  # over max_doc_bytes
        "5,,Plain text without a url.,\n"
    )
    out = _parse(path)
    assert [(r.position, r.reason) for r in out] == [
        (0, None),
        (1, "empty_text"),
        (2, "malformed_csv"),
        (3, "too_large"),
        (4, None),
    ]
    assert out[0].text == "A quoted text, with a comma\nand a second line." and out[0].url == "https://a.example/x"
    assert out[0].meta == {"id": "1", "lang": "en"} and out[0].ext_id == "1"
    assert out[2].raw == "3,https://a.example/z,too,many,cells"
    assert out[4].url is None and out[4].meta == {"id": "5"}  # empty cells are absent values


def test_a_csv_without_a_text_column_quarantines_every_row(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("id,body\n1,hello\n2,world\n")
    assert [r.reason for r in _parse(tmp_path / "x.csv")] == ["missing_text", "missing_text"]


def test_a_pretty_printed_json_array_is_read_as_records(tmp_path: Path) -> None:
    records = [{"id": i, "url": u, "text": t} for i, (u, t) in enumerate(ARTICLES)] + [{"url": "https://x.example"}]
    (tmp_path / "a.json").write_text(json.dumps(records, indent=2))
    out = _parse(tmp_path / "a.json")
    assert [r.reason for r in out] == [None, None, None, "missing_text"]
    assert [(r.url, r.text) for r in out[:3]] == ARTICLES
    # one object in a .json file is one record; JSON Lines under a .json name still read line by line
    (tmp_path / "one.json").write_text(json.dumps({"text": ARTICLES[1][1]}, indent=4))
    assert [r.text for r in _parse(tmp_path / "one.json")] == [ARTICLES[1][1]]
    write_jsonl(tmp_path / "lines.json.gz", jsonl_lines())
    assert [r.url for r in _parse(tmp_path / "lines.json.gz")] == [u for u, _ in ARTICLES]


def test_a_broken_json_array_keeps_the_elements_before_the_break(tmp_path: Path) -> None:
    text = json.dumps([{"text": t} for _, t in ARTICLES], indent=2)
    cut = text.index(ARTICLES[2][1][:40])  # inside the third element's string
    (tmp_path / "cut.json").write_text(text[:cut])
    out = _parse(tmp_path / "cut.json")
    assert [r.reason for r in out] == [None, None, "malformed_json"]
    assert out[2].position == 2 and out[2].raw is not None and out[2].raw.lstrip().startswith("{")
    (tmp_path / "mixed.json").write_text('[{"text": "a document"}, 7, ["x"]]')
    assert [r.reason for r in _parse(tmp_path / "mixed.json")] == [None, "not_an_object", "not_an_object"]


# --- binary input ---------------------------------------------------------------------------------------------


def test_binary_files_are_one_quarantine_record_each_with_an_escaped_excerpt(tmp_path: Path) -> None:
    (tmp_path / "random.jsonl").write_bytes(_random_bytes(50_000))
    (tmp_path / "fake.jsonl.gz").write_bytes(b"".join(jsonl_lines()))  # not compressed
    (tmp_path / "zipped.txt").write_bytes(gzip.compress(ARTICLES[0][1].encode()))  # gzip bytes under .txt
    (tmp_path / "utf16.csv").write_bytes("id,text\n1,hello there\n".encode("utf-16"))
    (tmp_path / "random.json").write_bytes(_random_bytes(3_000, seed=8))
    for name in ("random.jsonl", "zipped.txt", "utf16.csv", "random.json"):
        (rec,) = _parse(tmp_path / name)
        assert rec.reason == "binary_file", name
        assert rec.raw is not None and 0 < len(rec.raw) <= 256
        assert rec.raw.isprintable()  # escaped: no control characters, no replacement characters
        assert "\ufffd" not in rec.raw
    (rec,) = _parse(tmp_path / "random.jsonl")
    # the excerpt is the file's first bytes as ASCII with \xNN escapes: decoding it gives those bytes back exactly
    assert rec.raw is not None and rec.raw.isascii()
    decoded = codecs.escape_decode(rec.raw.encode("ascii"))[0]
    assert len(decoded) >= 60 and decoded == _random_bytes(50_000)[: len(decoded)]
    (rec,) = _parse(tmp_path / "fake.jsonl.gz")
    assert rec.reason == "not_gzip" and rec.raw == "first bytes (hex): " + jsonl_lines()[0][:32].hex(" ")


def test_a_text_file_with_a_few_bad_bytes_is_read_line_by_line(tmp_path: Path) -> None:
    lines = [*jsonl_lines(), b'{"text": "caf\xe9 cr\xe8me"}\n', *jsonl_lines(ARTICLES[:1])]
    out = _parse(write_jsonl(tmp_path / "mostly.jsonl", lines))
    assert [r.reason for r in out] == [None, None, None, "invalid_utf8", None]
    assert out[3].raw == '{"text": "caf\\xe9 cr\\xe8me"}\n'


def test_ingest_reads_a_folder_of_every_text_format(spark, lake, tmp_path: Path) -> None:
    d = tmp_path / "in"
    (d / "pages").mkdir(parents=True)
    (d / "pages" / "bread.txt").write_text(ARTICLES[2][1])
    (d / "rows.csv").write_text(f'id,text\n1,"{ARTICLES[0][1]}"\n2,"short","extra cell"\n')
    (d / "array.json").write_text(json.dumps([{"url": ARTICLES[1][0], "text": ARTICLES[1][1]}], indent=2))
    (d / "blob.jsonl").write_bytes(_random_bytes(20_000))
    (d / "README.md").write_text("what this crawl is")
    files = ingest.list_inputs(d)
    assert sorted((f.name, f.fmt) for f in files) == [
        ("README.md", "unsupported"),
        ("array.json", "json"),
        ("blob.jsonl", "jsonl"),
        ("pages/bread.txt", "txt"),
        ("rows.csv", "csv"),
    ]
    parsed = ingest.parse_inputs(lake.spark, files, OPTS)
    result = ingest.summarise(parsed, lake.read("raw_docs"))
    assert result.documents == 3
    assert result.quarantine_reasons == {"binary_file": 1, "malformed_csv": 1, "unsupported_file_type:.md": 1}
    ingest.write(lake, parsed, "night-1", "run-1")
    docs = {r.text: r for r in lake.read("raw_docs").collect()}
    bread = docs[ARTICLES[2][1]]
    assert bread.url is None and bread.meta == {"id": "pages/bread.txt"} and bread.source == "bread.txt"
    assert docs[ARTICLES[1][1]].url == ARTICLES[1][0] and docs[ARTICLES[0][1]].meta == {"id": "1"}


def test_an_input_that_is_all_binary_fails_the_gate_and_leaves_its_quarantine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "night"
    d.mkdir()
    (d / "part-0.jsonl").write_bytes(_random_bytes(40_000))
    (d / "part-1.jsonl.gz").write_bytes(b"".join(jsonl_lines()))
    lake = tmp_path / "lake"
    code, _, err = curate_in_process(capsys, "run", "--lake", str(lake), "--input", str(d), *SETTINGS, "--quiet")
    assert code == 1, err[-3000:]  # a gate failed: no document in the batch
    last = err.strip().splitlines()[-1]
    assert last.startswith("curate: run stopped before publishing: gate 'ingest' failed")
    assert "2 of 2 record(s) were quarantined (binary_file 1, not_gzip 1)" in last
    assert f"curate sql --lake {lake.resolve()}" in last
    quarantine = DeltaTable(str(lake / "quarantine")).to_pyarrow_table().to_pylist()
    assert sorted((Path(r["source_file"]).name, r["reason"]) for r in quarantine) == [
        ("part-0.jsonl", "binary_file"),
        ("part-1.jsonl.gz", "not_gzip"),
    ]
    assert all(r["raw"] and len(r["raw"]) <= 256 for r in quarantine)
    (run,) = DeltaTable(str(lake / "runs")).to_pyarrow_table().to_pylist()
    assert run["status"] == "failed_gate" and {r["run_id"] for r in quarantine} == {run["run_id"]}
    counts = dict(run["counts"])
    assert counts["quarantined"] == 2 and counts["documents"] == 0
    assert (
        not (lake / "raw_docs" / "_delta_log").is_dir()
        or DeltaTable(str(lake / "raw_docs")).to_pyarrow_table().num_rows == 0
    )


# --- curate score ---------------------------------------------------------------------------------------------


def test_score_reads_the_formats_ingest_reads_and_refuses_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    insult = "You are a worthless idiot and everyone here hates you, you pathetic loser."
    (d / "sub" / "insult.txt").write_text(insult)
    (d / "rows.csv").write_text(f'id,text\nc1,"{ARTICLES[0][1]}"\n')
    (d / "array.json").write_text(json.dumps([{"id": 7, "text": ARTICLES[1][1]}, {"text": ARTICLES[2][1]}], indent=2))
    out = tmp_path / "scores.parquet"
    lake = tmp_path / "lake"
    code, stdout, err = curate_in_process(capsys, "score", "--lake", str(lake), "--input", str(d), "--output", str(out))
    assert code == 0, err[-3000:]
    assert "scored 4 document(s)" in stdout
    scores = pd.read_parquet(out)
    # ids as the inputs give them (mixed kinds are written as strings); a record without one is <file>#<position>
    assert scores["id"].tolist() == ["7", "array.json#1", "c1", "sub/insult.txt"]
    by_id = dict(zip(scores["id"], scores["score_toxicity"], strict=True))
    assert by_id["sub/insult.txt"] > 0.5 > max(by_id["c1"], by_id["7"], by_id["array.json#1"])

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ok.jsonl").write_bytes(b"".join(jsonl_lines()))
    (bad / "blob.jsonl.gz").write_bytes(_random_bytes(1_000))
    for target, expected in (
        (bad, "blob.jsonl.gz: unreadable file (not_gzip) [first bytes (hex): "),
        (tmp_path / "nope.jsonl", "input not found:"),
    ):
        proc = curate_process("score", "--lake", str(lake), "--input", str(target), "--output", str(out), cwd=tmp_path)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err[-2000:]
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("curate: error: ") and expected in lines[0], lines


# --- curate repair --------------------------------------------------------------------------------------------


def _table(lake: Path, name: str) -> list[dict]:
    return DeltaTable(str(lake / name)).to_pyarrow_table().to_pylist()


def _append(lake: Path, name: str, rows: list[dict]) -> None:
    schema = DeltaTable(str(lake / name)).to_pyarrow_table().schema
    write_deltalake(str(lake / name), pa.Table.from_pylist(rows, schema=schema), mode="append")


def test_repair_brings_back_a_lake_that_two_concurrent_runs_broke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    night1 = write_jsonl(tmp_path / "n1.jsonl", jsonl_lines())
    # the night before, and the night after the repair, run in this process (what they leave is what is checked);
    # the run refused by the accounting check and both repairs are `curate` commands, their exit codes and output
    assert run_pipeline(lake, night1, RUN_CFG, crawl_id=None).status == "success"
    corpus = _table(lake, "corpus")
    decisions = _table(lake, "decisions")
    (run1,) = {r["run_id"] for r in decisions}
    assert len(corpus) == 3 and {r["action"] for r in decisions} != {"drop"}
    kept = sorted(r["doc_id"] for r in corpus)

    # The state two concurrent runs leave (each saw the same documents undecided and published): run B, which also
    # succeeded, dropped a document run 1 kept, re-inserted another doc_id into `corpus` (both MERGEs inserted),
    # and one decision row got appended twice; a third run was SIGKILLed after writing its revisions, before its
    # decisions. Written with delta-rs as those writers would have: a real fault state, not a mock.
    now = datetime.now(UTC)
    run_b, killed = "20990101T000000Z-concurrent", "20990101T000001Z-killed"
    runs = _table(lake, "runs")
    template = runs[0]
    _append(
        lake,
        "runs",
        [{**template, "run_id": run_b, "status": "success", "started_at": now, "finished_at": now}],
    )
    dropped, twice, dup_decision = kept
    _append(
        lake,
        "decisions",
        [
            {"doc_id": dropped, "run_id": run_b, "crawl_id": "n1", "action": "drop", "reasons": ["principle:toxicity"],
             "stage": "decide", "decided_at": now + timedelta(seconds=1)},
            next(r for r in decisions if r["doc_id"] == dup_decision),
        ],
    )  # fmt: skip
    twin = next(r for r in corpus if r["doc_id"] == twice)
    _append(lake, "corpus", [{**twin, "run_id": run_b, "weight": 0.5, "updated_at": now}])
    revision = {
        "doc_id": dup_decision, "run_id": killed, "original_text": "x", "revised_text": "y", "principles": ["toxicity"],
        "method": "excise", "status": "accepted", "revised_at": now,
    }  # fmt: skip
    if (lake / "revisions" / "_delta_log").is_dir():
        _append(lake, "revisions", [revision])
    else:
        from pyspark.sql.pandas.types import to_arrow_schema

        from pipelines.core.lake import nullable
        from schemas import TABLES

        schema = to_arrow_schema(nullable(TABLES["revisions"]))
        write_deltalake(str(lake / "revisions"), pa.Table.from_pylist([revision], schema=schema))

    # every later run fails its accounting check, and says what to do
    code, _, err = curate_in_process(capsys, "run", "--lake", str(lake), "--input", str(night1), *SETTINGS, "--quiet")
    assert code == 5, err[-3000:]
    assert "accounting invariant broken: 0 document(s) unaccounted for, 1 in both corpus and drops" in err
    assert f"curate repair --lake {lake}" in err

    # the killed run's `running` row, written after that run (which would have closed it, as every writer does)
    _append(lake, "runs", [{**template, "run_id": killed, "status": "running", "started_at": now, "finished_at": None}])
    versions = {t: DeltaTable(str(lake / t)).version() for t in ("corpus", "decisions", "revisions", "runs")}
    code, dry_out, err = curate_in_process(capsys, "repair", "--lake", str(lake), "--dry-run")
    assert code == 0, err[-3000:]
    assert {t: DeltaTable(str(lake / t)).version() for t in versions} == versions  # nothing written
    assert "dry run: nothing was written" in dry_out
    assert dry_out.strip().endswith("accounting: 3 ingested documents, 0 unaccounted, 1 in both corpus and drops")

    code, fix_out, err = curate_in_process(capsys, "repair", "--lake", str(lake))
    assert code == 0, err[-3000:]
    lines = fix_out.strip().splitlines()
    changes = [line for line in lines if line.split(":")[0] in ("runs", "corpus", "decisions", "revisions")]
    assert sorted(line.split(":")[0] for line in changes) == ["corpus", "corpus", "decisions", "revisions", "runs"]
    assert [line for line in dry_out.splitlines() if line.startswith(("corpus", "decisions", "revisions"))] == [
        line for line in changes if not line.startswith("runs")
    ]  # the dry run said exactly what the repair then did
    assert any(line.startswith(f"corpus: remove doc {dropped}: run {run_b}") for line in changes)
    assert any(f"duplicate row(s) of doc {twice}, keep the row of run {run1}" in line for line in changes)
    assert any(f"duplicate row of doc {dup_decision} by run {run1}" in line for line in changes)
    assert any(f"revisions: remove the row of doc {dup_decision} by run {killed}" in line for line in changes)
    assert any(killed in line for line in changes if line.startswith("runs"))
    assert lines[-1].endswith("accounting: 3 ingested documents, 0 unaccounted, 0 in both corpus and drops")

    corpus_after = _table(lake, "corpus")
    assert sorted(r["doc_id"] for r in corpus_after) == sorted([twice, dup_decision])
    assert next(r for r in corpus_after if r["doc_id"] == twice)["run_id"] == run1
    keys = [(r["doc_id"], r["run_id"]) for r in _table(lake, "decisions")]
    assert len(keys) == len(set(keys)) == 4  # run 1's three and run B's drop
    assert [r["run_id"] for r in _table(lake, "revisions")] == []
    assert {r["run_id"]: r["status"] for r in _table(lake, "runs")}[killed] == "failed"
    # the repair is in `runs`, and readers see what it fixed (not run B's broken lake) without waiting for a night
    (fixed,) = [r for r in _table(lake, "runs") if r["command"] == "repair"]
    assert fixed["status"] == "success" and dict(fixed["counts"])["changes"] == len(changes)
    assert "published: sql, export, diff and report read the repaired lake" in fix_out
    published = published_versions(_table(lake, "runs"))  # what `curate sql`, export, diff and report read
    assert {t: published[t] for t in ("corpus", "decisions")} == {
        t: DeltaTable(str(lake / t)).version() for t in ("corpus", "decisions")
    }

    # a repaired lake runs again: new documents, decided and accounted for
    night2 = write_jsonl(tmp_path / "n2.jsonl", jsonl_lines([(u + "?2", t + " Second.") for u, t in ARTICLES]))
    assert run_pipeline(lake, night2, RUN_CFG, crawl_id=None).status == "success"
    last = max(_table(lake, "runs"), key=lambda r: r["started_at"])
    counts = dict(last["counts"])
    assert last["status"] == "success" and counts["unaccounted"] == 0 and counts["pending"] == 3
    shutil.rmtree(lake / "_state" / "staging", ignore_errors=True)
