"""The executor and the stage protocol: declared columns are checked on both sides and a violation is recorded
in `runs` like any failure, with the staging folder removed; `curate run --dry-run` prints the chain without
starting an engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from pipelines.chains.run import NIGHTLY
from pipelines.cli import main
from pipelines.core.config import load_config
from pipelines.core.constitution import load_constitution
from pipelines.core.execute import Chain, execute
from pipelines.core.lake import Lake
from pipelines.core.stage import BaseStage, StageContext, StageContractError
from tests.fixtures import jsonl_lines, write_jsonl


class _Source(BaseStage):
    name: ClassVar[str] = "source_v1"
    adds: ClassVar[tuple[str, ...]] = ("doc_id", "text")

    def transform(self, df: Any, ctx: StageContext) -> Any:
        return ctx.the_lake.spark.createDataFrame([("a", "x")], "doc_id string, text string")


class _Forgetful(BaseStage):
    """Declares a column it never adds."""

    name: ClassVar[str] = "forgetful_v1"
    reads: ClassVar[tuple[str, ...]] = ("doc_id",)
    adds: ClassVar[tuple[str, ...]] = ("verdict",)

    def transform(self, df: Any, ctx: StageContext) -> Any:
        return df


class _Needy(BaseStage):
    name: ClassVar[str] = "needy_v1"
    reads: ClassVar[tuple[str, ...]] = ("doc_id", "principle_scores")

    def transform(self, df: Any, ctx: StageContext) -> Any:
        return df


def _ctx(tmp_path: Path) -> StageContext:
    cfg = load_config(overrides={"tracking.enabled": False})
    return StageContext(cfg=cfg, constitution=load_constitution(), run_id="r-contract", crawl_id="c", label="test")


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ((_Source(), _Forgetful()), r"forgetful_v1: its output lacks column\(s\) verdict"),
        ((_Source(), _Needy()), r"needy_v1: its input lacks column\(s\) principle_scores"),
    ],
)
def test_a_broken_contract_fails_the_run_by_name(tmp_path: Path, spark: Any, stages: tuple, message: str) -> None:
    lake = Lake(tmp_path / "lake", spark)
    with pytest.raises(StageContractError, match=message):
        execute(Chain("test", stages), _ctx(tmp_path), lake)
    (run,) = lake.read("runs").collect()
    assert run["status"] == "failed" and "StageContractError" in run["error"]
    assert not (lake.state_dir / "staging" / "r-contract").exists()
    assert not lake.exists("corpus")  # nothing published


def test_dry_run_prints_the_chain_without_an_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crawl = write_jsonl(tmp_path / "night.jsonl", jsonl_lines())
    lake = tmp_path / "lake"
    assert main(["run", "--lake", str(lake), "--input", str(crawl), "--dry-run"]) == 0
    plan = yaml.safe_load(capsys.readouterr().out)
    stages = plan["stages"]
    assert [s["stage"] for s in stages] == [s.name for s in NIGHTLY.stages] + ["publish"]
    by_name = {s["stage"]: s for s in stages}
    assert by_name["quality_v3"]["reads"] == ["doc_id", "text"] and "quality_reasons" in by_name["quality_v3"]["adds"]
    assert by_name["dedup_v3"]["gates"] == ["dedup (on dedup)"]
    assert by_name["decide_v2"]["gates"] == ["decisions (on decisions)", "corpus (on corpus)"]
    assert stages[-1]["tables"][-2:] == ["corpus", "decisions"]  # the crash-safe order ends with these
    assert plan["config"]["classify"]["registry_uri"].endswith("_state/mlflow.db")  # resolved, as MLflow logs it
    assert not lake.exists()  # no engine, no lake


def test_a_table_a_stage_amends_keeps_the_earlier_rows_it_does_not_replace(spark: Any) -> None:
    from pipelines.core.execute import amended

    schema = "doc_id string, principle string, score double"
    earlier = spark.createDataFrame([("a", "toxicity", 0.1), ("a", "violence", 0.2), ("b", "toxicity", 0.3)], schema)
    rows = spark.createDataFrame([("a", "violence", 0.9), ("c", "toxicity", 0.5)], schema)
    got = sorted(tuple(r) for r in amended(earlier, rows, "scores").collect())  # keyed by (doc_id, principle)
    assert got == [("a", "toxicity", 0.1), ("a", "violence", 0.9), ("b", "toxicity", 0.3), ("c", "toxicity", 0.5)]
