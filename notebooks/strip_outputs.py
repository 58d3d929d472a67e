"""Clear the outputs of notebooks before committing them: git keeps the code and the prose, not one lake's numbers.

    python notebooks/strip_outputs.py            # strip every notebook in notebooks/, in place
    python notebooks/strip_outputs.py A.ipynb    # only these
    python notebooks/strip_outputs.py --check    # exit 1 and name the notebooks that would change

Outputs, execution counts and per-cell timings go, and the notebook's kernel and language metadata go back to a plain
`python3` kernel, so that saving from a personal kernel (a venv's, a conda env's) leaves no trace in the diff either.
Needs only nbformat, which every Jupyter install has. `jupyter nbconvert --clear-output --inplace` clears outputs too
but keeps the metadata.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
HERE = Path(__file__).resolve().parent


def strip(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # nbclient's and JupyterLab's timings
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [Path(a) for a in argv if a != "--check"] or sorted(HERE.glob("*.ipynb"))
    dirty = []
    for path in paths:
        before = path.read_text(encoding="utf-8")
        nb = nbformat.reads(before, as_version=4)
        strip(nb)
        after = nbformat.writes(nb)
        after += "" if after.endswith("\n") else "\n"
        if after != before:
            dirty.append(path)
            if not check:
                path.write_text(after, encoding="utf-8")
    if check and dirty:
        names = " ".join(map(str, dirty))
        print(f"notebooks with outputs: {names}; strip them with: python {sys.argv[0]} {names}", file=sys.stderr)
        return 1
    for path in dirty:
        print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
