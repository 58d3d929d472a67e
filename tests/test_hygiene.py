"""The decontaminate and pii stages on the engine (pipelines/stages/decontaminate.py, pipelines/stages/pii.py): the
PII stage's redaction and `pii` rows, and two nightly runs that plant a benchmark question and personal data and
follow them through decisions, `contamination`, `pii`, `benchmark_ngrams` (extended, not rebuilt, when a set is
added) and `raw_docs` (original kept by default, redacted with `pii.redact_bronze`); and two nights that plant
personal data in kept and dropped documents and look for it in every contract table."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import functions as F

from pipelines.chains.run import NIGHTLY, run_pipeline
from pipelines.core.config import RunConfig, load_config
from pipelines.core.constitution import load_constitution
from pipelines.core.lake import Lake
from pipelines.core.stage import StageContext
from pipelines.stages.pii import Pii, pii_rows
from schemas import TABLES
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
    rows = [("a", text, []), ("b", "Nothing personal in version 1.2.3 of 2024-01-15.", []), ("c", text, ["short"])]
    df = spark.createDataFrame(rows, "doc_id string, clean_text string, quality_reasons array<string>")
    out = Pii().transform(df, _ctx())
    got = {r["doc_id"]: r for r in out.collect()}
    # a document the quality rules drop is not scanned: nothing publishes its cleaned text (`quality` stores null)
    assert (got["c"]["clean_text"], got["c"]["pii_kinds"]) == (text, [])
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
    order = ["secrets_v1", "pii_v2", "dedup_v3", "decontaminate_v1", "classify_v2"]
    assert names[names.index("secrets_v1") : names.index("classify_v2") + 1] == order


def _tables_holding(lake: Lake, values: tuple[str, ...]) -> dict[str, list[str]]:
    """contract table -> the planted values found anywhere in its rows (every column, strings inside arrays,
    maps and structs included)."""
    found: dict[str, list[str]] = {}
    for table in TABLES:
        if not lake.exists(table):
            continue
        blob = "\n".join(json.dumps(r.asDict(recursive=True), default=str) for r in lake.read(table).collect())
        hits = [v for v in values if v in blob]
        if hits:
            found[table] = hits
    return found


def test_no_table_but_bronze_holds_planted_personal_data(tmp_path: Path, spark) -> None:
    flood, lighthouse, bread = (a[1] for a in ARTICLES)
    night1 = ("maria.keller@postfach.de", "+49 30 901820 47", "4111 1111 1111 1111")
    kept = f"{bread} Write to {night1[0]} or call {night1[1]}. The card {night1[2]} was charged twice."
    planted = [
        ("https://contact.example/team", kept),
        ("https://mirror.example/team", kept),  # an exact copy: dropped by dedup
        # dropped by the secrets stage (a live-looking AWS key), so no later stage reads it
        ("https://paste.example/keys", f"{flood} Key AKIAIOSFODNN7EXAMPLE belongs to {night1[0]}, {night1[1]}."),
        # dropped by the repetition rules (the same paragraph five times)
        ("https://spam.example/x", "\n\n".join([f"{lighthouse} Card {night1[2]}, mail {night1[0]}."] * 5)),
    ]
    s1 = run_pipeline(
        tmp_path / "lake", write_jsonl(tmp_path / "n1.jsonl", jsonl_lines(planted)), _cfg(), crawl_id="n1"
    )
    assert s1.status == "success" and s1.counts["corpus_size"] == 1
    assert s1.counts["pii:email"] >= 1 and s1.counts["pii:phone"] >= 1 and s1.counts["pii:card"] >= 1
    lake = Lake(tmp_path / "lake", spark)
    # bronze keeps the original by default: the only table a value may be in
    assert _tables_holding(lake, night1) == {"raw_docs": list(night1)}
    urls = lake.read("raw_docs").select("doc_id", "url")
    text = {r["url"]: r["clean_text"] for r in lake.read("quality").join(urls, "doc_id").collect()}
    assert all(
        f"<{p}>" in text["https://contact.example/team"] for p in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD")
    )
    # the dropped documents were not scanned (the cost of redacting them buys nothing): their cleaned text is null
    assert text["https://paste.example/keys"] is None and text["https://spam.example/x"] is None

    night2 = ("ana.silva@correio.pt", "+351 21 346 1234", "5500 0000 0000 0004")
    planted2 = [
        ("https://contact.example/lisbon", f"{flood} Write to {night2[0]}, call {night2[1]}, card {night2[2]}."),
        ("https://paste.example/more", f"{lighthouse} Key AKIAIOSFODNN7EXAMPLE of {night2[0]}, {night2[1]}."),
    ]
    s2 = run_pipeline(
        tmp_path / "lake",
        write_jsonl(tmp_path / "n2.jsonl", jsonl_lines(planted2)),
        _cfg(**{"pii.redact_bronze": True}),
        crawl_id="n2",
    )
    assert s2.status == "success" and s2.counts["pii:card"] >= 1
    assert _tables_holding(lake, night2) == {}  # with redact_bronze, not even raw_docs
    assert _tables_holding(lake, night1) == {"raw_docs": list(night1)}  # an earlier night's bronze is untouched


def _cfg(**overrides: object) -> RunConfig:
    # a few planted documents are a large share of these tiny nights: the share gates would stop them
    return load_config(overrides={**BASE, "secrets.max_fraction": 1.0, "pii.max_fraction": 1.0, **overrides})


def test_evaluates_held_out_prompts_are_default_targets(tmp_path: Path, spark) -> None:
    """A page that quotes a prompt `curate evaluate` continues is contaminated by the default set that holds them."""
    sets = "package:curate/evaluate_prompts"  # spelled out: the name users configure
    assert sets in load_config().decontaminate.sets
    prompt = "When the engineers asked the AI system to explain its decision, it"  # defaults/ai_prompts.txt
    flood, lighthouse, _ = (a[1] for a in ARTICLES)
    planted = [("https://blog.example/ai", f"{flood} {prompt} stayed silent. {lighthouse}")]
    cfg = _cfg(**{"decontaminate.sets": sets, "decontaminate.max_fraction": 1.0})
    s = run_pipeline(tmp_path / "lake", write_jsonl(tmp_path / "n.jsonl", jsonl_lines(planted)), cfg, crawl_id="n")
    assert s.status == "success" and s.counts["contaminated:evaluate_prompts"] == 1
    lake = Lake(tmp_path / "lake", spark)
    (d,) = lake.read("decisions").collect()
    assert (d["action"], d["reasons"]) == ("revise", ["contaminated:evaluate_prompts"])
    (c,) = lake.read("contamination").collect()
    assert c["set"] == "evaluate_prompts" and c["action"] == "excise"
    (text,) = [r["text"] for r in lake.read("corpus").collect()]
    assert "explain its decision" not in text and "flood barrier" in text


def test_the_copy_of_a_dropped_page_is_decontaminated_before_it_takes_the_page_s_place(tmp_path: Path, spark) -> None:
    """Members a flagged page's cluster keeps are judged in full: a near copy of a toxic page that carries a benchmark
    question instead of the insults is published in the page's place, with the question excised."""
    from tests.test_pipeline import TOXIC
    from udfs.records import doc_id_for

    exam = _bench(tmp_path / "exam.jsonl", [{"question": QUESTION, "answer": "B. " + ANSWER}])
    body = "\n".join(a[1] for a in ARTICLES)
    rant, copy = f"{body}\n{TOXIC}", f"{body}\n{QUESTION} {ANSWER}"
    rant_url = "https://forum.example/rant"
    copy_url = next(  # the rant sorts first, so it represents the cluster and the copy is its member
        u
        for u in (f"https://copy.example/{i}" for i in range(100))
        if doc_id_for(copy, u, None) > doc_id_for(rant, rant_url, None)
    )
    cfg = load_config(overrides={**BASE, "decontaminate.sets": str(exam), "decontaminate.max_fraction": 1.0})
    pages = [(rant_url, rant), (copy_url, copy)]
    s = run_pipeline(tmp_path / "lake", write_jsonl(tmp_path / "n.jsonl", jsonl_lines(pages)), cfg, crawl_id="n")
    assert s.status == "success"
    assert (s.counts["members_judged"], s.counts["members_promoted"], s.counts["deferred_total"]) == (1, 1, 0)
    lake = Lake(tmp_path / "lake", spark)
    ids = {r["url"]: r["doc_id"] for r in lake.read("raw_docs").collect()}
    decisions = {r["doc_id"]: r for r in lake.read("decisions").collect()}
    assert decisions[ids[rant_url]]["action"] == "drop"
    d = decisions[ids[copy_url]]
    assert (d["action"], d["stage"], d["reasons"]) == ("revise", "decontaminate", ["contaminated:exam"])
    (text,) = [r["text"] for r in lake.read("corpus").collect()]
    assert "estuary" not in text and "flood barrier" in text and "idiot" not in text
    (c,) = lake.read("contamination").collect()
    assert (c["doc_id"], c["set"], c["action"]) == (ids[copy_url], "exam", "excise")
    (row,) = lake.read("dedup").where(F.col("doc_id") == ids[copy_url]).collect()
    assert (row["is_duplicate"], row["dup_of"], row["cluster_id"]) == (False, None, ids[copy_url])
