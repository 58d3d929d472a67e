"""The secrets stage (pipelines/stages/secrets.py), the example of a stage added on the Stage protocol: its patterns on
documented key formats and near misses, its declared columns checked by the executor, and a nightly run that
drops the document holding a key with its reason, counts it, and gates a batch that is mostly keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import functions as F

from expectations.runner import GateFailed
from pipelines.chains.run import NIGHTLY, run_pipeline
from pipelines.core.config import load_config
from pipelines.core.constitution import load_constitution
from pipelines.core.lake import Lake
from pipelines.core.stage import StageContext, StageContractError, check_columns
from pipelines.stages.secrets import Secrets
from tests.fixtures import ARTICLES, jsonl_lines, write_jsonl

# Key formats as the vendors document them; AWS's is its own published example key.
HITS = {
    "aws": ("The deploy script exports AKIAIOSFODNN7EXAMPLE as the access key.", ["aws_access_key"]),
    "github": ("token = ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8" + " in the CI file", ["github_token"]),
    "slack": ("post with xoxb-123456789012-abcdefghijkl to the channel", ["slack_token"]),
    "google": ("maps key AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q" + " in the page", ["google_api_key"]),
    "stripe": ("charge with sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" + " now", ["stripe_secret_key"]),
    "pem": ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", ["private_key"]),
    "two": ("AKIAIOSFODNN7EXAMPLE and -----BEGIN OPENSSH PRIVATE KEY-----", ["aws_access_key", "private_key"]),
}
MISSES = {
    "prose": "The akia tribe and the ASIA pacific region are discussed in chapter four of the report.",
    "too_short": "AKIAIOSFODNN7EXAM is not a whole key.",
    "inside_word": "XAKIAIOSFODNN7EXAMPLEX is part of a longer identifier.",
    "test_key": "Stripe test keys look like sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc" + " and are harmless.",
    "public_key": "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----",
    "sha256": "checksum 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 of the file",
}


def _ctx() -> StageContext:
    return StageContext(cfg=load_config(), constitution=load_constitution(), run_id="r", crawl_id="c")


def test_patterns_find_documented_keys_and_nothing_else(spark) -> None:
    rows = [(k, t) for k, (t, _) in HITS.items()] + list(MISSES.items())
    df = spark.createDataFrame(rows, "doc_id string, clean_text string").withColumn(
        "quality_reasons", F.array().cast("array<string>")
    )
    out = {r["doc_id"]: r for r in Secrets().transform(df, _ctx()).collect()}
    for k, (_, kinds) in HITS.items():
        assert out[k]["secret_kinds"] == kinds, k
        assert out[k]["quality_reasons"] == [f"secret:{x}" for x in kinds], k
    for k in MISSES:
        assert out[k]["secret_kinds"] == [] and out[k]["quality_reasons"] == [], k


def test_disabled_stage_finds_nothing(spark) -> None:
    cfg = load_config(overrides={"secrets.enabled": False})
    ctx = StageContext(cfg=cfg, constitution=load_constitution(), run_id="r", crawl_id="c")
    schema = "doc_id string, clean_text string, quality_reasons array<string>"
    df = spark.createDataFrame([("a", HITS["aws"][0], [])], schema)
    (row,) = Secrets().transform(df, ctx).collect()
    assert row["secret_kinds"] == [] and row["quality_reasons"] == []


def test_the_executor_names_a_missing_column() -> None:
    with pytest.raises(StageContractError, match=r"secrets_v1: its input lacks column\(s\) quality_reasons"):
        check_columns(Secrets(), ["doc_id", "clean_text"], "reads")
    assert "secrets_v1" in [s.name for s in NIGHTLY.stages]


def test_unknown_kind_is_a_config_error() -> None:
    from pipelines.core.config import ConfigError

    with pytest.raises(ConfigError, match=r"secrets\.kinds"):
        load_config(overrides={"secrets.kinds": "aws_access_key,ssh_password"})


# as tests/test_pipeline.py: the fixture articles pass every quality rule with these two lowered
BASE = {"revise.enabled": False, "quality.c4.min_num_sentences": 3, "quality.min_stop_words": 0}


def _crawl(tmp_path: Path, n_keys: int) -> Path:
    leaky = [
        (f"https://paste.example/{i}", ARTICLES[i % len(ARTICLES)][1] + f" Key {i}: AKIAIOSFODNN7EXAMPL{i % 10}.")
        for i in range(n_keys)
    ]
    return write_jsonl(tmp_path / "crawl.jsonl", jsonl_lines(ARTICLES + leaky))


def test_run_drops_the_document_with_a_key_and_counts_it(tmp_path: Path, spark) -> None:
    cfg = load_config(overrides={**BASE, "secrets.max_fraction": 0.5})
    summary = run_pipeline(tmp_path / "lake", _crawl(tmp_path, 1), cfg, crawl_id="n1")
    assert summary.status == "success"
    assert summary.counts["secrets"] == 1 and summary.counts["secrets:aws_access_key"] == 1
    assert summary.counts["reason:secret:aws_access_key"] == 1
    lake = Lake(tmp_path / "lake", spark)
    leaked = lake.read("raw_docs").where("url = 'https://paste.example/0'").collect()[0]["doc_id"]
    (d,) = lake.read("decisions").where(f"doc_id = '{leaked}'").collect()
    assert (d["action"], d["reasons"], d["stage"]) == ("drop", ["secret:aws_access_key"], "quality")
    assert lake.read("corpus").where(f"doc_id = '{leaked}'").count() == 0
    assert lake.read("corpus").count() == summary.counts["corpus_size"] == summary.counts["pending"] - 1


def test_a_batch_of_keys_fails_its_gate_and_publishes_nothing(tmp_path: Path, spark) -> None:
    cfg = load_config(overrides={**BASE, "secrets.max_fraction": 0.2})
    with pytest.raises(GateFailed, match="secrets"):
        run_pipeline(tmp_path / "lake", _crawl(tmp_path, 3), cfg, crawl_id="n1")
    lake = Lake(tmp_path / "lake", spark)
    assert lake.read("corpus").count() == 0 and lake.read("decisions").count() == 0
    (run,) = lake.read("runs").collect()
    assert run["status"] == "failed_gate" and run["counts"]["secrets"] == 3
