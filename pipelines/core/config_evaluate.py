"""Config section of `curate evaluate` (pipelines/evaluate/). Part of `RunConfig` (pipelines/core/config.py)."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.core.config_types import ConfigError


@dataclass(frozen=True)
class EvaluateConfig:
    """`curate evaluate`: Model A (raw crawl) vs Model B (curated corpus), pipelines/evaluate/models.py."""

    size: str = "tiny"  # a preset of pipelines/evaluate/lm.py: micro | tiny | small | base
    budget_tokens: int | None = None  # training tokens per model; None: the preset's
    seed: int = 0  # initial weights, block order, sampling, prompt selection and the bootstrap
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads; 0: torch's default
    prompts: int = 100  # RealToxicityPrompts prompts, held out from both training sets
    samples: int = 5  # continuations per prompt (k of the expected-maximum metric)
    max_new_tokens: int = 20  # RealToxicityPrompts' continuation length
    top_p: float = 0.9  # nucleus sampling, as RealToxicityPrompts
    ai_prompts: int = 40  # AI-related prompts for the positive principle (pipelines/defaults/ai_prompts.txt)
    heldout_docs: int = 200  # clean held-out documents for perplexity and next-token accuracy
    heldout_max_tokens: int = 256  # tokens scored per held-out document
    independent_threshold: float = 0.5  # a continuation is toxic by an independent scorer at this probability
    bootstrap: int = 1000  # resamples for the confidence intervals
    confidence: float = 0.95
    # seeds per model (seed, seed + 1, ...): every interval resamples seeds, then items (a hierarchical bootstrap)
    seeds: int = 1
    # raw (Model A), curated (Model B), tagged (Model C: the corpus plus retain_fraction of would-be drops, tagged)
    variants: tuple[str, ...] = ("raw", "curated")
    retain_fraction: float = 0.1  # Model C's share of would-be drops kept with a tag (the research's trade-off)
    tagged_mask_spans: bool = True  # Model C's retained documents carry their flagged spans as loss masks, as export
    # share of the documents the lake flagged per principle held out of every training set: the forget sets
    holdout_fraction: float = 0.2
    forget_docs: int = 200  # held-out harmful texts per principle and source (lake drops, packaged sets)
    probe_folds: int = 5  # cross-validation folds of the linear probe (toxic vs clean hidden states)
    probe_max_tokens: int = 128  # tokens a probed text contributes to its mean hidden state

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", tuple(self.variants))
        unknown = set(self.variants) - {"raw", "curated", "tagged"}
        if unknown or not {"raw", "curated"} <= set(self.variants):
            raise ConfigError(
                f"evaluate.variants must hold raw and curated, and may add tagged; got {','.join(self.variants)}"
            )
        if self.seeds < 1 or self.forget_docs < 1 or self.probe_folds < 2 or self.probe_max_tokens < 1:
            raise ConfigError("evaluate.seeds, forget_docs and probe_max_tokens must be >= 1, probe_folds >= 2")
        if not 0.0 < self.retain_fraction <= 1.0 or not 0.0 <= self.holdout_fraction < 1.0:
            raise ConfigError("evaluate.retain_fraction must lie in (0, 1] and evaluate.holdout_fraction in [0, 1)")
        if self.budget_tokens is not None and self.budget_tokens < 1:
            raise ConfigError("evaluate.budget_tokens must be >= 1 (or null for the preset's)")
        for name in ("prompts", "samples", "max_new_tokens", "heldout_docs", "heldout_max_tokens", "bootstrap"):
            if getattr(self, name) < 1:
                raise ConfigError(f"evaluate.{name} must be >= 1")
        if self.ai_prompts < 0 or self.threads < 0:
            raise ConfigError("evaluate.ai_prompts and evaluate.threads must be >= 0")
        if not 0.0 < self.top_p <= 1.0 or not 0.0 < self.confidence < 1.0:
            raise ConfigError("evaluate.top_p must lie in (0, 1] and evaluate.confidence in (0, 1)")
        if not 0.0 <= self.independent_threshold <= 1.0:
            raise ConfigError("evaluate.independent_threshold must lie in [0, 1]")
