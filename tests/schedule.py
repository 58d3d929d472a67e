"""How `make test` and `make check` share the suite between two pytest-xdist workers (`-n 2 --dist loadfile`).

xdist's loadfile hands out whole modules (a module's fixtures are built once, on one worker) in the order of their
test counts. Test counts say little here: tests/test_cluster.py has 3 tests and takes minutes, tests/test_sentences.py
has 15 and takes seconds, so a heavy module handed out last leaves one worker idle for minutes at the end. This
scheduler keeps loadfile's unit but hands the units out longest first (the classic LPT rule), by the serial seconds
measured below, and keeps the modules that share an expensive session fixture on one worker, so that the fixture
is built once, not once per worker.

The seconds only order the queue: a wrong or missing entry costs balance, never correctness. A module not listed is
costed at DEFAULT_SECONDS_PER_TEST per test. Refresh the table from `make test`'s `--durations` when a module's
cost changes by minutes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from xdist.scheduler import LoadFileScheduling

#: Modules that share a session fixture whose build dominates their own cost, by the fixture (tests/conftest.py).
SHARED_FIXTURE_GROUPS: dict[str, str] = {
    # `server`: the packaged LLM behind `transformers serve`, ~40 s to start on 2 cores
    "test_llm.py": "llm-server",
    "test_label_llm.py": "llm-server",
    "test_llm_map.py": "llm-server",
    "test_injection.py": "llm-server",
    # `two_night_lake`: two pipeline nights
    "test_pipeline.py": "two-night-lake",
    "test_operate.py": "two-night-lake",
    "test_published.py": "two-night-lake",
}

#: Serial seconds per module on an idle 2-core machine (setup included), rounded; from `--durations` of full runs.
MODULE_SECONDS: dict[str, float] = {
    "test_faults.py": 200,
    "test_iterate.py": 120,
    "test_cluster.py": 110,
    "test_inputs.py": 90,
    "test_distill.py": 90,
    "test_conformance.py": 75,
    "test_published.py": 110,
    "test_crash.py": 50,
    "test_writer_lock.py": 45,
    "test_report.py": 60,
    "test_evaluate.py": 50,
    "test_injection.py": 45,
    "test_debris.py": 5,
    "test_revise_llm.py": 35,
    "test_engine_faults.py": 35,
    "test_notebooks.py": 40,
    "test_demo.py": 45,
    "test_revision.py": 45,
    "test_dedup.py": 40,
    "test_pipeline.py": 40,
    "test_operate.py": 25,
    "test_catch_up.py": 25,
    "test_classify.py": 30,
    "test_defer.py": 25,
    "test_llm.py": 25,
    "test_label_llm.py": 20,
    "test_llm_map.py": 15,
    "test_never_back.py": 20,
    "test_evaluate_scorer.py": 15,
    "test_interrupt.py": 100,
    "test_cli_small.py": 15,
}

DEFAULT_SECONDS_PER_TEST = 1.0


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1]


def scope_of(nodeid: str) -> str:
    """The unit a worker runs whole: the module, or the group of modules that share a session fixture."""
    module = module_of(nodeid)
    group = SHARED_FIXTURE_GROUPS.get(module)
    return f"group:{group}" if group else nodeid.split("::", 1)[0]


def ordered_scopes(nodeids: Sequence[str]) -> list[str]:
    """The scopes of `nodeids`, most expensive first (ties in collection order)."""
    cost: dict[str, float] = {}
    counted: set[str] = set()
    for nodeid in nodeids:
        scope, module = scope_of(nodeid), module_of(nodeid)
        if module in MODULE_SECONDS:
            if module not in counted:
                counted.add(module)
                cost[scope] = cost.get(scope, 0.0) + MODULE_SECONDS[module]
            else:
                cost.setdefault(scope, 0.0)
        else:
            cost[scope] = cost.get(scope, 0.0) + DEFAULT_SECONDS_PER_TEST
    return sorted(cost, key=lambda s: -cost[s])  # sorted() is stable: equal costs keep collection order


class CostOrderedLoadFile(LoadFileScheduling):
    """loadfile, with the groups above and the queue in LPT order."""

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)

    def schedule(self) -> None:
        if self.collection is None and self.collection_is_completed and self._check_nodes_have_same_collection():
            collection = next(iter(self.registered_collections.values()))
            units: dict[str, dict[str, bool]] = {}
            for nodeid in collection:
                units.setdefault(scope_of(nodeid), {})[nodeid] = False
            # the parent then assigns the same keys again: assigning to a key already present keeps its place
            self.workqueue = OrderedDict((scope, units[scope]) for scope in ordered_scopes(collection))
        super().schedule()
