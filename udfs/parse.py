"""Parsing crawl files into documents or quarantine records, one record at a time, never raising.

Pure Python so it is testable without Spark; `pipelines.ingest` runs it inside `mapInPandas`, one input
file per task. Every record of an input file comes out as exactly one `Parsed` (a document or a
quarantine entry with a reason), which is what makes the accounting invariant checkable.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS = ("jsonl", "json", "txt", "csv", "parquet", "wet", "warc")

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
BINARY_FILE = "binary_file"  # a text format's file that holds bytes, not text (sniffed: `looks_binary`)
NOT_GZIP = "not_gzip"  # a `.gz` file whose bytes are not gzip
MALFORMED_CSV = "malformed_csv"  # a CSV row with more or fewer fields than the header, or one the reader rejects


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
    ext_key: Any = None  # the record's id as the input wrote it (a JSON number stays a number): `curate score` keeps it


def detect_format(path: str | Path) -> str | None:
    name = Path(path).name.lower()
    for suffix in (".gz", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".json"):  # a JSON array, one object, or JSON Lines under a .json name
        return "json"
    if name.endswith(".txt"):
        return "txt"
    if name.endswith(".csv"):
        return "csv"
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


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def excerpt(data: bytes, limit: int) -> str:
    """At most `limit` characters of `data`, readable whatever it holds: bytes that are not UTF-8 and control
    characters are written as `\\xNN` escapes, so a quarantined binary record shows what it really was."""
    text = data[: limit * 4].decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)[:limit]


def escaped_bytes(data: bytes, limit: int) -> str:
    """The first bytes of a binary file as unambiguous ASCII, like a bytes literal: printable ASCII as itself and
    every other byte (backslash included) as `\\xNN`; at most `limit` characters."""
    out: list[str] = []
    size = 0
    for b in data[:limit]:
        piece = chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}"
        size += len(piece)
        if size > limit:
            break
        out.append(piece)
    return "".join(out)


def _truncate(raw: str | bytes | None, limit: int) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        return excerpt(raw, limit)
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


SNIFF_BYTES = 8192
#: share of a file's first bytes that are not text (not UTF-8, or control characters other than tab, newline,
#: carriage return and form feed) above which it is binary. Random bytes score about 0.5, UTF-16 text 0.5 (its
#: NULs); a UTF-8 file with a stray Latin-1 line stays far below, and its bad lines are quarantined one by one.
BINARY_SHARE = 0.3


def looks_binary(head: bytes) -> bool:
    if not head:
        return False
    text = head.decode("utf-8", "surrogateescape")
    bad = sum(1 for ch in text if "\udc80" <= ch <= "\udcff" or (ch < " " and ch not in "\t\n\r\f") or ch == "\x7f")
    return bad > BINARY_SHARE * len(text)


def sniff(path: str, opts: ParseOptions) -> Parsed | None:
    """The one quarantine record for a file of a text format that cannot be read as text at all (a `.gz` that
    is not gzip, binary content), or None when its records should be parsed one by one. Without it a file of
    random bytes would become hundreds of `invalid_utf8` "lines" and drown the batch's quarantine share."""
    limit = min(opts.raw_truncate_chars, 256)
    try:
        with _open_binary(path) as fh:
            head = fh.read(SNIFF_BYTES)
    except gzip.BadGzipFile:
        with open(path, "rb") as fh:
            start = fh.read(32)
        return Parsed(position=0, reason=NOT_GZIP, raw=f"first bytes (hex): {start.hex(' ')}")
    except (EOFError, zlib.error):
        return None  # a gzip cut short or corrupt: the records before the break are read, then one `truncated_file`
    except OSError as exc:
        return Parsed(position=0, reason=UNREADABLE_FILE, raw=_truncate(str(exc), limit))
    if looks_binary(head):
        return Parsed(position=0, reason=BINARY_FILE, raw=escaped_bytes(head, limit))
    return None


_BOM = b"\xef\xbb\xbf"


def parse_jsonl(path: str, opts: ParseOptions) -> Iterator[Parsed]:
    unreadable = sniff(path, opts)
    if unreadable is not None:
        yield unreadable
        return
    yield from _jsonl_lines(path, opts)


def _jsonl_lines(path: str, opts: ParseOptions) -> Iterator[Parsed]:
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
    # url, source and meta are stored as they are: a lone surrogate in any of them (a `\\ud800` escape, or a CSV
    # cell that is not UTF-8) would fail the whole batch's write
    if not _encodable(url, source, *meta, *meta.values()):
        return Parsed(position=position, reason=INVALID_UTF8, raw=raw)
    return Parsed(
        position=position,
        text=text,
        url=url,
        source=source,
        meta=meta,
        ext_id=None if ext_id is None else _meta_value(ext_id),
        ext_key=ext_id,
    )


def _read_text(path: str) -> str:
    """The whole file as text; bytes that are not UTF-8 become lone surrogates, which `check_text` and
    `_from_mapping` quarantine as `invalid_utf8` record by record. A UTF-8 byte order mark is dropped."""
    with _open_binary(path) as fh:
        return fh.read().decode("utf-8-sig", "surrogateescape")


def parse_json(path: str, opts: ParseOptions) -> Iterator[Parsed]:
    """A `.json` file: a JSON array of objects (pretty-printed or not; one record per element), a single
    object (one record), or JSON Lines under a .json name. An array broken part-way keeps the elements before
    the break and quarantines the rest as one `malformed_json` record (or `truncated_file` when it just ends)."""
    unreadable = sniff(path, opts)
    if unreadable is not None:
        yield unreadable
        return
    try:
        text = _read_text(path)
    except (EOFError, OSError) as exc:
        yield Parsed(position=0, reason=TRUNCATED_FILE, raw=_truncate(str(exc), opts.raw_truncate_chars))
        return
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] == "[":
        yield from _json_array(text, start + 1, opts)
        return
    if text[start : start + 1] == "{":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None  # several objects: JSON Lines
        if isinstance(obj, dict):
            yield _from_mapping(obj, 0, opts, _truncate(text.strip(), opts.raw_truncate_chars))
            return
    yield from _jsonl_lines(path, opts)


def _json_array(text: str, i: int, opts: ParseOptions) -> Iterator[Parsed]:
    decoder = json.JSONDecoder()
    limit = opts.raw_truncate_chars

    def skip(k: int) -> int:
        while k < len(text) and text[k] in " \t\r\n":
            k += 1
        return k

    position = 0
    i = skip(i)
    if text[i : i + 1] == "]":
        i += 1
    else:
        while True:
            try:
                obj, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                reason = TRUNCATED_FILE if not text[i:].strip() else MALFORMED_JSON
                yield Parsed(position=position, reason=reason, raw=_truncate(text[i:], limit))
                return
            raw = _truncate(text[i:end], limit)
            if isinstance(obj, dict):
                yield _from_mapping(obj, position, opts, raw)
            else:
                yield Parsed(position=position, reason=NOT_AN_OBJECT, raw=raw)
            position += 1
            i = skip(end)
            if text[i : i + 1] == ",":
                i = skip(i + 1)
                continue
            if text[i : i + 1] == "]":
                i += 1
                break
            reason = TRUNCATED_FILE if i >= len(text) else MALFORMED_JSON  # the array never closes
            yield Parsed(position=position, reason=reason, raw=_truncate(text[i:] or "(end of file)", limit))
            return
    if text[i:].strip():
        yield Parsed(position=position, reason=MALFORMED_JSON, raw=_truncate(text[i:].strip(), limit))


def parse_txt(path: str, opts: ParseOptions, name: str | None = None) -> Iterator[Parsed]:
    """A `.txt` file is one document: its text, no url, and its path relative to the input (`name`) as its id,
    so the same file under the same name is the same document whichever night it was crawled."""
    unreadable = sniff(path, opts)
    if unreadable is not None:
        yield unreadable
        return
    try:
        with _open_binary(path) as fh:
            data = fh.read(opts.max_doc_bytes + 4)  # the BOM, and one byte past the limit to know it is over
    except (EOFError, OSError) as exc:
        yield Parsed(position=0, reason=TRUNCATED_FILE, raw=_truncate(str(exc), opts.raw_truncate_chars))
        return
    data = data.removeprefix(b"\xef\xbb\xbf")
    if len(data) > opts.max_doc_bytes:
        yield Parsed(position=0, reason=TOO_LARGE, raw=_truncate(data, opts.raw_truncate_chars))
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        yield Parsed(position=0, reason=INVALID_UTF8, raw=_truncate(data, opts.raw_truncate_chars))
        return
    doc_name = name or Path(path).name
    reason = check_text(text, None, opts)
    if reason is not None:
        yield Parsed(position=0, reason=reason, raw=_truncate(text, opts.raw_truncate_chars))
        return
    yield Parsed(position=0, text=text, meta={"id": doc_name}, ext_id=doc_name, ext_key=doc_name)


def parse_csv(path: str, opts: ParseOptions) -> Iterator[Parsed]:
    """A `.csv` file with a header row: one document per row from its `text` column (`ingest.text_field`), with
    the optional `id` and `url` columns; the other columns go to `meta`. `position` is the row's index after
    the header. A row with more or fewer cells than the header, or one the CSV reader rejects, is quarantined as
    `malformed_csv`; a cell over `max_doc_bytes` as `too_large`; the rows after it are still read."""
    unreadable = sniff(path, opts)
    if unreadable is not None:
        yield unreadable
        return
    # the reader's own cap (131072 characters) would reject documents the size limit allows
    csv.field_size_limit(max(csv.field_size_limit(), opts.max_doc_bytes + 1))
    limit = opts.raw_truncate_chars
    position = 0
    try:
        with (
            _open_binary(path) as binary,
            io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh,
        ):
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            while True:
                line = reader.line_num
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    if reader.line_num == line:  # the reader cannot get past it: the rest is unreadable
                        raise
                    reason = TOO_LARGE if "field larger" in str(exc) else MALFORMED_CSV
                    yield Parsed(position=position, reason=reason, raw=_truncate(f"line {line + 1}: {exc}", limit))
                    position += 1
                    continue
                if not row:  # a blank line is no record, as in JSON Lines
                    continue
                raw = _truncate(_csv_line(row), limit)
                if len(row) != len(header):
                    yield Parsed(position=position, reason=MALFORMED_CSV, raw=raw)
                else:
                    cells: dict[str, Any] = {k: v for k, v in zip(header, row, strict=True) if v != ""}
                    if opts.text_field in header and opts.text_field not in cells:
                        cells[opts.text_field] = ""  # an empty cell is an empty text, not a missing column
                    yield _from_mapping(cells, position, opts, raw)
                position += 1
    except (EOFError, OSError, csv.Error) as exc:
        yield Parsed(position=position, reason=TRUNCATED_FILE, raw=_truncate(str(exc), limit))


def _csv_line(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    return buf.getvalue().rstrip("\r\n")


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
    """A file in the input that no parser reads (`notes.md`, `export.xlsx`) is one quarantine record, with its
    first bytes, so that it is seen and counted instead of skipped without a word."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    suffix = "".join(Path(path).suffixes).lower() or "(none)"
    yield Parsed(position=0, reason=f"{UNSUPPORTED_FILE}:{suffix}", raw=excerpt(head, 512))


_PARSERS = {
    "jsonl": parse_jsonl,
    "json": parse_json,
    "csv": parse_csv,
    "parquet": parse_parquet,
    "wet": parse_wet,
    "warc": parse_warc,
    UNSUPPORTED: parse_unsupported,
}


def parse_file(path: str, fmt: str, opts: ParseOptions, name: str | None = None) -> Iterator[Parsed]:
    """Every record of one input file. `name`: the file's path relative to the input the run was given (the id
    of a `.txt` document; its file name when None)."""
    if fmt == "txt":
        return parse_txt(path, opts, name)
    if fmt not in _PARSERS:
        raise ValueError(f"unknown input format {fmt!r} (known: {', '.join(FORMATS)})")
    return _PARSERS[fmt](path, opts)
