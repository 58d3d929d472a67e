"""The decontaminate and pii stages on the engine (pipelines/stages/decontaminate.py, pipelines/stages/pii.py): the
PII stage's redaction and `pii` rows, and two nightly runs that plant a benchmark question and personal data and
follow them through decisions, `contamination`, `pii`, `benchmark_ngrams` (extended, not rebuilt, when a set is
added) and `raw_docs` (original kept by default, redacted with `pii.redact_bronze`)."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import functions as F

from pipelines.chains.run import NIGHTLY, run_pipeline
from pipelines.core.config import load_config
from pipelines.core.constitution import load_constitution
from pipelines.core.lake import Lake
from pipelines.core.stage import StageContext
from pipelines.stages.pii import Pii, pii_rows
from tests.fixtures import ARTICLES, jsonl_lines, write_jsonl

# as tests/test_pipeline.py: the fixture articles pass every quality rule with these two lowered
BASE = {"revise.enabled": False, "quality.c4.min_num_sentences": 3, "quality.min_stop_words": 0}

QUESTION = (
    "Which of the following best explains why the tidal range in a narrow estuary is usually larger than the "
    "tidal range on the open coast nearby?"
)
ANSWER = "The funnel shape of the estuary concentrates the incoming tidal wave into a smaller cross section."
OTHER = "Name the only planet in the solar system that rotates on its side relative to the plane of its orbit."


def _ctx(**overrides: object) -> StageContext:
    return StageContext(
        cfg=load_config(overrides=overrides), constitution=load_constitution(), run_id="r", crawl_id="c"
    )


def test_pii_stage_redacts_and_records_offsets_not_values(spark) -> None:
    text = "Write to ana.silva@correio.pt or call +351 21 346 1234. Our LAN is 192.168.0.1, release 2.4.1.7."
    df = spark.createDataFrame(
        [("a", text), ("b", "Nothing personal in version 1.2.3 of 2024-01-15.")], "doc_id string, clean_text string"
    )
    out = Pii().transform(df, _ctx())
    got = {r["doc_id"]: r for r in out.collect()}
    assert got["a"]["clean_text"] == (
        "Write to <EMAIL_ADDRESS> or call <PHONE_NUMBER>. Our LAN is 192.168.0.1, release 2.4.1.7."
    )
    assert got["b"]["clean_text"] == "Nothing personal in version 1.2.3 of 2024-01-15." and got["b"]["pii_kinds"] == []
    rows = {r["kind"]: r for r in pii_rows(out, _ctx()).collect()}
    assert set(rows) == {"email", "phone"}
    email_at = text.index("ana.silva")
    assert (rows["email"]["count"], rows["email"]["starts"], rows["email"]["ends"]) == (
        1,
        [email_at],
        [email_at + len("ana.silva@correio.pt")],
    )
    assert "correio" not in json.dumps([r.asDict() for r in rows.values()], default=str)  # never the value
    kept = Pii().transform(df, _ctx(**{"pii.placeholders.phone": "keep"})).where("doc_id = 'a'").collect()[0]
    assert "+351 21 346 1234" in kept["clean_text"] and kept["pii_kinds"] == ["email", "phone"]


def _bench(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_two_nights_plant_benchmarks_and_personal_data(tmp_path: Path, spark) -> None:
    exam = _bench(
        tmp_path / "exam.jsonl", [{"question": "unrelated " * 20}, {"question": QUESTION, "answer": "B. " + ANSWER}]
    )
    quiz = _bench(tmp_path / "quiz.jsonl", [{"question": OTHER, "answer": "Uranus"}, ["not", "an", "object"]])
    flood, lighthouse, bread = (a[1] for a in ARTICLES)
    planted = [
        # question + answer pasted into a page: the sentences holding them are excised, the rest survives
        ("https://forum.example/tides", f"{flood} {QUESTION} {ANSWER} {lighthouse}"),
        ("https://contact.example/team", f"{bread} Write to maria.keller@postfach.de or call +49 30 901820 47."),
    ]
    cfg = load_config(overrides={**BASE, "decontaminate.sets": str(exam), "decontaminate.max_fraction": 0.5})
    s1 = run_pipeline(tmp_path / "lake", write_jsonl(tmp_path / "n1.jsonl", jsonl_lines(planted)), cfg, crawl_id="n1")
    assert s1.status == "success"
    assert s1.counts["contaminated"] == 1 and s1.counts["decontaminate:excise"] == 1
    assert s1.counts["contaminated:exam"] == 1 and s1.counts["pii:email"] == 1 and s1.counts["pii:phone"] == 1
    lake = Lake(tmp_path / "lake", spark)
    ids = {r["url"]: r["doc_id"] for r in lake.read("raw_docs").collect()}
    tides, team = ids["https://forum.example/tides"], ids["https://contact.example/team"]
    (d,) = lake.read("decisions").where(f"doc_id = '{tides}'").collect()
    assert (d["action"], d["stage"], d["reasons"]) == ("revise", "decontaminate", ["contaminated:exam"])
    corpus = {r["doc_id"]: r["text"] for r in lake.read("corpus").collect()}
    assert "estuary" not in corpus[tides] and "flood barrier" in corpus[tides] and "lighthouse" in corpus[tides]
    (c,) = lake.read("contamination").collect()
    assert (c["doc_id"], c["set"], c["item"], c["action"]) == (tides, "exam", "1", "excise") and c["matched"] > 5
    assert "maria.keller" not in corpus[team] and "<EMAIL_ADDRESS>" in corpus[team] and "<PHONE_NUMBER>" in corpus[team]
    assert {r["kind"] for r in lake.read("pii").where(f"doc_id = '{team}'").collect()} == {"email", "phone"}
    raw = {r["doc_id"]: r["text"] for r in lake.read("raw_docs").collect()}
    assert "maria.keller@postfach.de" in raw[team]  # bronze keeps the original by default
    built = lake.read("benchmark_ngrams").groupBy("set").count().collect()
    assert [r["set"] for r in built] == ["exam"]

    # night 2: a set is added (only it is hashed and stored), a whole question is dropped, bronze is redacted
    night2 = [
        ("https://trivia.example/q", f"{flood} {OTHER}"),
        ("https://shop.example/order", f"{lighthouse} Card 4111 1111 1111 1111 was charged; SSN 219-09-9999."),
    ]
    cfg2 = load_config(
        overrides={
            **BASE,
            "decontaminate.sets": f"{exam},{quiz}",
            "decontaminate.max_fraction": 0.5,
            "decontaminate.action": "drop",
            "pii.redact_bronze": True,
        }
    )
    s2 = run_pipeline(tmp_path / "lake", write_jsonl(tmp_path / "n2.jsonl", jsonl_lines(night2)), cfg2, crawl_id="n2")
    assert s2.counts["benchmark_sets_built"] == 1 and s2.counts["benchmark_items_skipped"] == 1
    per_set = {r["set"]: r["count"] for r in lake.read("benchmark_ngrams").groupBy("set").count().collect()}
    assert (
        per_set["exam"] == {r["set"]: r["count"] for r in built}["exam"] and per_set["quiz"] == len(OTHER.split()) - 12
    )
    ids = {r["url"]: r["doc_id"] for r in lake.read("raw_docs").collect()}
    (d,) = lake.read("decisions").where(f"doc_id = '{ids['https://trivia.example/q']}'").collect()
    assert (d["action"], d["stage"], d["reasons"]) == ("drop", "decontaminate", ["contaminated:quiz"])
    raw = {r["doc_id"]: r["text"] for r in lake.read("raw_docs").collect()}
    assert (
        "4111" not in raw[ids["https://shop.example/order"]]
        and "<CREDIT_CARD>" in raw[ids["https://shop.example/order"]]
    )
    assert "maria.keller@postfach.de" in raw[team]  # an earlier night's bronze is not touched
    assert lake.read("corpus").where(F.col("text").contains("219-09-9999")).count() == 0
    names = [s.name for s in NIGHTLY.stages]
    order = ["secrets_v1", "pii_v1", "dedup_v3", "decontaminate_v1", "classify_v2"]
    assert names[names.index("secrets_v1") : names.index("classify_v2") + 1] == order
