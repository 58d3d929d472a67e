"""Credentials in crawled text: API keys, tokens and private keys that must never reach a training corpus.

A model trained on a live key can emit it verbatim; BigCode's StarCoder pipeline removes them for that reason.
The patterns are the vendors' documented key formats (a fixed prefix and a fixed-length body), so a hit is a
credential, not a word that looks random: no entropy heuristics, which flag hashes and base64 data as well.
Each is a native regex (`rlike`), the same on the JVM and on Sail. A document with one is dropped before dedup
and scoring, with the reason `secret:<kind>` beside the quality reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import great_expectations.expectations as gxe
from pyspark.sql import functions as F

from pipelines.core.stage import BaseStage, Gate, StageContext
from schemas.vocab import Count, Reason

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: kind -> pattern. Boundaries are explicit character classes: `\b` differs between regex engines.
PATTERNS: dict[str, str] = {
    "aws_access_key": r"(^|[^A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}([^A-Z0-9]|$)",
    "github_token": r"(^|[^A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}",
    "slack_token": r"(^|[^A-Za-z0-9])xox[abposr]-[0-9]{8,}-[A-Za-z0-9-]{8,}",
    "google_api_key": r"(^|[^A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}",
    "stripe_secret_key": r"(^|[^A-Za-z0-9_])[sr]k_live_[0-9A-Za-z]{24,}",
    "private_key": r"-----BEGIN (RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY( BLOCK)?-----",
}


def secret_kinds(text: F.Column, kinds: tuple[str, ...]) -> F.Column:
    """array<string> of the kinds found in `text`, in `PATTERNS` order (empty when none)."""
    found = [F.when(text.rlike(PATTERNS[k]), F.lit(k)) for k in kinds]
    if not found:
        return F.array().cast("array<string>")
    return F.filter(F.array(*found), lambda x: x.isNotNull())


class Secrets(BaseStage):
    """Adds `secret_kinds`, and `secret:<kind>` to `quality_reasons` of a document that holds a credential, so it
    is dropped like a quality failure (never deduplicated against, scored or revised)."""

    name: ClassVar[str] = "secrets_v1"
    reads: ClassVar[tuple[str, ...]] = ("doc_id", "clean_text", "quality_reasons")
    adds: ClassVar[tuple[str, ...]] = ("secret_kinds",)
    materialise: ClassVar[bool] = False  # a few regular expressions: cheaper than a write and a read

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        assert df is not None
        cfg = ctx.cfg.secrets
        kinds = secret_kinds(F.col("clean_text"), cfg.kinds if cfg.enabled else ())
        reasons = F.transform(F.col("secret_kinds"), lambda k: F.concat(F.lit(f"{Reason.SECRET}:"), k))
        return df.withColumn("secret_kinds", kinds).withColumn(
            "quality_reasons", F.concat(F.col("quality_reasons"), reasons)
        )

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]:
        # A batch in which many documents carry live keys is a dump of leaked credentials, not a web crawl.
        limit = ctx.cfg.secrets.max_fraction

        def suite(_ctx: StageContext, counts: Mapping[str, int]) -> list[gxe.Expectation]:
            return [gxe.ExpectTableRowCountToBeBetween(min_value=0, max_value=int(limit * counts[Count.PENDING]))]

        return (Gate("secrets", suite, where="size(secret_kinds) > 0"),)

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        found = out.select(F.explode("secret_kinds").alias("kind")).groupBy("kind").count().collect()
        counts = {f"secrets:{r['kind']}": int(r["count"]) for r in found}
        counts["secrets"] = out.where(F.size("secret_kinds") > 0).count()
        return counts
