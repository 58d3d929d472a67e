"""The lake remembers the config and constitution it last ran with, so that later commands (`export`, `iterate`,
`evaluate`, `score`, the next `run`) use them when no `--config` is given - a custom principle's tag tokens no
longer fall out of the training shards because `export` was run without the flag.

Under `<lake>/_state/`: `configs/<config hash>.yaml` (the resolved config, without the machine-specific engine,
registry URI and constitution path), `constitutions/<fingerprint>.yaml` (a copy of the constitution's text), and
`current.json` naming the pair of the last successful run (with its run id). Every run's pair is kept, so the
`runs` table's `config_hash` always points at a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CURRENT = "current.json"


@dataclass(frozen=True)
class Remembered:
    config: Path
    constitution: Path
    run_id: str
    config_hash: str


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def remember(state_dir: Path, cfg: Any, constitution_path: Path, fingerprint: str, run_id: str) -> None:
    data = cfg.to_dict()
    data.pop("engine", None)  # how this machine reached its engine is not the lake's business
    data["classify"].pop("registry_uri", None)  # resolved per command from the lake's location
    data["classify"].pop("constitution", None)  # the copy below is the lake's constitution
    config = state_dir / "configs" / f"{cfg.config_hash()}.yaml"
    constitution = state_dir / "constitutions" / f"{fingerprint}.yaml"
    if not config.is_file():
        _atomic_write(config, yaml.safe_dump(data, sort_keys=False))
    if not constitution.is_file():
        _atomic_write(constitution, constitution_path.read_text(encoding="utf-8"))
    current = {
        "config": str(config.relative_to(state_dir)),
        "constitution": str(constitution.relative_to(state_dir)),
        "run_id": run_id,
        "config_hash": cfg.config_hash(),
    }
    _atomic_write(state_dir / CURRENT, json.dumps(current, indent=2) + "\n")


def remembered(state_dir: Path) -> Remembered | None:
    try:
        current = json.loads((state_dir / CURRENT).read_text(encoding="utf-8"))
        config, constitution = state_dir / current["config"], state_dir / current["constitution"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (config.is_file() and constitution.is_file()):
        return None
    return Remembered(config, constitution, str(current.get("run_id", "")), str(current.get("config_hash", "")))
