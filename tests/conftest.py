"""Session-scoped shared resources: one embedded Sail session, and one embedded LLM server (the packaged SmolLM2
behind a real `transformers serve`) for every LLM test file. Never module-level globals."""

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
    from pipelines.core.config import EngineConfig
    from pipelines.core.engine import spark_session

    with spark_session(EngineConfig(kind="sail", shuffle_partitions=2)) as session:
        yield session


@pytest.fixture()
def lake(tmp_path: Path, spark: object) -> object:
    from pipelines.core.lake import Lake

    return Lake(tmp_path / "lake", spark)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def llm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the GGUF is converted once (~20-30 s); set CURATE_LLM_CACHE to reuse it across runs."""
    configured = os.environ.get("CURATE_LLM_CACHE")
    return Path(configured) if configured else tmp_path_factory.mktemp("llm-cache")


@pytest.fixture(scope="session")
def server(llm_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The embedded `transformers serve`, started once for test_llm, test_label_llm, test_revise_llm and
    test_injection (it generates one request at a time, so sharing it costs nothing in isolation)."""
    from udfs.llm_server import EmbeddedLLMServer

    with EmbeddedLLMServer(llm_cache, log_dir=tmp_path_factory.mktemp("llm-logs")) as srv:
        yield srv
