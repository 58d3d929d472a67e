"""Word n-gram hashes for benchmark decontamination. Pure Python and numpy, no Spark.

Text is normalised the way decontamination studies do it (GPT-3's 13-gram overlap, datatrove's `pipeline.decont`):
words are the runs of letters and digits, lowercased, with diacritics stripped, so punctuation, case and spacing
never hide an overlap. Each word is hashed once (blake2b, 64 bits; Python's `hash` is salted per process, so two
workers would disagree), and every window of k words gets a polynomial hash mod 2^64 computed for all windows at
once from prefix sums (numpy's uint64 arithmetic wraps mod 2^64, which is the modulus we want). The length k is
mixed in, so a whole short item of k words never collides with an n-gram by construction.

Benchmark targets and documents go through the same function (`window_hashes`), so the matching itself can be a
join on the engine (pipelines/stages/decontaminate.py) and excision can find the matched words again here. The
stage's UDF hashes a whole batch at once (`batch_hashes`: each distinct word once, the windows rolled in one
compiled loop, a bit prefilter before the search of the targets); tests hold it equal to the per-text functions.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

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
    return [w.lower() if w.isascii() else _norm(w) for w in WORD_RE.findall(text)]  # no call for ASCII words


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
    """The distinct hashes of every window of each length in `lengths` (n, and the lengths of the short targets),
    sorted. The definition per text, for tools and tests; the stage's UDF computes it for a batch (`batch_hashes`)."""
    ws = words(text)
    if not ws or len(ws) < min(lengths, default=1):
        return np.zeros(0, dtype=np.int64)
    s, pw = _prefix(ws)  # once per document, whatever the number of lengths
    return np.unique(np.concatenate([_windows(s, pw, k) for k in lengths]))


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
    """The `hashes` that occur in `targets` (sorted, unique): a vectorised membership test (the per-text definition
    `batch_hashes` is held equal to)."""
    if not len(hashes) or not len(targets):
        return np.zeros(0, dtype=np.int64)
    at = np.minimum(np.searchsorted(targets, hashes), len(targets) - 1)
    return hashes[targets[at] == hashes]


def batch_hashes(
    texts: list[str | None], lengths: tuple[int, ...], targets: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`document_hashes` of every text of a batch (then only those in `targets`, sorted and unique, when given), as
    (hashes of all texts, one text after another; how many each text has). Equal to calling `document_hashes` and
    `known` per text, without their per-text numpy calls and per-word hashing: a batch's distinct words are
    hashed once (Arrow's dictionary encoding finds them) and the windows are one compiled loop."""
    if not lengths:
        return np.zeros(0, dtype=np.int64), np.zeros(len(texts), dtype=np.int64)
    per_text = [words(t) if t else [] for t in texts]
    counts = np.fromiter((len(w) for w in per_text), dtype=np.int64, count=len(per_text))
    if counts.sum():
        # one joined string split by Arrow gives the words back without a Python string per word (pa.array of
        # ~2M words cost as much as finding them); NUL is the separator because NFKD can put a space in a word
        # (U+FDFA), and a word that still held it is caught by the count
        joined = pa.array(["\0".join("\0".join(ws) for ws in per_text if ws)], pa.string())
        split = pc.list_flatten(pc.split_pattern(joined, "\0"))
        if len(split) != counts.sum():
            split = pa.array([w for ws in per_text for w in ws], pa.string())
        encoded = split.dictionary_encode()
        distinct = encoded.dictionary.to_pylist()
        wh = np.fromiter((_word_hash(w) for w in distinct), dtype=np.uint64, count=len(distinct))
        wh = wh[encoded.indices.to_numpy(zero_copy_only=False)]
    else:
        wh = np.zeros(0, dtype=np.uint64)
    ks = np.array(sorted(set(lengths)), dtype=np.int64)
    filtered = targets is not None
    wanted = targets if filtered else np.zeros(0, dtype=np.int64)
    bits = np.zeros(_BITS >> 6, dtype=np.uint64)
    if filtered and len(wanted):
        low = wanted.view(np.uint64) & np.uint64(_BITS - 1)
        np.bitwise_or.at(bits, (low >> np.uint64(6)).astype(np.int64), np.uint64(1) << (low & np.uint64(63)))
    size = int(counts.sum()) * len(ks) if not filtered else 0
    out = np.empty(size, dtype=np.int64)
    per_doc = np.zeros(len(texts), dtype=np.int64)
    out = _batch_windows(wh, counts, ks, wanted, bits, filtered, out, per_doc)
    return out, per_doc


#: Bits of the membership prefilter: a window hash whose low bits are not set is no target's, without a search
#: (2^20 bits = 128 KiB stay in cache; ~150k default targets set ~13% of them).
_BITS = 1 << 20


@njit(cache=True, nogil=True)
def _batch_windows(
    wh: np.ndarray,
    counts: np.ndarray,
    ks: np.ndarray,
    targets: np.ndarray,
    bits: np.ndarray,
    filtered: bool,
    out: np.ndarray,
    per_doc: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled; tests compare it with document_hashes
    """Per text: every window hash of each length in `ks` (the polynomial of `_windows`, rolled: the same value
    mod 2^64), kept when in `targets` (if `filtered`: the bit prefilter, then a binary search), sorted and
    distinct, appended to `out` (grown when filtered: few windows are kept). Returns the used part of `out`."""
    pos, used = 0, 0
    buf = np.empty(0, dtype=np.int64)
    mask = np.uint64(_BITS - 1)
    for d in range(counts.shape[0]):
        n = counts[d]
        if n >= ks[0]:
            total = 0
            for k in ks:
                total += max(n - k + 1, 0)
            if buf.shape[0] < total:
                buf = np.empty(total, dtype=np.int64)
            m = 0
            for k in ks:
                if n < k:
                    continue
                top = np.uint64(1)
                for _ in range(k - 1):
                    top = top * _P
                mix = _K_MIX * np.uint64(k)
                h = np.uint64(0)
                for t in range(k):
                    h = h * _P + wh[pos + t]
                for i in range(n - k + 1):
                    if i > 0:
                        h = (h - wh[pos + i - 1] * top) * _P + wh[pos + i + k - 1]
                    x = h + mix
                    if filtered:
                        low = x & mask
                        if not (bits[np.int64(low >> np.uint64(6))] >> (low & np.uint64(63))) & np.uint64(1):
                            continue
                        at = np.searchsorted(targets, np.int64(x))
                        if at >= targets.shape[0] or targets[at] != np.int64(x):
                            continue
                    buf[m] = np.int64(x)
                    m += 1
            got = np.sort(buf[:m])
            start = used
            for j in range(m):
                if j > 0 and got[j] == got[j - 1]:
                    continue
                if used >= out.shape[0]:
                    grown = np.empty(max(2 * out.shape[0], 1024), dtype=np.int64)
                    grown[:used] = out[:used]
                    out = grown
                out[used] = got[j]
                used += 1
            per_doc[d] = used - start
        pos += n
    return out[:used]


def hashes_udf(lengths: tuple[int, ...], targets: np.ndarray | None = None) -> Any:
    """Iterator Arrow UDF: text -> array<bigint> of `document_hashes(text, lengths)` (empty for a null text), only
    those in `targets` (sorted, unique) when given: a document's few hundred window hashes would otherwise all be
    exploded into rows for the join, almost none of which can match."""
    from pyspark.sql.functions import arrow_udf

    @arrow_udf("array<bigint>")  # type: ignore[call-overload]
    def ngram_hashes(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        for texts in batches:
            hashes, per_doc = batch_hashes(texts.to_pylist(), lengths, targets)
            offsets = np.concatenate(([0], np.cumsum(per_doc))).astype(np.int32)
            yield pa.ListArray.from_arrays(offsets, pa.array(hashes, pa.int64()))

    return ngram_hashes
