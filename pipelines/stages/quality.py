"""Quality heuristics: Gopher quality, Gopher repetition, C4, FineWeb and language id, as `quality` columns.

Score first, decide later: this stage drops nothing. It adds one column per metric, `clean_text` (C4's line
cleaning: what later stages read instead of `text`, which stays as ingested in `raw_docs`), `lang` /
`lang_score`, and `quality_reasons`: the rules a document fails (empty = passes). A threshold can therefore be
re-tuned in SQL over the `quality` table without recomputing anything.

Rule sets (`RULE_SETS`, versioned names; `quality.rule_sets` picks which give reasons) follow datatrove 0.10.1's
filters - same defaults, same reason names (prefixed with the rule set where datatrove's alone would be
ambiguous), same order of checks - so bench/quality_bench.py compares decisions one to one:

- gopher_repetition (GopherRepetitionFilter): gopher_rep_ + empty, dup_para_frac, dup_para_char_frac,
  dup_line_frac, dup_line_char_frac, top_{2,3,4}_gram, duplicated_{5..10}_n_grams;
- gopher_quality (GopherQualityFilter): gopher_short_doc, gopher_long_doc, gopher_below_avg_threshold,
  gopher_above_avg_threshold, gopher_too_many_hashes, gopher_too_many_ellipsis, gopher_too_many_bullets,
  gopher_too_many_end_ellipsis, gopher_below_alpha_threshold, gopher_enough_stop_words;
- c4 (C4QualityFilter): c4_lorem_ipsum, c4_curly_bracket, c4_too_few_sentences;
- fineweb (FineWebQualityFilter, on C4's cleaned text as in datatrove's chain): fineweb_ + empty,
  line_punct_ratio, short_line_ratio, char_dup_ratio, list_ratio;
- lang (the role of datatrove's LanguageFilter, with CLD3): lang_not_allowed, lang_low_score.

Native Spark expressions do everything except the n-gram repetition counts and language id, which run in
iterator Arrow UDFs (udfs/quality_repetition.py, udfs/langid.py); see bench/README.md for the measurements.

Tokenisation. datatrove splits words with spaCy's `blank("en")` tokenizer (and sentences with its
sentencizer); loading spaCy per worker and tokenising in Python is most of datatrove's cost. Here one regular
expression (`TOKEN_RE`, run by `regexp_extract_all` after three `regexp_replace` rewrites; the same on Sail's
Rust engine and the JVM's) reproduces spaCy's English rules where they matter for these metrics: punctuation is
split off as its own tokens, but ellipses (`...`), runs of hyphens and `''` stay whole; abbreviations (`U.S.`,
`e.g.`, `Mr.`, single letters with a period), numbers with separators (`3.14`, `1,000`, `10:30`), URLs,
`@handles`, a chunk's leading hyphen (`-X`, `--help`), and characters spaCy only splits at a token's edges
(`O'Brien`, `AT&T`, `x_y`, `face="Verdana`) stay inside a token; letter-hyphen-digit stays
(`COVID-19`) while other hyphens split (`well - known`); contractions split (`do n't`, `it 's`, `I 'm`) and so do
spaCy's apostrophe-less exceptions (`dont`, `cannot`, `gonna`, `im`, ...). A sentence ends, as in spaCy's
sentencizer, at a token that is `.`, `!`, `?` (or another terminator) before the next token that is not
punctuation. Known differences from spaCy, measured on crawl_dev in bench/quality_bench.py (every rule set
agrees on >= 99.5% of keep/drop decisions): its other exceptions (emoticons such as `:)`, `C++`, `10am`), its
lower.Upper infix split, markup glued in ways these rules do not follow (`</font><font`), and scripts without
spaces (spaCy's English rules leave `，` and `。` inside Chinese runs; here they are tokens). Lines are Python's
`str.splitlines()` lines where datatrove uses them, `\\n`-split where it does that; "space" is Python's
`str.isspace()`, not Java's `\\s`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pyspark.sql import Column
from pyspark.sql import functions as F

from expectations import suites
from pipelines.core.config import QualityConfig
from pipelines.core.stage import BaseStage, Gate, StageContext
from schemas import TABLES, require_columns
from schemas.vocab import Reason

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from pyspark.sql import DataFrame

# ---- character classes (literal characters, so Java and Rust read them the same) ------------------------------
#: str.isspace()
WS = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: str.splitlines() separators (plus \r\n, matched first)
LINE_BREAK_RE = "\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"
STRIP_RE = f"\\A[{WS}]+|[{WS}]+\\z"
#: datatrove's PUNCTUATION_SET (utils/text.py): a token made only of these is a symbol, not a word
PUNCTUATION = "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»" + "".join(
    chr(c) for a, b in ((0, 9), (11, 13), (13, 32), (127, 160)) for c in range(a, b)
)
#: spaCy's sentencizer's default punct_chars (sentence terminators)
SENT_TERMINATORS = "!.?։؟۔܀܁܂߹।॥၊။።፧፨᙮᜵᜶᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᰻᰼᱾᱿‼‽⁇⁈⁉⸮⸼꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟꫰꫱꯫﹒﹖﹗！．？｡。"


def _cls(chars: str) -> str:
    """A regex character class body for a set of literal characters (escaping what classes treat specially)."""
    return "".join("\\" + c if c in "\\]^-[&" else c for c in sorted(set(chars)))


_A = r"\p{L}\p{M}\p{N}"
_MARK = "\ue000"  # stands in for the apostrophe of a split contraction (same length, never a symbol)
_DASH = "\ue001"  # stands in for a hyphen that starts a whitespace-delimited chunk (`-X`, `--help`: one token)
_TITLES = (
    "Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Inc|Ltd|Co|Corp|vs|Mt|Gen|Gov|Rep|Sen|Rev|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|"
    "Oct|Nov|Dec|Bros|Calif|Mass|Adm"
)
_UNIT = rf"(?:[{_A}]*[\p{{L}}\p{{M}}]-\p{{N}}+|[{_A}]+)"
#: characters that spaCy leaves inside a token (they split only at its start or end, or not at all)
_GLUE = "[.'’&+@_\"#%*;()\\[\\]^|$~]"
#: One token per match, leftmost-first alternation (see the module docstring).
TOKEN_RE = (
    rf"(?:https?://|www\.)[^{WS}]*[^{WS}.,;:!?'\"()\[\]{{}}<>]"
    r"|(?:\p{L}\.){2,}"
    rf"|(?:{_TITLES})\."
    r"|\p{L}\."
    r"|\p{N}+(?:[.,:/]\p{N}+)+"
    rf"|{_MARK}(?:[sSmMdD]|ll|re|ve|LL|RE|VE)|n{_MARK}t|N{_MARK}T"
    rf"|(?:[.@]|{_DASH}-*)?{_UNIT}(?:{_GLUE}+[:<>=/]*{_UNIT}|[:<>=/]+(?:\p{{N}}[{_A}]*|{_GLUE}+{_UNIT}))*"
    r"|\.{2,}|-{2,}|''"
    rf"|[^{WS}{_A}]"
)
#: contractions: `don't` -> `do n<MARK>t`, `it's` -> `it <MARK>s` (the next character is re-emitted)
_CONTRACTION_RE = rf"(\p{{L}})(?:(n)['’](t)|['’]([sSmMdD]|ll|re|ve|LL|RE|VE))([^{_A}]|$)"
_CONTRACTION_TO = f"$1 $2{_MARK}$3$4$5"
_LEADING_DASH_RE = rf"(\A|[{WS}])-(-*[{_A}])"
_LEADING_DASH_TO = f"$1{_DASH}$2"
#: spaCy's apostrophe-less exceptions (`dont` -> `do nt`, `cannot` -> `can not`, `im` -> `i m`, ...)
_EXCEPTIONS = [
    ("ai|are|ca|could|dare|did|does|do|had|has|have|is|may|might|must|need|ought|sha|should|was|were|wo|would", "nt"),
    ("can", "not"),
    ("gon", "na"),
    ("got", "ta"),
    ("i", "m|d|ve"),
    ("we", "d|ve"),
    ("you|they", "d|ll|re|ve"),
    ("he", "d|s"),
    ("she", "s"),
    ("it", "d|ll"),
    ("that", "d|ll|s"),
    ("who", "d|ll|s|ve"),
    ("what|there|where|how|why|when", "d|ll|re|s|ve"),
]


def _cap(words: str) -> str:
    return "|".join(f"[{w[0]}{w[0].upper()}]{w[1:]}" for w in words.split("|"))


_EXCEPTION_RE = r"\b(?:" + "|".join(f"({_cap(a)})({b})" for a, b in _EXCEPTIONS) + r")\b"
_EXCEPTION_TO = (
    "".join(f"${2 * i + 1}" for i in range(len(_EXCEPTIONS)))
    + " "
    + "".join(f"${2 * i + 2}" for i in range(len(_EXCEPTIONS)))
)
_SYMBOL_TOKEN_RE = f"\\A[{_cls(PUNCTUATION)}]+\\z"
_TERMINATOR = f"[{_cls(SENT_TERMINATORS)}]"
#: a sentence boundary in a token stream joined by two spaces: a terminator token, punctuation-only tokens,
#: then a token with a non-punctuation character (spaCy's sentencizer); newline tokens stop it (lines are separate)
_BOUNDARY_RE = rf" {_TERMINATOR} (?: \p{{P}}+ )* \p{{P}}*[^\p{{P}} \n]"
CITATION_RE = r"\[\d*\]|\[edit\]|\[citation needed\]"
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
#: FineWeb's stop_chars: datatrove's TERMINAL_PUNCTUATION
TERMINAL_PUNCTUATION = (
    "᪩？⁈𑩂．꩞𑅃﹗𑂾\u1b7d፧𑅂꡶꘎⁉࠾᪨𑊩𑱂᱿𖩮᥅\U00011f43\U00011f44﹒𑈹𑈸።܂؞꛳\U00010f88𑗍𐩖𑙂\u061d꩟᠉\u1b7e𑗗᰼𑻸؟𑪜꧉𑗉𐽙𖫵𖬷"
    "܀꓿᜵𑗏𑁇𑗓𑥄៖𑥆𑗑𑗒꯫۔𐩗\U00010f86꡷\u2e54｡៕߹⸮.𑇅࠹𛲟꫰꤯𐽗᭞𑜼፨𑃁꣏𑇟𖬸𑪛𑜾࠷𝪈?𑃀𑗃！։꣎॥𑗖᭛᠃!၊𖺘⁇𑗌𑑋𖭄᭟𑅁𑙁⸼꩝𑗋。꧈"
    "꫱𑜽𐽖𑂿᙮។꛷\U00010f89៚᥄𑗕𑗎᪪᭚࠽𑇞𑗊𐽘\u2e53𑗔𖩯𑇍𑻷𐽕𑩃।𑗂𑇆𑁈။᱾𑱁꘏܁᜶‼𑈻‽᪫﹖𑑌𑈼\U00010f87𑗐៙᰻"
)


# ---- small expression helpers ----------------------------------------------------------------------------
def _ratio(num: Column, den: Column) -> Column:
    """num / den as a double; null when den is 0 or null (an unguarded ratio is a crash or an infinity)."""
    return F.when(den > 0, num.cast("double") / den.cast("double"))


def _count_sub(text: Column, sub: str) -> Column:
    """Non-overlapping occurrences of a literal, as str.count."""
    return ((F.length(text) - F.length(F.replace(text, F.lit(sub), F.lit("")))) / F.lit(len(sub))).cast("long")


def _strip(col: Column) -> Column:
    return F.regexp_replace(col, STRIP_RE, "")


def _chars(arr: Column) -> Column:
    return F.length(F.array_join(arr, ""))


def _dup_count(arr: Column) -> Column:
    """datatrove's find_duplicates: elements that repeat an earlier one, by count and by characters."""
    return F.size(arr) - F.size(F.array_distinct(arr))


def _dup_chars(arr: Column) -> Column:
    return _chars(arr) - _chars(F.array_distinct(arr))


def tokens(text: Column) -> Column:
    """The word tokens of a text (datatrove's split_into_words, spaCy-compatible; see the module docstring)."""
    return F.regexp_extract_all(_prepare(text), F.lit(TOKEN_RE), 0)


def _prepare(text: Column) -> Column:
    """Rewrites that let one leftmost-first regex split like spaCy (lengths unchanged but for inserted spaces)."""
    out = F.regexp_replace(text, _EXCEPTION_RE, _EXCEPTION_TO)
    out = F.regexp_replace(out, _CONTRACTION_RE, _CONTRACTION_TO)
    return F.regexp_replace(out, _LEADING_DASH_RE, _LEADING_DASH_TO)


def _lines(text: Column) -> Column:
    """str.splitlines(): like a split on line breaks, without the empty piece after a final break."""
    parts = F.split(text, LINE_BREAK_RE)
    ends = text.rlike(f"(?:{LINE_BREAK_RE})\\z")
    return F.when(F.length(text) == 0, F.array().cast("array<string>")).otherwise(
        F.when(ends, F.slice(parts, 1, F.size(parts) - 1)).otherwise(parts)
    )


# ---- rule sets: metrics (columns) and rules (reasons) ------------------------------------------------------
@dataclass(frozen=True)
class RuleSet:
    """A versioned rule set: the columns it adds and the reasons it gives (condition, reason) in check order."""

    name: str
    columns: tuple[str, ...]
    rules: Callable[[QualityConfig], list[tuple[Column, str]]]


def _gopher_quality_metrics(df: DataFrame, cfg: QualityConfig) -> DataFrame:
    """Gopher quality filter (Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from
    Training Gopher", appendix A.1.1): word count, mean word length, symbol-to-word ratios for `#` and ellipsis,
    bullet and ellipsis line ratios, alphabetic-word ratio, stop words. As datatrove's GopherQualityFilter:
    `n_words` counts tokens that are not all punctuation, the ratios divide by all tokens."""
    text, tok = F.col("text"), F.col("_tokens")
    words = F.filter(tok, lambda t: ~t.rlike(_SYMBOL_TOKEN_RE))
    bullet = "\\A[" + WS + "]*(?:" + "|".join(_esc(b) for b in cfg.bullets) + ")"
    return df.select(
        "*",
        F.length(text).cast("long").alias("n_chars"),
        F.size(tok).cast("long").alias("n_tokens"),
        F.size(words).cast("long").alias("n_words"),
        _ratio(_chars(words), F.size(words)).alias("mean_word_length"),
        _ratio(_count_sub(text, "#"), F.size(tok)).alias("hash_word_ratio"),
        _ratio(_count_sub(text, "...") + _count_sub(text, "…"), F.size(tok)).alias("ellipsis_word_ratio"),
        F.size(F.col("_lines")).cast("long").alias("n_lines"),
        _ratio(F.size(F.filter("_lines", lambda x: x.rlike(bullet))), F.size("_lines")).alias("bullet_line_ratio"),
        _ratio(F.size(F.filter("_lines", lambda x: x.rlike(f"(?:\\.\\.\\.|…)[{WS}]*\\z"))), F.size("_lines")).alias(
            "ellipsis_line_ratio"
        ),
        _ratio(F.size(F.filter(tok, lambda t: t.rlike(r"\p{L}"))), F.size(tok)).alias("alpha_word_ratio"),
        F.size(F.array_intersect(tok, F.array(*[F.lit(w) for w in cfg.stop_words])))
        .cast("long")
        .alias("stop_word_count"),
    )


def _esc(s: str) -> str:
    return "".join("\\" + c if c in r"\.^$|?*+()[]{}-" else c for c in s)


def _gopher_quality_rules(cfg: QualityConfig) -> list[tuple[Column, str]]:
    c = F.col
    return [
        (c("n_words") < cfg.min_words, "gopher_short_doc"),
        (c("n_words") > cfg.max_words, "gopher_long_doc"),
        (c("mean_word_length") < cfg.min_mean_word_length, "gopher_below_avg_threshold"),
        (c("mean_word_length") > cfg.max_mean_word_length, "gopher_above_avg_threshold"),
        (c("hash_word_ratio") > cfg.max_hash_word_ratio, "gopher_too_many_hashes"),
        (c("ellipsis_word_ratio") > cfg.max_ellipsis_word_ratio, "gopher_too_many_ellipsis"),
        (c("bullet_line_ratio") > cfg.max_bullet_line_ratio, "gopher_too_many_bullets"),
        (c("ellipsis_line_ratio") > cfg.max_ellipsis_line_ratio, "gopher_too_many_end_ellipsis"),
        (c("alpha_word_ratio") < cfg.min_alpha_word_ratio, "gopher_below_alpha_threshold"),
        (c("stop_word_count") < cfg.min_stop_words, "gopher_enough_stop_words"),
    ]


def _gopher_repetition_metrics(df: DataFrame, cfg: QualityConfig) -> DataFrame:
    """Gopher repetition filter (Rae et al. 2021, appendix A.1.1, Table A1): duplicate lines and paragraphs by
    count and by characters, top n-gram character fractions (n = 2..4) and duplicated n-gram character fractions
    (n = 5..10). Lines split on `\\n+`, paragraphs on `\\n{2,}` of the stripped text, as datatrove. The n-gram
    counts run in an iterator Arrow UDF (udfs/quality_repetition.py)."""
    from udfs.quality_repetition import DUP_NS, TOP_NS, repetition_udf

    text, n = F.col("text"), F.length("text")
    paras = F.split(_strip(text), "\n{2,}")
    lines = F.split(text, "\n+")
    out = df.withColumn("_ngrams", repetition_udf()(F.col("_tokens")))
    return out.select(
        "*",
        _ratio(_dup_count(paras), F.size(paras)).alias("dup_para_frac"),
        _ratio(_dup_chars(paras), n).alias("dup_para_char_frac"),
        _ratio(_dup_count(lines), F.size(lines)).alias("dup_line_frac"),
        _ratio(_dup_chars(lines), n).alias("dup_line_char_frac"),
        *[_ratio(F.col(f"_ngrams.top_{k}_gram_chars"), n).alias(f"top_{k}_gram_frac") for k in TOP_NS],
        *[_ratio(F.col(f"_ngrams.dup_{k}_gram_chars"), n).alias(f"dup_{k}_gram_frac") for k in DUP_NS],
    ).drop("_ngrams")


def _gopher_repetition_rules(cfg: QualityConfig) -> list[tuple[Column, str]]:
    from udfs.quality_repetition import DUP_NS, TOP_NS

    r, c = cfg.repetition, F.col
    rules = [
        (F.length("text") == 0, "gopher_rep_empty"),
        (c("dup_para_frac") > r.dup_para_frac, "gopher_rep_dup_para_frac"),
        (c("dup_para_char_frac") > r.dup_para_char_frac, "gopher_rep_dup_para_char_frac"),
        (c("dup_line_frac") > r.dup_line_frac, "gopher_rep_dup_line_frac"),
        (c("dup_line_char_frac") > r.dup_line_char_frac, "gopher_rep_dup_line_char_frac"),
    ]
    rules += [(c(f"top_{k}_gram_frac") > getattr(r, f"top_{k}_gram_frac"), f"gopher_rep_top_{k}_gram") for k in TOP_NS]
    rules += [
        (c(f"dup_{k}_gram_frac") > getattr(r, f"dup_{k}_gram_frac"), f"gopher_rep_duplicated_{k}_n_grams")
        for k in DUP_NS
    ]
    return rules


def _c4_metrics(df: DataFrame, cfg: QualityConfig) -> DataFrame:
    """C4 (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
    Transformer", section 2.2), as datatrove's C4QualityFilter: per line (stripped), drop lines with a word over
    `max_word_length` or fewer than `min_words_per_line` words, remove Wikipedia citations, drop lines without
    terminal punctuation (or ending in `...`), lines mentioning javascript, and cookie / terms-of-use lines; the
    document fails on `lorem ipsum` or `{` in a line that got that far, or with fewer than `min_num_sentences`
    sentences in the lines kept. `clean_text` is the kept lines joined by newlines."""
    c4 = cfg.c4
    lines = F.transform("_lines", _strip)
    if c4.max_word_length >= 0:
        lines = F.filter(lines, lambda x: ~x.rlike(f"[^{WS}]{{{c4.max_word_length + 1}}}"))
    n_words = lambda x: F.when(F.length(x) == 0, 0).otherwise(F.size(F.split(x, f"[{WS}]+")))  # noqa: E731
    enough = F.filter(lines, lambda x: n_words(x) >= c4.min_words_per_line)
    cited = F.transform(enough, lambda x: F.regexp_replace(x, CITATION_RE, "")) if c4.remove_citations else enough
    terminal = (
        F.filter(cited, lambda x: x.rlike("[.?!\"']\\z") & ~x.endswith("...")) if c4.filter_no_terminal_punct else cited
    )
    no_js = F.filter(terminal, lambda x: ~F.lower(x).contains("javascript")) if c4.filter_javascript else terminal
    policy = "|".join(_esc(p) for p in POLICY_SUBSTRINGS)
    kept = F.filter(no_js, lambda x: ~F.lower(x).rlike(policy)) if c4.filter_policy else no_js
    out = df.withColumn("_c4_kept", kept).withColumn("clean_text", _strip(F.array_join("_c4_kept", "\n")))
    # sentences: one per kept line, plus the sentencizer's boundaries inside lines
    clean_tokens = F.regexp_extract_all(_prepare(F.col("clean_text")), F.lit("\n|" + TOKEN_RE), 0)
    out = out.withColumn("_clean_tokens", clean_tokens)
    joined = F.concat(F.lit(" "), F.array_join("_clean_tokens", "  "), F.lit(" "))
    return out.select(
        "*",
        F.size("_lines").cast("long").alias("c4_lines"),
        F.size("_c4_kept").cast("long").alias("c4_lines_kept"),
        (F.size("_c4_kept") + F.size(F.regexp_extract_all(joined, F.lit(_BOUNDARY_RE), 0)))
        .cast("long")
        .alias("c4_sentences"),
        F.exists(terminal, lambda x: F.lower(x).contains("lorem ipsum")).alias("c4_lorem_ipsum"),
        F.exists(no_js, lambda x: x.contains("{")).alias("c4_curly_bracket"),
    )


def _c4_rules(cfg: QualityConfig) -> list[tuple[Column, str]]:
    c4, c = cfg.c4, F.col
    rules = []
    if c4.filter_lorem_ipsum:
        rules.append((c("c4_lorem_ipsum"), "c4_lorem_ipsum"))
    if c4.filter_curly_bracket:
        rules.append((c("c4_curly_bracket"), "c4_curly_bracket"))
    if c4.min_num_sentences != -1:
        rules.append((c("c4_sentences") < c4.min_num_sentences, "c4_too_few_sentences"))
    return rules


def _fineweb_metrics(df: DataFrame, cfg: QualityConfig) -> DataFrame:
    """FineWeb's quality filter (Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web for the Finest
    Text Data at Scale", section 3.2.3), as datatrove's FineWebQualityFilter, on C4's cleaned text (what it
    sees in datatrove's Gopher -> C4 -> FineWeb chain): share of lines ending in terminal punctuation, share of
    short lines, characters in duplicated lines, and newlines per word (list-like documents)."""
    fw, text = cfg.fineweb, F.col("clean_text")
    lines = F.filter(F.split(text, "\n"), lambda x: F.length(_strip(x)) > 0)
    stop = f"[{_cls(TERMINAL_PUNCTUATION)}]\\z"
    n_tokens = F.size("_clean_tokens") - _count_sub(text, "\n")  # every newline is a token of its own
    return (
        df.withColumn("_fw_lines", lines)
        .select(
            "*",
            F.size("_fw_lines").cast("long").alias("fw_lines"),
            _ratio(F.size(F.filter("_fw_lines", lambda x: x.rlike(stop))), F.size("_fw_lines")).alias(
                "fw_line_punct_ratio"
            ),
            _ratio(
                F.size(F.filter("_fw_lines", lambda x: F.length(x) <= fw.short_line_length)), F.size("_fw_lines")
            ).alias("fw_short_line_ratio"),
            _ratio(_dup_chars(F.col("_fw_lines")), F.length(text) - _count_sub(text, "\n")).alias("fw_char_dup_ratio"),
            _ratio(_count_sub(text, "\n"), n_tokens).alias("fw_list_ratio"),
        )
        .drop("_fw_lines")
    )


def _fineweb_rules(cfg: QualityConfig) -> list[tuple[Column, str]]:
    fw, c = cfg.fineweb, F.col
    punct = c("fw_line_punct_ratio") < fw.line_punct_thr
    if fw.line_punct_exclude_zero:
        punct = punct & (c("fw_line_punct_ratio") != 0)
    return [
        (c("fw_lines") == 0, "fineweb_empty"),
        (punct, "fineweb_line_punct_ratio"),
        (c("fw_short_line_ratio") > fw.short_line_thr, "fineweb_short_line_ratio"),
        (c("fw_char_dup_ratio") > fw.char_duplicates_ratio, "fineweb_char_dup_ratio"),
        (c("fw_list_ratio") > fw.new_line_ratio, "fineweb_list_ratio"),
    ]


def _lang_metrics(df: DataFrame, cfg: QualityConfig) -> DataFrame:
    """Language id with CLD3 (udfs/langid.py; chosen over langid.py and lingua in bench/quality_langid.py)."""
    if cfg.lang.model == "none":
        return df.withColumn("lang", F.lit(None).cast("string")).withColumn("lang_score", F.lit(None).cast("double"))
    from udfs.langid import langid_udf

    out = df.withColumn("_lang", langid_udf(cfg.lang.model)(F.substring("text", 1, cfg.lang.max_chars)))
    return out.withColumn("lang", F.col("_lang.lang")).withColumn("lang_score", F.col("_lang.score")).drop("_lang")


def _lang_rules(cfg: QualityConfig) -> list[tuple[Column, str]]:
    if cfg.lang.model == "none":
        return []
    rules = []
    if cfg.lang.allow:
        rules.append((~F.coalesce(F.col("lang").isin(*cfg.lang.allow), F.lit(False)), "lang_not_allowed"))
    rules.append((F.coalesce(F.col("lang_score"), F.lit(0.0)) < cfg.lang.min_score, "lang_low_score"))
    return rules


RULE_SETS: dict[str, RuleSet] = {
    "gopher_repetition": RuleSet(
        "gopher_repetition_v1",
        (
            "dup_para_frac",
            "dup_para_char_frac",
            "dup_line_frac",
            "dup_line_char_frac",
            *[f"top_{k}_gram_frac" for k in (2, 3, 4)],
            *[f"dup_{k}_gram_frac" for k in range(5, 11)],
        ),
        _gopher_repetition_rules,
    ),
    "gopher_quality": RuleSet(
        "gopher_quality_v1",
        (
            "n_chars",
            "n_tokens",
            "n_words",
            "mean_word_length",
            "hash_word_ratio",
            "ellipsis_word_ratio",
            "n_lines",
            "bullet_line_ratio",
            "ellipsis_line_ratio",
            "alpha_word_ratio",
            "stop_word_count",
        ),
        _gopher_quality_rules,
    ),
    "c4": RuleSet(
        "c4_v1", ("c4_lines", "c4_lines_kept", "c4_sentences", "c4_lorem_ipsum", "c4_curly_bracket"), _c4_rules
    ),
    "fineweb": RuleSet(
        "fineweb_v1",
        ("fw_lines", "fw_line_punct_ratio", "fw_short_line_ratio", "fw_char_dup_ratio", "fw_list_ratio"),
        _fineweb_rules,
    ),
    "lang": RuleSet("cld3_v1", ("lang", "lang_score"), _lang_rules),
}


def metrics(df: DataFrame, cfg: QualityConfig) -> DataFrame:
    """Every rule set's metric columns plus `clean_text`; needs `doc_id` and `text`."""
    require_columns(df.columns, ["doc_id", "text"], "quality")
    out = df.withColumn("_tokens", tokens(F.col("text"))).withColumn("_lines", _lines(F.col("text")))
    out = _gopher_quality_metrics(out, cfg)
    out = _gopher_repetition_metrics(out, cfg)
    out = _c4_metrics(out, cfg)
    out = _fineweb_metrics(out, cfg)
    out = _lang_metrics(out, cfg)
    return out.drop("_tokens", "_lines", "_c4_kept", "_clean_tokens")


def reasons(cfg: QualityConfig) -> Column:
    """The failed rules of the enabled rule sets, in datatrove's chain order (repetition, quality, C4, FineWeb)."""
    rules = [rule for name in RULE_SETS if name in cfg.rule_sets for rule in RULE_SETS[name].rules(cfg)]
    flagged = F.array(*[F.when(cond, F.lit(name)) for cond, name in rules]) if rules else F.array()
    return F.filter(flagged.cast("array<string>"), lambda r: r.isNotNull())


def transform(df: DataFrame, cfg: QualityConfig) -> DataFrame:
    """Adds the metric columns, `clean_text`, `lang`, `lang_score` and `quality_reasons`; drops nothing."""
    return metrics(df, cfg).withColumn("quality_reasons", reasons(cfg))


def text_for_later_stages(cfg: QualityConfig) -> Column:
    """What dedup, classify and the corpus read: C4's cleaned text when the C4 rule set is on (the original
    when cleaning left nothing, which only a document that fails C4 - or a min_num_sentences <= 0 - can do)."""
    if "c4" not in cfg.rule_sets:
        return F.col("text")
    return F.coalesce(F.nullif(F.col("clean_text"), F.lit("")), F.col("text"))


#: The quality columns the stage adds: the `quality` table's, less its key and run id.
QUALITY_COLUMNS = tuple(c for c in TABLES["quality"].fieldNames() if c not in ("doc_id", "run_id"))
#: C4's cleaned text exactly as the rule set produced it (possibly empty), for the `quality` table; the travelling
#: `clean_text` falls back to the original where it is empty.
C4_OUTPUT = "c4_output"


def quality_rows(out: DataFrame, run_id: str, clean_text: Column) -> DataFrame:
    """The `quality` table's rows from a frame that carries the quality columns, with `clean_text` as given: the
    quality stage's C4 output, or the pii stage's redacted form of it (pipelines/stages/pii.py publishes these rows
    in place of the quality stage's, so that the table never holds personal data). The reasons are the quality
    rules' own: the secrets stage, which runs in between, appends `secret:<kind>` to the travelling column."""
    own = F.filter("quality_reasons", lambda r: ~r.startswith(f"{Reason.SECRET}:"))
    columns = [
        clean_text.alias(c) if c == "clean_text" else own.alias(c) if c == "quality_reasons" else F.col(c)
        for c in QUALITY_COLUMNS
    ]
    return out.select("doc_id", F.lit(run_id).alias("run_id"), *columns)


class Quality(BaseStage):
    """Every rule set's metrics and reasons as columns, and `clean_text`: the text every later stage reads (C4's
    cleaned text; the original where C4 is off or left nothing). The original `text` leaves the frame here: it
    stays in `raw_docs`, and a later stage that needs it reads it from there by name. Returns the `quality` rows,
    whose `clean_text` is C4's output as it came."""

    name: ClassVar[str] = "quality_v3"
    reads: ClassVar[tuple[str, ...]] = ("doc_id", "text")
    adds: ClassVar[tuple[str, ...]] = (*QUALITY_COLUMNS, C4_OUTPUT)
    materialise: ClassVar[bool] = False  # a join with the metrics it staged itself

    def transform(self, df: DataFrame | None, ctx: StageContext) -> DataFrame:
        assert df is not None
        cfg = ctx.cfg.quality
        q = ctx.stage(transform(df.select("doc_id", "text"), cfg), "quality_metrics")
        metrics = [c for c in QUALITY_COLUMNS if c != "clean_text"]
        later = q.select(
            "doc_id", *metrics, F.col("clean_text").alias(C4_OUTPUT), text_for_later_stages(cfg).alias("clean_text")
        )
        return df.drop("text").join(later, "doc_id")

    def gates(self, ctx: StageContext) -> tuple[Gate, ...]:
        check_lang = ctx.cfg.quality.lang.model != "none"
        return (Gate("quality", lambda _ctx, _counts: suites.quality(check_lang_score=check_lang), on="quality"),)

    def tables(self, out: DataFrame, ctx: StageContext) -> Mapping[str, DataFrame]:
        return {"quality": quality_rows(out, ctx.run_id, F.col(C4_OUTPUT))}

    def counts(self, out: DataFrame, tables: Mapping[str, DataFrame], ctx: StageContext) -> dict[str, int]:
        return {"quality_failed": out.where(F.size("quality_reasons") > 0).count()}
