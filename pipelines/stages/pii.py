"""Personal data redaction: email addresses, phone numbers, public IP addresses, payment cards, IBANs and US SSNs
are replaced in the text by placeholders (`<EMAIL_ADDRESS>`, ...; udfs/pii.py finds and checks them).

It runs right after the quality and secrets stages, so that every later stage - dedup, decontamination, the
classifier and the LLM reviser (a remote endpoint) - already reads the redacted text, and the corpus can only
ever publish it. What is where (the README's "Personal data" section):

- `corpus.text`: redacted. The `pii` table: per document and kind, the count and the character offsets into the
  cleaned text the stage read (C4's output), never the values.
- `quality.clean_text`: redacted for the documents the quality rules (and the secrets stage) keep, null for those
  they drop. The stage returns the `quality` rows again and the executor publishes them in place of the quality
  stage's (a later stage's table replaces an earlier one's of the same name: pipelines/core/execute.py), so the
  unredacted cleaned text is never written to the table.
- `raw_docs.text` (bronze) keeps the original as ingested, unless `pii.redact_bronze: true`: then the stage's
  `raw_docs:redacted` rows replace the bronze text of every document of the batch it found personal data in
  (dropped ones too), at publish time.

Only the documents without a quality reason are redacted: the others are dropped, and no table publishes their
cleaned text, so redacting them would only cost time (on a crawl-like mix most documents fail a quality rule;
bench/README.md). The price: `quality.clean_text` of a dropped document is null when the stage is on (the
original is in `raw_docs`, and `quality_reasons` still says why it was dropped).
Score first, decide once: nothing is dropped here; a batch that is mostly personal data fails the gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import great_expectations.expectations as gxe
from pyspark.sql import functions as F

from pipelines.core.publish import REDACT_BRONZE
from pipelines.core.stage import BaseStage, Gate, StageContext, decided
from pipelines.stages.quality import C4_OUTPUT, quality_rows
from schemas import TABLES
from udfs.pii import KEEP, KINDS, Options, redact_udf

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def _placeholders(ctx: StageContext) -> dict[str, str]:
    return ctx.cfg.pii.placeholders.as_map() if ctx.cfg.pii.enabled else {}


def _options(ctx: StageContext) -> Options:
    cfg = ctx.cfg.pii
    return Options(public_ip_only=cfg.public_ip_only, keep_email_domains=cfg.keep_email_domains)


def redacted(text: Column, ctx: StageContext) -> Column:
    """struct<text, kinds, starts, ends> of `text` (udfs/pii.py's `redact` on the engine's workers)."""
    return redact_udf(_placeholders(ctx), _options(ctx))(text)


def pii_rows(out: DataFrame, ctx: StageContext) -> DataFrame:
    """The `pii` rows: one per document and kind found, offsets in text order."""
    keep = [k for k, v in _placeholders(ctx).items() if v == KEEP]
    zipped = F.arrays_zip(F.col("pii_kinds"), F.col("pii_starts"), F.col("pii_ends"))
    span = F.struct(F.col("f.pii_starts"), F.col("f.pii_ends")).alias("span")
    found = out.select("doc_id", F.explode(zipped).alias("f"))
    found = found.select("doc_id", F.col("f.pii_kinds").alias("kind"), span)
    spans = F.array_sort(F.collect_list("span"))
    grouped = found.groupBy("doc_id", "kind").agg(F.count("*").alias("count"), spans.alias("spans"))
    return grouped.select(
        "doc_id",
        "kind",
        "count",
        F.transform("spans", lambda s: s.getField("pii_starts")).alias("starts"),
        F.transform("spans", lambda s: s.getField("pii_ends")).alias("ends"),
        (~F.col("kind").isin(*keep) if keep else F.lit(True)).alias("redacted"),
        F.lit(ctx.run_id).alias("run_id"),
        F.current_timestamp().alias("found_at"),
    )


def scanned() -> Column:
    """The documents the stage redacts: those still in the running (no quality or secrets reason)."""
    return F.size("quality_reasons") == 0


def quality_text(ctx: StageContext) -> Column:
    """`quality.clean_text` (C4's output as it came, possibly empty) redacted, from the stage's output; null for a
    document the stage did not scan."""
    c4 = F.col(C4_OUTPUT)
    if "c4" in ctx.cfg.quality.rule_sets:
        # with C4 on, the text the stage redacted is C4's output wherever that is not empty (pipelines/stages/
        # quality.py `text_for_later_stages`), and an empty output holds nothing to redact: no second pass
        text = F.when(c4.isNull() | (c4 == ""), c4).otherwise(F.col("clean_text"))
    else:
        # with C4 off the stage redacted the original text; C4's output (computed all the same) needs its own pass
        text = redacted(F.when(scanned(), c4), ctx).getField("text")
    return F.when(scanned(), text)


class Pii(BaseStage):
    """Replaces `clean_text` of every document without a quality reason by its redacted form and adds `pii_kinds`,
    `pii_starts`, `pii_ends` (one entry per value found, offsets into the text as it came in; empty for a document
    not scanned); returns the `pii` rows, the `quality` rows with the redacted text and, with `pii.redact_bronze`,
    the redacted `raw_docs` rows."""

    name: ClassVar[str] = "pii_v2"
    reads: ClassVar[tuple[str, ...]] = ("doc_id", "clean_text", "quality_reasons")
    adds: ClassVar[tuple[str, ...]] = ("pii_kinds", "pii_starts", "pii_ends")

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        assert df is not None
        if not ctx.cfg.pii.enabled:  # no UDF at all: a pass that finds nothing still ships every text to Python
            empty = {"pii_kinds": "array<string>", "pii_starts": "array<int>", "pii_ends": "array<int>"}
            return df.withColumns({c: F.array().cast(t) for c, t in empty.items()})
        # a dropped document's text goes to the UDF as a null, which it returns at once
        red = redacted(F.when(scanned(), F.col("clean_text")), ctx)
        return (
            df.withColumn("_pii", red)
            .withColumn("clean_text", F.when(scanned(), F.col("_pii.text")).otherwise(F.col("clean_text")))
            .withColumn("pii_kinds", F.col("_pii.kinds"))
            .withColumn("pii_starts", F.col("_pii.starts"))
            .withColumn("pii_ends", F.col("_pii.ends"))
            .drop("_pii")
        )

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]:
        tables = {"pii": pii_rows(out, ctx)}
        if ctx.cfg.pii.enabled and C4_OUTPUT in out.columns:
            # the nightly chain: the `quality` rows with the redacted text (an iteration round has no quality
            # columns - it re-reads `quality.clean_text`, already redacted by the night that wrote it)
            tables["quality"] = quality_rows(out, ctx.run_id, quality_text(ctx))
        if ctx.cfg.pii.enabled and ctx.cfg.pii.redact_bronze:
            # the bronze text itself, not the cleaned text: C4 may have removed a line that held the value
            raw = ctx.the_lake.read("raw_docs").join(out.select("doc_id"), "doc_id", "left_semi")
            raw = raw.withColumn("_pii", redacted(F.col("text"), ctx)).where(F.size("_pii.kinds") > 0)
            cols = [F.col("_pii.text").alias("text") if c == "text" else F.col(c) for c in TABLES["raw_docs"].names]
            tables[REDACT_BRONZE] = raw.select(*cols)
        return tables

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]:
        limit = ctx.cfg.pii.max_fraction

        def share(_ctx: StageContext, counts: Mapping[str, int]) -> list[gxe.Expectation]:
            # a batch that is mostly personal data is a leaked dump (contact lists, customer tables), not a crawl
            return [gxe.ExpectTableRowCountToBeBetween(min_value=0, max_value=int(limit * decided(counts)))]

        def table(_ctx: StageContext, _counts: Mapping[str, int]) -> list[gxe.Expectation]:
            return [
                gxe.ExpectColumnValuesToNotBeNull(column="doc_id"),
                gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=list(KINDS)),
                gxe.ExpectColumnValuesToBeBetween(column="count", min_value=1),
            ]

        return (Gate("pii", share, where="size(pii_kinds) > 0"), Gate("pii_table", table, on="pii"))

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        found = out.select(F.explode("pii_kinds").alias("kind")).groupBy("kind").count().collect()
        counts = {f"pii:{r['kind']}": int(r["count"]) for r in found}
        counts["pii_docs"] = out.where(F.size("pii_kinds") > 0).count()
        return counts
