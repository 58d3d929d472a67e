"""Applies a Great Expectations suite to a Spark DataFrame and stops the run when it fails.

GE 1.x flow: an ephemeral context -> a Spark data source -> a dataframe asset -> a whole-dataframe batch
definition -> a ValidationDefinition run with the DataFrame as a batch parameter. Works on Spark Connect
(Sail) DataFrames and classic ones alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation
    from pyspark.sql import DataFrame


class GateFailed(RuntimeError):
    """A gate's suite failed: the run stops before publishing. The message names each failed expectation."""

    def __init__(self, gate: str, failures: list[str], hint: str | None = None) -> None:
        self.gate = gate
        self.failures = failures
        self.hint = hint
        super().__init__(f"gate '{gate}' failed: " + "; ".join(failures) + (f". {hint}" if hint else ""))


@dataclass
class GateReport:
    gate: str
    success: bool
    evaluated: int
    failures: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def _context() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    with contextlib.suppress(Exception):
        context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    return context


def describe_failure(result: Any) -> str:
    cfg = result.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
    column = kwargs.pop("column", None)
    target = f"{cfg.type}({column})" if column else cfg.type
    r = result.result or {}
    if "unexpected_count" in r and r.get("element_count") is not None:
        pct = r.get("unexpected_percent") or 0.0
        detail = f"{r['unexpected_count']} of {r['element_count']} rows unexpected ({pct:.1f}%)"
        sample = r.get("partial_unexpected_list") or []
        if sample:
            detail += f", e.g. {sample[:3]!r}"
    elif "observed_value" in r:
        detail = f"observed {r['observed_value']!r}"
    else:
        detail = "failed"
    if result.exception_info and result.exception_info.get("raised_exception"):
        detail = f"raised {result.exception_info.get('exception_message')}"
    shown = {k: v for k, v in kwargs.items() if k in ("min_value", "max_value", "value_set", "mostly", "value")}
    return f"{target} {shown if shown else ''} -> {detail}".replace("  ", " ")


def validate(gate: str, df: DataFrame, expectations: Sequence[Expectation]) -> GateReport:
    import great_expectations as gx

    context = _context()
    suffix = uuid.uuid4().hex[:8]
    source = context.data_sources.add_spark(name=f"{gate}_{suffix}")
    asset = source.add_dataframe_asset(name=f"{gate}_asset")
    batch_def = asset.add_batch_definition_whole_dataframe(f"{gate}_batch")
    suite = context.suites.add(gx.ExpectationSuite(name=f"{gate}_{suffix}"))
    for exp in expectations:
        suite.add_expectation(exp)
    vd = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{gate}_{suffix}", data=batch_def, suite=suite)
    )
    try:
        result = vd.run(batch_parameters={"dataframe": df})
    finally:
        context.validation_definitions.delete(vd.name)
        context.suites.delete(suite.name)
        context.data_sources.delete(source.name)
    failures = [describe_failure(r) for r in result.results if not r.success]
    return GateReport(gate=gate, success=bool(result.success), evaluated=len(result.results), failures=failures)


def run_gate(gate: str, df: DataFrame, expectations: Sequence[Expectation]) -> GateReport:
    """Validate and raise `GateFailed` naming every failed expectation."""
    report = validate(gate, df, expectations)
    if not report.success:
        raise GateFailed(gate, report.failures or ["the suite failed without a per-expectation result"])
    return report
