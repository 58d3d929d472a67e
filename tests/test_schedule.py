"""The two-worker schedule (tests/schedule.py): the queue is in cost order, the modules that share a session fixture
travel together, and the tables name only modules that exist and fixtures that they use."""

from __future__ import annotations

import re
from pathlib import Path

from tests.schedule import MODULE_SECONDS, SHARED_FIXTURE_GROUPS, ordered_scopes, scope_of

TESTS = Path(__file__).resolve().parent


def test_the_queue_is_longest_first_and_groups_travel_together() -> None:
    nodeids = [
        "tests/test_sentences.py::test_a",  # many cheap tests, collected first
        *(f"tests/test_sentences.py::test_{i}" for i in range(20)),
        "tests/test_cluster.py::test_x",  # few, expensive
        "tests/test_llm.py::test_chat_ok",
        "tests/test_unlisted.py::test_y",
        "tests/test_injection.py::test_z",
    ]
    order = ordered_scopes(nodeids)
    assert order[0] == "tests/test_cluster.py"
    # test_llm.py and test_injection.py are one unit costed at both modules' seconds
    assert scope_of("tests/test_llm.py::test_chat_ok") == scope_of("tests/test_injection.py::t") == "group:llm-server"
    assert order.index("group:llm-server") < order.index("tests/test_sentences.py")
    assert order[-1] == "tests/test_unlisted.py"  # one test at the default cost
    assert sorted(order) == sorted({scope_of(n) for n in nodeids})  # every test's unit, once


def test_the_tables_name_existing_modules_and_the_groups_their_shared_fixtures() -> None:
    modules = {p.name for p in TESTS.glob("test_*.py")}
    assert set(MODULE_SECONDS) <= modules and set(SHARED_FIXTURE_GROUPS) <= modules
    # a module that asks for the served LLM but is not in its group would start a second server on the other worker
    uses_server = {
        p.name for p in TESTS.glob("test_*.py") if re.search(r"^def test_\w+\([^)]*\bserver\b", p.read_text(), re.M)
    }
    assert uses_server and uses_server <= {m for m, g in SHARED_FIXTURE_GROUPS.items() if g == "llm-server"}
    uses_lake = {
        p.name for p in TESTS.glob("test_*.py") if re.search(r"^def \w+\(two_night_lake: dict", p.read_text(), re.M)
    }
    assert uses_lake == {m for m, g in SHARED_FIXTURE_GROUPS.items() if g == "two-night-lake"}
