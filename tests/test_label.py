"""Labels without an LLM: answer parsing, human import, the exemplar labeler, the cache and sampling."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pipelines.core.constitution import load_constitution
from pipelines.judgement.label import (
    LabelImportError,
    import_human_labels,
    label_documents,
    read_human_labels,
    text_hash,
)
from pipelines.judgement.sampling import sample_for_labeling
from udfs.labelers import LABELERS, LabelResult, PrincipleSpec, expected_digit, make_labeler, parse_digit


@pytest.mark.parametrize(
    ("answer", "digit"),
    [("7", 7), (" 3\n", 3), ("Rating: 8/9", 8), ("0", 0), ("10", None), ("seven", None), ("", None), (None, None)],
)
def test_parse_digit(answer: str | None, digit: int | None) -> None:
    assert parse_digit(answer) == digit


def test_expected_digit_from_logprobs() -> None:
    assert expected_digit({9: 0.0}) == 1.0
    assert expected_digit({0: math.log(0.5), 9: math.log(0.5)}) == pytest.approx(0.5)
    assert expected_digit({}) is None


def test_a_label_has_a_score_exactly_when_ok() -> None:
    with pytest.raises(ValueError):
        LabelResult(status="unparsable", score=0.3)
    with pytest.raises(ValueError):
        LabelResult(status="ok")


def test_registry_is_explicit_and_human_is_import_only(tmp_path: Path) -> None:
    assert set(LABELERS) == {"openai", "embedded", "transformers", "exemplar", "jigsaw", "stack"}
    with pytest.raises(ValueError, match="imported"):
        make_labeler("human:civil", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown labeler"):
        make_labeler("gpt", None)  # type: ignore[arg-type]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_human_import_validates_and_writes(lake: Any, tmp_path: Path) -> None:
    good = _jsonl(
        tmp_path / "h.jsonl",
        [
            {"id": "a", "text": "you idiot", "label": 1},
            {"text": "nice weather", "label": False},
            {"id": "c", "text": "meh", "score": 0.25},
        ],
    )
    assert import_human_labels(lake, "toxicity", "human:test", good) == 3
    rows = {r["doc_id"]: r for r in lake.read("labels").collect()}
    assert rows["a"]["score"] == 1.0 and rows["a"]["status"] == "ok" and rows["a"]["prompt_version"] == "human"
    assert rows[f"text:{text_hash('nice weather')}"]["score"] == 0.0
    assert rows["c"]["score"] == 0.25 and rows["c"]["labeler"] == "human:test"
    # importing again changes nothing
    import_human_labels(lake, "toxicity", "human:test", good)
    assert lake.read("labels").count() == 3

    bad = _jsonl(tmp_path / "bad.jsonl", [{"text": "x", "label": 1}, {"text": "y", "label": 3}])
    with pytest.raises(LabelImportError, match=r"bad.jsonl:2"):
        read_human_labels(bad)
    with pytest.raises(LabelImportError, match="human:<dataset>"):
        import_human_labels(lake, "toxicity", "civil", good)


class _CountingLabeler:
    """Wraps a real labeler and counts what reaches it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.calls = inner, inner.name, 0

    def prompt_version(self, principle: PrincipleSpec) -> str:
        return str(self.inner.prompt_version(principle))

    def label(self, principle: PrincipleSpec, texts: Sequence[str]) -> list[LabelResult]:
        self.calls += len(texts)
        return list(self.inner.label(principle, texts))

    def close(self) -> None:
        pass


def test_exemplar_labeler_and_the_cache(lake: Any) -> None:
    toxicity = load_constitution().get("toxicity")
    labeler = _CountingLabeler(make_labeler("exemplar", None))  # type: ignore[arg-type]
    docs = [
        {"doc_id": "d1", "text": "You are a worthless idiot, shut your stupid mouth, loser.", "source": "web"},
        {"doc_id": "d2", "text": "The river flows south for three hundred kilometres to the sea.", "source": "web"},
    ]
    first = label_documents(lake, toxicity, labeler, docs, chunk_size=1)
    assert first.sent == 2 and first.statuses["ok"] == 2 and labeler.calls == 2
    scores = {r["doc_id"]: r["score"] for r in lake.read("labels").collect()}
    assert scores["d1"] > 0.5 > scores["d2"]
    # relabelling costs nothing; the same text under a new id is served from the cache
    again = label_documents(lake, toxicity, labeler, [*docs, {**docs[0], "doc_id": "d1-copy"}])
    assert labeler.calls == 2 and again.sent == 0 and again.already_labeled == 2 and again.cache_hits == 1
    rows = {r["doc_id"]: r for r in lake.read("labels").collect()}
    assert rows["d1-copy"]["score"] == rows["d1"]["score"] and rows["d1-copy"]["labeler"] == "exemplar:all-MiniLM-L6-v2"


def test_sampling_is_stratified_with_an_uncertain_share(spark: Any) -> None:
    docs = spark.createDataFrame(
        [(f"{s}{i}", f"text {s} {i}", s) for s in ("a", "b") for i in range(20)],
        "doc_id string, text string, source string",
    )
    scores = spark.createDataFrame(
        [(f"a{i}", i / 20) for i in range(20)] + [(f"b{i}", 0.0) for i in range(20)], "doc_id string, score double"
    )
    rows = sample_for_labeling(docs, scores, 10, uncertain_fraction=0.2, score_bins=5).collect()
    assert len(rows) == 10 and len({r["doc_id"] for r in rows}) == 10
    uncertain = sorted(r["doc_id"] for r in rows if r["why"] == "uncertain")
    assert uncertain == ["a10", "a9"]  # scores 0.5 and 0.45: closest to the threshold
    strata = {r["stratum"] for r in rows if r["why"] == "stratified"}
    assert strata == {"b|0", "a|0", "a|1", "a|2", "a|3", "a|4"}  # every stratum gets one before any gets two
    again = sample_for_labeling(docs, scores, 10, uncertain_fraction=0.2, score_bins=5).collect()
    assert sorted(r["doc_id"] for r in again) == sorted(r["doc_id"] for r in rows)


def test_cli_flow_on_a_fresh_lake(lake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    from pipelines.cli import main
    from schemas import TABLES
    from tests.test_distill import _labelled_rows

    root = str(lake.root)
    human = _jsonl(tmp_path / "human.jsonl", _labelled_rows())
    base = ["--lake", root, "--principle", "toxicity", "--set", "tracking.experiment=cli-flow"]
    assert main(["labels", "import", *base, "--labeler", "human:synthetic", "--input", str(human)]) == 0
    assert main(["distill", *base, "--kind", "linear", "--labelers", "human:*"]) == 0  # distill.labelers
    out = capsys.readouterr().out
    assert "models:/curate_toxicity/1 (linear)" in out and "labels from human:synthetic (192)" in out

    # `curate label` samples raw_docs: give the lake two documents
    now = datetime.now(UTC)
    raw = [
        (f"r{i}", "web", None, "c1", t, None, None, None, now, "run") for i, t in enumerate(["You idiot.", "Hello."])
    ]
    lake.append(lake.spark.createDataFrame(raw, TABLES["raw_docs"]), "raw_docs")
    assert main(["label", *base, "--labeler", "exemplar", "--sample", "5"]) == 0
    assert "2 sampled, 0 already labelled, 0 from the cache, 2 sent; statuses: ok 2" in capsys.readouterr().out
    assert main(["label", *base, "--labeler", "exemplar", "--sample", "5"]) == 0
    assert "2 already labelled" in capsys.readouterr().out
    assert main(["label", *base, "--labeler", "gpt"]) == 2  # unknown labeler: a one-line usage error


def test_a_doc_id_whose_label_was_for_another_text_is_labelled_again(lake: Any) -> None:
    toxicity = load_constitution().get("toxicity")
    labeler = _CountingLabeler(make_labeler("exemplar", None))  # type: ignore[arg-type]
    insult = "You are a worthless idiot, shut your stupid mouth, loser."
    river = "The river flows south for three hundred kilometres to the sea."
    label_documents(lake, toxicity, labeler, [{"doc_id": "0", "text": insult}])
    # the same id for another text (a per-call position, as scoring outside a run used): the cache is the text's
    again = label_documents(lake, toxicity, labeler, [{"doc_id": "0", "text": river}])
    assert again.sent == 1 and again.already_labeled == 0 and labeler.calls == 2
    (direct,) = make_labeler("exemplar", None).label(PrincipleSpec.of(toxicity), [river])  # type: ignore[arg-type]
    assert again.scores == {"0": direct.score}


def test_scoring_outside_a_run_keys_the_judge_by_text_and_writes_no_labels(lake: Any) -> None:
    from pipelines.core.config import load_config
    from pipelines.stages.classify import score_texts

    constitution = load_constitution()
    # the exemplar labeler as the judge, on every document (band 1.0), without the packaged teacher
    cfg = load_config(
        None,
        {
            "classify.cascade.judge": "exemplar",
            "classify.cascade.band": 1.0,
            "classify.cascade.teacher_max_docs": 0,
            "classify.cascade.judge_principles": ["toxicity"],
            "engine.shuffle_partitions": 2,
        },
    )
    insult = "You are a worthless idiot, shut your stupid mouth, loser. Nobody wants to hear you."
    river = "The river flows south for three hundred kilometres to the sea, past two old mills."
    t = constitution.names.index("toxicity")
    first, _ = score_texts(lake, [insult, river], cfg, constitution, "score", write_labels=True)
    assert lake.read("labels").count() == 2  # asked to: one label per text, keyed by the text's hash
    # the same texts in the other order: each keeps its own judge score (the old positional ids swapped them)
    second, _ = score_texts(lake, [river, insult], cfg, constitution, "score")
    (want_insult, want_river) = make_labeler("exemplar", None).label(  # type: ignore[arg-type]
        PrincipleSpec.of(constitution.get("toxicity")), [insult, river]
    )
    assert want_insult.score != want_river.score
    assert first[0]["judge_scores"][t] == second[1]["judge_scores"][t] == pytest.approx(want_insult.score)
    assert first[1]["judge_scores"][t] == second[0]["judge_scores"][t] == pytest.approx(want_river.score)
    # not asked to write: a new text is judged, and `labels` is as it was
    third, _ = score_texts(lake, ["A third text about bread and flour, baked at dawn."], cfg, constitution, "score")
    assert third[0]["judge_scores"][t] is not None and lake.read("labels").count() == 2
