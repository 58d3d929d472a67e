from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.config import ConfigError, RunConfig, load_config


def test_defaults_validate() -> None:
    cfg = load_config()
    assert cfg == RunConfig()
    assert cfg.engine.kind == "sail"
    assert cfg.quality.min_words == 50


def test_yaml_and_overrides_layer(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("quality:\n  min_words: 20\nrevise:\n  llm:\n    max_concurrency: 8\n")
    cfg = load_config(f, {"quality.max_words": 500})
    assert (cfg.quality.min_words, cfg.quality.max_words, cfg.revise.llm.max_concurrency) == (20, 500, 8)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("quality:\n  min_wrods: 20\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'quality.min_wrods'"):
        load_config(f)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"quality.min_words": "ten"}, "must be an integer"),
        ({"engine.kind": "flink"}, "must be one of"),
        ({"engine.kind": "remote"}, "sc://"),
        ({"revise.enabled": "yes"}, "true or false"),
        ({"ingest.max_quarantine_fraction": 1.5}, r"\[0, 1\]"),
        ({"quality": 3}, "must be a mapping"),
    ],
)
def test_bad_values_fail_before_anything_runs(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("quality: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(Exception, match="could not determine a constructor"):
        load_config(f)


def test_config_hash_changes_with_values() -> None:
    assert load_config().config_hash() == RunConfig().config_hash()
    assert load_config(None, {"quality.min_words": 10}).config_hash() != RunConfig().config_hash()


def test_shipped_deploy_configs_load() -> None:
    # deploy/ configs are what users copy: a key renamed in code must not leave them broken
    configs = sorted((Path(__file__).parent.parent / "deploy" / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)


def test_malformed_yaml_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A YAML syntax error is a usage error (exit 2: deploy/README.md), said in one line with its position; exit 1
    is reserved for a gate that stopped a run."""
    from pipelines.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("quality:\n  min_words: [1, 2\n", encoding="utf-8")
    crawl = tmp_path / "in.jsonl"
    crawl.write_text('{"text": "x"}\n', encoding="utf-8")
    lake = str(tmp_path / "lake")
    assert main(["run", "--lake", lake, "--input", str(crawl), "--config", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"curate: error: {bad} is not valid YAML at line 3, column 1: expected ',' or ']', but got '<stream end>'"
    ]
    constitution = tmp_path / "c.yaml"
    constitution.write_text("principles:\n  - name: toxicity\n    mode: [revise\n", encoding="utf-8")
    args = ["run", "--lake", lake, "--input", str(crawl), "--set", f"classify.constitution={constitution}", "--dry-run"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"curate: error: {constitution} is not valid YAML at line 4")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["run", "--lake", lake, "--input", str(crawl), "--config", str(binary), "--dry-run"]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err
