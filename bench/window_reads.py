"""How the stack teachers should read a window: chosen on the spliced pages' *train* split (issue 21).

Builds the pages of `bench/spliced.py` from the texts its held-out rule leaves out (harmful texts and host pages of
the train split, seed 5), then scores every 94-word window of every page read as sentence groups of S words
(`udfs/windows.py` `sentence_groups`, standalone embeddings, as `udfs/stack_teacher.py` `groups` mode does) and
prints per threshold the recall per harmful source and the share of controls and hard negatives flagged, plus the
control groups scored highest (to read). The held-out pages stay for `bench/spliced.py`.

    PYTHONPATH=. .venv/bin/python bench/window_reads.py [--sizes 32,20] [--n 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def train_pages(n: int) -> list[object]:
    import scorers_human as sh
    import spliced as sp

    rule = sh.held_out
    sp.held_out = lambda t: not rule(t)  # the complement of the held-out split

    def every_row(load):  # type: ignore[no-untyped-def]
        return lambda data, split: load(data, "all")  # the held-out filter is applied by `sp.held_out` above

    for name in ("load_civil_comments", "load_olid"):
        setattr(sh, name, every_row(getattr(sh, name)))
    spliced, controls, _ = sp.build(n, 5)
    return [*spliced, *controls]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="32", help="group sizes in words, comma-separated")
    parser.add_argument("--n", type=int, default=30, help="spliced pages per harmful source")
    args = parser.parse_args()
    import spliced as sp

    if not sp.CRAWL.is_file():
        print(f"skipped: {sp.CRAWL} is absent (benchmark data lives only on development machines)")
        return 0
    from udfs.stack_teacher import StackTeacher, score_many
    from udfs.windows import sentence_groups, sentence_windows

    pages = train_pages(args.n)
    teachers = [StackTeacher.load(output="toxic"), StackTeacher.load(output="violence")]
    kinds = np.array([p.kind for p in pages])  # type: ignore[attr-defined]
    sources = np.array([str(p.harmful_source) for p in pages])  # type: ignore[attr-defined]
    for size in (int(x) for x in args.sizes.split(",")):
        pieces = [
            (i, w[a:b])
            for i, p in enumerate(pages)
            for x, y in sentence_windows(p.text, 94)  # type: ignore[attr-defined]
            for w in [p.text[x:y]]  # type: ignore[attr-defined]
            for a, b in sentence_groups(w, size)
        ]
        t0 = time.perf_counter()
        values = score_many(teachers, [t for _, t in pieces])
        print(f"groups of <= {size} words: {len(pieces)} groups, {time.perf_counter() - t0:.0f} s")
        top = np.zeros((len(pages), 2))
        for (i, _), row in zip(pieces, values, strict=True):
            top[i] = np.maximum(top[i], row)
        for thr in (0.5, 0.7, 0.75, 0.8, 0.9):
            recall = {
                s: round(float(np.mean(top[sources == s, 1 if sp.PRINCIPLE[s] == "violence" else 0] >= thr)), 2)
                for s in sp.HARMFUL
            }
            c, h = kinds == "control", kinds == "hard_negative"
            print(
                f"  @{thr}: recall {recall}; controls flagged toxicity {np.mean(top[c, 0] >= thr):.3f} violence "
                f"{np.mean(top[c, 1] >= thr):.3f}; hard negatives {np.mean(top[h, 0] >= thr):.3f} / "
                f"{np.mean(top[h, 1] >= thr):.3f}"
            )
        ctl = [k for k, (i, _) in enumerate(pieces) if kinds[i] == "control"]
        for col, name in ((1, "violence"), (0, "toxicity")):
            for k in sorted(ctl, key=lambda k: -values[k, col])[:6]:
                print(f"    control group, {name} {values[k, col]:.2f}: {pieces[k][1][:150]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
