"""Sentence boundaries: where a sentence ends, not wherever a full stop is. Pure Python, no model, no Spark.

One splitter serves the scoring stage's `spans` (pipelines/judgement/scorers.py), excision (udfs/excise.py,
pipelines/stages/revision.py, decontamination) and sentence-aligned scoring windows, so "the flagged spans" and
"the sentences excision removes" are the same character ranges. A wrong boundary is not cosmetic: excision
removes whole sentences, and a boundary inside "2.9 million" once published "the estimated 2. The government
has said ...". So where a boundary is doubtful the splitter leaves the sentence whole: removing a little more
text is a smaller harm than publishing a fragment.

The rules, in the order `_ends_here` applies them to a terminator (`.`, `!`, `?`, `…`, runs of them):

- a terminator ends a sentence only when whitespace or the end of the text follows it (after any closing
  quotes or brackets, which belong to the sentence): decimals (2.9), versions (3.11.2), URLs (example.com),
  e-mail addresses and file names never break;
- a line break always ends a sentence (list items, headings, verse, hard-wrapped mail are lines);
- `!`/`?` inside a quotation followed by a lowercase word ("Stop!" he said) does not end it;
- an ellipsis ends a sentence only before a word that does not start in lowercase;
- a full stop after an abbreviation does not end the sentence: titles (Dr., Mr., St.), months, Latin (e.g.,
  i.e., cf., vs.), initials (J. R. R. Tolkien), "No. 5"-style abbreviations before a number; abbreviations
  that can also end a sentence (etc., a.m., Inc., U.S.) end it only before a capitalised word (etc., a.m.)
  or a common sentence opener (Inc., U.S.: "U.S. Army" stays whole, "the U.S. The" is two);
- a list marker at the start of a sentence (1., a., iv.) is not a sentence of its own;
- scraped text that lost the space after a full stop ("mainland.The") is split before a common sentence
  opener, unless the word is part of an address (@, /, =).

The contract every caller relies on: (start, end) character ranges, whitespace-trimmed, in order,
non-overlapping, and covering every non-space character of the text.
"""

from __future__ import annotations

import re

_TERMINATORS = ".!?…"
_CLOSERS = "\"')]}”’»"  # after a terminator they belong to the sentence it ends
_OPENERS = "\"'([{“‘«<*_"  # stripped from the front of a token before it is looked up


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


# Words that commonly open an English sentence. Used where a capital letter alone does not decide: after an
# abbreviation that can also end a sentence ("the U.S. The ..." vs "U.S. Army"), and after a full stop that
# lost its space ("mainland.The").
_STARTERS = _words(
    """
    A About According After Again Also Although An And Another Any Are As At Because Before Both But By Can
    Could Despite Did Do Does During Each Even Every For From Further He Her Here His How However I If In
    Instead Is It Its Just Last Let Many Meanwhile More Most Much My No Not Now On Once One Only Or Other
    Our Please Recently She Since So Some Still Such Thanks That The Their Then There These They This Those
    Though Thus To Today Under Unlike Until We Were What When Where Whether Which While Who Why Will With
    Would Yes Yet You Your
    """
)
# A full stop after these never ends a sentence: they stand before what they qualify (case as written).
_NEVER_END = _words(
    """
    Mr Mrs Ms Mx Dr Prof St Rev Fr Gen Col Lt Sgt Capt Cpl Pte Maj Brig Adm Cmdr Gov Sen Rep Pres Hon Supt
    Det Insp Mt Ft Messrs Mme Mlle mr mrs ms dr prof st Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec vs
    Vs cf Cf viz approx Approx ca
    """
)
# ... these only before a number ("No. 5", "p. 12", "Art. 3"): "No." and "art." are also words that end sentences.
_BEFORE_NUMBER = _words("no nos art p pp vol vols fig figs ch sec sect para op eq ref tel ext")
# ... these can end a sentence: they do before a capitalised word.
_END_BEFORE_CAPITAL = _words("etc al a.m p.m")
# ... these can end a sentence too, but a capitalised word often follows them inside one ("Apple Inc. CEO",
# "U.S. Army"): they end it only before a common sentence opener.
_END_BEFORE_STARTER = _words("Inc Ltd Co Corp Jr Sr Bros Esq Plc LLC Univ Dept Assn")
_LATIN = _words("e.g i.e")  # never at the end of a sentence
_ROMAN = _words("i ii iii iv v vi vii viii ix x xi xii")

_DOTTED = re.compile(r"(?:[A-Za-z]{1,3}\.)+[A-Za-z]{1,3}")  # U.S, e.g, Ph.D, a.m (the last stop is the terminator)
_STARTER_ALT = "|".join(sorted(_STARTERS, key=len, reverse=True))
# The abbreviations the fast path (kind 2 below) would take for a plain lowercase word: "prof.", "Messrs.".
_NOT_ABBREVIATION = "".join(
    rf"(?<!{re.escape(w)}\.)"
    for w in sorted(_NEVER_END | _END_BEFORE_CAPITAL | _END_BEFORE_STARTER)
    if re.fullmatch(r".*[a-z]{4}", w)
)
# One pass finds every candidate; an empty group marks its kind (`m.lastindex`):
#   1. a line break, with the blank lines after it: always a boundary;
#   2. a full stop after a lowercase word of 4+ letters, then whitespace and a plain word (not a number: "para. 5";
#      not a quote, bracket or terminator): always a boundary (the common case, decided without Python code; no
#      other rule applies to it, tests/test_sentences.py checks that it agrees with `_ends_here`);
#   3. ! or ? with no closer, then whitespace and a plain word: always a boundary;
#   4. any other terminator run, with its closers, before whitespace or the end: decided by `_ends_here`;
#   5. a terminator glued to a sentence opener ("mainland.The"): decided by `_glued_ok`.
# The pattern starts with one character class, so the engine scans to the next terminator or newline in C; the
# Python code runs per candidate only, and the cost stays proportional to the number of sentences. A terminator
# run is one candidate, tried from its first character only and without backtracking (the lookbehind and the
# possessive runs): otherwise a long run of dots before a letter costs time quadratic in its length.
_CANDIDATE = re.compile(
    rf"[{_TERMINATORS}\n](?<![{_TERMINATORS}][{_TERMINATORS}])(?:"
    r"(?<=\n)()\s*"
    rf"|(?<=[a-z]{{4}}\.){_NOT_ABBREVIATION}()(?=\s+[^\s\d{_TERMINATORS}{re.escape(_OPENERS)}])"
    rf"|(?<=[!?])()(?=\s+[^\s{_TERMINATORS}{re.escape(_OPENERS)}])"
    rf"|[{_TERMINATORS}]*+[{re.escape(_CLOSERS)}]*+()(?=\s|\Z)"
    rf"|[{_TERMINATORS}]*+()(?=(?:{_STARTER_ALT})\b)"
    ")"
)
# What follows a candidate: whitespace, opening punctuation, then the next word.
_NEXT = re.compile(rf"\s*[{re.escape(_OPENERS)}]*(\S?)(\w*)")
_TOKEN = re.compile(r"\S{0,40}")


def _token_before(text: str, s: int) -> tuple[int, str]:
    """The whitespace-delimited token that ends at `s` (start, text); long tokens are cut to 40 characters."""
    lo = max(0, s - 40)
    window = text[lo:s]
    stripped = window.rstrip()
    if len(stripped) < len(window):  # whitespace right before the terminator: an isolated " . "
        return s, ""
    parts = window.rsplit(None, 1)
    token = parts[-1] if parts else ""
    return s - len(token), token


def _ends_here(text: str, s: int, e: int, sentence_start: int) -> bool:
    """Whether the terminator run text[s:e] (closers included) ends a sentence."""
    run = text[s:e]
    term = run.rstrip(_CLOSERS)
    nxt = _NEXT.match(text, e)
    first = nxt.group(1) if nxt else ""
    if not first:
        return True  # end of text
    if first in _TERMINATORS:
        return False  # a spaced ellipsis ". . ." goes on
    lower = first.islower()
    if "?" in term or "!" in term:
        return not (lower and len(term) < len(run))  # "Stop!" he said.
    if ".." in term or "…" in term:
        return not lower
    tok_start, raw = _token_before(text, s)
    if not raw:
        return not lower  # an isolated full stop: like an ellipsis
    tok = raw.lstrip(_OPENERS)
    if not tok:
        return True
    word = nxt.group(2) if nxt else ""
    starter = first + word in _STARTERS
    if tok in _NEVER_END:
        return False
    low = tok.lower()
    if low in _BEFORE_NUMBER and first.isdigit():
        return False
    if low in _END_BEFORE_CAPITAL:
        return first.isupper()
    if tok in _END_BEFORE_STARTER:
        return starter
    if _DOTTED.fullmatch(tok):
        if low in _LATIN:
            return False
        return starter
    if (tok.isdigit() and len(tok) <= 3) or len(tok) == 1 or low in _ROMAN:
        k = tok_start  # walk back over whitespace only: bounded, however long the sentence so far
        while k > sentence_start and text[k - 1].isspace():
            k -= 1
        if k == sentence_start or text[k - 1] == ":":
            return False  # a list marker: "1. Buy milk", "Steps: 1. Open it", "a. first", "iv. Methods"
    if len(tok) == 1 and tok.isupper():
        return tok == "I" and starter  # an initial, unless it is the pronoun before an opener
    return True


def _glued_ok(text: str, s: int, e: int) -> bool:
    """Whether terminators glued to a sentence opener (text[s:e]) are a lost space, not part of an address."""
    if s < 2 or not ("a" <= text[s - 1] <= "z" and "a" <= text[s - 2] <= "z") or "…" in text[s:e]:
        return False  # after a lowercase word only: "mainland.The", not "ASP.NET" or "3.The"
    after = _TOKEN.match(text, e)
    token = _token_before(text, s)[1] + (after.group() if after else "")
    return not any(c in token for c in "@/=\\:")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character (start, end) of each sentence, leading/trailing whitespace excluded, in order, covering every
    non-space character of `text`."""
    out: list[tuple[int, int]] = []
    start = 0  # where the current sentence begins (before its leading whitespace is skipped)
    for m in _CANDIDATE.finditer(text):
        kind = m.lastindex
        if kind == 1:  # a line break: the sentence ends before it, the next begins after the blank lines
            end = m.start()
            nxt = m.end()
        elif kind == 2 or kind == 3:
            end = nxt = m.end()
        elif kind == 4:
            s, end = m.span()
            if not _ends_here(text, s, end, start):
                continue
            nxt = end
        else:
            s, end = m.span()
            if not _glued_ok(text, s, end):
                continue
            nxt = end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append((start, end))
        start = nxt
    end = len(text)
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        out.append((start, end))
    return out
