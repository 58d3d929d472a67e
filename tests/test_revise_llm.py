"""The revision stage end to end against a real OpenAI-compatible server: the packaged SmolLM2 behind
`transformers serve`. The model is weak; what is tested is that whatever it returns is validated, recorded
and decided consistently, and that documents over the cap are not sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.chains.run import run_pipeline
from pipelines.core.config import load_config
from pipelines.core.constitution import load_constitution
from pipelines.core.lake import Lake
from tests.fixtures import ARTICLES, jsonl_lines, retuned_constitution, write_jsonl
from tests.test_pipeline import TOXIC
from udfs.sentences import split_sentences

pytestmark = pytest.mark.llm

# a different text, not a near-duplicate of TOXIC (fuzzy dedup would drop it before scoring)
TOXIC_2 = (
    "Honestly, shut up, you pathetic clown. Your comments on this forum are the dumbest garbage I have read all "
    "year and you are too stupid to notice. Nobody here likes you, you whining idiot, so take your worthless "
    "opinions and get lost before you embarrass yourself any further, loser. What a disgusting waste of space."
)


@pytest.fixture(scope="module")
def revised_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("revise")
    # the toxic fixtures in the revise band, never above the filter line
    constitution = retuned_constitution(
        tmp / "constitution.yaml", "toxicity", revise_threshold=0.5, filter_threshold=0.9999
    )
    cfg = load_config(
        None,
        {
            "classify.constitution": str(constitution),
            "revise.method": "llm",  # on a CPU `auto` would excise: the packaged model is what is tested here
            "revise.max_docs": 1,
            "revise.max_excise_docs": 0,  # the other candidate stays over the cap (not excised instead)
            "revise.llm.max_tokens": 160,
            "engine.shuffle_partitions": 2,
            "quality.c4.min_num_sentences": 3,  # TOXIC and TOXIC_2 have 4 sentences
        },
    )
    crawl = write_jsonl(
        tmp / "n1.jsonl",
        jsonl_lines([*ARTICLES, ("https://forum.example/1", TOXIC), ("https://forum.example/2", TOXIC_2)]),
    )
    summary = run_pipeline(tmp / "lake", crawl, cfg, crawl_id="n1")
    return tmp / "lake", summary


def test_capped_revision_is_validated_and_decided_consistently(spark, revised_lake: tuple[Path, object]) -> None:
    lake_dir, summary = revised_lake
    c = summary.counts  # type: ignore[attr-defined]
    assert c["revision_candidates"] == 2
    assert c.get("revision:over_cap") == 1
    lake = Lake(lake_dir, spark)
    (rev,) = lake.read("revisions").collect()  # only the one under the cap was sent
    assert rev.status in ("ok", "rejected", "error", "timeout") and "toxicity" in rev.principles
    assert rev.score_before >= 0.5 and rev.original_text in (TOXIC, TOXIC_2)
    # a document flagged for several principles is revised once, for all of them
    constitution = load_constitution(str(lake_dir.parent / "constitution.yaml"))
    versions = sorted(constitution.get(p).revise_prompt.version for p in rev.principles)
    assert rev.model.startswith("SmolLM2") and rev.prompt_version == "+".join(["revise-v2", *versions])
    decisions = {r.doc_id: r for r in lake.read("decisions").collect()}
    corpus = {r.doc_id: r for r in lake.read("corpus").collect()}
    d = decisions[rev.doc_id]
    if rev.status == "ok":
        assert rev.score_after < 0.5
        assert (d.action, d.reasons) == ("revise", [f"revised:{p}" for p in rev.principles])
        assert corpus[rev.doc_id].text == rev.revised_text and corpus[rev.doc_id].action == "revise"
        if rev.method == "llm":  # the model's rewrite passed every check
            assert not rev.reject_reasons and rev.similarity >= 0.6 and rev.fallback_from is None
        else:  # it failed one, and excision (the default fallback) was accepted instead: sentences of the original
            assert rev.method == "excise" and rev.fallback_from in ("rejected", "error", "timeout")
            assert rev.reject_reasons and all(r.startswith("llm:") for r in rev.reject_reasons)
            original = {rev.original_text[s:e] for s, e in split_sentences(rev.original_text)}
            kept = [rev.revised_text[s:e] for s, e in split_sentences(rev.revised_text)]
            assert kept and set(kept) < original
    else:
        assert rev.reject_reasons, "an unaccepted revision says why"
        assert rev.reject_reasons[-1].startswith("excise:"), "the excision fallback was tried"
        reason = f"revision_{rev.status}"
        assert (d.action, d.reasons) == ("drop", [reason, *[f"flagged:{p}" for p in rev.principles]])
        assert rev.doc_id not in corpus
    over = [r for r in decisions.values() if r.reasons[:1] == ["revision_over_cap"]]
    assert len(over) == 1 and over[0].action == "defer" and over[0].doc_id not in corpus  # no budget: next run
    assert c["unaccounted"] == 0 and c["deferred_total"] == 1 and len(decisions) == 5
