"""The table contracts: one StructType per Delta table under the lake root.

DESIGN.md lists the names; they are what the CLI, the notebooks and users' SQL rely on. Columns may be
added; renaming one needs a migration.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from schemas.vocab import Action


def _f(name: str, dtype: object, nullable: bool = True) -> StructField:
    return StructField(name, dtype, nullable)  # type: ignore[arg-type]


SPAN = StructType([_f("start", IntegerType()), _f("end", IntegerType()), _f("score", DoubleType())])

RAW_DOCS = StructType(
    [
        _f("doc_id", StringType(), False),
        _f("source", StringType()),
        _f("url", StringType()),
        _f("crawl_id", StringType(), False),
        _f("text", StringType(), False),
        _f("meta", MapType(StringType(), StringType())),
        _f("source_file", StringType()),
        _f("position", LongType()),
        _f("ingested_at", TimestampType()),
        _f("run_id", StringType(), False),
    ]
)

QUARANTINE = StructType(
    [
        _f("record_id", StringType(), False),
        _f("run_id", StringType(), False),
        _f("crawl_id", StringType()),
        _f("source_file", StringType(), False),
        _f("position", LongType(), False),
        _f("raw", StringType()),
        _f("reason", StringType(), False),
        _f("quarantined_at", TimestampType()),
    ]
)

#: One row per document: every quality metric (pipelines/stages/quality.py; names as datatrove's, so thresholds can be
#: re-tuned in SQL), C4's cleaned text (what later stages read), the language, and the failed rules.
QUALITY = StructType(
    [
        _f("doc_id", StringType(), False),
        _f("run_id", StringType(), False),
        # Gopher quality
        _f("n_chars", LongType()),
        _f("n_tokens", LongType()),
        _f("n_words", LongType()),  # tokens that are not all punctuation
        _f("mean_word_length", DoubleType()),
        _f("hash_word_ratio", DoubleType()),
        _f("ellipsis_word_ratio", DoubleType()),
        _f("n_lines", LongType()),
        _f("bullet_line_ratio", DoubleType()),
        _f("ellipsis_line_ratio", DoubleType()),
        _f("alpha_word_ratio", DoubleType()),
        _f("stop_word_count", LongType()),  # distinct stop words present
        # Gopher repetition
        _f("dup_para_frac", DoubleType()),
        _f("dup_para_char_frac", DoubleType()),
        _f("dup_line_frac", DoubleType()),
        _f("dup_line_char_frac", DoubleType()),
        *[_f(f"top_{n}_gram_frac", DoubleType()) for n in (2, 3, 4)],
        *[_f(f"dup_{n}_gram_frac", DoubleType()) for n in range(5, 11)],
        # C4
        _f("c4_lines", LongType()),
        _f("c4_lines_kept", LongType()),
        _f("c4_sentences", LongType()),
        _f("c4_lorem_ipsum", BooleanType()),
        _f("c4_curly_bracket", BooleanType()),
        _f("clean_text", StringType()),
        # FineWeb (on clean_text)
        _f("fw_lines", LongType()),
        _f("fw_line_punct_ratio", DoubleType()),
        _f("fw_short_line_ratio", DoubleType()),
        _f("fw_char_dup_ratio", DoubleType()),
        _f("fw_list_ratio", DoubleType()),
        _f("quality_reasons", ArrayType(StringType()), False),
        _f("lang", StringType()),
        _f("lang_score", DoubleType()),
    ]
)

DEDUP = StructType(
    [
        _f("doc_id", StringType(), False),
        _f("run_id", StringType(), False),
        _f("crawl_id", StringType()),
        _f("exact_hash", StringType(), False),
        _f("cluster_id", StringType(), False),  # the cluster's representative (itself when kept)
        _f("dup_of", StringType()),
        _f("is_duplicate", BooleanType(), False),
        _f("dup_kind", StringType()),  # exact_duplicate | near_duplicate | null (kept)
        # the text dedup read (cleaned, redacted) of a document it kept, null for a duplicate: what a later night's
        # verification compares its own text with, so both sides of a pair are the same form
        _f("dedup_text", StringType()),
    ]
)

# One row per (published document, LSH band): the corpus side of incremental near dedup. Only documents in `corpus`
# have rows (written with the decisions that publish them; a document a later stage drops or defers has none, and
# an iteration round that drops one deletes its rows). `bucket` is the band's 64-bit key; `scheme` names the MinHash
# parameters that made it (keys of different schemes never match).
MINHASH_INDEX = StructType(
    [
        _f("band", IntegerType(), False),
        _f("bucket", LongType(), False),
        _f("doc_id", StringType(), False),
        _f("crawl_id", StringType()),
        _f("run_id", StringType()),
        _f("scheme", StringType(), False),
    ]
)

#: Teacher labels, keyed by (doc_id, principle, labeler, prompt_version) and cached by text_hash: a label
#: with status `ok` is never requested again. `score` is on the constitution's [0, 1] scale and is null
#: unless status is `ok` (`unparsable` answers keep the raw answer in `rationale`, never a score).
#: `text` is kept so a classifier can be distilled from labels whose documents are not in `raw_docs`
#: (imported human labels).
LABELS = StructType(
    [
        _f("doc_id", StringType(), False),
        _f("principle", StringType(), False),
        _f("labeler", StringType(), False),
        _f("score", DoubleType()),
        _f("rationale", StringType()),
        _f("prompt_version", StringType()),
        _f("text_hash", StringType()),
        _f("labeled_at", TimestampType()),
        _f("status", StringType()),  # ok | unparsable | error | timeout
        _f("error", StringType()),
        _f("text", StringType()),
        _f("source", StringType()),
    ]
)

#: Classifier scores, one row per (doc_id, principle); `spans` are the sentences scoring at or above the
#: principle's span threshold (character offsets into the text), `model_uri` names the model that scored
#: (`models:/<name>/<version>` for a registered champion, `exemplar:...` for the cold-start scorer).
SCORES = StructType(
    [
        _f("doc_id", StringType(), False),
        _f("principle", StringType(), False),
        _f("score", DoubleType(), False),
        _f("spans", ArrayType(SPAN)),
        _f("model_uri", StringType(), False),
        _f("run_id", StringType(), False),
        # the scoring cascade (pipelines/stages/cascade.py): every stage's score, null where a stage did not see it
        _f("classifier_score", DoubleType()),
        _f("teacher_score", DoubleType()),
        _f("teacher_model", StringType()),
        _f("judge_score", DoubleType()),
        _f("judge_model", StringType()),
        _f("decided_by", StringType()),  # classifier | teacher | judge: whose score is `score`
        # the window (character range of the scored text) whose score is `score` (pipelines/judgement/windowed.py)
        _f("window_start", IntegerType()),
        _f("window_end", IntegerType()),
        # whose judgement the spans are: the decider's sentences over the span threshold, or, where no single
        # sentence crosses it, the deciding window itself (`<decider>:window`); null where not flagged
        _f("spans_by", StringType()),
    ]
)

REVISIONS = StructType(
    [
        _f("doc_id", StringType(), False),
        _f("run_id", StringType(), False),
        _f("original_text", StringType(), False),
        _f("revised_text", StringType()),
        _f("principles", ArrayType(StringType()), False),
        _f("method", StringType(), False),
        _f("model", StringType()),
        _f("prompt_version", StringType()),
        _f("status", StringType(), False),
        _f("reject_reasons", ArrayType(StringType())),
        _f("score_before", DoubleType()),
        _f("score_after", DoubleType()),
        _f("length_ratio", DoubleType()),
        # cosine of MiniLM document embeddings, original vs revised_text (meaning preservation)
        _f("similarity", DoubleType()),
        # set when an excision replaced a failed LLM attempt: that attempt's status and its rewrite (audit)
        _f("fallback_from", StringType()),
        _f("llm_rewrite", StringType()),
        _f("error", StringType()),
        _f("revised_at", TimestampType()),
        # the strongest cascade stage (classifier < teacher < judge) that flagged a principle it was revised for:
        # iteration brings the original text back only when a scorer at least as strong clears it
        # (pipelines/stages/decide.py `hold_revisions`); null in rows written before it was recorded
        _f("flagged_by", StringType()),
    ]
)

DECISIONS = StructType(
    [
        _f("doc_id", StringType(), False),
        _f("run_id", StringType(), False),
        _f("crawl_id", StringType()),
        _f("action", StringType(), False),
        _f("reasons", ArrayType(StringType()), False),
        _f("stage", StringType(), False),
        _f("decided_at", TimestampType()),
    ]
)

CORPUS = StructType(
    [
        _f("doc_id", StringType(), False),
        _f("text", StringType(), False),
        _f("source", StringType()),
        _f("url", StringType()),
        _f("crawl_id", StringType()),
        _f("action", StringType(), False),
        _f("tags", ArrayType(StringType()), False),
        _f("scores", MapType(StringType(), DoubleType())),
        _f("weight", DoubleType(), False),
        _f("run_id", StringType(), False),
        _f("updated_at", TimestampType()),
    ]
)

RUNS = StructType(
    [
        _f("run_id", StringType(), False),
        _f("status", StringType(), False),
        _f("crawl_id", StringType()),
        _f("input_path", StringType()),
        _f("engine", StringType()),
        _f("config_hash", StringType()),
        _f("mlflow_run_id", StringType()),
        _f("counts", MapType(StringType(), LongType())),
        _f("table_versions", MapType(StringType(), LongType())),
        _f("error", StringType()),
        _f("started_at", TimestampType()),
        _f("finished_at", TimestampType()),
        # added later (null in older rows: read as `run`, or `iterate` where crawl_id is `iterate`): what wrote the
        # row - run | iterate | restore | maintain (pipelines/ops/restore.py, maintain.py)
        _f("command", StringType()),
        _f("target_run_id", StringType()),  # restore: the run whose end state the lake was brought back to
        # added later (null in older rows): the run's place in the lake's sequence of runs, 1, 2, ... assigned when
        # it starts under the writer lock. "The latest decision" is the one of the run latest in this sequence
        # (pipelines/core/decisions.py), never an engine clock.
        _f("seq", LongType()),
    ]
)

#: `curate evaluate` (pipelines/evaluate/models.py): one row per model of a Model A vs Model B comparison, and one row
#: `B-A` holding the paired differences. `metrics` maps a metric name (`harm.<principle>.expected_max`,
#: `harm.<principle>.share_above`, `independent.<scorer>.expected_max`, `independent.<scorer>.share_above`,
#: `positive.<principle>.share_above`, `capability.perplexity`, `capability.next_token_accuracy`,
#: `capability.cloze_accuracy`) to its value; `ci_low`/`ci_high` hold its bootstrap confidence interval and
#: `significant` (the `B-A` row only) whether that interval excludes 0. `data` names the training data
#: (`raw_docs@<version>` or `corpus@<version>`).
EVALUATIONS = StructType(
    [
        _f("eval_id", StringType(), False),
        _f("model", StringType(), False),  # A | B | B-A
        _f("data", StringType(), False),
        _f("corpus_version", LongType()),  # the corpus version Model B trained on
        _f("baseline", StringType()),  # raw | corpus@<version>: what Model A trained on
        _f("crawl_ids", ArrayType(StringType())),
        _f("size", StringType(), False),
        _f("n_params", LongType()),
        _f("budget_tokens", LongType()),
        _f("tokens_trained", LongType()),
        _f("loss_tokens", LongType()),  # tokens that carried loss (masked spans and tag tokens do not)
        _f("documents", LongType()),
        _f("epochs", DoubleType()),
        _f("seed", LongType()),
        _f("device", StringType()),
        _f("train_seconds", DoubleType()),
        _f("tokens_per_second", DoubleType()),
        _f("final_loss", DoubleType()),
        _f("weights_sha256", StringType()),
        _f("metrics", MapType(StringType(), DoubleType())),
        _f("ci_low", MapType(StringType(), DoubleType())),
        _f("ci_high", MapType(StringType(), DoubleType())),
        _f("n", MapType(StringType(), LongType())),  # items behind each metric (prompts or documents)
        _f("significant", MapType(StringType(), BooleanType())),
        _f("config_hash", StringType()),
        _f("mlflow_run_id", StringType()),
        _f("created_at", TimestampType()),
    ]
)

#: `decontaminate` (pipelines/stages/decontaminate.py): one row per contaminated document and benchmark item, with the
#: number of distinct target n-grams (or whole short targets) of the item the document holds and what was done.
CONTAMINATION = StructType(
    [
        _f("doc_id", StringType(), False),
        _f("set", StringType(), False),
        _f("item", StringType(), False),  # the item's row number in its set's file
        _f("matched", LongType(), False),
        _f("action", StringType(), False),  # excise | drop | tag (excise that would leave too little: drop)
        _f("run_id", StringType(), False),
        _f("found_at", TimestampType()),
    ]
)

#: The decontamination targets: one row per (hash, set, item). `ngram` is the 64-bit hash of `n_words` normalised
#: words (udfs/ngrams.py); `n_words` is n for n-grams, the word count of a whole short target otherwise. Rows of a
#: set are written once per `set_version` (its file's digest) and scheme (`scheme`: n, min_words, normalisation).
BENCHMARK_NGRAMS = StructType(
    [
        _f("ngram", LongType(), False),
        _f("n_words", IntegerType(), False),
        _f("set", StringType(), False),
        _f("item", StringType(), False),
        _f("set_version", StringType(), False),
        _f("scheme", StringType(), False),
        _f("run_id", StringType()),
        _f("built_at", TimestampType()),
    ]
)

#: `pii` (pipelines/stages/pii.py): per document and kind, how many values were found and where (character offsets
#: into the text the stage read: the cleaned text, `quality.clean_text`), never the values themselves.
PII = StructType(
    [
        _f("doc_id", StringType(), False),
        _f("kind", StringType(), False),  # email | phone | ip | card | iban | ssn
        _f("count", LongType(), False),
        _f("starts", ArrayType(IntegerType()), False),
        _f("ends", ArrayType(IntegerType()), False),
        _f("redacted", BooleanType(), False),  # false when the kind's placeholder is `keep`
        _f("run_id", StringType(), False),
        _f("found_at", TimestampType()),
    ]
)

#: Every contract table by its SQL name. `curate sql` exposes exactly these.
TABLES: dict[str, StructType] = {
    "raw_docs": RAW_DOCS,
    "quarantine": QUARANTINE,
    "quality": QUALITY,
    "dedup": DEDUP,
    "minhash_index": MINHASH_INDEX,
    "labels": LABELS,
    "scores": SCORES,
    "revisions": REVISIONS,
    "decisions": DECISIONS,
    "corpus": CORPUS,
    "runs": RUNS,
    "evaluations": EVALUATIONS,
    "contamination": CONTAMINATION,
    "benchmark_ngrams": BENCHMARK_NGRAMS,
    "pii": PII,
}

ACTIONS = tuple(a.value for a in Action)
