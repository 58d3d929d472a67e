"""Typed, layered run configuration: dataclass defaults < YAML file < CLI overrides.

Validated before any engine starts, so a typo in a key fails in milliseconds with the key's name instead of
half an hour into a nightly run. YAML goes through `yaml.safe_load` only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from pipelines.core.config_evaluate import EvaluateConfig
from pipelines.core.config_hygiene import DecontaminateConfig, PiiConfig
from pipelines.core.config_quality import QualityConfig
from pipelines.core.config_types import ConfigError
from pipelines.core.config_types import str_tuple as _str_tuple
from udfs.llm import LLMConfig
from udfs.records import ParseOptions


def default_cache_dir() -> Path:
    """Where downloaded or converted models live between runs (`CURATE_CACHE`, else ~/.cache/curate)."""
    return Path(os.environ.get("CURATE_CACHE", Path.home() / ".cache" / "curate"))


@dataclass(frozen=True)
class EngineConfig:
    kind: str = "sail"  # sail | remote | classic
    remote: str | None = None  # sc://host:port for kind=remote
    shuffle_partitions: int = 4
    parallelism: int = 2
    # how long to wait for a Spark Connect endpoint to accept a connection, and at most how long one call retries
    # after the connection is lost, before the command fails (exit 2 when it cannot connect at all)
    connect_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if self.connect_timeout_s <= 0:
            raise ConfigError("engine.connect_timeout_s must be > 0")


@dataclass(frozen=True)
class IngestConfig(ParseOptions):
    """Parsing options (udfs/parse.py's `ParseOptions`: field names, size limit) plus the ingest gate's limit."""

    # A crawl whose malformed share exceeds this is not a crawl we should publish from.
    max_quarantine_fraction: float = 0.5


@dataclass(frozen=True)
class DedupConfig:
    """Exact dedup on normalised text, then MinHash-LSH near dedup (pipelines/stages/dedup.py, udfs/minhash.py).

    Defaults (the `edit-robust` preset): 5-character shingles, 112 permutations as 14 bands x 8 rows, candidate
    pairs verified by the exact Jaccard of their shingles (>= 0.7). On crawl_dev's 1,125 injected near duplicates
    (2-10% of the words edited) they find 99% against 62% for word 5-grams, with true-pair precision 1.000; at 1M
    generated documents pair recall 0.918 against 0.282 and removal precision 0.968 against 0.995, for ~11x the
    dedup time (bench/README.md, "Dedup at 1M"). The `fineweb` preset is FineWeb's (Penedo et al. 2024): 5-word
    shingles, 14 x 8, no verification, for teams that want datatrove-identical clusters. Changing shingle, ngram,
    num_perm, bands, rows or seed changes the MinHash scheme: an existing `minhash_index` then has to be rebuilt.
    """

    exact: bool = True
    fuzzy: bool = True  # MinHash-LSH near-duplicate detection
    # a named set of the keys below (DEDUP_PRESETS); keys given beside it win over the preset's
    preset: str | None = None
    shingle: str = "char"  # word | char
    ngram: int = 5
    num_perm: int = 112  # permutations; bands x rows of them make the LSH bands
    bands: int = 14
    rows: int = 8
    seed: int = 1
    # Verify each candidate pair by the exact Jaccard of its shingle sets and keep it only at >= threshold.
    verify: bool = True
    threshold: float = 0.7
    # With verify: in an LSH bucket of at most this many members where a member fails against the bucket's
    # smallest member, that member is verified against every other member too, so two true duplicates that share
    # a bucket with a dissimilar smallest member are still linked. Larger (boilerplate hub) buckets stay stars.
    verify_bucket_max: int = 64
    max_iterations: int = 64  # connected-components rounds before the run fails

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in DEDUP_PRESETS:
            raise ConfigError(f"config key 'dedup.preset' must be one of {sorted(DEDUP_PRESETS)}, got {self.preset!r}")
        if self.shingle not in ("word", "char"):
            raise ConfigError(f"config key 'dedup.shingle' must be one of ['char', 'word'], got {self.shingle!r}")
        if min(self.ngram, self.num_perm, self.bands, self.rows, self.max_iterations) < 1:
            raise ConfigError("dedup.ngram, num_perm, bands, rows and max_iterations must be >= 1")
        if self.verify_bucket_max < 0:
            raise ConfigError("dedup.verify_bucket_max must be >= 0 (0: stars only)")
        if self.bands * self.rows > self.num_perm:
            raise ConfigError(f"dedup.bands x dedup.rows ({self.bands} x {self.rows}) exceeds dedup.num_perm")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError("dedup.threshold must lie in [0, 1]")


#: Named dedup settings (`dedup.preset`). `edit-robust` is the default; `fineweb` reproduces FineWeb's MinHash
#: (datatrove's defaults) for teams that want the same clusters as a FineWeb-style pipeline.
DEDUP_PRESETS: dict[str, dict[str, Any]] = {
    "edit-robust": {"shingle": "char", "ngram": 5, "num_perm": 112, "bands": 14, "rows": 8, "verify": True},
    "fineweb": {"shingle": "word", "ngram": 5, "num_perm": 112, "bands": 14, "rows": 8, "verify": False},
}


@dataclass(frozen=True)
class CascadeConfig:
    """The scoring cascade (pipelines/stages/cascade.py): classifier -> packaged teacher -> judge, per principle."""

    enabled: bool = True
    # a classifier score within this distance of a principle's revise or filter threshold is uncertain
    band: float = 0.2
    teacher_max_docs: int = 1_000_000  # per run; the packaged teacher scores ~5,000 docs/s on 2 cores
    judge: str = ""  # a registered labeler (udfs/labelers.py: `openai` for a served LLM); empty = no judge
    judge_max_docs: int = 200  # per run and principle: an LLM call each (cached by text in `labels`)
    judge_principles: tuple[str, ...] = ()  # empty = every negative principle
    # The judge's answers are written to `labels` (the cache a later run reads, and teacher labels for distill). The
    # nightly run does; `curate score` and `curate evaluate` score texts outside the lake and do not, unless asked.
    judge_writes_labels: bool = True
    # the audit (pipelines/stages/audit.py) scores at most this many kept documents per run, a hash-chosen sample
    audit_max_docs: int = 20_000

    def __post_init__(self) -> None:
        _str_tuple(self, "classify.cascade.judge_principles", self.judge_principles)
        if (
            not 0.0 <= self.band <= 1.0
            or self.teacher_max_docs < 0
            or self.judge_max_docs < 0
            or self.audit_max_docs < 0
        ):
            raise ConfigError("classify.cascade.band must lie in [0, 1] and the max_docs be >= 0")


@dataclass(frozen=True)
class ClassifyConfig:
    constitution: str | None = None  # path; None = the packaged default constitution
    # 128 tokens: 4x the throughput of 256 on CPU (measured 54 vs 13 docs/s on 2 cores)
    max_tokens: int = 128
    batch_size: int = 32
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # 0 = one per core the engine gives the worker
    # Score with the registered champion `models:/<model_prefix>_<principle>@champion` where one exists (the
    # exemplar scorer otherwise). registry_uri None = the lake's own MLflow store (<lake>/_state/mlflow.db).
    use_champion: bool = True
    registry_uri: str | None = None
    model_prefix: str = "curate"
    spans: bool = True  # sentence-level spans for documents at or above a principle's span threshold
    # A document is scored as the maximum over sentence-aligned windows of `window_words` words (0 = what fits
    # max_tokens). The encoder reads every window (`all`) or the first and the top_k - 1 the cheap tier ranks
    # highest (`top_k`); `auto` = all on a GPU, top_k on CPU (pipelines/judgement/windowed.py).
    windows: str = "auto"
    top_k: int = 3
    window_words: int = 0
    cascade: CascadeConfig = field(default_factory=CascadeConfig)

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.window_words < 0:
            raise ConfigError("classify.top_k must be >= 1 and classify.window_words >= 0 (0 = what fits max_tokens)")

    @property
    def window_length(self) -> int:
        """Words per window: `window_words`, or what fits `max_tokens` when it is 0. Every scorer reads this."""
        from udfs.windows import words_for_tokens

        return self.window_words or words_for_tokens(self.max_tokens)


@dataclass(frozen=True)
class LabelConfig:
    """Teacher labelling (`curate label`): what to sample and how to call the labeler."""

    sample: int = 200
    uncertain_fraction: float = 0.2  # share of the sample taken from the most uncertain current scores
    score_bins: int = 5  # strata of the current score (plus one for unscored documents), crossed with source
    seed: int = 0
    chunk_size: int = 16  # labels are written after every chunk: a crash loses at most one chunk
    max_chars: int = 2_000  # document text sent to an LLM labeler is cut here
    llm: LLMConfig = field(
        default_factory=lambda: LLMConfig(
            backend="embedded", max_concurrency=1, timeout_s=60.0, max_retries=1, max_tokens=4
        )
    )


@dataclass(frozen=True)
class DistillConfig:
    """Distillation (`curate distill`): model kind, split and training settings."""

    kind: str = "encoder"  # encoder (frozen MiniLM + head) | linear (hashed n-grams) | finetune
    # comma-separated labeler names to learn from (`human:*`: every human import); None = the labelers named for the
    # principle: its teacher, human imports, iterate.labeler, the cascade's judge (distill.py `label_sources`)
    labelers: str | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    seed: int = 0
    c: float | None = None  # inverse L2 strength of the logistic heads; None = chosen on the validation split
    n_features: int = 2**20  # hashed n-gram buckets (linear kind)
    min_labels: int = 20
    epochs: int = 2  # finetune kind
    # Class-weighted logistic fit (sklearn "balanced"; the finetune loss's pos_weight). Off: it did not improve
    # ROC-AUC on 70% or 10% positives and pushes raw scores towards 0.5 (bench/distill_compare.py, bench/README.md).
    balance: bool = False
    # none | platt | isotonic: a monotone map fitted on the validation split after training, saved in the head,
    # so that a score of 0.7 means ~70% teacher positives (the fixed thresholds assume it). Platt: test ECE <= 0.025
    # in every measured setting with the ranking unchanged; isotonic tied scores and cost ROC-AUC out of domain.
    calibrate: str = "platt"


@dataclass(frozen=True)
class ReviseConfig:
    enabled: bool = True
    max_docs: int = 3  # LLM rewrites per run (cost cap), highest scores first
    # Excisions per run (method excise, or fallback excise for documents the LLM did not take: over max_docs,
    # over max_doc_chars). An excision costs a re-score of the document's sentences (~60 ms on 2 CPU cores).
    max_excise_docs: int = 1_000
    # Longer documents are not sent to the LLM: a rewrite must fit in llm.max_tokens (about 4 chars a token).
    max_doc_chars: int = 1_200
    min_length_ratio: float = 0.3
    max_length_ratio: float = 2.0
    # Wall-clock budget for the LLM part of a run; documents not sent by then are `over_budget` (see over_budget).
    time_budget_s: float = 300.0
    # llm: rewrite with the LLM, validate, fall back per `fallback`; excise: remove the flagged sentences, no LLM.
    # auto: llm where a rewrite is affordable - a configured endpoint (llm.backend openai with a base_url) or a GPU
    # for the embedded model - else excise: the embedded 135M model on CPU spent 208 s of a 271 s night on one
    # document and timed out. `method: llm` still runs the embedded model on CPU (the demo does).
    method: str = "auto"  # auto | llm | excise
    # What happens to a flagged document whose LLM rewrite was not accepted (rejected, error, timeout,
    # over_budget): excise = try excision, drop it when that fails too; drop; tag (keep it unrevised, tagged).
    # With excise, documents over max_docs or max_doc_chars are excised too (up to max_excise_docs).
    fallback: str = "excise"  # excise | drop | tag
    # What happens to a flagged document the run had no budget for (`over_cap`: beyond max_docs / max_excise_docs;
    # `over_budget`: time_budget_s spent, fallback not excise): defer = no decision on its content tonight, not in
    # the corpus and not a drop, and the next run takes it first; tag = keep it unrevised, tagged; drop.
    # A budget never becomes a drop unless this says so.
    over_budget: str = "defer"  # defer | tag | drop
    # Meaning preservation: cosine of MiniLM document embeddings (original vs LLM rewrite) must lie in
    # [min_similarity, max_similarity]. Excisions are not held to it (removing the flagged sentences moves the
    # embedding by design); their similarity is recorded.
    min_similarity: float = 0.6
    max_similarity: float = 1.0
    # An excision must keep at least this share of the original's characters, or the document is dropped.
    excise_min_ratio: float = 0.5
    # Round 1 removes the flagged sentences; each further round also removes the next most offending sentence,
    # while the re-scored document is still flagged.
    excise_rounds: int = 3
    # The embedded server generates one request at a time; more concurrency would only queue (and time out).
    llm: LLMConfig = field(
        default_factory=lambda: LLMConfig(
            backend="embedded", max_concurrency=1, timeout_s=180.0, max_retries=1, max_tokens=384
        )
    )


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = True
    experiment: str = "curate"
    tracking_uri: str | None = None  # None = sqlite under the lake's _state directory


@dataclass(frozen=True)
class IterateConfig:
    """`curate iterate`: relabel a sample, retrain, rescore and re-decide until a fixed point
    (pipelines/chains/iterate.py)."""

    rounds: int = 3
    labeler: str = "exemplar"  # a registered labeler (udfs/labelers.py), or human:<dataset> = imported labels only
    sample: int = 200  # documents relabelled per principle and round (the label cache makes repeats free)
    principles: tuple[str, ...] = ()  # principles to relabel and retrain; empty = all of them
    evaluate: bool = False  # after each published round, `curate evaluate` its corpus version (evaluate.* settings)

    def __post_init__(self) -> None:
        _str_tuple(self, "iterate.principles", self.principles)
        if self.rounds < 1 or self.sample < 0:
            raise ConfigError("iterate.rounds must be >= 1 and iterate.sample >= 0")


SECRET_KINDS = (
    "aws_access_key",
    "github_token",
    "slack_token",
    "google_api_key",
    "stripe_secret_key",
    "private_key",
)


@dataclass(frozen=True)
class SecretsConfig:
    """Credentials in the text (pipelines/stages/secrets.py): a document holding one is dropped as `secret:<kind>`."""

    enabled: bool = True
    kinds: tuple[str, ...] = SECRET_KINDS
    # the gate fails a batch in which more than this share of documents hold a credential
    max_fraction: float = 0.05

    def __post_init__(self) -> None:
        _str_tuple(self, "secrets.kinds", self.kinds)
        unknown = sorted(set(self.kinds) - set(SECRET_KINDS))
        if unknown:
            raise ConfigError(f"config key 'secrets.kinds' names unknown {unknown}: use {SECRET_KINDS}")
        if not 0.0 <= self.max_fraction <= 1.0:
            raise ConfigError("secrets.max_fraction must lie in [0, 1]")


@dataclass(frozen=True)
class ExportConfig:
    """`curate export`: training-ready shards of a corpus version (pipelines/ops/export.py)."""

    format: str = "jsonl"  # jsonl | parquet
    max_rows_per_shard: int = 100_000
    max_bytes_per_shard: int = 256 * 2**20  # of encoded text (JSONL lines; text + metadata for Parquet)
    tag_tokens: bool = True  # prepend the tag tokens of a tagged document's principles (constitution tag_token)
    tag_separator: str = "\n"  # between the tag tokens and the text
    spans: bool = True  # loss-masking spans of the flagged principles of tagged documents
    seed: int = 0  # the deterministic shuffle of the exported rows (repeat selection does not depend on it)

    def __post_init__(self) -> None:
        if self.max_rows_per_shard < 1 or self.max_bytes_per_shard < 1:
            raise ConfigError("export.max_rows_per_shard and export.max_bytes_per_shard must be >= 1")


@dataclass(frozen=True)
class RunConfig:
    engine: EngineConfig = field(default_factory=EngineConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    secrets: SecretsConfig = field(default_factory=SecretsConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    decontaminate: DecontaminateConfig = field(default_factory=DecontaminateConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    revise: ReviseConfig = field(default_factory=ReviseConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    iterate: IterateConfig = field(default_factory=IterateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


_ALLOWED = {
    ("engine", "kind"): {"sail", "remote", "classic"},
    ("classify", "device"): {"auto", "cpu", "cuda"},
    ("classify", "windows"): {"auto", "all", "top_k"},
    ("revise", "fallback"): {"excise", "drop", "tag"},
    ("revise", "over_budget"): {"defer", "tag", "drop"},
    ("revise", "method"): {"auto", "llm", "excise"},
    ("revise", "llm", "backend"): {"embedded", "openai"},
    ("label", "llm", "backend"): {"embedded", "openai"},
    ("export", "format"): {"jsonl", "parquet"},
    ("evaluate", "size"): {"micro", "tiny", "small", "base"},
    ("evaluate", "device"): {"auto", "cpu", "cuda"},
    ("distill", "calibrate"): {"none", "platt", "isotonic"},
    ("distill", "kind"): {"encoder", "linear", "finetune"},
}


def _coerce(value: Any, hint: Any, path: str, current: Any = None) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is not None and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}' must be a mapping, got {type(value).__name__}")
        return _build(hint, value, path, current)  # type: ignore[arg-type]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{path}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{path}' must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}' must be a string, got {value!r}")
        return value
    return value


def _build(cls: type, data: dict[str, Any], prefix: str = "", base: Any = None) -> Any:
    """`cls` from `data`; keys not given keep `base`'s values (the field's own default instance, whose defaults may
    differ from the class's: `revise.llm` and `label.llm` are both an `LLMConfig`)."""
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in known:
            raise ConfigError(f"unknown config key '{path}' (known here: {', '.join(sorted(known))})")
        kwargs[key] = _coerce(value, hints[key], path, None if base is None else getattr(base, key))
        allowed = _ALLOWED.get(tuple(path.split(".")))
        if allowed is not None and kwargs[key] not in allowed:
            raise ConfigError(f"config key '{path}' must be one of {sorted(allowed)}, got {value!r}")
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key '{dotted}' crosses a non-mapping value")
    node[leaf] = value


def safe_load_file(path: Path, error: type[Exception]) -> Any:
    """`yaml.safe_load` of a file; a syntax error becomes `error` with the file, line and column, not a traceback."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{path} is not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Load and validate: defaults, then the YAML file, then dotted overrides (`engine.kind: classic`)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        loaded = safe_load_file(p, ConfigError)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        data = loaded
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    _apply_dedup_preset(data)
    cfg: RunConfig = _build(RunConfig, data, base=RunConfig())
    _validate(cfg)
    return cfg


def _apply_dedup_preset(data: dict[str, Any]) -> None:
    """Lay a named preset's keys under the dedup keys given explicitly (those win)."""
    dedup = data.get("dedup")
    if not isinstance(dedup, dict) or dedup.get("preset") is None:
        return
    # an unknown name is left to DedupConfig's own check, which says what the presets are
    data["dedup"] = {**DEDUP_PRESETS.get(dedup["preset"], {}), **dedup}


def _validate(cfg: RunConfig) -> None:
    if cfg.engine.kind == "remote" and not (cfg.engine.remote or "").startswith("sc://"):
        raise ConfigError("engine.kind 'remote' needs engine.remote set to an sc://host:port URL")
    q = cfg.quality
    if q.min_words < 0 or q.max_words < q.min_words:
        raise ConfigError("quality.min_words must be >= 0 and <= quality.max_words")
    if not 0.0 <= cfg.ingest.max_quarantine_fraction <= 1.0:
        raise ConfigError("ingest.max_quarantine_fraction must lie in [0, 1]")
    if cfg.ingest.max_doc_bytes <= 0:
        raise ConfigError("ingest.max_doc_bytes must be positive")
    r = cfg.revise
    if r.time_budget_s <= 0:
        raise ConfigError("revise.time_budget_s must be positive")
    if r.max_docs < 0 or r.max_excise_docs < 0:
        raise ConfigError("revise.max_docs and revise.max_excise_docs must be >= 0")
    if not 0 < r.min_length_ratio <= r.max_length_ratio:
        raise ConfigError("revise.min_length_ratio must be > 0 and <= revise.max_length_ratio")
    if not 0.0 <= r.min_similarity <= r.max_similarity <= 1.0:
        raise ConfigError("revise.min_similarity and revise.max_similarity must satisfy 0 <= min <= max <= 1")
    if not 0.0 < r.excise_min_ratio <= 1.0 or r.excise_rounds < 1:
        raise ConfigError("revise.excise_min_ratio must lie in (0, 1] and revise.excise_rounds be >= 1")
    if r.llm.backend == "openai" and not r.llm.base_url:
        raise ConfigError("revise.llm.backend 'openai' needs revise.llm.base_url")


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_revise_method(cfg: RunConfig, gpu: Callable[[], bool] = cuda_available) -> RunConfig:
    """`cfg` with `revise.method: auto` made concrete (see ReviseConfig.method), so that what a run records in
    `runs` and MLflow is the method it used."""
    r = cfg.revise
    if r.method != "auto":
        return cfg
    endpoint = r.llm.backend == "openai" and bool(r.llm.base_url)
    method = "llm" if endpoint or (r.enabled and gpu()) else "excise"
    return replace(cfg, revise=replace(r, method=method))
