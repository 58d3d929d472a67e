"""A packaged toxicity teacher: the Jigsaw BiLSTM of `toxic-comment-classifier` 0.3.0, without TensorFlow.

The wheel (MIT) ships a Keras model trained on the Jigsaw toxic-comment data - six sigmoid outputs, `LABELS` -
as `toxic_classifier/model/model.weights.h5` plus its fitted Keras `Tokenizer` (`tokenizer.pickle`). Its own
code imports TensorFlow (~1.8 GB) to run a network this small, so the product installs the wheel with
`--no-deps` (see the Makefile), reads the weights with `h5py` and runs the forward pass here in numpy. The
result matches the package's own `ToxicCommentClassifier.classify` (TensorFlow 2.21 / Keras 3.15) to ~1e-7; the
reference outputs in tests/test_jigsaw.py were produced by that code, not by this module.

What the package does, reproduced exactly:

- Tokenisation: Keras' `Tokenizer.texts_to_sequences` with the pickled settings: lower-case, map the filter
  characters to a space, split on the space character only (other whitespace such as U+00A0 stays inside
  words), keep words whose index is below `num_words` (20,000) and drop the rest (no OOV token). The package's
  `utils.clean_text` is NOT applied by its `classify`, so it is not applied here either.
- `pad_sequences(maxlen=100)`: pad with index 0 at the front and truncate at the front, i.e. a long text is
  judged by its LAST 100 in-vocabulary words.
- Embedding(20000, 50) without masking -> Bidirectional(LSTM(50), concat, return_sequences) ->
  GlobalMaxPooling1D -> Dense(50, relu) -> Dense(6, sigmoid). Dropout is inactive at inference.

Because there is no masking, the padding runs through the LSTMs and counts in the max-pooling: every text is a
100-step sequence, and sorting by length buys nothing for the backward direction. The forward direction sees
the padding first, from the zero state, so its trajectory over the padding is the same for every text; it is
computed once and a batch's forward pass starts where its longest text's words start (up to half the work for
short texts, which is why batches are sorted by length). The input projection of both LSTMs is folded into the
embedding table once at load time (20000 x 200 per direction), so a step is a table lookup plus one small matmul.
Measured on 2 cores: ~4,600 docs/s over 19k mixed texts (bench/scorers_human.py).

The pickle is read with an unpickler that admits only the Tokenizer class (as a plain attribute holder) and
the builtin containers it needs: Keras is not imported and the pickle cannot run code.
"""

from __future__ import annotations

import collections
import importlib.metadata
import importlib.util
import json
import pickle
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from udfs.label_types import LabelResult, PrincipleSpec

#: The six outputs, in the model's order.
LABELS: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
PACKAGE = "toxic_classifier"
DISTRIBUTION = "toxic-comment-classifier"
PINNED_VERSION = "0.3.0"
INSTALL_HINT = (
    f"pip install --no-deps {DISTRIBUTION}=={PINNED_VERSION} (--no-deps: its declared TensorFlow dependency is "
    "not needed; `make setup` does this)"
)
MAXLEN = 100
#: A long document is judged window by window: the model reads at most MAXLEN words, so a document's score is the
#: maximum over its consecutive WINDOW_WORDS-word windows, at most MAX_WINDOWS of them (pipelines/stages/cascade.py).
WINDOW_WORDS = MAXLEN
MAX_WINDOWS = 32
_TOKENIZER_CLASS = ("keras.src.legacy.preprocessing.text", "Tokenizer")
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("builtins", "int"): int,
}


def word_windows(text: str, size: int = WINDOW_WORDS, limit: int = MAX_WINDOWS) -> list[str]:
    """Consecutive `size`-word windows of `text` (at least one, possibly empty), at most `limit` of them."""
    words = text.split()
    if not words:
        return [""]
    return [" ".join(words[i : i + size]) for i in range(0, min(len(words), size * limit), size)]


class JigsawUnavailable(ImportError):
    """The wheel with the weights (or h5py, which reads them) is not installed."""


def model_dir(package: str = PACKAGE) -> Path:
    """The wheel's `model/` folder, found without importing the package (its `__init__` imports TensorFlow)."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "model"
        if (folder / "model.weights.h5").is_file() and (folder / "tokenizer.pickle").is_file():
            return folder
    where = f"found at {locations[0]} but without model/model.weights.h5 and tokenizer.pickle" if locations else ""
    raise JigsawUnavailable(
        f"the Jigsaw toxicity model needs the `{DISTRIBUTION}` wheel (package `{package}`), which is not installed"
        f"{' (' + where + ')' if where else ''}: {INSTALL_HINT}"
    )


class _TokenizerState:
    """Stands in for keras' Tokenizer while unpickling: only its attributes are read."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _TOKENIZER_CLASS:
            return _TokenizerState
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"tokenizer.pickle refers to {module}.{name}, which is not allowed")


class KerasWordTokenizer:
    """Keras' (legacy) `Tokenizer.texts_to_sequences` for the pickled word-level settings, nothing else."""

    def __init__(self, word_index: dict[str, int], filters: str, split: str, lower: bool, num_words: int) -> None:
        self.vocab = {w: i for w, i in word_index.items() if i < num_words}
        self.split = split
        self.lower = lower
        self.table = str.maketrans(dict.fromkeys(filters, split))
        self.num_words = num_words

    @classmethod
    def from_pickle(cls, path: Path) -> KerasWordTokenizer:
        with path.open("rb") as fh:
            state = _RestrictedUnpickler(fh).load()
        attrs = vars(state)
        if attrs.get("char_level") or attrs.get("analyzer") is not None or attrs.get("oov_token") is not None:
            raise ValueError(f"{path}: unsupported tokenizer settings (char_level, analyzer or oov_token)")
        return cls(attrs["word_index"], attrs["filters"], attrs["split"], attrs["lower"], attrs["num_words"])

    def words(self, text: str) -> list[str]:
        """`text_to_word_sequence`: lower-case, filters to the split character, split on it, drop empties."""
        if self.lower:
            text = text.lower()
        return [w for w in text.translate(self.table).split(self.split) if w]

    def ids(self, text: str, maxlen: int | None = None) -> list[int]:
        """In-vocabulary word indices; with `maxlen`, only the last `maxlen` of them (what padding keeps).

        For a long text the tail is tokenised first, cut at a space: tokens after that space are the same as in
        the whole text (lower-casing and the filters act per character, and Python's only context-dependent
        lower-casing, the final sigma, does not look past a space), so a 100 kB document costs what its last
        few hundred characters cost."""
        vocab = self.vocab
        if maxlen is not None and self.split == " ":
            start = len(text) - 32 * maxlen
            while start > 0:
                cut = text.rfind(" ", 0, start)
                if cut <= 0:
                    break
                tail = [i for w in self.words(text[cut:]) if (i := vocab.get(w)) is not None]
                if len(tail) >= maxlen:
                    return tail[-maxlen:]
                start = len(text) - 4 * (len(text) - cut)
        found = [i for w in self.words(text) if (i := vocab.get(w)) is not None]
        return found[-maxlen:] if maxlen is not None else found


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: exact sigmoid, no overflow warnings for large |x|
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


class JigsawClassifier:
    """The BiLSTM's forward pass in numpy; `load()` returns one shared instance per process (thread-safe)."""

    _cache: ClassVar[dict[Path, JigsawClassifier]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, folder: Path, version: str) -> None:
        try:
            import h5py
        except ImportError as exc:
            hint = "the Jigsaw weights are read with h5py (a project dependency): pip install h5py"
            raise JigsawUnavailable(hint) from exc

        self.folder = folder
        self.version = version
        self.tokenizer = KerasWordTokenizer.from_pickle(folder / "tokenizer.pickle")
        with h5py.File(folder / "model.weights.h5", "r") as h5:
            layers = h5["layers"]
            embedding = np.asarray(layers["embedding/vars/0"], dtype=np.float32)
            lstm = [
                [np.asarray(layers[f"bidirectional/{side}_layer/cell/vars/{k}"], dtype=np.float32) for k in range(3)]
                for side in ("forward", "backward")
            ]
            self.w1, self.b1 = (np.asarray(layers[f"dense/vars/{k}"], dtype=np.float32) for k in range(2))
            self.w2, self.b2 = (np.asarray(layers[f"dense_1/vars/{k}"], dtype=np.float32) for k in range(2))
        if embedding.shape[0] != self.tokenizer.num_words or self.w2.shape[1] != len(LABELS):
            raise ValueError(f"{folder}: unexpected model shapes {embedding.shape}, {self.w2.shape}")
        self.units = lstm[0][1].shape[0]
        # Keras LSTM: z = x @ kernel + h @ recurrent_kernel + bias, gates i, f, c, o (sigmoid, sigmoid, tanh,
        # sigmoid); the x part of every step is a row of embedding @ kernel + bias. Columns are reordered to
        # i, f, o, c so that one sigmoid covers a contiguous slice.
        u = self.units
        gates = np.r_[0 : 2 * u, 3 * u : 4 * u, 2 * u : 3 * u]
        self.inputs = np.stack([(embedding @ kernel + bias)[:, gates] for kernel, _, bias in lstm])  # (2, vocab, 4u)
        self.recurrent = np.stack([recurrent[:, gates] for _, recurrent, _ in lstm])  # (2, u, 4u)
        self._pad_trajectory()

    @classmethod
    def load(cls, package: str = PACKAGE) -> JigsawClassifier:
        """The process-wide instance (weights read once, ~1 s); raises JigsawUnavailable with the install line."""
        folder = model_dir(package)
        with cls._lock:
            if folder not in cls._cache:
                try:
                    version = importlib.metadata.version(DISTRIBUTION)
                except importlib.metadata.PackageNotFoundError:
                    version = "unknown"
                cls._cache[folder] = cls(folder, version)
            return cls._cache[folder]

    def _step(self, side: int, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = self.units
        z = x + h @ self.recurrent[side]
        ifo = _sigmoid(z[:, : 3 * u])
        c = ifo[:, u : 2 * u] * c + ifo[:, :u] * np.tanh(z[:, 3 * u :])
        return ifo[:, 2 * u :] * np.tanh(c), c

    def _pad_trajectory(self) -> None:
        """The forward LSTM over k leading pads (index 0) from the zero state: state and running max, k=0..100."""
        h = np.zeros((1, self.units), np.float32)
        c = np.zeros_like(h)
        peak = np.full_like(h, -np.inf)
        states = [(h, c, peak)]
        for _ in range(MAXLEN):
            h, c = self._step(0, self.inputs[0, :1], h, c)
            peak = np.maximum(peak, h)
            states.append((h, c, peak))
        self._pad_h, self._pad_c, self._pad_peak = (np.concatenate(s) for s in zip(*states, strict=True))

    def _forward(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(n, MAXLEN) front-padded ids -> (n, 6) probabilities."""
        n, u = len(ids), self.units
        # forward direction: the batch starts from the shared pad trajectory where its longest text starts (a
        # shorter text's remaining pads are recomputed; batches are sorted by length, so there are few)
        first = int(MAXLEN - lengths.max()) if n else MAXLEN
        h, c = np.repeat(self._pad_h[first : first + 1], n, 0), np.repeat(self._pad_c[first : first + 1], n, 0)
        fwd_peak = np.repeat(self._pad_peak[first : first + 1], n, 0)
        for t in range(first, MAXLEN):
            h, c = self._step(0, self.inputs[0, ids[:, t]], h, c)
            fwd_peak = np.maximum(fwd_peak, h)
        # backward direction: from the last word to the first pad, all MAXLEN steps
        h = np.zeros((n, u), np.float32)
        c = np.zeros_like(h)
        bwd_peak = np.full_like(h, -np.inf)
        for t in range(MAXLEN - 1, -1, -1):
            h, c = self._step(1, self.inputs[1, ids[:, t]], h, c)
            bwd_peak = np.maximum(bwd_peak, h)
        pooled = np.concatenate([fwd_peak, bwd_peak], axis=1)
        hidden = np.maximum(pooled @ self.w1 + self.b1, 0.0)
        return _sigmoid(hidden @ self.w2 + self.b2)

    def predict(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(len(texts), 6) float32 probabilities, columns in `LABELS` order, rows in input order."""
        if isinstance(texts, str):
            raise TypeError("predict takes a sequence of texts, not one string")
        # threadpoolctl comes with scikit-learn (a pinned dependency)
        from threadpoolctl import threadpool_limits

        seqs = [self.tokenizer.ids(t, MAXLEN) for t in texts]
        out = np.zeros((len(seqs), len(LABELS)), np.float32)
        order = np.argsort([len(s) for s in seqs], kind="stable")
        # the matmuls are tiny (batch x 50 @ 50 x 200): one BLAS thread is as fast on an idle machine and ~10x
        # faster on a busy one, where a second BLAS thread spins waiting for a core (measured on 2 cores)
        with threadpool_limits(limits=1, user_api="blas"):
            for lo in range(0, len(order), batch_size):
                rows = order[lo : lo + batch_size]
                ids = np.zeros((len(rows), MAXLEN), np.int64)
                lengths = np.array([len(seqs[r]) for r in rows], np.int64)
                for j, r in enumerate(rows):
                    if lengths[j]:
                        ids[j, MAXLEN - lengths[j] :] = seqs[r]
                out[rows] = self._forward(ids, lengths)
        return out

    def predict_windows(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 6): per output, the maximum over the text's `word_windows` (all windows in one batch)."""
        if isinstance(texts, str):
            raise TypeError("predict_windows takes a sequence of texts, not one string")
        pieces = [(i, w) for i, t in enumerate(texts) for w in word_windows(t)]
        values = self.predict([w for _, w in pieces])
        out = np.zeros((len(texts), len(LABELS)), np.float32)
        for (i, _), v in zip(pieces, values, strict=True):
            out[i] = np.maximum(out[i], v)
        return out

    def predict_dicts(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Label -> probability per text, the shape of the package's own `classify`."""
        return [dict(zip(LABELS, map(float, row), strict=True)) for row in self.predict(texts)]


# ---- as a teacher labeler (registered as `jigsaw` in udfs/labelers.py) ---------------------------------------

#: Principle -> the Jigsaw outputs that score it (a label's score is the largest of them). Toxicity is `toxic`
#: alone: on 43,254 human-labelled and clean texts the max over toxic, severe_toxic, obscene, insult and
#: identity_hate never once exceeded `toxic` (the model learned the Jigsaw label hierarchy), so the max would
#: be the same score under a longer name (bench/scorers_human.py prints the check).
PRINCIPLE_OUTPUTS: dict[str, tuple[str, ...]] = {"toxicity": ("toxic",), "violence": ("threat",)}


class JigsawLabeler:
    """The Jigsaw BiLSTM as a teacher: no LLM and no prompt, a principle is scored by the output(s) mapped to it.

    A principle with no mapped output gets an `error` label saying so, never a made-up score. The prompt
    version (part of the label cache key) names the model, its version and the outputs used. Like the model,
    the labeler judges a document by its last 100 in-vocabulary words: it was trained on comments, and the
    toxic opening of a long document is not seen.
    """

    name = "jigsaw"

    def __init__(
        self,
        outputs: Mapping[str, str | Sequence[str]] | None = None,
        classifier: JigsawClassifier | None = None,
    ) -> None:
        mapping = PRINCIPLE_OUTPUTS if outputs is None else outputs
        self.outputs = {p: (o,) if isinstance(o, str) else tuple(o) for p, o in mapping.items()}
        for principle, labels in self.outputs.items():
            unknown = [label for label in labels if label not in LABELS]
            if unknown or not labels:
                raise ValueError(f"jigsaw outputs for {principle!r} must be among {LABELS}, got {labels}")
        self.model = classifier or JigsawClassifier.load()

    def _spec(self, principle: str) -> str:
        labels = self.outputs.get(principle)
        if labels is None:
            return "none"
        return labels[0] if len(labels) == 1 else f"max({','.join(labels)})"

    def prompt_version(self, principle: PrincipleSpec) -> str:
        return f"jigsaw-bilstm-{self.model.version}:{self._spec(principle.name)}"

    def label(
        self,
        principle: PrincipleSpec,
        texts: Sequence[str],
        progress: Callable[[int], None] | None = None,
    ) -> list[LabelResult]:
        from udfs.label_types import LabelResult

        labels = self.outputs.get(principle.name)
        if labels is None:
            error = (
                f"the jigsaw labeler has no output for principle {principle.name!r} "
                f"(it scores: {', '.join(sorted(self.outputs)) or 'nothing'})"
            )
            results = [LabelResult(status="error", error=error) for _ in texts]
        else:
            columns = [LABELS.index(label) for label in labels]
            try:
                probs: list[np.ndarray | Exception] = list(self.model.predict(list(texts)))
            except Exception:  # one bad document must not lose the batch: find it
                probs = []
                for text in texts:
                    try:
                        probs.append(self.model.predict([text])[0])
                    except Exception as exc:
                        probs.append(exc)
            results = []
            for row in probs:
                if isinstance(row, Exception):
                    results.append(LabelResult(status="error", error=f"{type(row).__name__}: {row}"))
                else:
                    audit = json.dumps({label: round(float(p), 4) for label, p in zip(LABELS, row, strict=True)})
                    results.append(LabelResult(status="ok", score=float(row[columns].max()), rationale=audit))
        if progress is not None:
            progress(len(texts))
        return results

    def close(self) -> None:
        pass
