"""Parsing crawl files into documents or quarantine records, one record at a time, never raising.

Pure Python so it is testable without Spark; `pipelines.stages.ingest` runs it inside `mapInPandas`, one input
file per task. Every record of an input file comes out as exactly one `Parsed` (a document or a
quarantine entry with a reason), which is what makes the accounting invariant checkable.

The record types and reasons are udfs/records.py; a new input format is one `parse_<format>` here and one
entry in `_PARSERS`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from udfs.records import (
    EMPTY_TEXT,
    FORMATS,
    INVALID_UTF8,
    MALFORMED_CSV,
    MALFORMED_JSON,
    MISSING_TEXT,
    NO_TEXT_EXTRACTED,
    NOT_AN_OBJECT,
    TOO_DEEP,
    TOO_LARGE,
    TRUNCATED_FILE,
    UNREADABLE_FILE,
    UNSUPPORTED,
    UNSUPPORTED_CONTENT,
    UNSUPPORTED_FILE,
    Parsed,
    ParseOptions,
    check_text,
    excerpt,
    meta_value,
    open_binary,
    sniff,
    truncate,
)

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
        with open_binary(path) as fh:
            for position, line in enumerate(fh):
                if not line.removeprefix(_BOM).strip():
                    continue
                yield _jsonl_record(line, position, opts)
    except (EOFError, gzip.BadGzipFile, OSError, ValueError, zlib.error) as exc:  # a broken gzip stream
        yield Parsed(position=position + 1, reason=TRUNCATED_FILE, raw=truncate(str(exc), opts.raw_truncate_chars))


def _jsonl_record(line: bytes, position: int, opts: ParseOptions) -> Parsed:
    raw = truncate(line, opts.raw_truncate_chars)
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
        meta = {str(k): meta_value(v) for k, v in obj.items() if k not in skip and v is not None}
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
        ext_id=None if ext_id is None else meta_value(ext_id),
        ext_key=ext_id,
    )


def _read_text(path: str) -> str:
    """The whole file as text; bytes that are not UTF-8 become lone surrogates, which `check_text` and
    `_from_mapping` quarantine as `invalid_utf8` record by record. A UTF-8 byte order mark is dropped."""
    with open_binary(path) as fh:
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
        yield Parsed(position=0, reason=TRUNCATED_FILE, raw=truncate(str(exc), opts.raw_truncate_chars))
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
            yield _from_mapping(obj, 0, opts, truncate(text.strip(), opts.raw_truncate_chars))
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
                yield Parsed(position=position, reason=reason, raw=truncate(text[i:], limit))
                return
            raw = truncate(text[i:end], limit)
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
            yield Parsed(position=position, reason=reason, raw=truncate(text[i:] or "(end of file)", limit))
            return
    if text[i:].strip():
        yield Parsed(position=position, reason=MALFORMED_JSON, raw=truncate(text[i:].strip(), limit))


def parse_txt(path: str, opts: ParseOptions, name: str | None = None) -> Iterator[Parsed]:
    """A `.txt` file is one document: its text, no url, and its path relative to the input (`name`) as its id,
    so the same file under the same name is the same document whichever night it was crawled."""
    unreadable = sniff(path, opts)
    if unreadable is not None:
        yield unreadable
        return
    try:
        with open_binary(path) as fh:
            data = fh.read(opts.max_doc_bytes + 4)  # the BOM, and one byte past the limit to know it is over
    except (EOFError, OSError) as exc:
        yield Parsed(position=0, reason=TRUNCATED_FILE, raw=truncate(str(exc), opts.raw_truncate_chars))
        return
    data = data.removeprefix(b"\xef\xbb\xbf")
    if len(data) > opts.max_doc_bytes:
        yield Parsed(position=0, reason=TOO_LARGE, raw=truncate(data, opts.raw_truncate_chars))
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        yield Parsed(position=0, reason=INVALID_UTF8, raw=truncate(data, opts.raw_truncate_chars))
        return
    doc_name = name or Path(path).name
    reason = check_text(text, None, opts)
    if reason is not None:
        yield Parsed(position=0, reason=reason, raw=truncate(text, opts.raw_truncate_chars))
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
            open_binary(path) as binary,
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
                    yield Parsed(position=position, reason=reason, raw=truncate(f"line {line + 1}: {exc}", limit))
                    position += 1
                    continue
                if not row:  # a blank line is no record, as in JSON Lines
                    continue
                raw = truncate(_csv_line(row), limit)
                if len(row) != len(header):
                    yield Parsed(position=position, reason=MALFORMED_CSV, raw=raw)
                else:
                    cells: dict[str, Any] = {k: v for k, v in zip(header, row, strict=True) if v != ""}
                    if opts.text_field in header and opts.text_field not in cells:
                        cells[opts.text_field] = ""  # an empty cell is an empty text, not a missing column
                    yield _from_mapping(cells, position, opts, raw)
                position += 1
    except (EOFError, OSError, csv.Error) as exc:
        yield Parsed(position=position, reason=TRUNCATED_FILE, raw=truncate(str(exc), limit))


def _csv_line(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    return buf.getvalue().rstrip("\r\n")


def parse_parquet(path: str, opts: ParseOptions) -> Iterator[Parsed]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        yield Parsed(position=0, reason=UNREADABLE_FILE, raw=truncate(str(exc), opts.raw_truncate_chars))
        return
    position = 0
    try:
        for batch in pf.iter_batches(batch_size=4096):
            for row in _rows(batch):
                if isinstance(row, Exception):  # a value that does not decode (invalid UTF-8 in a string column)
                    yield Parsed(
                        position=position, reason=INVALID_UTF8, raw=truncate(str(row), opts.raw_truncate_chars)
                    )
                    position += 1
                    continue
                raw = truncate(json.dumps(row, default=str, ensure_ascii=False), opts.raw_truncate_chars)
                if opts.text_field not in row:
                    yield Parsed(position=position, reason=MISSING_TEXT, raw=raw)
                else:
                    yield _from_mapping(row, position, opts, raw)
                position += 1
    except Exception as exc:  # a corrupt page or footer: the rows read so far stand, the rest is one record
        yield Parsed(position=position, reason=TRUNCATED_FILE, raw=truncate(str(exc), opts.raw_truncate_chars))


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
        yield Parsed(position=position + 1, reason=TRUNCATED_FILE, raw=truncate(str(exc), opts.raw_truncate_chars))


def _from_payload(payload: bytes, record: Any, position: int, opts: ParseOptions) -> Parsed:
    headers = record.rec_headers
    url = headers.get_header("WARC-Target-URI")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return Parsed(position=position, reason=INVALID_UTF8, raw=truncate(payload, opts.raw_truncate_chars))
    reason = check_text(text, url, opts)
    if reason is not None:
        return Parsed(position=position, reason=reason, raw=truncate(text, opts.raw_truncate_chars))
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
                    raw=truncate(payload, min(opts.raw_truncate_chars, 200)),
                )
                continue
            if len(payload) > opts.max_doc_bytes * 8:
                yield Parsed(position=position, reason=TOO_LARGE, raw=truncate(payload, opts.raw_truncate_chars))
                continue
            text = html_to_text(payload, url)
            reason = check_text(text, url, opts)
            if reason == EMPTY_TEXT:
                reason = NO_TEXT_EXTRACTED
            if reason is not None:
                yield Parsed(position=position, reason=reason, raw=truncate(payload, opts.raw_truncate_chars))
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
        yield Parsed(position=position + 1, reason=TRUNCATED_FILE, raw=truncate(str(exc), opts.raw_truncate_chars))


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
