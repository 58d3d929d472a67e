"""A bigger crawl from a real one, reproducibly: N x the documents, each a lightly edited copy with a new id.

Used by bench/quality_bench.py for the scaling run (10x crawl_dev). Every output document is drawn from the
input with a fixed seed and gets a few word-level edits (drop, duplicate or swap of neighbouring words, about
2% of the words), so the text statistics stay those of the real crawl but no two copies are identical.
Output: `shards` gzip JSONL files (`id`, `url`, `source`, `text`), round-robin, same seed -> same bytes.

Usage: python bench/quality_corpus.py INPUT.jsonl.gz OUT_DIR --scale 10 --seed 0 --shards 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path


def edit(text: str, rng: random.Random, rate: float = 0.02) -> str:
    words = text.split(" ")
    if len(words) < 4:
        return text
    for _ in range(max(1, int(len(words) * rate))):
        i = rng.randrange(len(words) - 1)
        op = rng.random()
        if op < 0.34:
            del words[i]
        elif op < 0.67:
            words.insert(i, words[i])
        else:
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def generate(src: Path, out: Path, scale: int, seed: int, shards: int) -> list[Path]:
    with gzip.open(src, "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh]
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"part-{i:03d}.jsonl.gz" for i in range(shards)]
    files = [gzip.open(p, "wt", encoding="utf-8", compresslevel=1) for p in paths]  # noqa: SIM115 - closed below
    try:
        for k in range(scale * len(docs)):
            d = docs[k % len(docs)] if k < len(docs) else docs[rng.randrange(len(docs))]
            text = d["text"] if k < len(docs) else edit(d["text"], rng)
            row = {"id": f"g{seed}-{k}", "url": d.get("url"), "source": d.get("source"), "text": text}
            files[k % shards].write(json.dumps(row) + "\n")
    finally:
        for f in files:
            f.close()
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("out")
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shards", type=int, default=2)
    a = ap.parse_args()
    for p in generate(Path(a.input), Path(a.out), a.scale, a.seed, a.shards):
        print(p)


if __name__ == "__main__":
    main()
