"""`curate export`: training-ready shards of one corpus version, with repeats, tag tokens and loss-masking spans.

What a shard row is (JSONL line or Parquet row): `doc_id`, `repeat` (0, 1, ... for the copies of one document),
`text`, `tags`, `weight`, `action`, `spans`, `source`, `url`, `crawl_id`.

- **Version**: the corpus as of Delta version V (`VERSION AS OF`; by default the published one, the version the
  last successful run recorded, so a night killed between its `corpus` and `decisions` commits is never
  exported half-made; `curate export --latest-commit` takes the latest commit). Spans come from the
  `scores` table as it was when version V was committed (the newest `scores` version not newer than it), so an
  old version exports with the scores that decided it.
- **Repeats** (weights): a document of weight w is written floor(w) times, plus once more when
  u(doc_id) < w - floor(w), where u(doc_id) = int(sha256(doc_id)[:13 hex digits], 16) / 16**13 - a uniform
  number in [0, 1) that anyone can recompute without Spark; the same documents get the extra copy on every
  export and engine. A weight below 1 therefore keeps that share of such documents.
- **Tags**: every row lists its tags; with `export.tag_tokens`, the `tag_token`s of the principles its tags name
  (`toxicity`, `retained:toxicity`, `unrevised:toxicity` all name toxicity), in constitution order, followed
  by `export.tag_separator`, are prepended to the text.
- **Spans**: for tagged documents whose text was not rewritten (action `tag`, or `keep`/`tag` with tags), the
  `scores` spans of the principles their tags name: `{principle, start, end, score}` with character offsets
  into the exported `text` - already shifted past a prepended tag prefix, so `text[start:end]` is the flagged
  passage. A revised document has no spans (they were computed on the original text).
- **Order**: rows are sorted by sha256(f"{seed}:{doc_id}:{repeat}"), a deterministic shuffle that spreads the
  copies of a document; shards hold at most `max_rows_per_shard` rows and about `max_bytes_per_shard` bytes.
- **Atomic**: shards and `manifest.json` are written to a temporary sibling directory that is renamed to the
  output directory at the end; a crashed export leaves no half-written output behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from pipelines.core.config import ExportConfig, RunConfig
from pipelines.core.constitution import Constitution, load_constitution
from pipelines.core.progress import Progress

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from pipelines.core.lake import Lake

REPEAT_RULE = "floor(w) copies, plus one when int(sha256(doc_id).hexdigest()[:13], 16) / 16**13 < w - floor(w)"
ORDER_RULE = "ascending sha256(f'{seed}:{doc_id}:{repeat}').hexdigest()"
_U_DIGITS = 13  # 52 bits: exact in a double and in a Spark long


class ExportError(ValueError):
    """The export cannot be made as asked (no such version, output not empty): the message says why."""


def _u(doc_id: Column) -> Column:
    digits = F.substring(F.sha2(doc_id, 256), 1, _U_DIGITS)
    return F.conv(digits, 16, 10).cast("long") / F.lit(float(16**_U_DIGITS))


def copies(weight: Column, doc_id: Column) -> Column:
    """How many times a document is written: floor(w) + (u(doc_id) < frac(w))."""
    whole = F.floor(weight)
    return (whole + F.when(_u(doc_id) < weight - whole, 1).otherwise(0)).cast("int")


def tag_principle(tag: str) -> str:
    """`retained:toxicity` -> `toxicity`: the principle a corpus tag names."""
    return tag.rsplit(":", 1)[-1]


def tag_prefix(tags: list[str], constitution: Constitution, separator: str) -> str:
    named = {tag_principle(t) for t in tags}
    tokens = [p.tag_token for p in constitution.principles if p.name in named and p.tag_token]
    return "".join(tokens) + separator if tokens else ""


@dataclass
class _Shards:
    """Writes rows to numbered shards, starting a new one at the row or byte bound."""

    root: Path
    fmt: str
    cfg: ExportConfig
    shards: list[dict[str, Any]] = field(default_factory=list)
    _open_shard: bool = False
    _rows: int = 0
    _bytes: int = 0
    _handle: Any = None
    _writer: Any = None
    _buffer: list[dict[str, Any]] = field(default_factory=list)

    def _path(self) -> Path:
        return self.root / self.shards[-1]["file"]

    def _open(self) -> None:
        self.shards.append({"file": f"part-{len(self.shards):05d}.{self.fmt}", "rows": 0, "bytes": 0})
        self._rows = self._bytes = 0
        self._open_shard = True
        if self.fmt == "jsonl":
            self._handle = self._path().open("wb")

    def write(self, row: dict[str, Any]) -> None:
        # the JSON line's size bounds a Parquet shard too (before compression: a conservative bound)
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        full = self._rows >= self.cfg.max_rows_per_shard or self._bytes + len(line) > self.cfg.max_bytes_per_shard
        if self._open_shard and self._rows and full:
            self._close()
        if not self._open_shard:
            self._open()
        if self.fmt == "jsonl":
            self._handle.write(line)
        else:
            self._buffer.append(row)
            if len(self._buffer) >= 1_000:
                self._flush()
        self._rows += 1
        self._bytes += len(line)
        self.shards[-1]["rows"] = self._rows

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._buffer:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self._path()), PARQUET_SCHEMA)
        self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=PARQUET_SCHEMA))
        self._buffer = []

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.fmt == "parquet":
            self._flush()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self._open_shard = False
        data = self._path().read_bytes()
        self.shards[-1]["bytes"] = len(data)
        self.shards[-1]["sha256"] = hashlib.sha256(data).hexdigest()

    def close(self) -> None:
        if self._open_shard:
            self._close()


def _parquet_schema() -> Any:
    import pyarrow as pa

    span = pa.struct([("principle", pa.string()), ("start", pa.int32()), ("end", pa.int32()), ("score", pa.float64())])
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("repeat", pa.int32()),
            ("text", pa.string()),
            ("tags", pa.list_(pa.string())),
            ("weight", pa.float64()),
            ("action", pa.string()),
            ("spans", pa.list_(span)),
            ("source", pa.string()),
            ("url", pa.string()),
            ("crawl_id", pa.string()),
        ]
    )


PARQUET_SCHEMA = _parquet_schema()


def corpus_version(lake: Lake, version: int | None) -> tuple[int, int, int | None]:
    """(version, latest version, commit time in ms or None) of corpus version `version`, when None the one the
    handle reads (the published one on `Lake.published()`, the latest otherwise); ExportError says what exists."""
    latest = lake.version("corpus")
    if latest is None:
        raise ExportError(f"no corpus in {lake.root}: run `curate run` first")
    if version is None:
        version = lake.read_version("corpus")
        if version is None:
            raise ExportError(
                f"no published corpus in {lake.root} yet: no run has finished (--latest-commit exports what a "
                "running or killed one wrote)"
            )
    if not 0 <= version <= latest:
        raise ExportError(f"corpus has versions 0 to {latest}, not {version}")
    committed = {h["version"]: h.get("timestamp") for h in lake.history("corpus")}.get(version)
    return version, latest, committed if isinstance(committed, int) else None


def version_at(lake: Lake, table: str, when_ms: int) -> int | None:
    """The newest version of `table` committed at or before `when_ms` (None: none was)."""
    if not lake.exists(table):
        return None
    best = None
    for h in lake.history(table):
        ts, v = h.get("timestamp"), h.get("version")
        if isinstance(ts, int) and isinstance(v, int) and ts <= when_ms and (best is None or v > best):
            best = v
    return best


def _spans(lake: Lake, corpus: DataFrame, scores_version: int | None) -> DataFrame | None:
    """doc_id -> array of (principle, start, end, score) for the principles a non-revised document is tagged for."""
    if scores_version is None:
        return None
    tagged = corpus.where((F.col("action") != "revise") & (F.size("tags") > 0)).select(
        "doc_id", F.explode("tags").alias("tag")
    )
    wanted = tagged.select("doc_id", F.element_at(F.split("tag", ":"), -1).alias("principle")).distinct()
    scores = lake.read("scores", version=scores_version).select("doc_id", "principle", "spans")
    return (
        wanted.join(scores, ["doc_id", "principle"])
        .select("doc_id", "principle", F.explode("spans").alias("s"))
        .groupBy("doc_id")
        .agg(
            F.collect_list(
                F.struct(
                    F.col("principle"),
                    F.col("s.start").alias("start"),
                    F.col("s.end").alias("end"),
                    F.col("s.score").alias("score"),
                )
            ).alias("spans")
        )
    )


def export_corpus(
    lake: Lake,
    out: str | Path,
    cfg: RunConfig,
    *,
    version: int | None = None,
    fmt: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the shards and `manifest.json` of corpus version `version` (latest when None); returns the manifest."""
    ecfg = cfg.export
    fmt = fmt or ecfg.format
    if fmt not in ("jsonl", "parquet"):
        raise ExportError(f"format must be jsonl or parquet, got {fmt!r}")
    progress = progress or Progress(enabled=False)
    version, latest, committed = corpus_version(lake, version)
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"output directory {out} exists and is not empty")
    constitution = load_constitution(cfg.classify.constitution)

    scores_version = version_at(lake, "scores", committed) if committed is not None and ecfg.spans else None

    corpus = lake.read("corpus", version=version)
    with progress.stage(f"export: counting corpus version {version}"):
        by_action = {r["action"]: int(r["count"]) for r in corpus.groupBy("action").count().collect()}
        by_tag = {
            r["tag"]: int(r["count"])
            for r in corpus.select(F.explode("tags").alias("tag")).groupBy("tag").count().collect()
        }
        n = copies(F.col("weight"), F.col("doc_id"))
        by_copies = {int(r["n"]): int(r["count"]) for r in corpus.select(n.alias("n")).groupBy("n").count().collect()}
    total_rows = sum(k * v for k, v in by_copies.items())

    rows = corpus.withColumn("_n", n).where(F.col("_n") > 0)
    rows = rows.withColumn("repeat", F.explode(F.sequence(F.lit(0), F.col("_n") - 1)))
    spans = _spans(lake, corpus, scores_version)
    if spans is not None:
        rows = rows.join(spans, "doc_id", "left")
    else:
        rows = rows.withColumn(
            "spans", F.lit(None).cast("array<struct<principle:string,start:int,end:int,score:double>>")
        )
    order = F.sha2(F.concat_ws(":", F.lit(str(ecfg.seed)), F.col("doc_id"), F.col("repeat").cast("string")), 256)
    rows = rows.select(
        "doc_id", "repeat", "text", "tags", "weight", "action", "spans", "source", "url", "crawl_id", order.alias("_o")
    ).orderBy("_o")

    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards = _Shards(tmp, fmt, ecfg)
    rows_by_action: Counter[str] = Counter()
    n_spans = 0
    bar = progress.bar(f"export: writing {total_rows} rows", total_rows)
    written = 0
    try:
        for r in rows.toLocalIterator():
            tags = list(r["tags"] or [])
            prefix = tag_prefix(tags, constitution, ecfg.tag_separator) if ecfg.tag_tokens else ""
            shift = len(prefix)
            doc_spans = sorted(
                (
                    {
                        "principle": s["principle"],
                        "start": s["start"] + shift,
                        "end": s["end"] + shift,
                        "score": s["score"],
                    }
                    for s in (r["spans"] or [])
                ),
                key=lambda s: (s["start"], s["end"], s["principle"]),
            )
            n_spans += len(doc_spans)
            shards.write(
                {
                    "doc_id": r["doc_id"],
                    "repeat": int(r["repeat"]),
                    "text": prefix + r["text"],
                    "tags": tags,
                    "weight": float(r["weight"]),
                    "action": r["action"],
                    "spans": doc_spans,
                    "source": r["source"],
                    "url": r["url"],
                    "crawl_id": r["crawl_id"],
                }
            )
            rows_by_action[r["action"]] += 1
            written += 1
            if written % 1000 == 0:
                bar(written)
        shards.close()
        bar(written)
    except BaseException:
        shards.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        progress.end_bar()

    manifest = {
        "source": {
            "table": str(lake.path("corpus")),
            "version": version,
            "latest_version": latest,
            "committed_at_ms": committed,
            "scores_version": scores_version,
        },
        "format": fmt,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config_hash": cfg.config_hash(),
        "export_config": {k: getattr(ecfg, k) for k in ecfg.__dataclass_fields__},
        "constitution": constitution.fingerprint(),
        "documents": sum(by_action.values()),
        "documents_not_written": by_copies.get(0, 0),
        "rows_written": written,
        "documents_by_action": dict(sorted(by_action.items())),
        "rows_by_action": dict(sorted(rows_by_action.items())),
        "documents_by_tag": dict(sorted(by_tag.items())),
        "documents_by_copies": {str(k): v for k, v in sorted(by_copies.items())},
        "spans": n_spans,
        "repeat_rule": REPEAT_RULE,
        "order_rule": ORDER_RULE,
        "shards": shards.shards,
    }
    if written != total_rows:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(f"wrote {written} rows but the corpus version asks for {total_rows}: nothing exported")
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return manifest
