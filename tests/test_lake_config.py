"""The lake remembers the config and constitution it ran with: `export` without `--config` uses the custom
constitution of the run (its tag tokens), even after the user's file is gone; `--config` still picks another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from deltalake import DeltaTable

from pipelines.cli import main
from pipelines.core.constitution import load_constitution
from tests.fixtures import jsonl_lines, retuned_constitution, write_jsonl


def test_export_without_config_uses_the_constitution_the_lake_ran_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    custom = retuned_constitution(tmp_path / "mine.yaml", "toxicity", tag_token="<|rude|>", revise_threshold=0.6)
    mine, default = load_constitution(custom).fingerprint(), load_constitution().fingerprint()
    assert mine != default
    lake = tmp_path / "lake"
    crawl = write_jsonl(tmp_path / "n1.jsonl", jsonl_lines())
    run = ["run", "--lake", str(lake), "--input", str(crawl), "--quiet"]
    assert main([*run, "--set", f"classify.constitution={custom}", "--set", "revise.enabled=false"]) == 0
    custom.unlink()  # the user's file is gone (another machine, a cleaned checkout)
    capsys.readouterr()

    assert main(["export", "--lake", str(lake), "--out", str(tmp_path / "out")]) == 0
    assert "using the config and constitution" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["constitution"] == mine  # not the packaged default
    # the run's `config_hash` names the stored config; it holds the run's own settings
    stored = lake / "_state" / "configs" / f"{_runs(lake)[0]['config_hash']}.yaml"
    assert yaml.safe_load(stored.read_text())["revise"]["enabled"] is False
    assert "<|rude|>" in (lake / "_state" / "constitutions" / f"{mine}.yaml").read_text()

    # an explicit --config wins: the packaged default constitution, and no note
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    assert main(["export", "--lake", str(lake), "--config", str(empty), "--out", str(tmp_path / "out2")]) == 0
    assert "using the config" not in capsys.readouterr().err
    assert json.loads((tmp_path / "out2" / "manifest.json").read_text())["constitution"] == default


def _runs(lake: Path) -> list[dict[str, object]]:
    return DeltaTable(str(lake / "runs")).to_pyarrow_table().to_pylist()
