"""Ingest fuzzed with hypothesis: random bytes, broken gzip, deep or huge JSON, wrong field types, lone surrogates,
NUL bytes, mixed line endings and BOMs. Whatever the input, nothing raises, every record comes out as exactly one
document or one quarantine entry (counted here from the bytes, independently of the parser), and what is stored is
storable (valid UTF-8, the ingest schema in Arrow, as Spark's `mapInPandas` converts it).

Budget per run: 400 JSONL files and 400 broken gzip files through the parser (udfs/parse.py), 60 Parquet files and
80 WARC/WET files of any shape or corruption, 150 input sets through the ingest task (pipelines/stages/ingest.py), and 3
full nightly runs on fuzzed input folders. Each bug found is an `@example` below.
"""

from __future__ import annotations

import gzip
import io
import json
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyspark.sql.pandas.types import to_arrow_schema

from pipelines.core.config import IngestConfig, load_config
from pipelines.stages.ingest import DOC, PARSED, _parse_batches
from tests.fixtures import ARTICLES
from udfs import records as P
from udfs.parse import parse_file

OPTS = IngestConfig(max_doc_bytes=4_000, raw_truncate_chars=300)

REASONS = {
    P.MALFORMED_JSON,
    P.NOT_AN_OBJECT,
    P.MISSING_TEXT,
    P.EMPTY_TEXT,
    P.WRONG_TYPE_TEXT,
    P.WRONG_TYPE_URL,
    P.INVALID_UTF8,
    P.TOO_LARGE,
    P.TOO_DEEP,
    P.TRUNCATED_FILE,
    P.UNREADABLE_FILE,
    P.NO_TEXT_EXTRACTED,
    P.BINARY_FILE,
    P.NOT_GZIP,
}
BOM = b"\xef\xbb\xbf"

# ---- strategies ---------------------------------------------------------------------------------------------------

# Every code point, lone surrogates and NUL included, plus the awkward ones often enough to matter.
chars = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None),
    st.sampled_from(["\ud800", "\udfff", "\x00", "\ufeff", "\u2028", "\r", "\n", " ", "\u0085"]),
)
texts = st.text(chars, max_size=40)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(texts, kids, max_size=3))
# Text fields: short random text, or a real article with anything appended (NULs, BOMs, surrogates ...), long enough
# to pass the quality rules and reach dedup, classification and the corpus in a whole run.
prose = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, categories=None), min_size=1, max_size=200),
    st.builds(lambda article, tail: article + tail, st.sampled_from([t for _, t in ARTICLES]), texts),
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any] | list[Any] | Any:
    """A JSON value as a crawler might write it: mostly an object with text and url, any of them of any type."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)  # not an object at all
    obj: dict[str, Any] = {}
    for key, good in (("text", prose), ("url", st.just("https://x.example/p")), ("source", st.just("fuzz"))):
        choice = draw(st.integers(0, 4))
        if choice <= 2:
            obj[key] = draw(good)
        elif choice == 3:
            obj[key] = draw(values)
    obj.update(draw(st.dictionaries(texts, values, max_size=3)))
    return obj


def deep(n: int, leaf: str = "1") -> str:
    return "[" * n + leaf + "]" * n


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    """One line's bytes (without its end): JSON written every way, deep or huge JSON, or bytes of any kind."""
    kind = draw(st.integers(0, 5))
    if kind <= 2:
        obj = draw(records())
        text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
        # ensure_ascii=False keeps lone surrogates as code points: their UTF-8 form is not valid UTF-8
        return text.encode("utf-8", "surrogatepass")
    if kind == 3:
        n = draw(st.sampled_from([10, 500, 5_000, 200_000]))
        return f'{{"text": "deep", "meta": {deep(n)}}}'.encode() if draw(st.booleans()) else deep(n).encode()
    if kind == 4:
        return b'{"text": "big number", "n": ' + b"7" * draw(st.integers(4_000, 6_000)) + b"}"
    return draw(st.binary(max_size=60))


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    """Lines with mixed endings (LF, CRLF, CR), blank lines, NULs and BOMs (at the file's start or a line's)."""
    out = io.BytesIO()
    if draw(st.booleans()):
        out.write(BOM)
    for line in draw(st.lists(lines(), max_size=8)):
        if draw(st.integers(0, 5)) == 0:
            out.write(BOM)
        out.write(line)
        out.write(draw(st.sampled_from([b"\n", b"\r\n", b"\r\n", b"\n\n", b"\r", b" \n"])))
    return out.getvalue()


# ---- the property, counted from the bytes -------------------------------------------------------------------------


def storable(s: object) -> bool:
    if s is None:
        return True
    if not isinstance(s, str):
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def binary_head(payload: bytes) -> bool:
    """The ingest rule for a file that is not text, stated here on its own: more than 30% of the characters of its
    first 8 KiB are bytes that are not UTF-8 or control characters other than tab, LF, CR and form feed."""
    text = payload[:8192].decode("utf-8", "surrogateescape")
    bad = sum(1 for ch in text if "\udc80" <= ch <= "\udcff" or (ch < " " and ch not in "\t\n\r\f") or ch == "\x7f")
    return bool(text) and bad > 0.3 * len(text)


def expected_records(payload: bytes) -> list[int]:
    """Positions of the records of a JSONL payload: its LF-separated lines that are not blank (CR alone does not end a
    line in JSONL; a BOM that starts a line is an encoding mark, not content); a binary file is one record."""
    if binary_head(payload):
        return [0]
    return [i for i, line in enumerate(payload.split(b"\n")) if line.removeprefix(BOM).strip()]


def check_records(out: list[P.Parsed]) -> None:
    positions = [r.position for r in out]
    assert positions == sorted(set(positions)), "positions repeat or go back"
    for r in out:
        assert storable(r.raw), r
        if r.reason is None:
            assert isinstance(r.text, str) and r.text.strip() and storable(r.text), r
            assert storable(r.url) and storable(r.source), r
            assert all(storable(k) and storable(v) for k, v in r.meta.items()), r
        else:
            assert r.reason in REASONS or r.reason.startswith(f"{P.UNSUPPORTED_CONTENT}:"), r.reason


def _write(directory: Path, name: str, payload: bytes) -> str:
    path = directory / name
    path.write_bytes(payload)
    return str(path)


FUZZ = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@FUZZ
@given(payload=jsonl_files(), gz=st.booleans())
@example(payload=deep(100_000).encode() + b"\n" + b'{"text": "after the deep line"}\n', gz=False)  # bug 1
@example(payload=b'{"text": "n", "n": ' + b"9" * 5000 + b'}\n{"text": "after the big number"}\n', gz=False)  # bug 2
@example(payload=BOM + b'{"text": "a document in a file that starts with a BOM"}\n', gz=False)  # bug 3
@example(payload=b'{"text": "ok", "url": "https://x.example/\\ud800"}\n', gz=False)  # bug 4
@example(payload=b'{"text": "ok", "source": "\\udfff"}\n', gz=False)  # bug 4
@example(payload=b'{"text": "ok", "\\ud800": 1}\n', gz=False)  # bug 4
@example(payload=b'{"text": "ok", "m": ' + deep(2_000).encode() + b"}\n", gz=False)
@example(payload=b'{"text": "a\\u0000b"}\r\n{"text": "c"}\r{"text": "d"}\n', gz=True)
def test_jsonl_every_record_is_one_outcome(payload: bytes, gz: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = _write(Path(d), "f.jsonl.gz" if gz else "f.jsonl", gzip.compress(payload, mtime=0) if gz else payload)
        out = list(parse_file(path, "jsonl", OPTS))
    check_records(out)
    assert [r.position for r in out] == expected_records(payload)
    assert ([r.reason for r in out] == [P.BINARY_FILE]) == binary_head(payload)
    assert P.TRUNCATED_FILE not in {r.reason for r in out}  # the file is whole: no record is lost to the file's end


@FUZZ
# bug 7: a corrupt deflate stream inside the first 8 KiB, which the binary sniff reads, raised zlib.error there
@example(payload=BOM + b"[" * 5000 + b"1" + b"]" * 5000 + b"\n", cut=0.5625, garbage=b"\x00")
# bug 8: the head that decompressed before the break was binary (NULs), but the sniff gave up at the break and its
# bytes became a malformed_json line, where the whole file is one binary_file record
@example(payload=b"\xef\xbb\xbf\n\xef\xbb\xbf\x00\x00\n", cut=0.75, garbage=b"")
# the whole file is binary by share, its part before the break is not: read line by line, nothing lost
@example(
    payload=b"\xef\xbb\xbf\n\xef\xbb\xbf\t   \x00\n\xef\xbb\xbf\x00\x00\x00\x00\t\t \n\xef\xbb\xbf\x00\x00\n",
    cut=0.75,
    garbage=b"",
)
@given(payload=jsonl_files(), cut=st.floats(0.0, 1.0), garbage=st.one_of(st.just(b""), st.binary(max_size=40)))
def test_broken_gzip_loses_nothing_it_read(payload: bytes, cut: float, garbage: bytes) -> None:
    """A gzip cut short, or cut and followed by garbage: never an exception, and the break is said. Cut short, the
    complete lines before the break are records as in the whole file, then one `truncated_file` record. With garbage
    after the cut, deflate may decode the garbage into lines before the checksum fails at the end (a stream cannot
    know sooner); those are records of the file as read, and `truncated_file` still closes it."""
    compressed = gzip.compress(payload, mtime=0)
    kept = int(len(compressed) * cut)
    broken = compressed[:kept] + garbage
    with tempfile.TemporaryDirectory() as d:
        out = list(parse_file(_write(Path(d), "f.jsonl.gz", broken), "jsonl", OPTS))
    check_records(out)
    if [r.reason for r in out] in ([P.BINARY_FILE], [P.NOT_GZIP]):
        return  # what decompressed (or the header) is not text: the file is one quarantine record
    whole = expected_records(payload)
    records = [r for r in out if r.reason != P.TRUNCATED_FILE]
    readable = zlib.decompressobj(wbits=31).decompress(broken) if not garbage else b""
    if not garbage and binary_head(payload) == binary_head(readable):
        # the records before the break are the whole file's - unless the whole file is binary by share and the part
        # before the break is not (or the reverse): then that part is read as what it is, line by line
        assert [r.position for r in records] == whole[: len(records)]
    if broken and kept < len(compressed):  # something is missing: it is said, once, at the end
        assert [r.reason for r in out].count(P.TRUNCATED_FILE) == 1 and out[-1].reason == P.TRUNCATED_FILE


@settings(max_examples=60, deadline=None)
@given(
    columns=st.dictionaries(
        st.sampled_from(["text", "url", "source", "id", "extra"]),
        st.sampled_from(["string", "int", "binary", "list", "null"]),
        min_size=1,
    ),
    rows=st.integers(0, 5),
    flip=st.one_of(st.none(), st.tuples(st.floats(0.0, 1.0), st.integers(0, 255))),
)
def test_parquet_of_any_shape_and_corruption(columns: dict[str, str], rows: int, flip: Any) -> None:
    import pyarrow.parquet as pq

    makers = {
        "string": lambda i: pa.array([f"word {i} " * 20 for i in range(rows)]),
        "int": lambda i: pa.array(list(range(rows)), pa.int64()),
        "binary": lambda i: pa.array([b"\xff\xfe text"] * rows),
        "list": lambda i: pa.array([[i, i + 1]] * rows),
        "null": lambda i: pa.array([None] * rows, pa.string()),
    }
    table = pa.table({name: makers[kind](i) for i, (name, kind) in enumerate(columns.items())})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    data = bytearray(buf.getvalue())
    if flip is not None:  # one byte changed anywhere: header, pages, footer
        at = int((len(data) - 1) * flip[0])
        data[at] = flip[1]
    with tempfile.TemporaryDirectory() as d:
        out = list(parse_file(_write(Path(d), "f.parquet", bytes(data)), "parquet", OPTS))
    check_records(out)
    if flip is None:
        assert len(out) == rows and P.UNREADABLE_FILE not in {r.reason for r in out}


@settings(max_examples=80, deadline=None)
@given(
    fmt=st.sampled_from(["wet", "warc"]),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=3),
)
def test_warc_and_wet_cut_or_corrupted(fmt: str, cut: float, flips: list[tuple[float, int]]) -> None:
    """Real WARC and WET files (warcio, as crawlers write them) cut short and with bytes changed: never an exception,
    every record one outcome."""
    from tests.fixtures import write_warc, write_wet

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"f.{fmt}.gz"
        (write_wet if fmt == "wet" else write_warc)(path)
        data = bytearray(path.read_bytes()[: max(1, int(len(path.read_bytes()) * cut))])
        for at, value in flips:
            data[int((len(data) - 1) * at)] = value
        path.write_bytes(bytes(data))
        out = list(parse_file(str(path), fmt, OPTS))
    check_records(out)


# ---- the ingest task: what it yields converts to the ingest schema in Arrow, as Spark converts it -----------------

ARROW = to_arrow_schema(PARSED)


def ingest_task(files: list[tuple[str, str]]) -> pa.Table:
    listing = [(path, fmt, Path(path).name) for path, fmt in files]  # the input listing: path, format, name
    frames = _parse_batches(OPTS)(iter([pd.DataFrame(listing, columns=["path", "fmt", "name"])]))
    tables = [pa.Table.from_pandas(f, schema=ARROW, preserve_index=False) for f in frames]
    return pa.concat_tables(tables) if tables else ARROW.empty_table()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(payloads=st.lists(jsonl_files(), min_size=1, max_size=3), raw=st.binary(max_size=200))
@example(payloads=[b'{"text": "ok", "url": "https://x.example/\\ud800"}\n'], raw=b"")  # bug 4, in the task
def test_ingest_task_yields_storable_rows(payloads: list[bytes], raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        files = [(_write(Path(d), f"f{i}.jsonl", p), "jsonl") for i, p in enumerate(payloads)]
        files += [(_write(Path(d), "g.jsonl.gz", raw), "jsonl"), (_write(Path(d), "h.parquet", raw), "parquet")]
        table = ingest_task(files).to_pylist()
    for (path, _), payload in zip(files, payloads, strict=False):
        assert len([r for r in table if r["source_file"] == path]) == len(expected_records(payload))
    # random bytes as gzip and as Parquet: quarantined (an empty gzip file holds no record, an empty Parquet one is
    # unreadable)
    assert files[-1][0] in {r["source_file"] for r in table}
    assert not raw or files[-2][0] in {r["source_file"] for r in table}
    ids = [r["record_id"] for r in table]
    assert len(ids) == len(set(ids))
    for r in table:
        assert (r["status"] == DOC) == (r["doc_id"] is not None and r["text"] is not None)


# ---- whole runs on fuzzed input folders ---------------------------------------------------------------------------


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
# at least one record: the ingest gate rightly refuses an empty crawl
@given(payloads=st.lists(jsonl_files(), min_size=1, max_size=3).filter(lambda ps: any(map(expected_records, ps))))
def test_fuzzed_run_accounts_for_every_record(spark: Any, payloads: list[bytes]) -> None:
    from pipelines.chains.run import run_pipeline
    from pipelines.core.execute import check_accounting
    from pipelines.core.lake import Lake

    cfg = load_config(
        None,
        {
            "revise.enabled": False,
            "engine.shuffle_partitions": 2,
            "ingest.max_quarantine_fraction": 1.0,  # the gate would rightly refuse garbage: here it must flow
            "tracking.enabled": False,
        },
    )
    with tempfile.TemporaryDirectory() as d:
        crawl = Path(d) / "crawl"
        crawl.mkdir()
        for i, p in enumerate(payloads):
            _write(crawl, f"f{i}.jsonl", p)
        summary = run_pipeline(Path(d) / "lake", crawl, cfg, crawl_id="fuzz")
        lake = Lake(Path(d) / "lake", spark)
        c = summary.counts
        records = sum(len(expected_records(p)) for p in payloads)
        assert summary.status == "success"
        assert c["records"] == records == c["documents"] + c["quarantined"]
        assert lake.read("quarantine").count() == c["quarantined"]
        assert lake.read("raw_docs").count() == c["documents"] - c["repeated_in_batch"]
        acct = check_accounting(lake)
        assert (acct["unaccounted"], acct["double_counted"]) == (0, 0)
