"""Gopher's n-gram repetition metrics, vectorised over a batch of tokenised documents (Arrow + numpy, no Spark).

Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training Gopher", appendix A,
Table A1: a document is dropped when its most frequent 2-, 3- or 4-gram covers more than 20%, 18%, 16% of
its characters, or when duplicated 5- to 10-grams cover more than 15%, 14%, ..., 10%. The definitions follow
datatrove 0.10.1's GopherRepetitionFilter exactly, so the numbers compare one to one:

- top n-gram characters: the most frequent n-gram (ties: the one seen first) times its count, its length
  counted as the words joined by single spaces; no value when the document has fewer than n words;
- duplicated n-gram characters: scanning left to right, an n-gram already seen adds its characters (words
  joined without spaces) and the scan jumps n words ahead, so overlapping repeats are not counted twice.

Why not Spark: counting n-grams needs a per-document hash map and the duplicate scan is sequential, neither of
which Spark's array functions express without exploding every n-gram into a row. This runs inside an iterator
Arrow UDF instead (pipelines/stages/quality.py), vectorised over the whole batch: words become integer ids (Arrow's
dictionary encoding), n-grams become 64-bit hashes that include the document, and one hash-table pass
(`pandas.factorize`) per n groups them, numbering groups in order of first appearance - which is exactly
Counter.most_common's tie-break. An n-gram can only repeat where its (n-1)-gram prefix repeats, so each n
after 2 looks only at those positions, and the sequential duplicate scan - each step depends on the jumps
before it, so numpy cannot express it - is compiled with numba and walks only the repeated n-grams. A batch is
worked through in slices of whole documents (`SLICE_TOKENS`), which keeps its arrays small enough to be reused.

The one difference from datatrove: two n-grams whose words concatenate to the same string ("ab"+"c" and
"a"+"bc") are equal for datatrove's duplicate scan and different here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

TOP_NS = (2, 3, 4)
DUP_NS = (5, 6, 7, 8, 9, 10)
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)


def columns() -> list[str]:
    return [f"top_{n}_gram_chars" for n in TOP_NS] + [f"dup_{n}_gram_chars" for n in DUP_NS]


def repetition_metrics(docs: Sequence[Sequence[str] | None]) -> dict[str, np.ndarray]:
    """Plain-Python entry point (tests, tools): the same as `repetition_metrics_arrow`."""
    return repetition_metrics_arrow(pa.array([list(d) if d is not None else None for d in docs], pa.list_(pa.string())))


def repetition_metrics_arrow(tokens: pa.Array | pa.ChunkedArray) -> dict[str, np.ndarray]:
    """Per document (row of a list<string> array): `top_{n}_gram_chars` (float, NaN when the document has
    fewer than n words) for n in TOP_NS and `dup_{n}_gram_chars` (int) for n in DUP_NS."""
    if isinstance(tokens, pa.ChunkedArray):
        tokens = pa.concat_arrays(tokens.chunks) if tokens.num_chunks else pa.array([], pa.list_(pa.string()))
    lists = tokens.fill_null(pa.scalar([], pa.list_(pa.string()))) if tokens.null_count else tokens
    offsets = lists.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    cuts = _slices(offsets - offsets[0], SLICE_TOKENS)
    if len(cuts) <= 2:
        return _slice_metrics(lists, offsets)
    parts = [_slice_metrics(lists.slice(a, b - a), offsets[a : b + 1]) for a, b in pairwise(cuts)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


#: Tokens per slice of a batch. Every array below holds one entry per token (several per n): a batch of a few
#: million tokens was allocated fresh and page-faulted over and over (the kernel's zeroing of fresh pages was 29% of
#: the quality process's CPU samples, most of it under this UDF's numpy calls); slices this size stay under numpy's
#: huge-page threshold (4 MiB of int64) and reuse the allocator's heap (bench/README.md, "Compiled kernels").
SLICE_TOKENS = 1 << 18


def _slices(starts: np.ndarray, size: int) -> list[int]:
    """Row boundaries that cut a batch into runs of whole documents of about `size` tokens (a longer document
    is a slice of its own)."""
    cuts = [0]
    n = len(starts) - 1
    while cuts[-1] < n:
        a = cuts[-1]
        b = int(np.searchsorted(starts, starts[a] + size, side="right")) - 1
        cuts.append(min(max(b, a + 1), n))
    return cuts


def _slice_metrics(lists: pa.Array, offsets: np.ndarray) -> dict[str, np.ndarray]:
    flat = lists.flatten()
    if not len(flat):
        return _metrics(np.zeros(0, np.uint64), np.zeros(0, np.int64), offsets - offsets[0])
    ids = flat.dictionary_encode().indices.to_numpy(zero_copy_only=False).astype(np.uint64)
    lens = pc.utf8_length(flat).to_numpy(zero_copy_only=False).astype(np.int64)
    return _metrics(ids, lens, offsets - offsets[0])


def _metrics(ids: np.ndarray, lens: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    n_docs = len(starts) - 1
    total = len(ids)
    out: dict[str, np.ndarray] = {f"top_{n}_gram_chars": np.full(n_docs, np.nan) for n in TOP_NS}
    out.update({f"dup_{n}_gram_chars": np.zeros(n_docs, dtype=np.int64) for n in DUP_NS})
    if total == 0:
        return out
    ids = ids + np.uint64(1)
    cum = np.concatenate([[0], np.cumsum(lens)])
    doc_len = np.diff(starts)
    doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), doc_len)
    end_of = starts[1:][doc_of]

    for n in TOP_NS:
        # documents with at least n words: unless an n-gram repeats, the first one is the top (count 1)
        has = doc_len >= n
        first = starts[:-1][has]
        out[f"top_{n}_gram_chars"][has] = cum[first + n] - cum[first] + (n - 1)
    # positions still in play, and the hash of the n-gram starting there (includes the document)
    pos = np.arange(total, dtype=np.int64)
    h = (doc_of.astype(np.uint64) + np.uint64(1)) * _M2 + ids
    for n in range(2, max(TOP_NS + DUP_NS) + 1):
        keep = pos + n <= end_of[pos]
        pos, h = pos[keep], h[keep]
        if not len(pos):
            break
        h = h * _M1 + ids[pos + n - 1]
        codes, uniques = pd.factorize(h)
        counts = np.bincount(codes, minlength=len(uniques))
        chars = cum[pos + n] - cum[pos]
        if n in TOP_NS:
            _top(out[f"top_{n}_gram_chars"], pos, codes, counts, chars, doc_of, n)
        if n in DUP_NS:
            _dup(out[f"dup_{n}_gram_chars"], pos, codes, counts, chars, doc_of, n)
        # only an n-gram that repeats can extend to a repeating (n+1)-gram
        rep = counts[codes] > 1
        pos, h = pos[rep], h[rep]
    return out


def repetition_udf() -> object:
    """The iterator Arrow UDF: array<string> tokens -> struct of the character counts (null: too few words).

    Arrow in, Arrow out: a pandas UDF would turn every token into a Python string and back (a document has
    hundreds), which cost more than the metrics themselves (bench/README.md, quality stage speed)."""
    from pyspark.sql.functions import arrow_udf

    fields = ", ".join(f"{c} long" for c in columns())

    @arrow_udf(f"struct<{fields}>")  # type: ignore[call-overload]
    def gopher_ngrams(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        for tokens in batches:
            m = repetition_metrics_arrow(tokens)
            # from_pandas: a top n-gram's NaN (fewer than n words) becomes null; the counts are whole numbers
            arrays = [pa.array(m[c], from_pandas=True).cast(pa.int64()) for c in columns()]
            yield pa.StructArray.from_arrays(arrays, names=columns())

    return gopher_ngrams


def _top(
    res: np.ndarray,
    pos: np.ndarray,
    codes: np.ndarray,
    counts: np.ndarray,
    chars: np.ndarray,
    doc_of: np.ndarray,
    n: int,
) -> None:
    """Overwrite the default (first n-gram, count 1) where a document has a repeated n-gram."""
    # one entry per distinct n-gram, in order of first appearance (factorize numbers them that way), so the
    # groups of a document are contiguous and, within it, earlier groups come first
    running = np.maximum.accumulate(codes)
    is_first = np.ones(len(codes), dtype=bool)
    is_first[1:] = running[1:] > running[:-1]
    first = np.flatnonzero(is_first)
    rep = counts > 1
    if not rep.any():
        return
    g_doc, g_cnt, g_chars = doc_of[pos[first]][rep], counts[rep], chars[first][rep]
    # per document: the highest count, ties to the first seen (a stable sort keeps first-appearance order)
    order = np.lexsort((-g_cnt, g_doc))
    d_sorted = g_doc[order]
    lead = np.ones(len(order), dtype=bool)
    lead[1:] = d_sorted[1:] != d_sorted[:-1]
    best = order[lead]
    res[g_doc[best]] = (g_chars[best] + (n - 1)) * g_cnt[best]


def _dup(
    res: np.ndarray,
    pos: np.ndarray,
    codes: np.ndarray,
    counts: np.ndarray,
    chars: np.ndarray,
    doc_of: np.ndarray,
    n: int,
) -> None:
    rep = counts[codes] > 1
    if not rep.any():
        return
    # the scan only matters in documents with a repeated n-gram; there, walk that document's repeated
    # n-grams in order (an n-gram seen once never triggers a hit, so it may be left out of `seen`)
    p = pos[rep]
    _dup_scan(p, codes[rep], chars[rep], doc_of[p], n, len(counts), res)


@njit(cache=True, nogil=True)
def _dup_scan(
    p: np.ndarray, code: np.ndarray, ch: np.ndarray, d: np.ndarray, n: int, n_codes: int, res: np.ndarray
) -> None:  # pragma: no cover - compiled; tests call it through repetition_metrics
    """datatrove's sequential scan, per document: an n-gram already seen adds its characters and the scan jumps n
    words ahead (the n-grams jumped over are not added to `seen`). Sequential by nature - each step depends on the
    jumps before it - so it is compiled rather than vectorised. Codes already include the document, so one `seen`
    array serves every document of the slice."""
    seen = np.zeros(n_codes, np.bool_)
    cur, total, skip_until = -1, 0, -1
    for i in range(len(p)):
        if d[i] != cur:
            if cur >= 0:
                res[cur] = total
            cur, total, skip_until = d[i], 0, -1
        q = p[i]
        if q < skip_until:
            continue
        c = code[i]
        if seen[c]:
            total += ch[i]
            skip_until = q + n
        else:
            seen[c] = True
    if cur >= 0:
        res[cur] = total
