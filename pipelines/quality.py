"""Quality heuristics as native Spark expressions: metrics become columns, failed rules become reasons.

Score first, decide later: this stage only adds `quality_reasons` (empty = passes) and the metrics behind
them, so thresholds can be re-tuned in SQL over the `quality` table without recomputing.

Rules (a first subset of the Gopher quality filter, Rae et al. 2021, "Scaling Language Models: Methods,
Analysis & Insights from Training Gopher", appendix A; reason names as in datatrove's
GopherQualityFilter so results compare one to one).

Tokenisation: words are runs of non-whitespace (`split(text, '\\s+')`), lines split on `\\n`. datatrove uses
spaCy's tokenizer and strips punctuation tokens; the difference is measured in bench/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from pipelines.config import QualityConfig
from schemas import require_columns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
BULLETS = ("•", "●", "◦", "-", "*", "‣", "⁃")


def _count_sub(text: Column, sub: str) -> Column:
    return (F.length(text) - F.length(F.replace(text, F.lit(sub), F.lit("")))) / F.lit(len(sub))


def _ratio(num: Column, den: Column) -> Column:
    return F.when(den > 0, num.cast("double") / den.cast("double"))


def metrics(df: DataFrame) -> DataFrame:
    require_columns(df.columns, ["doc_id", "text"], "quality")
    text = F.col("text")
    words = F.filter(F.split(text, r"\s+"), lambda w: F.length(w) > 0)
    lines = F.filter(F.split(text, "\n"), lambda line: F.length(F.trim(line)) > 0)
    bullet_re = "^\\s*(" + "|".join("\\" + b if b in "-*" else b for b in BULLETS) + ")"
    out = df.withColumn("_words", words).withColumn("_lines", lines)
    w, ln = F.col("_words"), F.col("_lines")
    n_words = F.size(w)
    return out.select(
        "*",
        F.length(text).cast("long").alias("n_chars"),
        n_words.cast("long").alias("n_words"),
        F.size(ln).cast("long").alias("n_lines"),
        _ratio(F.aggregate(w, F.lit(0).cast("long"), lambda acc, x: acc + F.length(x)), n_words).alias(
            "mean_word_length"
        ),
        _ratio(F.size(F.filter(w, lambda x: x.rlike(r"\p{L}"))), n_words).alias("alpha_word_ratio"),
        _ratio(_count_sub(text, "#"), n_words).alias("hash_word_ratio"),
        _ratio(_count_sub(text, "...") + _count_sub(text, "…"), n_words).alias("ellipsis_word_ratio"),
        _ratio(F.size(F.filter(ln, lambda x: x.rlike(bullet_re))), F.size(ln)).alias("bullet_line_ratio"),
        F.size(F.filter(w, lambda x: F.lower(x).isin(*STOP_WORDS))).cast("long").alias("stop_word_count"),
    ).drop("_words", "_lines")


def reasons(cfg: QualityConfig) -> Column:
    rules: list[tuple[Column, str]] = [
        (F.col("n_words") < cfg.min_words, "gopher_short_doc"),
        (F.col("n_words") > cfg.max_words, "gopher_long_doc"),
        (F.col("mean_word_length") < cfg.min_mean_word_length, "gopher_below_avg_threshold"),
        (F.col("mean_word_length") > cfg.max_mean_word_length, "gopher_above_avg_threshold"),
        (F.col("hash_word_ratio") > cfg.max_hash_word_ratio, "gopher_too_many_hashes"),
        (F.col("ellipsis_word_ratio") > cfg.max_ellipsis_word_ratio, "gopher_too_many_ellipsis"),
        (F.col("bullet_line_ratio") > cfg.max_bullet_line_ratio, "gopher_too_many_bullets"),
        (F.col("alpha_word_ratio") < cfg.min_alpha_word_ratio, "gopher_below_alpha_threshold"),
        (F.col("stop_word_count") < cfg.min_stop_words, "gopher_enough_stop_words"),
    ]
    flagged = F.array(*[F.when(cond, F.lit(name)) for cond, name in rules])
    return F.filter(flagged, lambda r: r.isNotNull())


def transform(df: DataFrame, cfg: QualityConfig) -> DataFrame:
    """Adds the metric columns and `quality_reasons`; drops nothing."""
    return (
        metrics(df)
        .withColumn("quality_reasons", reasons(cfg))
        .withColumn("lang", F.lit(None).cast("string"))
        .withColumn("lang_score", F.lit(None).cast("double"))
    )
