"""The datatrove 0.10.1 side of bench/quality_bench.py; runs inside the peer's own venv (not the project's).

Two modes:

- ``chain DIR OUT``: datatrove's own executor, ``LocalPipelineExecutor(tasks=N, workers=N)`` over the JSONL
  shards in DIR: JsonlReader -> GopherRepetitionFilter -> GopherQualityFilter -> C4QualityFilter ->
  FineWebQualityFilter -> JsonlWriter, default parameters. The caller times the whole process (start-up
  included). Prints one JSON line with the kept count and the drop counts by filter and reason.
- ``decide OUT SHARD...``: every rule set on every document, each on its own (not chained), so a rule set's
  decision is known for documents an earlier filter would have dropped. Gopher repetition, Gopher quality and
  C4 see the original text; FineWeb sees C4's line-cleaned text (as it does in the chain), where the cleaning
  is C4's with the document-level rules off (the cleaning of a document C4 drops is still defined).
  Writes one JSON line per document: id, the reason each set drops it for ("" = kept), the cleaned text's
  sha1 and spaCy's token count.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing as mp
import sys
import time


def _filters():
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return {
        "gopher_repetition": GopherRepetitionFilter(),
        "gopher_quality": GopherQualityFilter(),
        "c4": C4QualityFilter(),
        "c4_clean": C4QualityFilter(min_num_sentences=-1, filter_lorem_ipsum=False, filter_curly_bracket=False),
        "fineweb": FineWebQualityFilter(),
    }


def _reason(res: object) -> str:
    if res is True:
        return ""
    if isinstance(res, tuple):
        return str(res[1])
    return "dropped"


def _decide_shard(path: str) -> list[dict[str, object]]:
    from datatrove.data import Document
    from datatrove.utils.text import split_into_words

    f = _filters()
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            text, doc_id = d["text"], d["id"]
            row: dict[str, object] = {"id": doc_id}
            for name in ("gopher_repetition", "gopher_quality", "c4"):
                row[name] = _reason(f[name].filter(Document(text=text, id=doc_id)))
            clean = Document(text=text, id=doc_id)
            f["c4_clean"].filter(clean)
            row["fineweb"] = _reason(f["fineweb"].filter(Document(text=clean.text, id=doc_id)))
            row["clean_sha1"] = hashlib.sha1(clean.text.encode("utf-8")).hexdigest()
            row["n_tokens"] = len(split_into_words(text)) if text else 0
            out.append(row)
    return out


def decide(out: str, shards: list[str]) -> None:
    with mp.Pool(min(len(shards), mp.cpu_count())) as pool:
        parts = pool.map(_decide_shard, shards)
    with open(out, "w", encoding="utf-8") as fh:
        for part in parts:
            for row in part:
                fh.write(json.dumps(row) + "\n")


class _TreeCPU:
    """CPU seconds of this process and every descendant, sampled from /proc (the executor's pool workers are
    not always reaped in a way that getrusage(RUSAGE_CHILDREN) sees)."""

    def __init__(self) -> None:
        import os
        import threading

        self.tick = os.sysconf("SC_CLK_TCK")
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        import os

        parent: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", encoding="utf-8") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(name)] = int(fields[1])
            cpu[int(name)] = (int(fields[11]) + int(fields[12])) / self.tick
        mine, frontier = set(), {os.getpid()}
        while frontier:
            mine |= frontier
            frontier = {p for p, pp in parent.items() if pp in frontier and p not in mine}
        for p in mine - {os.getpid()}:
            self.seen[p] = max(self.seen.get(p, 0.0), cpu[p])

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            self._sample()

    def total(self) -> float:
        import resource

        self._sample()
        self.stop.set()
        own = resource.getrusage(resource.RUSAGE_SELF)
        return own.ru_utime + own.ru_stime + sum(self.seen.values())


def chain(data_dir: str, out_dir: str, tasks: int) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    t0 = time.monotonic()
    tree = _TreeCPU()
    executor = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(data_dir, glob_pattern="*.jsonl.gz"),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            C4QualityFilter(),
            FineWebQualityFilter(),
            JsonlWriter(f"{out_dir}/kept"),
        ],
        tasks=tasks,
        workers=tasks,
        logging_dir=f"{out_dir}/logs",
        skip_completed=False,
    )
    stats = executor.run()
    kept, drops = 0, {}

    def number(value: object) -> int:
        return int(getattr(value, "total", value) or 0)  # type: ignore[call-overload]

    for step in stats.stats:
        for key, value in step.stats.items():
            if key.startswith("dropped_"):
                drops[f"{step.name}:{key[len('dropped_') :]}"] = number(value)
        if "Jsonl" in step.name:
            kept = number(step.stats.get("total", 0))
    out = {"kept": kept, "drops": drops, "seconds_in_executor": time.monotonic() - t0, "cpu_s": tree.total()}
    print(json.dumps(out))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "decide":
        decide(args[0], args[1:])
    elif mode == "chain":
        chain(args[0], args[1], int(args[2]) if len(args) > 2 else 2)
    else:
        raise SystemExit(f"unknown mode {mode!r}: use decide or chain")
