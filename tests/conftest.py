"""Session-scoped shared resources: one embedded Sail session, and one embedded LLM server (the packaged SmolLM2
behind a real `transformers serve`) for every LLM test file. Never module-level globals."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: CI (`.ci/run` sets CI=true): hypothesis draws the same examples every run, so a red run reproduces; elsewhere it
#: explores, and prints the seed of a failure (`--hypothesis-seed` replays it).
IN_CI = os.environ.get("CI") == "true"
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if IN_CI else "dev")

#: Tests that skip where a tool is missing (a JVM, a browser) but must run in CI, where `make test` installs it.
REQUIRED_IN_CI = ("tests/test_conformance.py", "tests/test_report.py")


#: The full tier only (`make test`; `make check` deselects them with `-m "not slow"`): modules whose every test
#: starts a served LLM, a second engine, a browser, a notebook kernel or a whole demo, trains models, or kills
#: processes. The fast tier keeps the accounting tests, the two-night pipeline, every stage's own tests and one
#: kill point per publish boundary (tests/test_faults.py QUICK).
FULL_TIER_MODULES = frozenset(
    {
        "test_cluster.py",  # Sail local-cluster and standalone servers
        "test_conformance.py",  # classic PySpark on a JVM
        "test_crash.py",  # SIGKILLed runs in subprocesses
        "test_demo.py",
        "test_distill.py",  # trains and registers heads
        "test_engine_faults.py",
        "test_evaluate.py",  # trains two language models
        "test_evaluate_scorer.py",
        "test_injection.py",  # the served LLM
        "test_interrupt.py",  # signals to `curate run` processes
        "test_iterate.py",  # rounds of relabel, retrain, rescore
        "test_label_llm.py",
        "test_llm.py",
        "test_never_back.py",
        "test_notebooks.py",  # a Jupyter kernel per notebook
        "test_report.py",  # a real browser
        "test_revise_llm.py",
        "test_catch_up.py",
    }
)


#: ... and, in any module, every test that needs the packaged LLM served or converted (the session's `server` and
#: `llm_cache` fixtures below: starting the server costs ~40 s on 2 cores before the first request).
FULL_TIER_FIXTURES = frozenset({"server", "llm_cache"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in FULL_TIER_MODULES or FULL_TIER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadfile` (the Makefile's): whole modules, the longest first, and the modules that share an expensive
    session fixture on one worker (tests/schedule.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.schedule import CostOrderedLoadFile

    return CostOrderedLoadFile(config, log)  # type: ignore[arg-type]


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport | None:
    """In CI, a skip of a required test is a failure: a conformance or browser check that silently did not run
    proves nothing."""
    if not IN_CI or call.when not in ("setup", "call"):
        return None
    report = pytest.TestReport.from_item_and_call(item, call)
    if report.skipped and any(item.nodeid.startswith(p) for p in REQUIRED_IN_CI):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where it must run: {report.longrepr}"
    return report


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
    """Where the GGUF is converted once (~20-30 s); set CURATE_LLM_CACHE to reuse it across runs. Under xdist the
    workers share one folder beside their own temporary folders (udfs/llm_server.py converts under a file lock, so
    the second worker waits for the first one's conversion instead of repeating it)."""
    configured = os.environ.get("CURATE_LLM_CACHE")
    if configured:
        return Path(configured)
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.mktemp("llm-cache")
    return tmp_path_factory.getbasetemp().parent / "llm-cache"


@pytest.fixture(scope="session")
def server(llm_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The embedded `transformers serve`, started once for test_llm, test_label_llm, test_revise_llm and
    test_injection (it generates one request at a time, so sharing it costs nothing in isolation)."""
    from udfs.llm_server import EmbeddedLLMServer

    with EmbeddedLLMServer(llm_cache, log_dir=tmp_path_factory.mktemp("llm-logs")) as srv:
        yield srv


@pytest.fixture(scope="session")
def two_night_lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The end-to-end lake of tests/test_pipeline.py (its two nights and CFG: revision off, two quality thresholds
    lowered, MLflow on), built once per session. Never changed: a module copies `lake` (Delta logs hold relative
    paths, so the copy is a lake of its own) and reruns read the night files under `tmp`, the very paths the runs
    recorded. `s1`, `s2`: the two nights' run summaries; `after_night_1`: a copy of the lake as night 1 left it
    (tests/test_published.py kills a second night on a copy of it)."""
    import shutil

    from pipelines.chains.run import run_pipeline
    from tests.test_pipeline import CFG, night1, night2

    tmp = tmp_path_factory.mktemp("two-nights")
    lake = tmp / "lake"
    s1 = run_pipeline(lake, night1(tmp), CFG, crawl_id="n1")
    shutil.copytree(lake, tmp / "after-night-1")
    s2 = run_pipeline(lake, night2(tmp), CFG, crawl_id="n2")
    assert (s1.status, s2.status) == ("success", "success")
    return {"tmp": tmp, "lake": lake, "s1": s1, "s2": s2, "after_night_1": tmp / "after-night-1"}
