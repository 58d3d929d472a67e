"""One session-scoped embedded Sail session for the whole suite (never a module-level global)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from pipelines.config import EngineConfig
    from pipelines.engine import spark_session

    with spark_session(EngineConfig(kind="sail", shuffle_partitions=2)) as session:
        yield session


@pytest.fixture()
def lake(tmp_path: Path, spark: object) -> object:
    from pipelines.lake import Lake

    return Lake(tmp_path / "lake", spark)  # type: ignore[arg-type]
