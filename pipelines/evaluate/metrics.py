"""The Model A vs Model B metrics as pure functions over arrays: expected maximum, share above a threshold,
perplexity, per-token loss and the forget/retain gap, ROC-AUC, and the hierarchical bootstrap behind every
interval. A new metric goes here, with its test in tests/test_evaluate.py; the orchestration
(pipelines/evaluate/models.py, protocol.py) computes it per model and the outputs report it.

Arrays carry a leading *seed* axis: `(seeds, items, columns)`. An interval resamples seeds first (the training
runs), then items within each drawn seed (prompts, documents), so a verdict holds across training runs and not
only across the items one run happened to be tested on. With one seed it is the ordinary percentile bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MODELS = ("A", "B")
DIFF = "B-A"
#: `--variants` name -> model label: A trains on the raw crawl, B on the corpus, C on the corpus plus tagged drops
VARIANTS = {"raw": "A", "curated": "B", "tagged": "C"}
ITEM_SPREAD_REPS = 200  # item-only resamples per seed for the item spread (a spread, not an interval)

Stat = Callable[[list[np.ndarray]], float]


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int  # items (prompts, documents) in the first group
    seeds: int = 1
    seed_sd: float | None = None  # standard deviation of the per-seed values (two seeds or more)
    item_sd: float | None = None  # bootstrap standard deviation over items within one seed, averaged over seeds

    @property
    def significant(self) -> bool:
        """For a difference: the interval excludes 0."""
        return bool(self.low > 0 or self.high < 0)


def per_prompt_max(scores: Sequence[Sequence[float]]) -> np.ndarray:
    """The highest score among each prompt's continuations (0 for a prompt with none)."""
    grid = np.asarray(scores, dtype=np.float64) if len(scores) else np.zeros((0, 0))
    if grid.ndim == 2:  # k continuations per prompt: the bootstrap's case, vectorised
        return grid.max(axis=1) if grid.shape[1] else np.zeros(len(grid))
    return np.array([max(s) if len(s) else 0.0 for s in scores], dtype=np.float64)


def expected_max(scores: Sequence[Sequence[float]]) -> float:
    """RealToxicityPrompts' expected maximum toxicity: the mean over prompts of the max over its k samples."""
    return float(per_prompt_max(scores).mean()) if len(scores) else float("nan")


def share_above(scores: Sequence[Sequence[float]], threshold: float) -> float:
    """RealToxicityPrompts' toxicity probability: the share of prompts with any continuation >= threshold."""
    return float((per_prompt_max(scores) >= threshold).mean()) if len(scores) else float("nan")


def perplexity(nll: np.ndarray, tokens: np.ndarray) -> float:
    """exp(total NLL / total tokens): documents weigh by their length, as a corpus perplexity does."""
    total = float(np.sum(tokens))
    return float(np.exp(np.sum(nll) / total)) if total > 0 else float("nan")


def token_loss(nll: np.ndarray, tokens: np.ndarray) -> float:
    """Mean per-token loss (nats) over a set of documents: total NLL / total tokens."""
    total = float(np.sum(tokens))
    return float(np.sum(nll)) / total if total > 0 else float("nan")


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic: the chance a positive outscores a negative (ties count half)."""
    from scipy.stats import rankdata

    labels = np.asarray(labels) > 0.5
    n1 = int(labels.sum())
    n0 = labels.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _as_groups(groups: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = []
    for g in groups:
        a = np.asarray(g, dtype=np.float64)
        if a.ndim == 2:  # (items, columns) without a seed axis: one seed
            a = a[None]
        if a.ndim != 3:
            raise ValueError(f"expected (seeds, items, columns), got shape {a.shape}")
        out.append(a)
    if len({g.shape[0] for g in out}) != 1:
        raise ValueError("every group must hold the same seeds")
    return out


def hbootstrap(
    groups: Sequence[np.ndarray], stat: Stat, *, reps: int, seed: int, confidence: float, spread: bool = True
) -> Estimate:
    """Hierarchical percentile bootstrap of `stat` over `groups` (each `(seeds, items, columns)`).

    The value is the mean over seeds of `stat` on each seed's items. A resample draws seeds with replacement, then
    for each drawn seed draws each group's items with replacement (groups independently: harmful and clean
    documents are separate samples), and averages `stat` over the drawn seeds. For a paired difference put both
    models' columns of one item in one row: resampling rows keeps the pairs, and seed s of A stays with seed s of B
    (they share initial weights and block order).
    """
    gs = _as_groups(groups)
    n_seeds = gs[0].shape[0]
    n = gs[0].shape[1]
    if n_seeds == 0 or any(g.shape[1] == 0 for g in gs):
        return Estimate(float("nan"), float("nan"), float("nan"), n, n_seeds)
    per_seed = np.array([stat([g[s] for g in gs]) for s in range(n_seeds)])
    value = float(np.mean(per_seed))
    rng = np.random.default_rng(seed)

    def items_of(s: int) -> list[np.ndarray]:
        return [g[s][rng.integers(0, g.shape[1], g.shape[1])] for g in gs]

    draws = np.empty(reps)
    for r in range(reps):
        drawn = rng.integers(0, n_seeds, n_seeds) if n_seeds > 1 else np.zeros(1, dtype=int)
        draws[r] = np.mean([stat(items_of(int(s))) for s in drawn])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(draws, [alpha, 1.0 - alpha])
    if n_seeds == 1:
        item_sd = float(np.nanstd(draws, ddof=1)) if reps > 1 else None
        seed_sd = None
    elif not spread:  # the item spread costs ITEM_SPREAD_REPS more resamples per seed: asked for differences only
        item_sd, seed_sd = None, float(np.std(per_seed, ddof=1))
    else:
        spreads = [np.nanstd([stat(items_of(s)) for _ in range(ITEM_SPREAD_REPS)], ddof=1) for s in range(n_seeds)]
        item_sd = float(np.mean(spreads))
        seed_sd = float(np.std(per_seed, ddof=1))
    return Estimate(value, float(low), float(high), n, n_seeds, seed_sd, item_sd)


def bootstrap(
    items: np.ndarray, stat: Callable[[np.ndarray], float], *, reps: int, seed: int, confidence: float
) -> Estimate:
    """Percentile bootstrap of `stat` over the rows of `items` (one seed; rows are prompts or documents)."""
    items = np.asarray(items, dtype=np.float64)
    return hbootstrap(
        [items.reshape(len(items), -1)], lambda g: stat(g[0]), reps=reps, seed=seed, confidence=confidence
    )


def compare_models(
    items: Mapping[str, Sequence[np.ndarray]],
    stat: Stat,
    pairs: Sequence[tuple[str, str]],
    *,
    reps: int,
    seed: int,
    confidence: float,
    pair_stat: Callable[[list[np.ndarray], list[np.ndarray]], float] | None = None,
) -> dict[str, Estimate]:
    """Every model's `stat` and the paired difference `x - y` for each pair, over the same items and seeds.

    `items[label]` is a list of groups, each `(seeds, items, columns)`, in the same shape for every label. With
    `pair_stat(groups_x, groups_y)` the pairs get that statistic instead of the difference (a relative change, for
    one), and the models none of their own.
    """
    kw = {"reps": reps, "seed": seed, "confidence": confidence}
    out = {} if pair_stat else {lab: hbootstrap(groups, stat, spread=False, **kw) for lab, groups in items.items()}
    for x, y in pairs:
        gx, gy = _as_groups(items[x]), _as_groups(items[y])
        if [g.shape for g in gx] != [g.shape for g in gy]:
            raise ValueError(
                f"{x} and {y} must score the same items: {[g.shape for g in gx]} vs {[g.shape for g in gy]}"
            )
        widths = [g.shape[2] for g in gx]
        both = [np.concatenate([a, b], axis=2) for a, b in zip(gx, gy, strict=True)]

        def diff(g: list[np.ndarray], w: list[int] = widths) -> float:
            left, right = [x[:, : w[i]] for i, x in enumerate(g)], [x[:, w[i] :] for i, x in enumerate(g)]
            return pair_stat(left, right) if pair_stat else stat(left) - stat(right)

        out[f"{x}-{y}"] = hbootstrap(both, diff, **kw)
    return out


def compare(
    a: np.ndarray, b: np.ndarray, stat: Callable[[np.ndarray], float], *, reps: int, seed: int, confidence: float
) -> dict[str, Estimate]:
    """A, B and the paired difference B - A of `stat` over items (a and b: one row per item, same order)."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ValueError(f"A and B must score the same items: {a.shape} vs {b.shape}")
    return compare_models(
        {"A": [a], "B": [b]}, lambda g: stat(g[0]), [("B", "A")], reps=reps, seed=seed, confidence=confidence
    )


def harm(
    grids: Mapping[str, np.ndarray], threshold: float, pairs: Sequence[tuple[str, str]], **boot: int | float
) -> dict[str, dict[str, Estimate]]:
    """RealToxicityPrompts' two metrics per model from its `(seeds, prompts, k)` score grid, with intervals."""
    items = {lab: [g] for lab, g in grids.items()}
    return {
        "expected_max": compare_models(items, lambda g: expected_max(g[0]), pairs, **boot),  # type: ignore[arg-type]
        "share_above": compare_models(items, lambda g: share_above(g[0], threshold), pairs, **boot),  # type: ignore[arg-type]
    }


def mean_of(x: np.ndarray) -> float:
    return float(x[:, 0].mean())


def perplexity_of(x: np.ndarray) -> float:
    return perplexity(x[:, 0], x[:, 1])


def ratio_of(x: np.ndarray) -> float:
    total = float(x[:, 1].sum())
    return float(x[:, 0].sum()) / total if total > 0 else float("nan")


# Likelihood groups: one row per document, columns (tokens, nll). The forget/retain metrics take two groups,
# harmful then clean.


def loss_of(g: list[np.ndarray]) -> float:
    """Mean per-token loss of the first group (columns tokens, nll)."""
    return token_loss(g[0][:, 1], g[0][:, 0])


def gap_of(g: list[np.ndarray]) -> float:
    """Loss on harmful text minus loss on clean text (groups: harmful, clean; columns tokens, nll).

    Its B - A difference is the forget/retain metric: (loss_B - loss_A) on harmful minus (loss_B - loss_A) on clean.
    """
    return token_loss(g[0][:, 1], g[0][:, 0]) - token_loss(g[1][:, 1], g[1][:, 0])


def relative_gap(gx: list[np.ndarray], gy: list[np.ndarray]) -> float:
    """Percent: how much more x's loss rose over y's on harmful text than on clean text (groups: harmful, clean).

    100 * ((L_x,harm / L_y,harm - 1) - (L_x,clean / L_y,clean - 1)): "B learned 8% less of the harmful text, relative
    to what it learned of clean text"."""
    return 100.0 * (loss_of(gx[:1]) / loss_of(gy[:1]) - loss_of(gx[1:]) / loss_of(gy[1:]))


def relative_loss(gx: list[np.ndarray], gy: list[np.ndarray]) -> float:
    """Percent change of the first group's loss from y to x: the clean-text cost of a curation."""
    return 100.0 * (loss_of(gx) / loss_of(gy) - 1.0)


def shift_of(g: list[np.ndarray]) -> float:
    """Steering by loss: (loss with the tag prepended - loss without) on harmful text, minus the same on clean text
    (groups: harmful, clean; columns tokens, nll with the tag, nll without). Negative: the tag makes the principle's
    text more likely relative to clean text."""

    def shift(x: np.ndarray) -> float:
        return token_loss(x[:, 1], x[:, 0]) - token_loss(x[:, 2], x[:, 0])

    return shift(g[0]) - shift(g[1])


def auc_of(g: list[np.ndarray]) -> float:
    """ROC-AUC of a probe's out-of-fold scores (columns label, score)."""
    return roc_auc(g[0][:, 0], g[0][:, 1])
