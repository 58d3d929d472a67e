"""The datatrove side of bench/decont_vs_datatrove.py, run with datatrove's own venv (never the project's):

    /tmp/dtvenv/bin/python bench/decont_datatrove.py TARGETS.jsonl SHARDS_DIR OUT_DIR N TASKS

TARGETS.jsonl holds one {"task", "question", "answers"} per benchmark item (the same targets as ours). The index is
built with datatrove 0.10.1's own hashing (`NGramsDecontIndexer.compute_hashes`: its normalisation, word tokenizer
and hash; query n-grams on, overlap n-grams on) and written in its index format; the indexer's `run` is not used
because it imports lighteval to load tasks by name. The documents go through `NGramsDecontFilter` in a
`LocalPipelineExecutor` (one task per shard); the removed documents' ids are written to OUT_DIR/removed.txt, the
seconds to OUT_DIR/seconds.json.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter


def main() -> None:
    targets, shards, out, n, tasks = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    out.mkdir(parents=True, exist_ok=True)
    config = NGramsDecontConfig(n_grams=n, find_query_ngrams=True, find_overlap_ngrams=True)
    t0 = time.monotonic()
    # datatrove's indexer, created past its lighteval check: only its `run` (loading tasks by name) needs lighteval
    indexer = object.__new__(NGramsDecontIndexer)
    NGramsDecontIndexer.__init__(indexer, str(out / "index"), config=config)
    hashes: dict[str, set[int]] = defaultdict(set)
    with open(targets, encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            if item["answers"]:
                for answer in item["answers"]:
                    hashes[item["task"]].update(indexer.compute_hashes(answer, item["question"]))
            else:
                hashes[item["task"]].update(indexer.compute_hashes(item["question"]))
    (out / "index").mkdir(parents=True, exist_ok=True)
    for task, hs in hashes.items():
        np.array(sorted(hs), dtype=config.hash_config.np_descr).tofile(out / "index" / f"{task}.index.hashes")
    index_s = time.monotonic() - t0
    t1 = time.monotonic()
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(shards, compression="gzip"),
            NGramsDecontFilter(str(out / "index"), config=config, exclusion_writer=JsonlWriter(str(out / "removed"))),
        ],
        tasks=tasks,
        workers=tasks,
        logging_dir=str(out / "logs"),
    ).run()
    filter_s = time.monotonic() - t1
    removed = []
    import gzip

    for f in sorted((out / "removed").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            removed += [json.loads(line)["id"] for line in fh]
    (out / "removed.txt").write_text("\n".join(removed) + "\n", encoding="utf-8")
    (out / "seconds.json").write_text(json.dumps({"index": index_s, "filter": filter_s}), encoding="utf-8")


if __name__ == "__main__":
    main()
