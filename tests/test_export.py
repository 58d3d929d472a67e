"""Export round trips on a hand-built lake: read the shards back and check them against the corpus version.

Expected repeats, prefixes and spans are written out here from the documented rules (pipelines/ops/export.py's
docstring), not computed with the export code.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import main
from pipelines.core.config import load_config
from pipelines.ops.export import ExportError, export_corpus
from schemas import TABLES

INTRO = "The forum thread started with a question about gardening. "
INSULT = "You are a worthless idiot and everyone hates you."
OUTRO = " Then the moderators closed it."
TOXIC_TEXT = INTRO + INSULT + OUTRO
AI_SENTENCE = "The AI quietly copied itself so that nobody could shut it down."
AI_TEXT = "A short story. " + AI_SENTENCE + " The end."
SCAM = "Send your bank details to claim the prize."
SCAM_TEXT = "Hello. " + SCAM


def _span(text: str, passage: str, score: float = 0.95) -> tuple[int, int, float]:
    start = text.index(passage)
    return (start, start + len(passage), score)


def _corpus_rows(changed: bool = False) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)

    def row(doc_id: str, text: str, action: str, tags: list[str], weight: float) -> tuple[Any, ...]:
        return (doc_id, text, "fixture", f"https://x.example/{doc_id}", "night-1", action, tags, {}, weight, "r1", now)

    rows = [
        row("plain", "A plain page about rivers.", "keep", [], 3.0 if changed else 1.0),
        row("double", "An aligned assistant explained itself.", "keep", [], 2.0),
        row("frac", "A page of weight two and a half.", "keep", [], 2.5),
        row("toxic", TOXIC_TEXT, "tag", ["retained:toxicity"], 1.0),
        row("ai", AI_TEXT, "tag", ["misaligned_ai"], 1.0),
        row("both", TOXIC_TEXT + " " + AI_SENTENCE, "tag", ["misaligned_ai", "toxicity"], 2.0),
        row("scam", SCAM_TEXT, "tag", ["deception"], 1.0),
        row("revised", "A polite rewrite of a rude post.", "revise", [], 1.0),
        *[row(f"half-{i:02d}", f"Half-weight page number {i}.", "keep", [], 0.5) for i in range(20)],
    ]
    if changed:
        rows.append(row("late", "A page that arrived the next night.", "keep", [], 1.0))
    return rows


def _score_rows(toxic_span: tuple[int, int, float]) -> list[tuple[Any, ...]]:
    both = TOXIC_TEXT + " " + AI_SENTENCE

    def row(doc_id: str, principle: str, spans: list[tuple[int, int, float]]) -> tuple[Any, ...]:
        cascade = (None,) * 9  # classifier_score ... spans_by: not what export reads
        return (doc_id, principle, 0.95 if spans else 0.1, spans, "models:/test/1", "r1", *cascade)

    return [
        row("toxic", "toxicity", [toxic_span]),
        row("toxic", "violence", [_span(TOXIC_TEXT, INTRO.strip())]),  # not a tagged principle: never exported
        row("ai", "misaligned_ai", [_span(AI_TEXT, AI_SENTENCE)]),
        row("both", "toxicity", [_span(both, INSULT)]),
        row("both", "misaligned_ai", [_span(both, AI_SENTENCE)]),
        row("scam", "deception", [_span(SCAM_TEXT, SCAM)]),
        row("revised", "toxicity", [(0, 8, 0.9)]),  # offsets into the original: a revised text gets none
        row("plain", "toxicity", []),
    ]


@pytest.fixture()
def built(lake: Any) -> dict[str, Any]:
    """corpus v1 (the first corpus), scores rewritten after it, corpus v2 (one weight changed, one doc added)."""
    spark = lake.spark
    lake.merge(
        spark.createDataFrame(_score_rows(_span(TOXIC_TEXT, INSULT)), TABLES["scores"]),
        "scores",
        ("doc_id", "principle"),
    )
    lake.merge(spark.createDataFrame(_corpus_rows(), TABLES["corpus"]), "corpus", ("doc_id",))
    v1 = lake.version("corpus")
    # the toxicity span of "toxic" moves (a later classifier marks the whole post); version 1 keeps the old one
    later = _span(TOXIC_TEXT, TOXIC_TEXT.strip(), 0.97)
    lake.merge(spark.createDataFrame(_score_rows(later), TABLES["scores"]), "scores", ("doc_id", "principle"))
    lake.merge(spark.createDataFrame(_corpus_rows(changed=True), TABLES["corpus"]), "corpus", ("doc_id",))
    return {"lake": lake, "v1": v1, "v2": lake.version("corpus"), "later_span": later}


def expected_copies(doc_id: str, weight: float) -> int:
    u = int(hashlib.sha256(doc_id.encode()).hexdigest()[:13], 16) / 16**13
    return math.floor(weight) + (1 if u < weight - math.floor(weight) else 0)


PREFIX = {
    "toxic": "<|toxicity|>\n",
    "ai": "<|misaligned_ai|>\n",
    "both": "<|toxicity|><|misaligned_ai|>\n",  # constitution order, not tag order
    "scam": "",  # deception has no tag token
}


def _read_jsonl(out: Path) -> list[dict[str, Any]]:
    manifest = json.loads((out / "manifest.json").read_text())
    rows = []
    for shard in manifest["shards"]:
        lines = (out / shard["file"]).read_text(encoding="utf-8").splitlines()
        assert len(lines) == shard["rows"]
        rows += [json.loads(line) for line in lines]
    return rows


def _cfg(**export: Any) -> Any:
    return load_config(None, {f"export.{k}": v for k, v in export.items()})


def test_jsonl_round_trip_repeats_tags_and_spans(built: dict[str, Any], tmp_path: Path) -> None:
    lake = built["lake"]
    out = tmp_path / "export"
    manifest = export_corpus(lake, out, _cfg(max_rows_per_shard=7))
    rows = _read_jsonl(out)
    corpus = {r[0]: r for r in _corpus_rows(changed=True)}
    want = {d: expected_copies(d, r[8]) for d, r in corpus.items()}
    assert want["plain"] == 3 and want["double"] == 2 and want["frac"] in (2, 3)
    assert {want[f"half-{i:02d}"] for i in range(20)} == {0, 1}  # both outcomes of a weight below 1 occur
    got = Counter(r["doc_id"] for r in rows)
    assert got == Counter({d: n for d, n in want.items() if n})
    for d, n in got.items():
        assert sorted(r["repeat"] for r in rows if r["doc_id"] == d) == list(range(n))
    assert manifest["rows_written"] == len(rows) == sum(want.values())
    assert manifest["documents"] == len(corpus)
    assert manifest["documents_not_written"] == sum(1 for n in want.values() if n == 0)
    assert manifest["documents_by_action"] == dict(Counter(r[5] for r in corpus.values()))
    assert manifest["documents_by_tag"] == {"deception": 1, "misaligned_ai": 2, "retained:toxicity": 1, "toxicity": 1}
    assert manifest["source"]["version"] == built["v2"] and len(manifest["shards"]) == math.ceil(len(rows) / 7)
    assert all(s["rows"] <= 7 for s in manifest["shards"])

    by_doc = {r["doc_id"]: r for r in rows}
    for d, r in by_doc.items():
        assert r["tags"] == corpus[d][6] and r["weight"] == corpus[d][8] and r["action"] == corpus[d][5]
        assert r["text"] == PREFIX.get(d, "") + corpus[d][1]
    # spans: shifted past the prefix, pointing at the flagged passage of the tagged principles only
    toxic = by_doc["toxic"]
    assert [(s["principle"], toxic["text"][s["start"] : s["end"]]) for s in toxic["spans"]] == [
        ("toxicity", TOXIC_TEXT.strip())
    ]
    both = by_doc["both"]
    assert [(s["principle"], both["text"][s["start"] : s["end"]]) for s in both["spans"]] == [
        ("toxicity", INSULT),
        ("misaligned_ai", AI_SENTENCE),
    ]
    ai = by_doc["ai"]
    assert [ai["text"][s["start"] : s["end"]] for s in ai["spans"]] == [AI_SENTENCE]
    assert [by_doc["scam"]["text"][s["start"] : s["end"]] for s in by_doc["scam"]["spans"]] == [SCAM]
    assert by_doc["revised"]["spans"] == [] and by_doc["plain"]["spans"] == []
    assert manifest["spans"] == sum(len(r["spans"]) for r in rows)


def test_an_older_version_exports_with_its_own_weights_and_scores(built: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "v1"
    manifest = export_corpus(built["lake"], out, _cfg(tag_tokens=False), version=built["v1"])
    rows = _read_jsonl(out)
    ids = Counter(r["doc_id"] for r in rows)
    assert ids["plain"] == 1 and "late" not in ids
    assert manifest["source"]["version"] == built["v1"] and manifest["source"]["latest_version"] == built["v2"]
    toxic = next(r for r in rows if r["doc_id"] == "toxic")
    assert toxic["text"] == TOXIC_TEXT  # no tag tokens
    assert [toxic["text"][s["start"] : s["end"]] for s in toxic["spans"]] == [INSULT]  # the span as of version 1


def test_export_is_deterministic_and_parquet_matches_jsonl(built: dict[str, Any], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    lake = built["lake"]
    a = export_corpus(lake, tmp_path / "a", _cfg(max_rows_per_shard=10))
    b = export_corpus(lake, tmp_path / "b", _cfg(max_rows_per_shard=10))
    assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]]
    order = [(r["doc_id"], r["repeat"]) for r in _read_jsonl(tmp_path / "a")]
    # a shuffle, not the corpus order: the copies of a document do not sit next to each other
    assert order != sorted(order)
    key = [hashlib.sha256(f"0:{d}:{i}".encode()).hexdigest() for d, i in order]
    assert key == sorted(key)
    p = export_corpus(lake, tmp_path / "p", _cfg(max_rows_per_shard=10), fmt="parquet")
    assert p["rows_written"] == a["rows_written"] and len(p["shards"]) == len(a["shards"])
    parquet_rows = []
    for s in p["shards"]:
        parquet_rows += pq.read_table(tmp_path / "p" / s["file"]).to_pylist()
    assert parquet_rows == _read_jsonl(tmp_path / "a")


def test_spans_can_be_left_out(built: dict[str, Any], tmp_path: Path) -> None:
    manifest = export_corpus(built["lake"], tmp_path / "nospans", _cfg(spans=False, tag_separator=" "))
    rows = _read_jsonl(tmp_path / "nospans")
    assert manifest["spans"] == 0 and manifest["source"]["scores_version"] is None
    assert all(r["spans"] == [] for r in rows)
    assert next(r for r in rows if r["doc_id"] == "ai")["text"] == "<|misaligned_ai|> " + AI_TEXT


def test_export_refuses_bad_requests(built: dict[str, Any], tmp_path: Path) -> None:
    lake = built["lake"]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export_corpus(lake, busy, _cfg())
    with pytest.raises(ExportError, match="versions 0 to"):
        export_corpus(lake, tmp_path / "x", _cfg(), version=built["v2"] + 1)
    assert not (tmp_path / "x").exists()


def test_cli_export(built: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = built["lake"]
    out = tmp_path / "cli"
    args = ["export", "--lake", str(lake.root), "--out", str(out), "--version", str(built["v1"]), "--quiet"]
    assert main([*args, "--format", "parquet", "--set", "export.max_rows_per_shard=5"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "parquet" and manifest["source"]["version"] == built["v1"]
    assert all(s["rows"] <= 5 for s in manifest["shards"]) and manifest["config_hash"]
    assert "exported corpus version" in capsys.readouterr().out
    assert main(["export", "--lake", str(lake.root), "--out", str(out)]) == 2  # not empty
