"""Parsing crawl files into documents or quarantine records, one record at a time, never raising.

Pure Python so it is testable without Spark; `pipelines.ingest` runs it inside `mapInPandas`, one input
file per task. Every record of an input file comes out as exactly one `Parsed` (a document or a
quarantine entry with a reason), which is what makes the accounting invariant checkable.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS = ("jsonl", "parquet", "wet", "warc")

# Quarantine reasons: stable strings, queried by users in SQL.
MALFORMED_JSON = "malformed_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_TEXT = "missing_text"
EMPTY_TEXT = "empty_text"
WRONG_TYPE_TEXT = "wrong_type:text"
WRONG_TYPE_URL = "wrong_type:url"
INVALID_UTF8 = "invalid_utf8"
TOO_LARGE = "too_large"
TOO_DEEP = "too_deeply_nested"  # valid JSON nested deeper than the parser's recursion allows
TRUNCATED_FILE = "truncated_file"
UNREADABLE_FILE = "unreadable_file"
NO_TEXT_EXTRACTED = "no_text_extracted"
UNSUPPORTED_CONTENT = "unsupported_content_type"


@dataclass(frozen=True)
class ParseOptions:
    text_field: str = "text"
    id_field: str = "id"
    url_field: str = "url"
    source_field: str = "source"
    max_doc_bytes: int = 1_000_000
    raw_truncate_chars: int = 2_000


@dataclass
class Parsed:
    position: int
    reason: str | None = None  # None = a document
    text: str | None = None
    url: str | None = None
    source: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    raw: str | None = None
    ext_id: str | None = None


def detect_format(path: str | Path) -> str | None:
    name = Path(path).name.lower()
    for suffix in (".gz", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".wet") or name.endswith(".warc.wet"):
        return "wet"
    if name.endswith((".warc", ".arc")):
        return "warc"
    return None


def doc_id_for(text: str, url: str | None, ext_id: str | None) -> str:
    """Stable id: the same page with the same text is the same document, whichever night it was crawled."""
    key = url if url else (ext_id or "")
    return hashlib.sha256(f"{key}\x1f{text}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def record_id_for(source_file: str, position: int) -> str:
    return hashlib.sha256(f"{source_file}\x1f{position}".encode()).hexdigest()[:32]


def _truncate(raw: str | bytes | None, limit: int) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw[: limit * 4].decode("utf-8", "replace")
    text = raw[:limit]
    # A lone surrogate cannot be stored as UTF-8; keep it visible but storable.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_text(text: Any, url: Any, opts: ParseOptions) -> str | None:
    """The reason a would-be document is not one, or None when it is acceptable."""
    if text is None:
        return MISSING_TEXT
    if not isinstance(text, str):
        return WRONG_TYPE_TEXT
    if url is not None and not isinstance(url, str):
        return WRONG_TYPE_URL
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates from \ud800-style escapes in JSON
        return INVALID_UTF8
    if not text.strip():
        return EMPTY_TEXT
    if size > opts.max_doc_bytes:
        return TOO_LARGE
    return None


def _meta_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _open_binary(path: str) -> io.BufferedIOBase:
    if path.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


_BOM = b"\xef\xbb\xbf"


def parse_jsonl(path: str, opts: ParseOptions) -> Iterator[Parsed]:
    position = -1
    try:
        with _open_binary(path) as fh:
            for position, line in enumerate(fh):
                if not line.removeprefix(_BOM).strip():
                    continue
                yield _jsonl_record(line, position, opts)
    except (EOFError, gzip.BadGzipFile, OSError, ValueError, zlib.error) as exc:  # a broken gzip stream
        yield Parsed(position=position + 1, reason=TRUNCATED_FILE, raw=_truncate(str(exc), opts.raw_truncate_chars))


def _jsonl_record(line: bytes, position: int, opts: ParseOptions) -> Parsed:
    raw = _truncate(line, opts.raw_truncate_chars)
    try:
        # A UTF-8 BOM marks the encoding (Windows tools write one at a file's start, concatenated files at a part's),
        # it is not content; no JSON value starts with U+FEFF.
        decoded = line.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError:
        return Parsed(position=position, reason=INVALID_UTF8, raw=raw)
    try:
        obj = json.loads(decoded)
    except RecursionError:  # valid JSON nested deeper than the decoder recurses: one record, not the run
        return Parsed(position=position, reason=TOO_DEEP, raw=raw)
    except ValueError:  # malformed, or a number too long to convert (Python's int digit limit): this record only
        return Parsed(position=position, reason=MALFORMED_JSON, raw=raw)
    if not isinstance(obj, dict):
        return Parsed(position=position, reason=NOT_AN_OBJECT, raw=raw)
    return _from_mapping(obj, position, opts, raw)


def _encodable(*strings: str | None) -> bool:
    """Every string can be stored as UTF-8 (a JSON `\\ud800` escape decodes to a lone surrogate, which cannot)."""
    try:
        for s in strings:
            if s is not None:
                s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _from_mapping(obj: dict[str, Any], position: int, opts: ParseOptions, raw: str | None) -> Parsed:
    text, url = obj.get(opts.text_field), obj.get(opts.url_field)
    reason = check_text(text, url, opts)
    if reason is not None:
        return Parsed(position=position, reason=reason, raw=raw)
    source = obj.get(opts.source_field)
    source = source if isinstance(source, str) else None
    ext_id = obj.get(opts.id_field)
    skip = {opts.text_field, opts.url_field, opts.source_field}
    try:
        meta = {str(k): _meta_value(v) for k, v in obj.items() if k not in skip and v is not None}
    except RecursionError:  # a field nested deeper than the encoder recurses (the decoder just managed it)
        return Parsed(position=position, reason=TOO_DEEP, raw=raw)
    except ValueError:  # an integer past Python's digit limit for str()
        return Parsed(position=position, reason=MALFORMED_JSON, raw=raw)
    # url, source and meta are stored as they are: a lone surrogate in any of them would fail the whole batch's write
    if not _encodable(url, source, *meta, *meta.values()):
        return Parsed(position=position, reason=INVALID_UTF8, raw=raw)
    return Parsed(
        position=position,
        text=text,
        url=url,
        source=source,
        meta=meta,
        ext_id=None if ext_id is None else _meta_value(ext_id),
    )


def parse_parquet(path: str, opts: ParseOptions) -> Iterator[Parsed]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        yield Parsed(position=0, reason=UNREADABLE_FILE, raw=_truncate(str(exc), opts.raw_truncate_chars))
        return
    position = 0
    try:
        for batch in pf.iter_batches(batch_size=4096):
            for row in _rows(batch):
                if isinstance(row, Exception):  # a value that does not decode (invalid UTF-8 in a string column)
                    yield Parsed(
                        position=position, reason=INVALID_UTF8, raw=_truncate(str(row), opts.raw_truncate_chars)
                    )
                    position += 1
                    continue
                raw = _truncate(json.dumps(row, default=str, ensure_ascii=False), opts.raw_truncate_chars)
                if opts.text_field not in row:
                    yield Parsed(position=position, reason=MISSING_TEXT, raw=raw)
                else:
                    yield _from_mapping(row, position, opts, raw)
                position += 1
    except Exception as exc:  # a corrupt page or footer: the rows read so far stand, the rest is one record
        yield Parsed(position=position, reason=TRUNCATED_FILE, raw=_truncate(str(exc), opts.raw_truncate_chars))


def _rows(batch: Any) -> Iterator[dict[str, Any] | Exception]:
    """A record batch's rows as dicts; a row whose values do not convert comes out as the exception, the others
    as rows (one bad value costs its own row, not the batch)."""
    try:
        yield from batch.to_pylist()
        return
    except (UnicodeDecodeError, ValueError):
        pass
    for i in range(batch.num_rows):
        try:
            (row,) = batch.slice(i, 1).to_pylist()
        except (UnicodeDecodeError, ValueError) as exc:
            yield exc
        else:
            yield row


def _warc_records(path: str) -> Iterator[Any]:
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as fh:
        yield from ArchiveIterator(fh, arc2warc=True)


def parse_wet(path: str, opts: ParseOptions) -> Iterator[Parsed]:
    """Common Crawl WET: `conversion` records hold extracted plain text; warcinfo is not a document."""
    position = -1
    try:
        for record in _warc_records(path):
            if record.rec_type != "conversion":
                continue
            position += 1
            payload = record.content_stream().read()
            yield _from_payload(payload, record, position, opts)
    except Exception as exc:
        yield Parsed(position=position + 1, reason=TRUNCATED_FILE, raw=_truncate(str(exc), opts.raw_truncate_chars))


def _from_payload(payload: bytes, record: Any, position: int, opts: ParseOptions) -> Parsed:
    headers = record.rec_headers
    url = headers.get_header("WARC-Target-URI")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return Parsed(position=position, reason=INVALID_UTF8, raw=_truncate(payload, opts.raw_truncate_chars))
    reason = check_text(text, url, opts)
    if reason is not None:
        return Parsed(position=position, reason=reason, raw=_truncate(text, opts.raw_truncate_chars))
    meta = {
        k: v
        for k, v in (
            ("warc_record_id", headers.get_header("WARC-Record-ID")),
            ("warc_date", headers.get_header("WARC-Date")),
        )
        if v
    }
    return Parsed(position=position, text=text, url=url, meta=meta, ext_id=meta.get("warc_record_id"))


_HTML_TYPES = ("text/html", "application/xhtml+xml")


def parse_warc(path: str, opts: ParseOptions) -> Iterator[Parsed]:
    """WARC `response` records with HTML, converted to text by `udfs.html.html_to_text`.

    Requests, metadata and warcinfo records are protocol, not documents, and are skipped. A response that is
    not HTML, or from which no text can be extracted, is quarantined with the reason.
    """
    from udfs.html import html_to_text

    position = -1
    try:
        for record in _warc_records(path):
            if record.rec_type != "response":
                continue
            position += 1
            url = record.rec_headers.get_header("WARC-Target-URI")
            http = record.http_headers
            ctype = (http.get_header("Content-Type") if http else "") or ""
            payload = record.content_stream().read()
            if not any(t in ctype.lower() for t in _HTML_TYPES):
                yield Parsed(
                    position=position,
                    reason=f"{UNSUPPORTED_CONTENT}:{ctype.split(';')[0].strip() or 'unknown'}",
                    raw=_truncate(payload, min(opts.raw_truncate_chars, 200)),
                )
                continue
            if len(payload) > opts.max_doc_bytes * 8:
                yield Parsed(position=position, reason=TOO_LARGE, raw=_truncate(payload, opts.raw_truncate_chars))
                continue
            text = html_to_text(payload, url)
            reason = check_text(text, url, opts)
            if reason == EMPTY_TEXT:
                reason = NO_TEXT_EXTRACTED
            if reason is not None:
                yield Parsed(position=position, reason=reason, raw=_truncate(payload, opts.raw_truncate_chars))
                continue
            meta = {
                k: v
                for k, v in (
                    ("warc_record_id", record.rec_headers.get_header("WARC-Record-ID")),
                    ("warc_date", record.rec_headers.get_header("WARC-Date")),
                    ("content_type", ctype),
                )
                if v
            }
            yield Parsed(position=position, text=text, url=url, meta=meta, ext_id=meta.get("warc_record_id"))
    except Exception as exc:
        yield Parsed(position=position + 1, reason=TRUNCATED_FILE, raw=_truncate(str(exc), opts.raw_truncate_chars))


UNSUPPORTED_FILE = "unsupported_file_type"
UNSUPPORTED = "unsupported"  # the format of a file none of the parsers reads


def parse_unsupported(path: str, opts: ParseOptions) -> Iterator[Parsed]:
    """A file in the input that no parser reads (`notes.txt`, `export.csv`) is one quarantine record, with its
    first bytes, so that it is seen and counted instead of skipped without a word."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    suffix = "".join(Path(path).suffixes).lower() or "(none)"
    yield Parsed(position=0, reason=f"{UNSUPPORTED_FILE}:{suffix}", raw=head.decode("utf-8", "replace"))


_PARSERS = {
    "jsonl": parse_jsonl,
    "parquet": parse_parquet,
    "wet": parse_wet,
    "warc": parse_warc,
    UNSUPPORTED: parse_unsupported,
}


def parse_file(path: str, fmt: str, opts: ParseOptions) -> Iterator[Parsed]:
    if fmt not in _PARSERS:
        raise ValueError(f"unknown input format {fmt!r} (known: {', '.join(FORMATS)})")
    return _PARSERS[fmt](path, opts)
