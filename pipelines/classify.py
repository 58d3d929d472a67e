"""Principle scoring: an iterator pandas UDF that loads the scorer once per worker and scores batches.

This walking-skeleton scorer is the exemplar-similarity scorer on MiniLM (udfs/exemplar.py); the
distilled classifier from the MLflow registry replaces it behind the same UDF contract
(text -> one score per principle, on the constitution's [0, 1] scale).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import ArrayType, DoubleType

from pipelines.config import ClassifyConfig
from pipelines.constitution import Constitution
from schemas import require_columns

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from udfs.exemplar import ExemplarScorer


def model_uri(constitution: Constitution) -> str:
    from udfs.encoder import ENCODER_NAME

    return f"exemplar:{ENCODER_NAME}@{constitution.fingerprint()}"


def scorer_spec(constitution: Constitution, cfg: ClassifyConfig) -> str:
    """Everything a worker needs to build the scorer, as a JSON string (hashable, shippable)."""
    return json.dumps(
        {
            "principles": [
                {"name": p.name, "positive": list(p.positive), "negative": list(p.negative)}
                for p in constitution.principles
            ],
            "device": cfg.device,
            "max_tokens": cfg.max_tokens,
            "batch_size": cfg.batch_size,
            "threads": cfg.threads,
        },
        sort_keys=True,
    )


# Sail runs UDF partitions as threads of one process: the first import of transformers and the model load
# must not race (transformers' lazy module raises ImportError when two threads import it at once).
_LOAD_LOCK = threading.Lock()


def load_scorer(spec: str) -> ExemplarScorer:
    with _LOAD_LOCK:
        return _load_scorer(spec)


@lru_cache(maxsize=4)
def _load_scorer(spec: str) -> ExemplarScorer:
    from udfs.encoder import shared_encoder
    from udfs.exemplar import ExemplarScorer, PrincipleExemplars

    s = json.loads(spec)
    encoder = shared_encoder(s["device"], s["max_tokens"], s["batch_size"], s["threads"])
    principles = [PrincipleExemplars(p["name"], tuple(p["positive"]), tuple(p["negative"])) for p in s["principles"]]
    return ExemplarScorer(encoder, principles)


def score_column(text: Column, spec: str) -> Column:
    @pandas_udf(ArrayType(DoubleType()))  # type: ignore[call-overload]
    def score(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        scorer = load_scorer(spec)  # once per worker, before the loop
        for texts in batches:
            values = scorer.score([t if isinstance(t, str) else "" for t in texts])
            yield pd.Series([row.tolist() for row in values])

    return score(text)


def transform(df: DataFrame, constitution: Constitution, cfg: ClassifyConfig) -> DataFrame:
    """Adds `principle_scores`: array<double>, one entry per principle in constitution order."""
    require_columns(df.columns, ["doc_id", "text"], "classify")
    return df.withColumn("principle_scores", score_column(F.col("text"), scorer_spec(constitution, cfg)))


def to_scores_table(df: DataFrame, constitution: Constitution, run_id: str) -> DataFrame:
    """Long form for the `scores` table: one row per (doc_id, principle)."""
    require_columns(df.columns, ["doc_id", "principle_scores"], "scores")
    names = F.array(*[F.lit(n) for n in constitution.names])
    return df.select(
        "doc_id",
        F.posexplode("principle_scores").alias("_i", "score"),
    ).select(
        "doc_id",
        F.element_at(names, F.col("_i") + 1).alias("principle"),
        "score",
        F.array().cast("array<struct<start:int,end:int,score:double>>").alias("spans"),
        F.lit(model_uri(constitution)).alias("model_uri"),
        F.lit(run_id).alias("run_id"),
    )
