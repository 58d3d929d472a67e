"""Word n-gram hashes for benchmark decontamination. Pure Python and numpy, no Spark.

Text is normalised the way decontamination studies do it (GPT-3's 13-gram overlap, datatrove's `pipeline.decont`):
words are the runs of letters and digits, lowercased, with diacritics stripped, so punctuation, case and spacing
never hide an overlap. Each word is hashed once (blake2b, 64 bits; Python's `hash` is salted per process, so two
workers would disagree), and every window of k words gets a polynomial hash mod 2^64 computed for all windows at
once from prefix sums (numpy's uint64 arithmetic wraps mod 2^64, which is the modulus we want). The length k is
mixed in, so a whole short item of k words never collides with an n-gram by construction.

Benchmark targets and documents go through the same function (`window_hashes`), so the matching itself can be a
join on the engine (pipelines/stages/decontaminate.py) and excision can find the matched words again here.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

WORD_RE = re.compile(r"[^\W_]+")
_P = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible mod 2^64
_P_INV = np.uint64(pow(int(_P), -1, 2**64))
_K_MIX = np.uint64(0xC2B2AE3D27D4EB4F)
_WORD_CACHE: dict[str, int] = {}
_CACHE_MAX = 2_000_000  # words; a worker's memory for the cache stays under ~300 MB


def _norm(word: str) -> str:
    w = word.lower()
    if w.isascii():
        return w
    return "".join(c for c in unicodedata.normalize("NFKD", w) if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The normalised words of `text`."""
    if text.isascii():  # most documents: one lowercasing, no per-word work (same words: case never splits one)
        return WORD_RE.findall(text.lower())
    return [_norm(w) for w in WORD_RE.findall(text)]


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character (start, end) of each word of `words(text)`, in the same order."""
    return [m.span() for m in WORD_RE.finditer(text)]


def _word_hash(word: str) -> int:
    h = _WORD_CACHE.get(word)
    if h is None:
        h = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
        if len(_WORD_CACHE) >= _CACHE_MAX:
            _WORD_CACHE.clear()
        _WORD_CACHE[word] = h
    return h


def _powers(base: np.uint64, count: int) -> np.ndarray:
    out = np.empty(count, dtype=np.uint64)
    if count:
        out[0] = 1
        with np.errstate(over="ignore"):
            out[1:] = base
            out = np.cumprod(out, dtype=np.uint64)
    return out


def _prefix(ws: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(S, P^i): S[i] = sum_{j<=i} wh[j] * P^-j over the word hashes wh, so that window [i, i+k) hashes to
    P^(i+k-1) * (S[i+k-1] - S[i-1]) for every k at once."""
    n = len(ws)
    wh = np.fromiter((_word_hash(w) for w in ws), dtype=np.uint64, count=n)
    with np.errstate(over="ignore"):
        return np.cumsum(wh * _powers(_P_INV, n), dtype=np.uint64), _powers(_P, n)


def _windows(s: np.ndarray, pw: np.ndarray, k: int) -> np.ndarray:
    n = len(s)
    if k < 1 or n < k:
        return np.zeros(0, dtype=np.int64)
    with np.errstate(over="ignore"):
        prev = np.concatenate((np.zeros(1, dtype=np.uint64), s[: n - k]))
        h = pw[k - 1 :] * (s[k - 1 :] - prev) + _K_MIX * np.uint64(k)
    return h.view(np.int64)


def window_hashes(ws: list[str], k: int) -> np.ndarray:
    """Signed 64-bit hashes (Spark's LongType) of every window of `k` consecutive words, in order; empty when
    there are fewer than `k` words. Position i of the result is the window that starts at word i."""
    if k < 1 or len(ws) < k:
        return np.zeros(0, dtype=np.int64)
    return _windows(*_prefix(ws), k)


def target_hashes(text: str, n: int, min_words: int) -> tuple[np.ndarray, int]:
    """A benchmark target's hashes and their window length: its n-grams, or, for a target of `min_words` to n-1
    words, one hash of the whole target (length = its word count); nothing for a shorter one (a three-word answer
    such as "Paris, France" matches too much ordinary text to mean contamination)."""
    ws = words(text)
    k = n if len(ws) >= n else len(ws)
    if k < min_words:
        return np.zeros(0, dtype=np.int64), 0
    # A degenerate window ("font font font ...", a HellaSwag answer that is a spam page's markup) matches
    # boilerplate, not the benchmark: windows with fewer distinct words than half their length are no targets.
    keep = np.fromiter((2 * len(set(ws[i : i + k])) >= k for i in range(len(ws) - k + 1)), dtype=bool)
    return np.unique(window_hashes(ws, k)[keep]), k


def document_hashes(text: str, lengths: tuple[int, ...]) -> np.ndarray:
    """The distinct hashes of every window of each length in `lengths` (n, and the lengths of the short targets)."""
    ws = words(text)
    if not ws or len(ws) < min(lengths, default=1):
        return np.zeros(0, dtype=np.int64)
    s, pw = _prefix(ws)  # once per document, whatever the number of lengths
    return _sorted_distinct(np.concatenate([_windows(s, pw, k) for k in lengths]))


def _sorted_distinct(h: np.ndarray) -> np.ndarray:
    """np.unique(h) by a sort: numpy 2's hash-based unique cost ~130 us on a page's few hundred hashes, a third of
    decontamination's per-document time (bench/README.md, decontamination)."""
    h = np.sort(h)
    return h[np.concatenate(([True], h[1:] != h[:-1]))] if len(h) else h


def matched_char_ranges(text: str, matched: set[int], lengths: tuple[int, ...]) -> list[tuple[int, int]]:
    """Character ranges of `text` covered by a window whose hash is in `matched` (what excision removes)."""
    ws = words(text)
    spans = word_spans(text)
    ranges: list[tuple[int, int]] = []
    if len(spans) != len(ws):  # cannot happen with one regex for both; never cut at wrong offsets if it did
        return ranges
    wanted = np.fromiter(matched, dtype=np.int64, count=len(matched))
    for k in lengths:
        hits = np.flatnonzero(np.isin(window_hashes(ws, k), wanted))
        ranges.extend((spans[i][0], spans[i + k - 1][1]) for i in hits.tolist())
    return ranges


def known(hashes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The `hashes` that occur in `targets` (sorted, unique): a vectorised membership test."""
    if not len(hashes) or not len(targets):
        return np.zeros(0, dtype=np.int64)
    at = np.minimum(np.searchsorted(targets, hashes), len(targets) - 1)
    return hashes[targets[at] == hashes]


def hashes_udf(lengths: tuple[int, ...], targets: np.ndarray | None = None) -> Any:
    """Iterator Arrow UDF: text -> array<bigint> of `document_hashes(text, lengths)` (empty for a null text), only
    those in `targets` (sorted, unique) when given: a document's few hundred window hashes would otherwise all be
    exploded into rows for the join, almost none of which can match."""
    from pyspark.sql.functions import arrow_udf

    @arrow_udf("array<bigint>")  # type: ignore[call-overload]
    def ngram_hashes(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        for texts in batches:
            out = []
            for t in texts.to_pylist():
                h = document_hashes(t, lengths) if t else np.zeros(0, dtype=np.int64)
                out.append((h if targets is None else known(h, targets)).tolist())
            yield pa.array(out, type=pa.list_(pa.int64()))

    return ngram_hashes
