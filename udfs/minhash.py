"""MinHash signatures, LSH band keys and exact Jaccard, vectorised with pyarrow and numpy (no Spark).

Broder (1997) MinHash with banded LSH as used for FineWeb (Penedo et al. 2024): 5-word shingles, 112
permutations, 14 bands of 8 rows. The pandas UDFs in `pipelines/stages/dedup.py` are thin wrappers around
`band_keys` and `jaccard`; everything here is deterministic on every machine, engine and numpy version,
because the whole hashing chain is defined here in 64-bit integer arithmetic:

1. Normalise (pyarrow, RE2): lower-case; delete every character that is not a letter (``\\p{L}``), a digit
   (``\\p{N}``) or whitespace; collapse whitespace runs (tab, LF, VT, FF, CR, NEL, every ``\\p{Z}``) to one
   space; trim. `normalise_text` is the same in plain Python, for tests and benchmarks.
2. Tokens: words (split on the spaces) or characters (code points of the normalised text, spaces included).
   A word's hash is a polynomial over its UTF-8 bytes, finished with SplitMix64.
3. Shingles: every window of ``ngram`` consecutive tokens inside a document, hashed as a polynomial of its
   token hashes, finished with SplitMix64. A document with fewer tokens than ``ngram`` has one shingle (all
   its tokens); one with no token has none, gets no signature and never enters LSH.
4. Permutation ``k`` maps a shingle hash ``x`` to ``a_k * x + b_k mod 2**64`` (``a_k`` odd, so a bijection);
   the signature value is the minimum over the document's shingles. ``a_k, b_k`` come from SplitMix64 of the
   seed, not from numpy's generators, whose streams may change between releases - persisted band keys must
   stay comparable for the life of the corpus.
5. Band ``j`` key: SplitMix64 of a polynomial of its ``rows`` signature values, as a signed 64-bit integer.

Work is done one chunk of documents at a time (about `CHUNK_BYTES` of text), so memory per call is bounded
by the chunk, not by the batch the engine hands over. The permutation minima are one compiled loop (numba): in
numpy each of the 112 permutations was a pass over all shingles with two temporaries, memory-bound.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

U64 = np.uint64
MAX64 = np.iinfo(np.uint64).max
# Odd multipliers for the polynomial hashes (the 64-bit golden ratio and a SplitMix64 constant).
_POLY_TOKEN = U64(0x9E3779B97F4A7C15)
_POLY_BYTE = U64(0xBF58476D1CE4E5B9)
_POLY_BAND = U64(0x94D049BB133111EB)
#: Text per chunk. A chunk's arrays (one 8-byte entry per character shingle, several alive at once) then stay
#: small enough for the allocator to reuse; at 2 MiB they were fresh pages that the kernel zeroed on every chunk
#: (system time of signing one crawl_dev shard: 1.1 s -> ~0; bench/README.md, "Compiled kernels").
CHUNK_BYTES = 1 << 20

_WS = r"\t\n\x0B\f\r\x{85}\p{Z}"
_DROP_RE = rf"[^\p{{L}}\p{{N}}{_WS}]+"
_SPACE_RE = rf"[{_WS}]+"
_WS_CHARS = frozenset("\t\n\x0b\f\r\x85")


@dataclass(frozen=True)
class MinHashParams:
    """What defines a signature. `scheme` names it; band keys of different schemes never mix."""

    shingle: str = "word"  # word | char
    ngram: int = 5
    num_perm: int = 112
    bands: int = 14
    rows: int = 8
    seed: int = 1

    def __post_init__(self) -> None:
        if self.shingle not in ("word", "char"):
            raise ValueError(f"shingle must be 'word' or 'char', got {self.shingle!r}")
        if self.ngram < 1 or self.num_perm < 1 or self.bands < 1 or self.rows < 1:
            raise ValueError("ngram, num_perm, bands and rows must be >= 1")
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows ({self.bands} x {self.rows}) exceeds num_perm ({self.num_perm})")

    @property
    def scheme(self) -> str:
        return f"minhash-v1:{self.shingle}{self.ngram}:p{self.num_perm}:b{self.bands}x{self.rows}:s{self.seed}"

    def threshold(self) -> float:
        """Jaccard where the LSH S-curve 1 - (1 - J**rows)**bands is steepest (about 50% caught)."""
        return float((1.0 / self.bands) ** (1.0 / self.rows))


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele et al. 2014), vectorised: a bijection that mixes every input bit."""
    with np.errstate(over="ignore"):
        z = x.astype(U64, copy=True)
        z ^= z >> U64(30)
        z *= U64(0xBF58476D1CE4E5B9)
        z ^= z >> U64(27)
        z *= U64(0x94D049BB133111EB)
        z ^= z >> U64(31)
    return z


def _stream(seed: int, n: int, salt: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        state = U64((seed * 0x9E3779B97F4A7C15 + salt) & 0xFFFFFFFFFFFFFFFF)
        steps = np.arange(1, n + 1, dtype=U64) * U64(0x9E3779B97F4A7C15)
        return splitmix64(steps + state)


def permutations(params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    a = _stream(params.seed, params.num_perm, 1) | U64(1)
    b = _stream(params.seed, params.num_perm, 2)
    return a, b


# ---- normalisation --------------------------------------------------------------------------------


def normalise(texts: pa.Array) -> pa.Array:
    """Arrow strings in, normalised strings out (nulls stay null)."""
    lowered = pc.utf8_lower(texts)
    kept = pc.replace_substring_regex(lowered, pattern=_DROP_RE, replacement="")
    spaced = pc.replace_substring_regex(kept, pattern=_SPACE_RE, replacement=" ")
    return pc.utf8_trim(spaced, characters=" ")


def _is_space(c: str) -> bool:
    return c in _WS_CHARS or unicodedata.category(c).startswith("Z")


def normalise_text(text: str) -> str:
    """`normalise` for one string in plain Python (the reference the tests hold the Arrow path to)."""
    kept = "".join(
        " " if _is_space(c) else c for c in text.lower() if _is_space(c) or unicodedata.category(c)[0] in "LN"
    )
    return " ".join(part for part in kept.split(" ") if part)


# ---- tokens and shingles --------------------------------------------------------------------------


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets as int64 starting at 0, UTF-8 bytes) of a string array without nulls."""
    arr = arr.cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], raw[offsets[0] : offsets[-1]]


def _bytes_hash(offsets: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Hash of every string (all non-empty) given its byte offsets: polynomial over bytes, then SplitMix64."""
    lens = np.diff(offsets)
    if len(lens) == 0:
        return np.zeros(0, U64)
    powers = np.ones(int(lens.max()), U64)
    with np.errstate(over="ignore"):
        powers[1:] = np.multiply.accumulate(np.full(len(powers) - 1, _POLY_BYTE, dtype=U64))
        from_end = np.repeat(offsets[1:], lens) - np.arange(len(raw), dtype=np.int64) - 1
        terms = raw.astype(U64) * powers[from_end]
        h = np.add.reduceat(terms, offsets[:-1])
        return splitmix64(h ^ (lens.astype(U64) * _POLY_TOKEN))


def _tokens(texts: pa.Array, shingle: str) -> tuple[np.ndarray, np.ndarray]:
    """Token hashes (flat) and tokens per document, from raw strings."""
    if shingle == "char":
        # code points straight from Arrow's UTF-8 buffer, compiled: through Python strings (str.join, encode)
        # this held the GIL, so the engine's two UDF threads took turns
        norm = normalise(texts).fill_null("")
        offsets, raw = _string_buffers(norm)
        points = np.empty(len(raw), U64)
        counts = np.empty(len(offsets) - 1, np.int64)
        return points[: _code_points(raw, offsets, points, counts)], counts
    # Splitting on Arrow's whitespace after the deletion equals `normalise` then splitting on its spaces: what
    # the deletion leaves is letters, digits and our whitespace set, and Arrow's whitespace is that set plus
    # U+001C..U+001F, which the deletion has removed. One regex pass instead of three.
    kept = pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(texts), pattern=_DROP_RE, replacement=""))
    words = pc.utf8_split_whitespace(pc.if_else(pc.equal(kept, ""), pa.scalar(None, pa.string()), kept))
    counts = pc.list_value_length(words).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(words)
    unique = flat.dictionary_encode()
    offsets, raw = _string_buffers(unique.dictionary)
    return _bytes_hash(offsets, raw)[unique.indices.to_numpy(zero_copy_only=False)], counts


@njit(cache=True, nogil=True)
def _code_points(
    raw: np.ndarray, offsets: np.ndarray, out: np.ndarray, counts: np.ndarray
) -> int:  # pragma: no cover - compiled; tests call it through shingle_hashes
    """Decode valid UTF-8 (Arrow strings are) into code points, one text after another; counts[d] gets how many
    text d has. Returns how many were written."""
    n = 0
    for d in range(offsets.shape[0] - 1):
        i, end, first = offsets[d], offsets[d + 1], n
        while i < end:
            c = raw[i]
            if c < 0x80:
                cp, i = np.uint64(c), i + 1
            elif c < 0xE0:
                cp, i = np.uint64(((c & 0x1F) << 6) | (raw[i + 1] & 0x3F)), i + 2
            elif c < 0xF0:
                cp = np.uint64(((c & 0x0F) << 12) | ((raw[i + 1] & 0x3F) << 6) | (raw[i + 2] & 0x3F))
                i += 3
            else:
                cp = ((c & 0x07) << 18) | ((raw[i + 1] & 0x3F) << 12) | ((raw[i + 2] & 0x3F) << 6)
                cp, i = np.uint64(cp | (raw[i + 3] & 0x3F)), i + 4
            out[n] = cp
            n += 1
        counts[d] = n - first
    return n


def _windows(tokens: np.ndarray, counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hash every n-token window inside each document; shorter documents get one window of all tokens."""
    nwin = np.where(counts >= n, counts - n + 1, np.minimum(counts, 1))
    total = int(nwin.sum())
    if total == 0:
        return np.zeros(0, U64), nwin
    doc_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    win_first = np.concatenate([[0], np.cumsum(nwin)[:-1]])
    start = np.repeat(doc_start, nwin) + (np.arange(total) - np.repeat(win_first, nwin))
    length = np.repeat(np.minimum(counts, n), nwin)
    short = length < n  # one window per document shorter than n tokens: few, done apart
    h = np.empty(total, U64)
    full = ~short
    if full.any():
        h[full] = _poly_sliding(tokens, n)[start[full]]
    if short.any():
        h[short] = _poly_short(tokens, start[short], length[short], n)
    with np.errstate(over="ignore"):
        h += length.astype(U64)
    return splitmix64(h), nwin


def _poly_sliding(tokens: np.ndarray, n: int) -> np.ndarray:
    """The polynomial hash of the n tokens starting at every position of the flat array (where n fit), over
    contiguous slices: a window never leaves its document, so its hash is this array at its start. One pass per
    token of the window over memory in order, instead of n gathers (they were a third of the shingling time)."""
    m = len(tokens) - n + 1
    h = np.zeros(max(m, 0), U64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h *= _POLY_TOKEN
            h += tokens[j : j + m]
            h += U64(1)
    return h


def _poly_short(tokens: np.ndarray, start: np.ndarray, length: np.ndarray, n: int) -> np.ndarray:
    h = np.zeros(len(start), U64)
    with np.errstate(over="ignore"):
        for j in range(n):
            inside = j < length
            h = np.where(inside, h * _POLY_TOKEN + tokens[np.where(inside, start + j, 0)] + U64(1), h)
    return h


def _shingles_chunk(arr: pa.Array, params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    tokens, counts = _tokens(arr, params.shingle)
    return _windows(tokens, counts, params.ngram)


def shingle_hashes(texts: Sequence[str | None] | pa.Array, params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    """(shingle hashes of all documents, flat; shingles per document). A document's shingles may repeat."""
    arr = texts if isinstance(texts, pa.Array) else pa.array(list(texts), type=pa.string())
    parts = [_shingles_chunk(arr.slice(s, e - s), params) for s, e in _chunks(arr)]
    return np.concatenate([h for h, _ in parts]), np.concatenate([n for _, n in parts])


def shingle_set(text: str, params: MinHashParams) -> np.ndarray:
    """The distinct shingle hashes of one document, sorted (for exact Jaccard in tests and benchmarks)."""
    h, _ = shingle_hashes([text], params)
    return np.unique(h)


# ---- signatures and bands -------------------------------------------------------------------------


def _chunks(arr: pa.Array) -> list[tuple[int, int]]:
    lengths = pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    out, start, acc = [], 0, 0
    for i, n in enumerate(lengths):
        acc += int(n)
        if acc >= CHUNK_BYTES:
            out.append((start, i + 1))
            start, acc = i + 1, 0
    if start < len(lengths) or not out:
        out.append((start, len(lengths)))
    return out


def _signatures_chunk(arr: pa.Array, params: MinHashParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    shingles, per_doc = _shingles_chunk(arr, params)
    sig = np.full((len(per_doc), params.num_perm), MAX64, dtype=U64)
    _minima(shingles, per_doc, a, b, sig)
    return sig


@njit(cache=True, nogil=True)
def _minima(
    shingles: np.ndarray, per_doc: np.ndarray, a: np.ndarray, b: np.ndarray, sig: np.ndarray
) -> None:  # pragma: no cover - compiled; tests call it through signatures
    """sig[d, k] = min over document d's shingles x of a[k] * x + b[k] (mod 2**64; sig starts at the maximum)."""
    pos = 0
    for d in range(per_doc.shape[0]):
        row = sig[d]
        for i in range(pos, pos + per_doc[d]):
            x = shingles[i]
            for k in range(a.shape[0]):
                v = x * a[k] + b[k]
                if v < row[k]:
                    row[k] = v
        pos += per_doc[d]


def signatures(texts: Sequence[str | None] | pa.Array, params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    """(signatures [docs x num_perm] uint64, has_shingles [docs] bool). Rows without shingles are all-max."""
    arr = texts if isinstance(texts, pa.Array) else pa.array(list(texts), type=pa.string())
    a, b = permutations(params)
    parts = [_signatures_chunk(arr.slice(s, e - s), params, a, b) for s, e in _chunks(arr)]
    sig = np.concatenate(parts) if parts else np.zeros((0, params.num_perm), U64)
    return sig, (sig[:, 0] != MAX64) if len(sig) else np.zeros(0, bool)


def bands_of(sig: np.ndarray, params: MinHashParams) -> np.ndarray:
    """Band keys [docs x bands] as int64 from signatures."""
    out = np.empty((len(sig), params.bands), np.int64)
    with np.errstate(over="ignore"):
        for j in range(params.bands):
            h = np.zeros(len(sig), U64)
            for i in range(params.rows):
                h = h * _POLY_BAND + sig[:, j * params.rows + i]
            out[:, j] = splitmix64(h + U64(j)).view(np.int64)
    return out


def band_keys(texts: Sequence[str | None] | pa.Array, params: MinHashParams) -> list[list[int] | None]:
    """Per document its `bands` LSH keys, or None when it has no shingle (empty after normalisation)."""
    sig, has = signatures(texts, params)
    keys = bands_of(sig, params)
    return [row.tolist() if ok else None for row, ok in zip(keys, has, strict=True)]


# ---- exact Jaccard ----------------------------------------------------------------------------------


def _sorted_sets(texts: pa.Array, params: MinHashParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(every text's distinct shingle hashes, sorted, one text after another; where each text's starts; how many
    it has). Shingled chunk by chunk, so the arrays that hold every shingle (repeats included) stay chunk-sized."""
    parts, sizes = [], np.zeros(len(texts), np.int64)
    for s, e in _chunks(texts):
        h, per_doc = _shingles_chunk(texts.slice(s, e - s), params)
        out = np.empty(len(h), U64)
        parts.append(out[: _sort_unique(h, per_doc, out, sizes[s:e])])
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return (np.concatenate(parts) if parts else np.zeros(0, U64)), start, sizes


@njit(cache=True, nogil=True)
def _sort_unique(
    h: np.ndarray, per_doc: np.ndarray, out: np.ndarray, sizes: np.ndarray
) -> int:  # pragma: no cover - compiled; tests call it through jaccard
    """Each document's shingles (h, grouped by document) sorted and without repeats, packed into `out`; sizes[d]
    gets how many document d has. Returns how much of `out` is used."""
    src, dst = 0, 0
    for d in range(per_doc.shape[0]):
        seg = np.sort(h[src : src + per_doc[d]])
        k = 0
        for i in range(seg.shape[0]):
            if i == 0 or seg[i] != seg[i - 1]:
                out[dst + k] = seg[i]
                k += 1
        sizes[d] = k
        src += per_doc[d]
        dst += k
    return dst


@njit(cache=True, nogil=True)
def _intersections(
    u: np.ndarray, start: np.ndarray, size: np.ndarray, ia: np.ndarray, ib: np.ndarray, inter: np.ndarray
) -> None:  # pragma: no cover - compiled; tests call it through jaccard
    """inter[p] = how many shingles texts ia[p] and ib[p] share: a merge of their sorted sets (-1: no text)."""
    for p in range(ia.shape[0]):
        a, b = ia[p], ib[p]
        c = 0
        if a >= 0 and b >= 0:
            i, i_end = start[a], start[a] + size[a]
            j, j_end = start[b], start[b] + size[b]
            while i < i_end and j < j_end:
                if u[i] == u[j]:
                    c += 1
                    i += 1
                    j += 1
                elif u[i] < u[j]:
                    i += 1
                else:
                    j += 1
        inter[p] = c


def jaccard(
    texts_a: Sequence[str | None] | pa.Array, texts_b: Sequence[str | None] | pa.Array, params: MinHashParams
) -> np.ndarray:
    """Exact Jaccard of the shingle sets of each pair (a[i], b[i]); 0.0 when either has no shingle.

    Each distinct text is shingled once however many pairs it is in (a bucket's centre is in all of them), its
    shingle set kept sorted, and a pair's intersection is a merge of two sorted sets (compiled): the hash-table
    passes over every pair's shingles this replaces allocated and page-faulted half the dedup stage's CPU time
    (bench/README.md, dedup speed).
    """
    a = texts_a if isinstance(texts_a, pa.Array) else pa.array(list(texts_a), type=pa.string())
    b = texts_b if isinstance(texts_b, pa.Array) else pa.array(list(texts_b), type=pa.string())
    n = len(a)
    encoded = pa.concat_arrays([a.cast(pa.string()), b.cast(pa.string())]).dictionary_encode()
    ids = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    u, start, size = _sorted_sets(encoded.dictionary, params)
    ia, ib = ids[:n], ids[n:]
    inter = np.zeros(n, np.int64)
    _intersections(u, start, size, ia, ib, inter)
    sa = np.where(ia >= 0, size[np.maximum(ia, 0)], 0)
    sb = np.where(ib >= 0, size[np.maximum(ib, 0)], 0)
    union = sa + sb - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.where((sa > 0) & (sb > 0), inter / np.maximum(union, 1), 0.0)
    return j.astype(np.float64)
