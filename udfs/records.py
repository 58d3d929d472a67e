"""What parsing produces and shares: the input file, a parsed record (document or quarantine entry), the
quarantine reasons (stable strings users query in SQL), the document id, and the checks every format applies.
The parsers themselves are udfs/parse.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

FORMATS = ("jsonl", "json", "txt", "csv", "parquet", "wet", "warc")


# Quarantine reasons: stable strings, queried by users in SQL.
MALFORMED_JSON = "malformed_json"
INVALID_UTF8 = "invalid_utf8"


NOT_AN_OBJECT = "not_an_object"


MISSING_TEXT = "missing_text"


EMPTY_TEXT = "empty_text"


WRONG_TYPE_TEXT = "wrong_type:text"


WRONG_TYPE_URL = "wrong_type:url"


TOO_LARGE = "too_large"


TOO_DEEP = "too_deeply_nested"  # valid JSON nested deeper than the parser's recursion allows


TRUNCATED_FILE = "truncated_file"


UNREADABLE_FILE = "unreadable_file"


NO_TEXT_EXTRACTED = "no_text_extracted"


UNSUPPORTED_CONTENT = "unsupported_content_type"


BINARY_FILE = "binary_file"  # a text format's file that holds bytes, not text (sniffed: `looks_binary`)


NOT_GZIP = "not_gzip"  # a `.gz` file whose bytes are not gzip


MALFORMED_CSV = "malformed_csv"  # a CSV row with more or fewer fields than the header, or one the reader rejects


class InputFile(NamedTuple):
    path: str  # absolute
    fmt: str  # a parser of udfs/parse.py, or `unsupported`
    name: str  # the path relative to the input the run was given (the file name for a single-file input)


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


def truncate(raw: str | bytes | None, limit: int) -> str | None:
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


def meta_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def open_binary(path: str) -> io.BufferedIOBase:
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


def _head_before_break(path: str) -> bytes:
    """The first SNIFF_BYTES a broken gzip stream yields before its break (fed in small pieces, so the output of
    the pieces before the corrupt one is kept)."""
    d = zlib.decompressobj(wbits=31)
    out = b""
    with open(path, "rb") as fh:
        while len(out) < SNIFF_BYTES and not d.eof:
            piece = fh.read(256)
            if not piece:
                break
            try:
                out += d.decompress(piece, SNIFF_BYTES - len(out))
            except zlib.error:
                break
    return out[:SNIFF_BYTES]


def sniff(path: str, opts: ParseOptions) -> Parsed | None:
    """The one quarantine record for a file of a text format that cannot be read as text at all (a `.gz` that
    is not gzip, binary content), or None when its records should be parsed one by one. Without it a file of
    random bytes would become hundreds of `invalid_utf8` "lines" and drown the batch's quarantine share."""
    limit = min(opts.raw_truncate_chars, 256)
    try:
        with open_binary(path) as fh:
            head = fh.read(SNIFF_BYTES)
    except gzip.BadGzipFile:
        with open(path, "rb") as fh:
            start = fh.read(32)
        return Parsed(position=0, reason=NOT_GZIP, raw=f"first bytes (hex): {start.hex(' ')}")
    except (EOFError, zlib.error):
        # a gzip cut short or corrupt: the records before the break are read, then one `truncated_file` - unless
        # what did decompress is binary, which the whole file's sniff would have said
        head = _head_before_break(path)
    except OSError as exc:
        return Parsed(position=0, reason=UNREADABLE_FILE, raw=truncate(str(exc), limit))
    if looks_binary(head):
        return Parsed(position=0, reason=BINARY_FILE, raw=escaped_bytes(head, limit))
    return None


UNSUPPORTED_FILE = "unsupported_file_type"


UNSUPPORTED = "unsupported"  # the format of a file none of the parsers reads
