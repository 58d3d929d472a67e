"""Benchmark HTML-to-text extractors for WARC ingestion (quality and speed).

Why: the curation stage turns millions of crawled HTML pages into pretraining text every night,
so the extractor must keep article text, drop boilerplate (menus, footers, comment widgets) and be
fast. This script measures the candidates on the same labelled pages so the choice in
``udfs/html.py`` is made by numbers rather than by reputation; rerun it when bumping a version.

Data: ``evaldata.json`` (per page URL: ``file`` under ``pages/``, ``with`` snippets a good extractor
keeps, ``without`` snippets it drops) - the trafilatura evaluation set (Apache-2.0).

Matching: every page is read as bytes and decoded once, identically for all extractors (BOM, then
``<meta charset>``, then strict UTF-8, then cp1252 with replacement). Extractor output and each
snippet are normalised the same way - Unicode NFC, every run of whitespace (``\\s`` in Python's
Unicode regex, which includes NBSP) collapsed to one space, ends stripped - and a snippet counts as
present when it is a case-sensitive substring of the normalised output. An exception or ``None``
counts as empty output.

Metrics, pooled over all snippets: with-kept = share of ``with`` snippets found (recall);
without-dropped = share of ``without`` snippets absent (boilerplate rejection); combined = the
harmonic mean of the two (F1-style, so an extractor that returns nothing scores 0, not 50).
Speed: single process, all pages per pass, 3 passes, median pass. pages/s is computed from process
CPU time, which stays stable on a shared, busy machine; median wall seconds per pass are shown too.
Decoding and one-time setup (imports, stoplists) are outside the timed region.

Usage: ``python bench/html_extractors.py [--data ../shared/data/html] [--passes 3]``. Extractors
whose package is not installed are skipped with a message.
"""

from __future__ import annotations

import argparse
import codecs
import json
import re
import statistics
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

Extract = Callable[[str, str], str | None]  # (html, url) -> text

_WS = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "html"


def normalise(text: str) -> str:
    """NFC-normalise and collapse all whitespace runs to a single space."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()


def decode(raw: bytes) -> str:
    """Decode page bytes the same way for every extractor."""
    for bom, enc in _BOMS:
        if raw.startswith(bom):
            return raw[len(bom) :].decode(enc, errors="replace")
    match = _META_CHARSET.search(raw[:8192])
    if match:
        try:
            enc = codecs.lookup(match.group(1).decode("ascii")).name
            # as in browsers (WHATWG), latin-1 / ascii labels mean windows-1252
            return raw.decode("cp1252" if enc in ("latin-1", "iso8859-1", "ascii") else enc)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


# --- candidate setups: each imports its library lazily and returns an extract function ---------


def _trafilatura(**options: bool) -> Callable[[], Extract]:
    def setup() -> Extract:
        import trafilatura

        def run(html: str, url: str) -> str | None:
            return trafilatura.extract(html, url=url, include_comments=False, **options)

        return run

    return setup


def _resiliparse(comments: bool) -> Callable[[], Extract]:
    def setup() -> Extract:
        from resiliparse.extract.html2text import extract_plain_text

        def run(html: str, url: str) -> str | None:
            return extract_plain_text(html, main_content=True, comments=comments)

        return run

    return setup


def _justext() -> Extract:
    import justext

    # The pages are multilingual: use the union of all stoplists (as trafilatura's fallback does)
    # rather than penalising justext with a single English list.
    stoplist = frozenset().union(*(justext.get_stoplist(lang) for lang in justext.get_stoplists()))

    def run(html: str, url: str) -> str | None:
        paragraphs = justext.justext(html, stoplist)
        return "\n".join(p.text for p in paragraphs if not p.is_boilerplate)

    return run


def _inscriptis() -> Extract:
    from inscriptis import get_text

    def run(html: str, url: str) -> str | None:
        return get_text(html)

    return run


_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th", "table"}
    | {"blockquote", "pre", "section", "article", "dd", "dt"}
)


def _readability() -> Extract:
    import lxml.html
    from readability import Document

    def run(html: str, url: str) -> str | None:
        tree = lxml.html.fromstring(Document(html, url=url).summary(html_partial=True))
        for el in tree.iter():
            if el.tag in _BLOCK_TAGS:  # keep block boundaries as line breaks
                el.tail = "\n" + (el.tail or "")
        return tree.text_content()

    return run


def _html2text() -> Extract:
    import html2text

    def run(html: str, url: str) -> str | None:
        conv = html2text.HTML2Text()
        conv.body_width = 0  # no hard wrapping
        conv.ignore_links = conv.ignore_images = conv.ignore_emphasis = True
        return conv.handle(html)

    return run


def _selectolax() -> Extract:
    from selectolax.lexbor import LexborHTMLParser

    def run(html: str, url: str) -> str | None:
        tree = LexborHTMLParser(html)
        tree.strip_tags(["script", "style", "noscript", "template"])
        return tree.body.text(separator="") if tree.body is not None else ""

    return run


@dataclass(frozen=True)
class Candidate:
    name: str
    dist: str  # PyPI distribution, for the version column
    setup: Callable[[], Extract]


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("trafilatura (default)", "trafilatura", _trafilatura()),
    Candidate("trafilatura fast", "trafilatura", _trafilatura(fast=True)),
    Candidate("trafilatura favor_precision", "trafilatura", _trafilatura(favor_precision=True)),
    Candidate("trafilatura fast favor_precision", "trafilatura", _trafilatura(fast=True, favor_precision=True)),
    Candidate("resiliparse main_content", "resiliparse", _resiliparse(comments=True)),
    Candidate("resiliparse main_content -comments", "resiliparse", _resiliparse(comments=False)),
    Candidate("justext (all stoplists)", "justext", _justext),
    Candidate("inscriptis", "inscriptis", _inscriptis),
    Candidate("readability-lxml + text", "readability-lxml", _readability),
    Candidate("html2text (no links/emph)", "html2text", _html2text),
    Candidate("selectolax body text", "selectolax", _selectolax),
)


@dataclass
class Page:
    url: str
    html: str
    with_: list[str]
    without: list[str]


@dataclass
class Result:
    name: str
    version: str
    kept: float
    dropped: float
    combined: float
    pages_per_s: float
    cpu_s: float
    wall_s: float
    errors: int


def load_pages(data: Path) -> list[Page]:
    """Read evaldata.json and decode every referenced page."""
    spec = json.loads((data / "evaldata.json").read_text(encoding="utf-8"))
    pages = []
    for url, item in spec.items():
        path = data / "pages" / item["file"]
        if path.is_file():
            pages.append(Page(url, decode(path.read_bytes()), item["with"], item["without"]))
    return pages


def evaluate(cand: Candidate, pages: list[Page], passes: int) -> Result | None:
    """Run one candidate over all pages ``passes`` times; score the first pass."""
    try:
        version = metadata.version(cand.dist)
        extract = cand.setup()
    except (ImportError, metadata.PackageNotFoundError) as exc:
        print(f"skip {cand.name}: {cand.dist} not installed ({exc})", file=sys.stderr)
        return None
    outputs: list[str] = []
    errors = 0
    cpu: list[float] = []
    wall: list[float] = []
    for i in range(passes):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for page in pages:
            try:
                text = extract(page.html, page.url) or ""
            except Exception:
                text = ""
                if i == 0:
                    errors += 1
            if i == 0:
                outputs.append(text)
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    kept = total_with = dropped = total_without = 0
    for page, text in zip(pages, outputs, strict=True):
        norm = normalise(text)
        kept += sum(normalise(s) in norm for s in page.with_)
        dropped += sum(normalise(s) not in norm for s in page.without)
        total_with += len(page.with_)
        total_without += len(page.without)
    k, d = kept / total_with, dropped / total_without
    f = 2 * k * d / (k + d) if k + d else 0.0
    cpu_s, wall_s = statistics.median(cpu), statistics.median(wall)
    return Result(cand.name, version, k, d, f, len(pages) / cpu_s, cpu_s, wall_s, errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=_DEFAULT_DATA, help="folder with evaldata.json and pages/")
    parser.add_argument("--passes", type=int, default=3, help="timed passes per extractor (median is used)")
    parser.add_argument("--only", nargs="*", help="substrings of extractor names to run")
    args = parser.parse_args(argv)
    if not (args.data / "evaldata.json").is_file() or not (args.data / "pages").is_dir():
        print(f"SKIP: evaluation data not found under {args.data} (need evaldata.json and pages/)")
        return 0
    pages = load_pages(args.data)
    n_with = sum(len(p.with_) for p in pages)
    n_without = sum(len(p.without) for p in pages)
    print(f"{len(pages)} pages, {n_with} 'with' and {n_without} 'without' snippets, {args.passes} passes")
    results = []
    for cand in CANDIDATES:
        if args.only and not any(s.lower() in cand.name.lower() for s in args.only):
            continue
        res = evaluate(cand, pages, args.passes)
        if res is not None:
            results.append(res)
    results.sort(key=lambda r: (-r.combined, -r.pages_per_s))
    header = (
        f"{'extractor':36} {'version':>10} {'with-kept %':>11} {'w/o-dropped %':>13} "
        f"{'combined':>8} {'pages/s':>8} {'cpu s':>6} {'wall s':>6} {'err':>4}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:36} {r.version:>10} {100 * r.kept:11.1f} {100 * r.dropped:13.1f} "
            f"{100 * r.combined:8.1f} {r.pages_per_s:8.1f} {r.cpu_s:6.2f} {r.wall_s:6.2f} {r.errors:4d}"
        )
    print(
        "combined = harmonic mean of with-kept and without-dropped; pages/s = pages / median CPU s per pass;"
        f" cpu s / wall s = median per pass over all {len(pages)} pages"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
