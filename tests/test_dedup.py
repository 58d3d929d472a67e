"""Dedup: the MinHash functions without Spark, then exact and near dedup on the embedded engine - across crawls,
against the persisted index, deterministic, incremental equal to full, and safe from boilerplate buckets."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from pipelines.core.config import ConfigError, DedupConfig, load_config
from pipelines.core.constitution import load_constitution
from pipelines.stages import decide, dedup
from udfs import minhash

P = minhash.MinHashParams()
# Our own texts (not tests/fixtures.py, which other tests may change): pinned keys and Jaccards depend on them.
A = (
    "The river authority confirmed on Tuesday that the new flood barrier will be finished before the "
    "autumn storms, after engineers completed the last of the concrete sections ahead of plan. Residents "
    "who had campaigned for the barrier for more than a decade said the work had already changed how the "
    "town feels about living so close to the water. The project cost less than first estimated because "
    "the steel was ordered early, and the council says the savings will pay for a footpath along the new "
    "embankment."
)
B = (
    "A lighthouse is a tower designed to emit light from a system of lamps and lenses and to serve as a "
    "navigational aid for maritime pilots at sea or on inland waterways. Lighthouses mark dangerous "
    "coastlines, hazardous shoals and reefs, and safe entries to harbours, and they can also assist in "
    "aerial navigation. Once widely used, the number of operational lighthouses has declined because of "
    "the expense of maintenance and the arrival of electronic navigational systems over the last century."
)
C = (
    "To make a simple loaf of bread you need flour, water, salt and yeast, and a little patience. Mix the "
    "ingredients into a rough dough and leave it to rest for half an hour, then knead it until it is "
    "smooth and elastic. Let it rise in a warm place until it has doubled in size, which usually takes "
    "about an hour, and then shape it and bake it in a hot oven until the crust is deep brown and sounds "
    "hollow."
)
URLS = (
    "https://news.example/flood-barrier",
    "https://encyclopedia.example/wiki/Lighthouse",
    "https://recipes.example/bread",
)
SCHEMA = "doc_id string, crawl_id string, text string"


def edit(text: str, *positions: int, word: str = "zebra") -> str:
    """Replace the words at `positions`: one replaced word in an 80-word text leaves 5-gram Jaccard ~0.93."""
    return " ".join(word if i in positions else w for i, w in enumerate(text.split()))


# ---- udfs/minhash.py: no Spark -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello,  World!", "hello world"),
        ("tab\there\u00a0nbsp\u2028line\x85nel\x0bvt", "tab here nbsp line nel vt"),
        ("  don't   stop-me ... now  ", "dont stopme now"),
        ("Ünïcode ÇA va, 3½ €", "ünïcode ça va 3½"),
        ("...", ""),
        ("", ""),
    ],
)
def test_normalisation_arrow_equals_python_reference(text: str, expected: str) -> None:
    assert minhash.normalise(pa.array([text])).to_pylist() == [expected]
    assert minhash.normalise_text(text) == expected


def test_shingle_counts_word_and_char() -> None:
    texts = ["one two three four five six seven", "just three words", "", "!!!", None]
    _, per_doc = minhash.shingle_hashes(texts, P)
    assert per_doc.tolist() == [3, 1, 0, 0, 0]  # 7 words -> 3 five-word windows; short -> one; empty -> none
    _, per_doc = minhash.shingle_hashes(["abcdefg", "ab c"], minhash.MinHashParams(shingle="char", ngram=5))
    assert per_doc.tolist() == [3, 1]
    # the same words give the same shingles wherever they are; order matters inside a shingle
    a = minhash.shingle_set("a b c d e f", P)
    assert len(np.intersect1d(a, minhash.shingle_set("x a b c d e", P))) == 1
    assert len(np.intersect1d(a, minhash.shingle_set("e d c b a", P))) == 0


def test_exact_jaccard() -> None:
    j = minhash.jaccard(["a b c d e f", "a b c d e f", "a b", ""], ["a b c d e g", "A, b c d e f!", "c d", "x"], P)
    assert j.tolist() == [pytest.approx(1 / 3), 1.0, 0.0, 0.0]


def test_character_tokens_are_the_code_points_of_the_normalised_text() -> None:
    """1-, 2-, 3- and 4-byte UTF-8 (ASCII, Latin accents, CJK, emoji and a Gothic letter), nulls and texts that
    normalise to nothing, decoded from Arrow's buffer as Python's str would."""
    texts = ["Ab c", "Café déjà vu", "東京 タワー", "ok 👍🏽 fine", "𐌰𐌱 x", None, "", "!!!", "z"]
    points, counts = minhash._tokens(pa.array(texts, pa.string()), "char")
    want = [[ord(c) for c in minhash.normalise_text(t or "")] for t in texts]
    assert counts.tolist() == [len(w) for w in want]
    assert points.tolist() == [c for w in want for c in w]


def test_exact_jaccard_equals_the_set_definition_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled merge against Python sets of each text's shingles (numpy.unique per text), with texts shared
    between pairs, repeated shingles, texts without shingles, and chunks cut between every few texts."""
    import random

    rnd = random.Random(7)
    texts = [" ".join(rnd.choice(["ab", "cd", "abcd", "e"]) for _ in range(rnd.randint(0, 40))) for _ in range(30)]
    texts += ["", None, "a b"]
    pairs = [(rnd.choice(texts), rnd.choice(texts)) for _ in range(200)] + [(t, t) for t in texts]
    for params in (P, minhash.MinHashParams(shingle="char", ngram=5)):

        def truth(a: str | None, b: str | None, params: minhash.MinHashParams = params) -> float:
            sa = set(minhash.shingle_set(a, params).tolist()) if a else set()
            sb = set(minhash.shingle_set(b, params).tolist()) if b else set()
            return len(sa & sb) / len(sa | sb) if sa and sb else 0.0

        want = [truth(a, b) for a, b in pairs]
        monkeypatch.setattr(minhash, "CHUNK_BYTES", 40)
        got = minhash.jaccard([a for a, _ in pairs], [b for _, b in pairs], params)
        assert got.tolist() == want
        assert sum(0 < w < 1 for w in want) > 0 and sum(w == 1 for w in want) >= len(texts) - 2


def test_band_keys_are_pinned() -> None:
    """Persisted band keys must stay comparable: a change here needs a new scheme name (minhash-v2)."""
    keys = minhash.band_keys([A, "", None], P)
    assert P.scheme == "minhash-v1:word5:p112:b14x8:s1"
    assert keys[0][:3] == [1977827842003178042, -6024040123037322680, -6134583375741805552]
    assert keys[1] is None and keys[2] is None
    assert keys == minhash.band_keys([A, "", None], P)


def test_signatures_estimate_jaccard_and_chunking_does_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = [(A, edit(A, *range(2, 87, k))) for k in (3, 5, 10, 25)]
    true = minhash.jaccard([a for a, _ in pairs], [b for _, b in pairs], P)
    sig, has = minhash.signatures([t for pair in pairs for t in pair], P)
    estimate = (sig[0::2] == sig[1::2]).mean(axis=1)
    assert has.all()
    assert np.abs(estimate - true).max() < 0.15
    monkeypatch.setattr(minhash, "CHUNK_BYTES", 300)  # every document its own chunk
    assert (minhash.signatures([t for pair in pairs for t in pair], P)[0] == sig).all()


def test_lsh_threshold_and_validation() -> None:
    assert P.threshold() == pytest.approx(0.719, abs=0.001)
    with pytest.raises(ValueError, match="exceeds num_perm"):
        minhash.MinHashParams(bands=20, rows=8)
    with pytest.raises(ConfigError, match=r"exceeds dedup\.num_perm"):
        load_config(None, {"dedup.bands": 20})
    with pytest.raises(ConfigError, match=r"dedup\.shingle"):
        load_config(None, {"dedup.shingle": "sentence"})
    assert load_config(None, {"dedup.shingle": "char", "dedup.ngram": 9}).dedup.ngram == 9


# ---- the stage on Spark ----------------------------------------------------------------------------------


@pytest.fixture()
def ck(spark, tmp_path: Path) -> dedup.ParquetCheckpoint:
    return dedup.ParquetCheckpoint(spark, tmp_path / "checkpoints")


def _by_id(df) -> dict[str, object]:
    return {r.doc_id: r for r in df.collect()}


def _clusters(df) -> set[tuple[object, ...]]:
    return {(r.doc_id, r.cluster_id, r.is_duplicate, r.dup_kind) for r in df.collect()}


def test_exact_dedup_within_batch_and_against_earlier(spark) -> None:
    prior = spark.createDataFrame([("old1", "n0", "Hello, World!  The same text.")], SCHEMA).withColumn(
        "exact_hash", dedup.exact_hash(F.col("text"))
    )
    batch = spark.createDataFrame(
        [
            ("b2", "n1", "hello world the SAME text"),  # equal to old1 after normalisation
            ("b1", "n1", "A fresh document."),
            ("a9", "n1", "a fresh document"),  # smaller doc_id wins within the batch
            ("c1", "n1", "unique"),
            ("t1", "n1", "tab\tand\u00a0nbsp"),
        ],
        SCHEMA,
    )
    out = _by_id(dedup.transform(batch, prior, DedupConfig(fuzzy=False)))
    assert (out["b2"].is_duplicate, out["b2"].dup_of, out["b2"].dup_kind) == (True, "old1", "exact_duplicate")
    assert (out["a9"].is_duplicate, out["a9"].dup_of, out["a9"].cluster_id) == (False, None, "a9")
    assert (out["b1"].is_duplicate, out["b1"].dup_of) == (True, "a9")
    assert (out["c1"].is_duplicate, out["c1"].cluster_id, out["c1"].dup_kind) == (False, "c1", None)
    assert out["c1"].exact_hash == hashlib.sha256(b"unique").hexdigest()
    assert out["a9"].exact_hash == hashlib.sha256(b"a fresh document").hexdigest()
    assert out["t1"].exact_hash == hashlib.sha256(b"tab and nbsp").hexdigest()


def test_batch_of_exact_duplicates_only_and_empty_batch(spark, ck) -> None:
    prior = dedup.transform(spark.createDataFrame([("old", "n1", A)], SCHEMA), cfg=DedupConfig(fuzzy=False))
    batch = spark.createDataFrame([("new", "n2", A.upper())], SCHEMA)
    (row,) = dedup.transform(batch, prior, DedupConfig(), checkpoint=ck).collect()
    assert (row.dup_of, row.dup_kind, row.bands) == ("old", "exact_duplicate", None)
    assert dedup.transform(batch.limit(0), prior, DedupConfig(), checkpoint=ck).collect() == []


def test_earliest_crawl_wins_within_batch(spark) -> None:
    batch = spark.createDataFrame([("aaa", "2026-11-02", "same words"), ("zzz", "2026-11-01", "Same words!")], SCHEMA)
    out = _by_id(dedup.transform(batch, cfg=DedupConfig(fuzzy=False)))
    assert out["aaa"].dup_of == "zzz" and out["zzz"].dup_of is None


def test_near_duplicates_across_crawls(spark, ck) -> None:
    batch = spark.createDataFrame(
        [
            ("n2-a", "n2", edit(A, 40)),  # near duplicate of an earlier crawl's document
            ("n1-a", "n1", A),
            ("n1-b", "n1", B),
            ("n1-b2", "n1", edit(B, 30, word="otter")),  # near duplicate within the crawl
            ("n3-b", "n3", edit(B, 30, word="otter").upper() + "!"),  # exact duplicate of a near duplicate
            ("n1-c", "n1", C),
        ],
        SCHEMA,
    )
    out = _by_id(dedup.transform(batch, cfg=DedupConfig(), checkpoint=ck))
    assert (out["n2-a"].dup_of, out["n2-a"].dup_kind) == ("n1-a", "near_duplicate")
    assert (out["n1-b2"].dup_of, out["n1-b2"].dup_kind) == ("n1-b", "near_duplicate")
    assert (out["n3-b"].dup_of, out["n3-b"].dup_kind) == ("n1-b", "exact_duplicate")
    assert sorted(d for d, r in out.items() if not r.is_duplicate) == ["n1-a", "n1-b", "n1-c"]
    assert out["n3-b"].bands is None and len(out["n1-a"].bands) == 14


def _night(spark, ck, rows, prior, index, texts, cfg: DedupConfig, run_id: str):
    batch = spark.createDataFrame(rows, SCHEMA)
    d = ck(dedup.transform(batch, prior, cfg, index=index, texts=texts, checkpoint=ck), f"{run_id}_out")
    new_index = ck(dedup.index_rows(d, cfg, run_id), f"{run_id}_index")
    return d, (new_index if index is None else index.unionByName(new_index))


def test_dup_of_points_into_the_index(spark, ck) -> None:
    cfg = DedupConfig(verify=True)
    texts = spark.createDataFrame([("n1-a", A), ("n1-b", B)], "doc_id string, text string")
    d1, index = _night(spark, ck, [("n1-a", "n1", A), ("n1-b", "n1", B)], None, None, texts, cfg, "r1")
    assert {r.doc_id for r in index.collect()} == {"n1-a", "n1-b"}
    assert {r.scheme for r in index.collect()} == {dedup.params_of(cfg).scheme}
    d2, index = _night(spark, ck, [("n2-a", "n2", edit(A, 40)), ("n2-c", "n2", C)], d1, index, texts, cfg, "r2")
    out = _by_id(d2)
    assert (out["n2-a"].dup_of, out["n2-a"].dup_kind) == ("n1-a", "near_duplicate")
    assert out["n2-c"].is_duplicate is False
    assert {r.doc_id for r in index.collect()} == {"n1-a", "n1-b", "n2-c"}  # only survivors are appended


def test_index_of_another_scheme_is_refused(spark, ck) -> None:
    d, index = _night(spark, ck, [("n1-a", "n1", A)], None, None, None, DedupConfig(), "r1")
    batch = spark.createDataFrame([("n2-b", "n2", B)], SCHEMA)
    with pytest.raises(dedup.DedupError, match="another MinHash scheme"):
        dedup.transform(batch, d, DedupConfig(bands=7, rows=16), index=index, checkpoint=ck)


def _corpus() -> list[list[tuple[str, str, str]]]:
    a2 = edit(A, 40)
    # s1 and s2 share no LSH bucket (Jaccard 0.61); tonight's `bridge` is 0.78 from each and shares buckets with both
    bridge = f"{A} {B}"
    s1, s2 = edit(bridge, 10, 25, 40, 55, word="alpha"), edit(bridge, 90, 105, 120, 135, word="omega")
    return [
        [("c1-a", "c1", A), ("c1-a2", "c1", a2), ("c1-b", "c1", B), ("c1-s1", "c1", s1)],
        [("c2-b2", "c2", edit(B, 40)), ("c2-a2", "c2", a2 + " "), ("c2-c", "c2", C), ("c2-x", "c2", edit(C, 3, 60))],
        [("c2-s2", "c2", s2)],
        [("c3-a3", "c3", edit(A, 40, 70)), ("c3-c2", "c3", edit(C, 50)), ("c3-b3", "c3", edit(B, 40, 70, word="yak"))],
        [("c3-bridge", "c3", bridge)],
    ]


@pytest.mark.parametrize("verify", [False, True])
def test_incremental_equals_full(spark, ck, verify: bool) -> None:
    cfg = DedupConfig(shingle="word", verify=verify)  # _corpus's Jaccards and buckets are word 5-gram ones
    nights = _corpus()
    everything = [row for night in nights for row in night]
    texts = spark.createDataFrame([(d, t) for d, _, t in everything], "doc_id string, text string")
    full = dedup.transform(spark.createDataFrame(everything, SCHEMA), cfg=cfg, texts=texts, checkpoint=ck)
    prior, index, parts = None, None, []
    for i, rows in enumerate(nights):  # five nightly runs, two of them on a crawl already partly deduplicated
        d, index = _night(spark, ck, rows, prior, index, texts, cfg, f"n{i}")
        prior = d if prior is None else prior.unionByName(d)
        parts.append(d)
    incremental = set().union(*(_clusters(p) for p in parts))
    assert _clusters(full) == incremental
    assert {k for _, _, _, k in incremental} == {"near_duplicate", "exact_duplicate", None}
    # a later document that bridges two kept ones joins the earliest; the other stays published
    assert {("c2-s2", "c2-s2", False, None), ("c3-bridge", "c1-s1", True, "near_duplicate")} <= incremental
    assert ("c2-x", "c2-c", True, "near_duplicate") in incremental


def test_same_clusters_on_every_run_and_partitioning(spark, ck) -> None:
    rows = [row for night in _corpus() for row in night]
    runs = []
    for partitions in ("1", "7"):
        spark.conf.set("spark.sql.shuffle.partitions", partitions)
        try:
            df = spark.createDataFrame(rows, SCHEMA).repartition(int(partitions))
            runs.append(_clusters(dedup.transform(df, cfg=DedupConfig(), checkpoint=ck)))
        finally:
            spark.conf.set("spark.sql.shuffle.partitions", "2")
    assert runs[0] == runs[1]
    assert sum(1 for r in runs[0] if r[2]) >= 5


def test_boilerplate_bucket_makes_a_star_not_a_clique(spark, ck) -> None:
    n = 400
    rows = [(f"doc-{i:04d}", "c1", f"{A} Page {i} of the archive, item {i * 7919}.") for i in range(n)]
    batch = spark.createDataFrame(rows, SCHEMA)
    bands = batch.select("doc_id", "crawl_id", dedup.band_udf(P)(F.col("text")).alias("bands"))
    members = bands.select(
        dedup.order_key(F.lit(1), F.col("crawl_id"), F.col("doc_id")).alias("key"),
        F.posexplode("bands").alias("band", "bucket"),
    )
    sizes = [r["count"] for r in members.groupBy("band", "bucket").count().collect()]
    assert max(sizes) > n // 2  # the boilerplate lands most documents in shared buckets
    clique = sum(k * (k - 1) // 2 for k in sizes)
    edges = dedup.star_edges(members).count()
    assert edges <= sum(k - 1 for k in sizes) < clique / 50  # one edge per member and bucket, not one per pair
    out = _by_id(dedup.transform(batch, cfg=DedupConfig(), checkpoint=ck))
    assert {r.cluster_id for r in out.values()} == {"doc-0000"}


def test_verification_rejects_candidates_below_the_threshold(spark, ck) -> None:
    # S-curve threshold ~0.13: a 0.3-Jaccard pair (word 5-grams, as P) is a candidate
    loose = {"bands": 56, "rows": 2, "shingle": "word"}
    far = edit(A, *range(2, 87, 10))
    rows = [("x1", "c1", A), ("x2", "c1", far)]
    assert minhash.jaccard([A], [far], P)[0] < 0.5
    unverified = _by_id(
        dedup.transform(spark.createDataFrame(rows, SCHEMA), cfg=DedupConfig(verify=False, **loose), checkpoint=ck)
    )
    verified = _by_id(
        dedup.transform(spark.createDataFrame(rows, SCHEMA), cfg=DedupConfig(verify=True, **loose), checkpoint=ck)
    )
    assert unverified["x2"].dup_of == "x1"
    assert verified["x2"].is_duplicate is False


def test_near_duplicate_reason_reaches_decisions(spark) -> None:
    c = load_constitution()
    schema = (
        "doc_id string, text string, quality_reasons array<string>, is_duplicate boolean, dup_kind string, "
        "principle_scores array<double>, revision_status string, revised_text string"
    )
    rows = [(k, "t", [], True, f"{k}_duplicate", None, None, None) for k in ("near", "exact")]
    flagged = decide.principle_flags(spark.createDataFrame(rows, schema), c)
    out = _by_id(decide.transform(flagged, c))
    assert (out["near"].action, out["near"].reasons, out["near"].stage) == ("drop", ["near_duplicate"], "dedup")
    assert out["exact"].reasons == ["exact_duplicate"]


def test_two_nights_publish_near_duplicates_and_the_index(spark, tmp_path: Path, monkeypatch) -> None:
    from pipelines.chains.run import run_pipeline
    from pipelines.core.lake import Lake
    from pipelines.stages import quality
    from tests.fixtures import jsonl_lines, write_jsonl

    # dedup is under test, not the quality rules (they have their own tests): every document passes them
    scored = quality.transform
    monkeypatch.setattr(
        quality,
        "transform",
        lambda df, cfg: scored(df, cfg).withColumn("quality_reasons", F.array().cast("array<string>")),
    )
    cfg = load_config(None, {"revise.enabled": False, "engine.shuffle_partitions": 2})
    lake_root = tmp_path / "lake"
    night1 = write_jsonl(tmp_path / "n1.jsonl", jsonl_lines(list(zip(URLS, (A, B, C), strict=True))))
    night2 = write_jsonl(
        tmp_path / "n2.jsonl",
        jsonl_lines(
            [
                ("https://mirror.example/barrier", edit(A, 40)),  # near duplicate of night 1's first article
                ("https://copy.example/bread", C.upper()),  # exact duplicate of night 1's third
            ]
        ),
    )
    s1 = run_pipeline(lake_root, night1, cfg, crawl_id="n1")
    s2 = run_pipeline(lake_root, night2, cfg, crawl_id="n2")
    assert (s1.counts["near_duplicates"], s1.counts["exact_duplicates"]) == (0, 0)
    assert (s2.counts["near_duplicates"], s2.counts["exact_duplicates"]) == (1, 1)
    assert s2.counts["reason:near_duplicate"] == 1 and s2.counts["reason:exact_duplicate"] == 1
    lake = Lake(lake_root, spark)
    url_of = {r.doc_id: r.url for r in lake.read("raw_docs").collect()}
    dups = {
        url_of[r.doc_id]: (url_of[r.dup_of], r.dup_kind) for r in lake.read("dedup").where("is_duplicate").collect()
    }
    assert dups == {
        "https://mirror.example/barrier": (URLS[0], "near_duplicate"),
        "https://copy.example/bread": (URLS[2], "exact_duplicate"),
    }
    index = lake.read("minhash_index")
    assert index.count() == 3 * 14  # the three kept documents of night 1, none of night 2
    assert {url_of[r.doc_id] for r in index.select("doc_id").distinct().collect()} == set(URLS)


def test_presets_and_the_edit_robust_default() -> None:
    d = load_config(None).dedup
    assert (d.preset, d.shingle, d.ngram, d.bands, d.rows, d.verify) == (None, "char", 5, 14, 8, True)
    f = load_config(None, {"dedup.preset": "fineweb"}).dedup
    assert (f.shingle, f.ngram, f.num_perm, f.bands, f.rows, f.verify) == ("word", 5, 112, 14, 8, False)
    assert load_config(None, {"dedup.preset": "fineweb", "dedup.verify": True}).dedup.verify is True  # keys win
    with pytest.raises(ConfigError, match=r"dedup\.preset.*'edit-robust', 'fineweb'"):
        load_config(None, {"dedup.preset": "minhash9000"})


def test_the_default_finds_a_near_duplicate_with_a_tenth_of_its_words_edited(spark, ck) -> None:
    # every 10th word replaced: few word 5-grams survive, most character 5-grams do
    near = edit(A, *range(3, len(A.split()), 10))
    rows = [("y1", "c1", A), ("y2", "c1", near)]
    default = _by_id(dedup.transform(spark.createDataFrame(rows, SCHEMA), cfg=DedupConfig(), checkpoint=ck))
    fineweb = load_config(None, {"dedup.preset": "fineweb"}).dedup
    word5 = _by_id(dedup.transform(spark.createDataFrame(rows, SCHEMA), cfg=fineweb, checkpoint=ck))
    assert (default["y2"].dup_of, default["y2"].dup_kind) == ("y1", "near_duplicate")
    assert word5["y2"].is_duplicate is False


# ---- dedup keyed to what is published (issue 22 item 2) ------------------------------------------------------------


def _one_shared_bucket(params: minhash.MinHashParams):
    """A stand-in for `dedup.band_udf`: every document's band 0 is the same bucket, its other bands its own."""
    import zlib

    from pyspark.sql.functions import pandas_udf

    @pandas_udf("array<bigint>")  # type: ignore[call-overload]
    def bands(texts: pd.Series) -> pd.Series:
        return pd.Series([[7] + [zlib.crc32(t.encode()) * 16 + j for j in range(1, params.bands)] for t in texts])

    return bands


@pytest.mark.parametrize(("bucket_max", "linked"), [(64, True), (0, False)])
def test_true_pair_sharing_a_bucket_with_a_dissimilar_minimum_is_linked(
    spark, ck, monkeypatch: pytest.MonkeyPatch, bucket_max: int, linked: bool
) -> None:
    # x0 (bread) is the bucket's smallest member and like neither; x1 and x2 are one article, 0.97 alike, and share
    # no other bucket: the star alone verifies x1-x0 and x2-x0, both fail, and the true pair is never looked at
    monkeypatch.setattr(dedup, "band_udf", _one_shared_bucket)
    rows = [("x0", "c1", C), ("x1", "c1", A), ("x2", "c1", edit(A, 40))]
    cfg = DedupConfig(verify=True, verify_bucket_max=bucket_max)
    out = _by_id(dedup.transform(spark.createDataFrame(rows, SCHEMA), cfg=cfg, checkpoint=ck))
    assert out["x0"].is_duplicate is False and out["x1"].is_duplicate is False
    assert (out["x2"].dup_of, out["x2"].dup_kind) == (("x1", "near_duplicate") if linked else (None, None))


def _settled(spark, rows: list[tuple[object, ...]]) -> dict[str, object]:
    c = load_constitution()
    schema = (
        "doc_id string, crawl_id string, text string, quality_reasons array<string>, is_duplicate boolean, "
        "dup_kind string, dup_of string, cluster_id string, exact_hash string, member_judged boolean, "
        "principle_scores array<double>, revision_status string, revised_text string"
    )
    flagged = decide.principle_flags(spark.createDataFrame(rows, schema), c)
    return _by_id(decide.transform(flagged, c))


def _scores(**by_name: float) -> list[float]:
    return [by_name.get(n, 0.0) for n in load_constitution().names]


def test_a_dropped_representative_is_replaced_by_its_smallest_member_that_passes(spark) -> None:
    toxic, clean = _scores(toxicity=0.99), _scores()
    rows = [
        ("rep", "c1", "t", [], False, None, None, "rep", "h-rep", False, toxic, None, None),  # dropped by a principle
        ("m-b", "c1", "t", [], True, "near_duplicate", "rep", "rep", "h-b", True, clean, None, None),
        ("m-a", "c1", "t", [], True, "near_duplicate", "rep", "rep", "h-a", True, clean, None, None),
        ("m-0", "c0", "t", [], True, "near_duplicate", "rep", "rep", "h-0", True, toxic, None, None),  # earlier crawl
        ("copy-of-rep", "c1", "t", [], True, "exact_duplicate", "rep", "rep", "h-rep", False, None, None, None),
        # a near member dedup made a duplicate and the members stage did not judge: no judgement of its own
        ("unjudged", "c1", "t", [], True, "near_duplicate", "rep", "rep", "h-u", False, None, None, None),
        ("old-copy", "c1", "t", [], True, "near_duplicate", "published-long-ago", "x", "h-o", False, None, None, None),
    ]
    out = _settled(spark, rows)
    assert (out["rep"].action, out["rep"].reasons) == ("drop", ["principle:toxicity"])
    # m-0 sorts first (crawl c0) but its own judgement drops it: the smallest member that passes is m-a
    a = out["m-a"]
    assert (a.action, a.reasons, a.stage, a.is_duplicate, a.dup_of, a.cluster_id, a.dup_kind) == (
        "keep",
        [],
        "publish",
        False,
        None,
        "m-a",
        None,
    )
    assert a.regrouped is True
    for d in ("m-b", "m-0", "copy-of-rep", "unjudged"):
        r = out[d]
        assert (r.action, r.stage, r.dup_of, r.cluster_id, r.is_duplicate, r.regrouped) == (
            "drop",
            "dedup",
            "m-a",
            "m-a",
            True,
            True,
        ), d
    assert out["m-b"].reasons == ["near_duplicate"] and out["copy-of-rep"].reasons == ["exact_duplicate"]
    assert out["m-0"].reasons == ["near_duplicate"]  # a duplicate of what is published, as dedup's precedence says
    old = out["old-copy"]
    assert (old.action, old.reasons, old.dup_of, old.regrouped) == (
        "drop",
        ["near_duplicate"],
        "published-long-ago",
        False,
    )


def test_a_cluster_with_no_member_that_passes_is_decided_member_by_member(spark) -> None:
    v = load_constitution().get("violence")
    assert v.mode == "revise"
    toxic, clean = _scores(toxicity=0.99), _scores()
    violent_band = _scores(violence=(v.revise_threshold + v.filter_threshold) / 2)  # in its revise band
    rows = [
        ("rep", "c1", "t", [], False, None, None, "rep", "h-rep", False, toxic, None, None),
        ("m-toxic", "c1", "t", [], True, "near_duplicate", "rep", "rep", "h-t", True, toxic, None, None),
        ("m-band", "c1", "t", [], True, "near_duplicate", "rep", "rep", "h-v", True, violent_band, "over_cap", None),
        ("copy-of-rep", "c1", "t", [], True, "exact_duplicate", "rep", "rep", "h-rep", False, None, None, None),
        ("copy-of-band", "c1", "t", [], True, "exact_duplicate", "rep", "rep", "h-v", False, None, None, None),
        ("unjudged", "c1", "t", [], True, "near_duplicate", "rep", "rep", "h-u", False, None, None, None),
        ("copy-of-unjudged", "c1", "t", [], True, "exact_duplicate", "rep", "rep", "h-u", False, None, None, None),
        # the representative of another cluster is kept: its judged member is its duplicate, as if never judged
        ("ok-rep", "c1", "t", [], False, None, None, "ok-rep", "h-ok", False, clean, None, None),
        ("ok-member", "c1", "t", [], True, "near_duplicate", "ok-rep", "ok-rep", "h-okm", True, toxic, None, None),
    ]
    out = _settled(spark, rows)
    t = out["m-toxic"]
    assert (t.action, t.reasons, t.stage, t.dup_of, t.regrouped) == (
        "drop",
        ["principle:toxicity"],
        "classify",
        "rep",
        False,
    )
    # a member is revised like any document: one the night had no budget for is deferred for that reason
    b = out["m-band"]
    assert (b.action, b.reasons, b.stage) == ("defer", ["revision_over_cap", "flagged:violence"], "revise")
    r = out["copy-of-rep"]
    assert (r.action, r.reasons, r.dup_of, r.regrouped) == ("drop", ["exact_duplicate", "copy_of_dropped"], "rep", True)
    for d in ("copy-of-band", "copy-of-unjudged", "unjudged"):
        assert (out[d].action, out[d].reasons[0], out[d].dup_of) == ("defer", "unpublished_representative", "rep"), d
    m = out["ok-member"]
    assert (out["ok-rep"].action, m.action, m.reasons, m.stage, m.dup_of) == (
        "keep",
        "drop",
        ["near_duplicate"],
        "dedup",
        "ok-rep",
    )


NAV = "\n".join(
    [
        "Home News Sport Weather Travel Culture Future Reel Worklife",
        "Sign in Register Newsletter Podcasts Live Video Audio Sounds",
        "Contact us About the paper Advertise with us Careers Syndication",
        "Accessibility help Privacy notice Cookie settings Terms of use",
        "Follow us on social media Facebook Twitter Instagram YouTube TikTok",
        "Related topics Floods Environment Local councils Engineering",
    ]
)


@pytest.fixture(scope="module")
def published_nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two nights on the packaged config (char 5-grams + verify), every document passing the quality rules.

    Night 1: `A` behind navigation lines that C4 cleaning removes; a page `rant` (three clean articles and a
    toxic paragraph: dropped by toxicity), its clean copy `clean` (Jaccard 0.80 with it) and an edited copy that
    keeps the paragraph, whose doc_ids sort after the rant's, so the rant represents their cluster. Night 2: `A`
    lightly edited (0.97 with the cleaned `A`, 0.56 with the raw page), and another clean copy.
    """
    from pipelines.chains.run import run_pipeline
    from pipelines.stages import quality
    from tests.fixtures import jsonl_lines, write_jsonl
    from tests.test_pipeline import TOXIC
    from udfs.records import doc_id_for

    tmp = tmp_path_factory.mktemp("published")
    mp = pytest.MonkeyPatch()
    scored = quality.transform
    mp.setattr(
        quality,
        "transform",
        lambda df, cfg: scored(df, cfg).withColumn("quality_reasons", F.array().cast("array<string>")),
    )
    clean = "\n".join([A, B, C])
    rant = f"{clean}\n{TOXIC}"
    urls = {"a": URLS[0], "rant": "https://forum.example/rant", "a2": "https://mirror.example/barrier"}
    urls["clean"] = next(
        u
        for u in (f"https://copy.example/{i}" for i in range(100))
        if doc_id_for(clean, u, None) > doc_id_for(rant, urls["rant"], None)
    )
    # a copy of the rant that still holds its toxic paragraph: the guard drops it for that paragraph
    urls["rant-copy"] = next(
        u
        for u in (f"https://rant-copy.example/{i}" for i in range(100))
        if doc_id_for(f"{edit(clean, 40)}\n{TOXIC}", u, None) > doc_id_for(rant, urls["rant"], None)
    )
    urls["clean2"] = "https://copy2.example/page"
    cfg = load_config(None, {"revise.enabled": False, "engine.shuffle_partitions": 2})
    lake = tmp / "lake"
    n1 = [
        (urls["a"], f"{NAV}\n{A}"),
        (urls["rant"], rant),
        (urls["clean"], clean),
        (urls["rant-copy"], f"{edit(clean, 40)}\n{TOXIC}"),
    ]
    n2 = [(urls["a2"], edit(A, 40)), (urls["clean2"], edit(clean, 40, 120))]
    try:
        s1 = run_pipeline(lake, write_jsonl(tmp / "n1.jsonl", jsonl_lines(n1)), cfg, crawl_id="n1")
        s2 = run_pipeline(lake, write_jsonl(tmp / "n2.jsonl", jsonl_lines(n2)), cfg, crawl_id="n2")
    finally:
        mp.undo()
    return {"lake": lake, "s1": s1, "s2": s2, "urls": urls}


def _state(spark, built: dict[str, object], run: str) -> tuple[dict[str, object], set[str], set[str]]:
    """(url -> its decision in the night `run`, urls in that night's corpus, urls with keys in that night's index)."""
    from pipelines.core.lake import Lake

    lake = Lake(built["lake"], spark)  # type: ignore[arg-type]
    s = built[run]
    url_of = {r.doc_id: r.url for r in lake.read("raw_docs").collect()}
    decisions = {url_of[r.doc_id]: r for r in lake.read("decisions").where(f"run_id = '{s.run_id}'").collect()}  # type: ignore[attr-defined]
    v = s.table_versions  # type: ignore[attr-defined]
    corpus = {url_of[r.doc_id] for r in lake.read("corpus", version=v["corpus"]).collect()}
    index = {url_of[r.doc_id] for r in lake.read("minhash_index", version=v["minhash_index"]).collect()}
    return decisions, corpus, index


def test_the_clean_copy_of_a_dropped_page_is_judged_and_published_the_same_night(spark, published_nights) -> None:
    from pipelines.core.lake import Lake

    urls = published_nights["urls"]
    decisions, corpus, index = _state(spark, published_nights, "s1")
    assert decisions[urls["rant"]].action == "drop" and decisions[urls["rant"]].stage in ("classify", "revise")
    # the clean copy of the dropped page is no duplicate of anything published: judged on its own, it takes the
    # cluster's place tonight
    d = decisions[urls["clean"]]
    assert (d.action, d.reasons, d.stage) == ("keep", [], "publish")
    assert corpus == index == {urls["a"], urls["clean"]}  # the dropped page left no keys; the copy has its own
    c = published_nights["s1"].counts  # type: ignore[attr-defined]
    assert (c["members_judged"], c["members_promoted"], c["deferred_total"]) == (2, 1, 0)
    # the copy that kept the toxic paragraph was found holding the passage the rant's spans name, and is dropped
    assert (c["members_holding_passage"], c["members_passage_cut"]) == (1, 0)
    assert decisions[urls["rant-copy"]].action == "drop"
    lake = Lake(published_nights["lake"], spark)  # type: ignore[arg-type]
    url_of = {r.doc_id: r.url for r in lake.read("raw_docs").collect()}
    rows = {url_of[r.doc_id]: r for r in lake.read("dedup").collect()}
    copy = rows[urls["clean"]]
    # the dedup table says what was published: the copy represents itself and its text is there for verification
    assert (copy.is_duplicate, copy.dup_of, url_of[copy.cluster_id]) == (False, None, urls["clean"])
    assert copy.dedup_text is not None and "toxic" not in copy.dedup_text.lower()
    # its scores are in the scores table beside the dropped page's, decided as classify decides
    scored = {url_of[r.doc_id] for r in lake.read("scores").collect()}
    assert {urls["rant"], urls["clean"], urls["a"]} <= scored


def test_next_night_matches_the_copy_published_in_its_place(spark, published_nights) -> None:
    urls = published_nights["urls"]
    c = published_nights["s2"].counts  # type: ignore[attr-defined]
    assert (c["pending"], c["pending_deferred"], c["deferred_total"], c["unaccounted"]) == (2, 0, 0, 0)
    decisions, corpus, index = _state(spark, published_nights, "s2")
    # the copy published on night 1 represents its cluster: night 2's edit of it is its near duplicate
    assert (decisions[urls["clean2"]].action, decisions[urls["clean2"]].reasons) == ("drop", ["near_duplicate"])
    assert corpus == index == {urls["a"], urls["clean"]}


def test_cross_night_verification_compares_the_text_dedup_read(spark, published_nights) -> None:
    urls = published_nights["urls"]
    decisions, _, _ = _state(spark, published_nights, "s2")
    # the edited A matches night 1's A on the cleaned text both were deduplicated on (0.97), not on night 1's raw
    # page with its navigation lines (0.56)
    assert (decisions[urls["a2"]].action, decisions[urls["a2"]].reasons) == ("drop", ["near_duplicate"])


def test_a_judged_member_in_a_revise_band_is_a_revision_candidate_after_the_live_ones(spark) -> None:
    from pipelines.stages.revise import candidates

    c = load_constitution()
    v = c.get("violence")
    band = _scores(violence=(v.revise_threshold + v.filter_threshold) / 2)
    schema = (
        "doc_id string, clean_text string, quality_reasons array<string>, is_duplicate boolean, "
        "member_judged boolean, principle_scores array<double>"
    )
    rows = [
        ("live", "t", [], False, False, band),
        ("member", "t", [], True, True, band),  # judged by the members stage: revised like any document
        ("dup", "t", [], True, False, band),  # a duplicate of a published page: never revised
    ]
    flagged = decide.principle_flags(spark.createDataFrame(rows, schema), c)
    got = {r.doc_id: r._member for r in candidates(flagged, c).collect()}
    assert got == {"live": False, "member": True}


def test_members_are_revised_after_the_live_documents_with_the_budget_left(spark, lake, tmp_path: Path) -> None:
    """Revise's second pass: members of a representative the run drops, after every live candidate, within what
    the caps left; never a member of a representative the same run revised (it would be that page's duplicate)."""
    from pipelines.core.execute import Stager
    from pipelines.core.stage import StageContext
    from pipelines.stages.revise import Revise
    from tests.fixtures import ARTICLES

    c = load_constitution()
    v = c.get("violence")
    band, dropped = _scores(violence=(v.revise_threshold + v.filter_threshold) / 2), _scores(toxicity=0.99)
    text = "\n".join(a[1] for a in ARTICLES)
    threat = f"{text}\nI am going to find where you live and beat you with a hammer until you stop breathing."
    schema = (
        "doc_id string, crawl_id string, clean_text string, quality_reasons array<string>, is_duplicate boolean, "
        "dup_of string, member_judged boolean, principle_scores array<double>"
    )
    rows = [
        ("live", "c", text, [], False, None, False, band),
        ("rep", "c", text, [], False, None, False, dropped),  # dropped by toxicity: its members may take its place
        ("member-a", "c", text, [], True, "rep", True, band),
        ("member-b", "c", text, [], True, "rep", True, band),
        # a representative in a band whose excision is accepted: published, so its member is its duplicate
        ("rep-2", "c", threat, [], False, None, False, band),
        ("member-2", "c", threat, [], True, "rep-2", True, band),
    ]
    cfg = load_config(overrides={"revise.method": "excise", "revise.max_excise_docs": 3})
    ctx = StageContext(
        cfg=cfg, constitution=c, run_id="r", crawl_id="c", lake=lake, materialise=Stager(spark, tmp_path / "st")
    )
    out = Revise().transform(decide.principle_flags(spark.createDataFrame(rows, schema), c), ctx)
    status = {r.doc_id: r.revision_status for r in out.collect()}
    # the live candidates first, the first member with the one excision left, the other over the cap
    assert status["live"] not in (None, "over_cap") and status["member-a"] not in (None, "over_cap")
    assert (status["member-b"], status["rep"]) == ("over_cap", None)
    assert (status["rep-2"], status["member-2"]) == ("ok", None)


_THREAT = "Next time I see that councillor I will smash his skull in with a hammer and leave him in the gutter."
_PAGE = (
    "The council met on Monday to discuss the new bus timetable for the northern estates. "
    "Several residents asked for an earlier first service on weekdays. "
    f"{_THREAT} "
    "The transport officer promised a consultation before the summer, and the library will stay open late."
)


def _guarded_cluster(spark, rep_score: float, without_threat: bool = True) -> dict[str, object]:
    """A page flagged for violence at `rep_score`, its spans the threat, and three near copies the scorer (given
    here) found clean: one with the threat reworded, one with it gone, one that is little more than the threat.
    Through the members stage's guard, its flags and the decision, as the stage composes them."""
    from pipelines.stages import members

    c = load_constitution()
    reworded = _PAGE.replace(
        _THREAT,
        "I will smash that councillor's skull in with a hammer next time I see him, and leave him in the gutter.",
    )
    without = _PAGE.replace(_THREAT + " ", "")
    mostly_threat = f"Local news. {_THREAT}"
    schema = (
        "doc_id string, crawl_id string, clean_text string, quality_reasons array<string>, is_duplicate boolean, "
        "dup_kind string, dup_of string, cluster_id string, exact_hash string, principle_scores array<double>, "
        "revision_status string, revised_text string"
    )
    flagged, clean = _scores(violence=rep_score), _scores()
    rows = [
        ("rep", "c1", _PAGE, [], False, None, None, "rep", "h0", flagged, None, None),
        ("m-a", "c1", reworded, [], True, "near_duplicate", "rep", "rep", "h1", clean, None, None),
        ("m-b", "c1", without, [], True, "near_duplicate", "rep", "rep", "h2", clean, None, None),
        ("m-c", "c1", mostly_threat, [], True, "near_duplicate", "rep", "rep", "h3", clean, None, None),
    ]
    rows = rows if without_threat else [r for r in rows if r[0] != "m-b"]
    df = decide.principle_flags(spark.createDataFrame(rows, schema), c)
    start = _PAGE.index(_THREAT)
    scores = spark.createDataFrame(
        [("rep", "violence", [(start, start + len(_THREAT), rep_score)]), ("rep", "toxicity", [(0, 10, 0.9)])],
        "doc_id string, principle string, spans array<struct<start:int,end:int,score:double>>",
    )
    found = members.members_of_flagged(df)
    assert sorted(r.doc_id for r in found.collect()) == sorted(r[0] for r in rows[1:])
    guard = members.guarded(found, df, scores, 0.5).select(
        "doc_id", F.col("clean_text").alias("_cut"), decide.HELD, decide.PASSAGE_CUT
    )
    judged = (
        df.join(guard, "doc_id", "left")
        .withColumn("clean_text", F.coalesce("_cut", "clean_text"))
        .withColumn(decide.MEMBER, F.col("doc_id").startswith("m-"))
        .drop("_cut")
    )
    judged = members.inherit_flags(decide.principle_flags(judged, c))
    return _by_id(decide.transform(judged.withColumnRenamed("clean_text", "text"), c))


def test_a_copy_that_still_holds_the_passage_a_page_was_dropped_for_does_not_take_its_place(spark) -> None:
    # m-a sorts first and its own (lenient) score passes: without the guard it would be published in rep's place
    v = load_constitution().get("violence")
    out = _guarded_cluster(spark, rep_score=v.filter_threshold + 0.01)
    assert (out["rep"].action, out["rep"].reasons) == ("drop", ["principle:violence"])
    b = out["m-b"]  # the copy without the threat takes the page's place, as it is
    assert (b.action, b.reasons, b.is_duplicate, b.dup_of, b.out_text) == (
        "keep",
        [],
        False,
        None,
        _PAGE.replace(_THREAT + " ", ""),
    )
    assert (out["m-a"].action, out["m-a"].dup_of) == ("drop", "m-b")
    assert (out["m-c"].action, out["m-c"].dup_of) == ("drop", "m-b")
    # with no copy free of the threat, each is dropped for the passage it holds, and none is published
    out = _guarded_cluster(spark, rep_score=v.filter_threshold + 0.01, without_threat=False)
    for d in ("m-a", "m-c"):
        assert (out[d].action, out[d].reasons, out[d].stage, out[d].dup_of) == (
            "drop",
            ["principle:violence", "holds_passage:violence"],
            "classify",
            "rep",
        ), d


def test_a_copy_that_holds_a_passage_in_a_revise_band_is_published_with_the_passage_cut(spark) -> None:
    v = load_constitution().get("violence")
    out = _guarded_cluster(spark, rep_score=(v.revise_threshold + v.filter_threshold) / 2)
    # tonight the page's own revision was not attempted (no revision outcome in this frame): it takes the fallback
    assert out["rep"].action != "keep" and out["rep"].action != "revise"
    a = out["m-a"]  # the smallest member: the threat cut, the rest published in the page's place
    assert (a.action, a.reasons, a.stage, a.is_duplicate, a.dup_of) == (
        "revise",
        ["passage_cut:violence"],
        "classify",
        False,
        None,
    )
    assert "skull" not in a.out_text and a.out_text.startswith("The council met") and "library" in a.out_text
    # a copy that is little more than the threat: the cut would leave too little, so it is dropped for it
    c = out["m-c"]
    assert (c.action, c.dup_of) == ("drop", "m-a")
    assert out["m-b"].action == "drop" and out["m-b"].reasons == ["near_duplicate"]
