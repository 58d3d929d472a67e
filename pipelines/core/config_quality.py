"""The quality stage's section of the config (`quality.*`, pipelines/stages/quality.py): its own module, as the
hygiene and evaluate sections are, so that no config module passes 600 lines. Part of `RunConfig`
(pipelines/core/config.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.core.config_types import ConfigError
from pipelines.core.config_types import str_tuple as _str_tuple


@dataclass(frozen=True)
class GopherRepetitionConfig:
    """Gopher repetition (Rae et al. 2021, Table A1); names and defaults as datatrove 0.10.1's filter."""

    dup_line_frac: float = 0.3
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_2_gram_frac: float = 0.20
    top_3_gram_frac: float = 0.18
    top_4_gram_frac: float = 0.16
    dup_5_gram_frac: float = 0.15
    dup_6_gram_frac: float = 0.14
    dup_7_gram_frac: float = 0.13
    dup_8_gram_frac: float = 0.12
    dup_9_gram_frac: float = 0.11
    dup_10_gram_frac: float = 0.10


@dataclass(frozen=True)
class C4Config:
    """C4 (Raffel et al. 2020, section 2.2) line cleaning and document rules; defaults as datatrove 0.10.1's."""

    remove_citations: bool = True
    filter_no_terminal_punct: bool = True  # FineWeb's recipe sets this to false
    min_num_sentences: int = 5  # -1 disables
    min_words_per_line: int = 3
    max_word_length: int = 1000  # -1 disables
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


@dataclass(frozen=True)
class FineWebConfig:
    """FineWeb's own rules (Penedo et al. 2024, section 3.2.3); defaults as datatrove 0.10.1's filter."""

    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


@dataclass(frozen=True)
class LangConfig:
    """Language id (udfs/langid.py, CLD3): documents outside `allow` or below `min_score` get a reason."""

    model: str = "cld3"  # cld3 | none (no language id: lang and lang_score stay null)
    allow: tuple[str, ...] = ("en",)  # ISO 639-1 codes; empty = every language
    min_score: float = 0.65  # FineWeb's threshold for its English filter
    max_chars: int = 2000  # the model reads this prefix of each document (CLD3 itself stops at 4000 bytes)

    def __post_init__(self) -> None:
        _str_tuple(self, "quality.lang.allow", self.allow)


QUALITY_RULE_SETS = ("gopher_repetition", "gopher_quality", "c4", "fineweb", "lang")


@dataclass(frozen=True)
class QualityConfig:
    """The quality stage (pipelines/stages/quality.py). The Gopher quality thresholds (Rae et al. 2021, Table A1; names
    as datatrove 0.10.1's GopherQualityFilter) sit at the top level; each other rule set has its own section.
    `rule_sets` chooses which sets give reasons; every metric is computed either way."""

    rule_sets: tuple[str, ...] = QUALITY_RULE_SETS
    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_hash_word_ratio: float = 0.1
    max_ellipsis_word_ratio: float = 0.1
    max_bullet_line_ratio: float = 0.9
    max_ellipsis_line_ratio: float = 0.3
    min_alpha_word_ratio: float = 0.8
    min_stop_words: int = 2
    stop_words: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")
    bullets: tuple[str, ...] = ("•", "-")  # a line that starts with one of these is a bullet line
    repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    c4: C4Config = field(default_factory=C4Config)
    fineweb: FineWebConfig = field(default_factory=FineWebConfig)
    lang: LangConfig = field(default_factory=LangConfig)

    def __post_init__(self) -> None:
        for name in ("rule_sets", "stop_words", "bullets"):
            _str_tuple(self, f"quality.{name}", getattr(self, name))
        unknown = sorted(set(self.rule_sets) - set(QUALITY_RULE_SETS))
        if unknown:
            raise ConfigError(f"config key 'quality.rule_sets' names unknown {unknown}: use {QUALITY_RULE_SETS}")
        if self.lang.model not in ("cld3", "none"):
            raise ConfigError(f"config key 'quality.lang.model' must be 'cld3' or 'none', got {self.lang.model!r}")
        if self.lang.max_chars < 1 or self.c4.min_words_per_line < 0 or self.fineweb.short_line_length < 0:
            raise ConfigError("quality.lang.max_chars must be >= 1; c4.min_words_per_line, short_line_length >= 0")
