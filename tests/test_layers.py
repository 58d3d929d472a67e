"""The house's layer rule and the absence of import circles, read from the code's own imports (every `import`,
including those inside functions and under `TYPE_CHECKING`: a ring through either is still a ring).

Bottom to top: `udfs`, `schemas` and `expectations` never import `pipelines`; `pipelines.core` imports only itself;
`judgement` imports core; `stages` import core and judgement; `ops` import core and judgement; `evaluate`
imports those and stages; `chains` import everything below them; nothing imports `cli`. The rule and its reasons
are in README.md ("Layout"); a new subpackage needs its line in LAYERS before it can import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "udfs", "schemas", "expectations")
LEAVES = {"udfs", "schemas", "expectations"}

#: Per layer, the layers it may import (besides itself).
LAYERS: dict[str, set[str]] = {
    "schemas": set(),
    "udfs": {"schemas"},
    "expectations": {"schemas"},
    "pipelines": LEAVES,  # pipelines/__init__.py
    "pipelines.core": LEAVES,
    "pipelines.judgement": LEAVES | {"pipelines.core"},
    "pipelines.stages": LEAVES | {"pipelines.core", "pipelines.judgement"},
    "pipelines.ops": LEAVES | {"pipelines.core", "pipelines.judgement"},
    "pipelines.evaluate": LEAVES | {"pipelines.core", "pipelines.judgement", "pipelines.stages", "pipelines.ops"},
    "pipelines.chains": LEAVES
    | {"pipelines.core", "pipelines.judgement", "pipelines.stages", "pipelines.ops", "pipelines.evaluate"},
    "pipelines.cli": LEAVES
    | {
        "pipelines.core",
        "pipelines.judgement",
        "pipelines.stages",
        "pipelines.ops",
        "pipelines.evaluate",
        "pipelines.chains",
    },
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "pipelines" and len(parts) > 1 else parts[0]


def imports_of(path: Path, module: str) -> set[str]:
    """Every module `path` imports from the project's packages (relative imports resolved)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pipelines.core import lake` imports the submodule pipelines.core.lake
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in PACKAGES}
    return found


def graph(root: Path) -> dict[str, set[str]]:
    """module -> the project's modules it imports (names that are not modules, like functions, dropped)."""
    files = {module_name(p, root): p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    return {m: {i for i in imports_of(p, m) if i in files and i != m} for m, p in files.items()}


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for module, targets in sorted(edges.items()):
        src = layer_of(module)
        allowed = LAYERS.get(src)
        for target in sorted(targets):
            dst = layer_of(target)
            if dst == src or (dst == "pipelines" and target == "pipelines"):
                continue
            if dst == "pipelines.cli":
                out.append(f"{module} imports {target}: nothing imports the CLI")
            elif allowed is None:
                out.append(f"{module}: layer {src} is not in LAYERS")
            elif dst not in allowed:
                out.append(f"{module} imports {target}: {src} may import only {sorted(allowed) or 'itself'}")
    return out


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_layer_rule_holds() -> None:
    assert layer_violations(graph(ROOT)) == []


def test_no_import_circles() -> None:
    assert circles(graph(ROOT)) == []


def test_every_pipelines_module_lives_in_a_layer() -> None:
    loose = [m for m in graph(ROOT) if m.startswith("pipelines.") and layer_of(m) not in LAYERS]
    assert loose == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir(exist_ok=True)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # a stage reaching up into a chain
            {
                "pipelines/stages/x.py": "def f():\n    from pipelines.chains.run import run\n",
                "pipelines/chains/run.py": "",
            },
            "pipelines.stages.x imports pipelines.chains.run",
        ),
        (  # a udf importing the product
            {"udfs/y.py": "from pipelines.core import lake\n", "pipelines/core/lake.py": ""},
            "udfs.y imports pipelines.core.lake",
        ),
        (  # anything importing the CLI
            {"pipelines/chains/c.py": "import pipelines.cli.main\n", "pipelines/cli/main.py": ""},
            "nothing imports the CLI",
        ),
        (  # core importing judgement, only for type checking: still a wrong arrow
            {
                "pipelines/core/s.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    "
                "from pipelines.judgement.label import L\n",
                "pipelines/judgement/label.py": "",
            },
            "pipelines.core.s imports pipelines.judgement.label",
        ),
    ],
)
def test_a_wrong_import_is_reported(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    found = layer_violations(graph(_tree(tmp_path, files)))
    assert len(found) == 1 and expected in found[0], found


def test_a_circle_through_function_level_imports_is_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "udfs/a.py": "def f():\n    from udfs.b import g\n",
            "udfs/b.py": "from udfs import c\n",
            "udfs/c.py": "from . import a\n",
            "udfs/d.py": "import udfs.a\n",
        },
    )
    assert circles(graph(root)) == [["udfs.a", "udfs.b", "udfs.c"]]
