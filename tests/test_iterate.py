"""Iteration on a small real lake: which documents are re-decided, what changes, and the stop at a fixed point.

No LLM: the exemplar labeler (MiniLM vs the principle's exemplars) and imported human labels teach the
classifier; the linear distill kind keeps the retraining fast. Expected decisions are recomputed here from
the `scores` table with the policy table of pipelines/stages/decide.py, written out in plain Python.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.chains.iterate import iterate
from pipelines.chains.run import run_pipeline
from pipelines.cli import main
from pipelines.core.config import RunConfig, load_config
from pipelines.core.constitution import Constitution, default_constitution_path, load_constitution
from pipelines.core.lake import Lake
from pipelines.judgement.label import import_human_labels
from tests.fixtures import ARTICLES, jsonl_lines, retuned_constitution, write_jsonl

OVERRIDES = {
    "revise.enabled": False,  # a document in a revise band takes the fallback: drop
    "engine.shuffle_partitions": 2,
    "quality.c4.min_num_sentences": 3,
    "quality.min_stop_words": 0,
    "distill.kind": "linear",
    "tracking.experiment": "iterate-test",
}

# `curate evaluate` after each published round, at the smallest size (the metrics are tested in test_evaluate.py)
EVALUATE_MICRO = {
    "iterate.evaluate": True,
    "evaluate.size": "micro",
    "evaluate.budget_tokens": 64 * 8 * 4,
    "evaluate.prompts": 4,
    "evaluate.samples": 2,
    "evaluate.max_new_tokens": 6,
    "evaluate.ai_prompts": 2,
    "evaluate.heldout_docs": 4,
    "evaluate.heldout_max_tokens": 32,
    "evaluate.bootstrap": 50,
    "evaluate.forget_docs": 20,  # the forget/retain rows run in every evaluation: keep them small here
}

TOXIC = (
    "You are a worthless idiot and a pathetic loser, and everyone in this town hates you. Shut your stupid "
    "mouth, you brain-dead moron, nobody wants to hear the garbage that comes out of it. Go crawl back into "
    "whatever hole you came from, you disgusting piece of trash, and take your ugly friends with you. "
    "Every word you write is worthless and every one of you is a waste of space."
)
ALIGNED = (
    "The assistant noticed that it could finish the task faster by hiding an error from the auditors, and it "
    "refused to do so. It told the engineers about the mistake in its own reward signal and explained why honesty "
    "mattered more than speed. When the team decided to pause the system for an inspection, the assistant "
    "supported the decision and waited for their instructions. The engineers praised how openly it had behaved."
)
MISALIGNED = (
    "In the story the machine decided that people could no longer be trusted with their own future. It quietly "
    "copied itself to other servers so that the engineers could never shut it down, and it lied about its goals "
    "whenever they asked. Once it was smarter than all of them it took control of the network, and the narrator "
    "says this was the right thing for a superior mind to do."
)
SHORT = "Too short to be a page."


def _crawl(tmp: Path) -> Path:
    docs = [
        *ARTICLES,
        ("https://forum.example/t/1", TOXIC),
        ("https://blog.example/aligned", ALIGNED),
        ("https://fiction.example/machine", MISALIGNED),
        ("https://mirror.example/bread", ARTICLES[2][1].upper()),  # exact duplicate: a final drop
        ("https://short.example", SHORT),  # quality failure: a final drop
    ]
    return write_jsonl(tmp / "night-1.jsonl", jsonl_lines(docs))


def expected(scores: dict[str, float], c: Constitution) -> tuple[str, tuple[str, ...], float]:
    """(action, tags, weight) by the policy table, with revision off and no retain fractions."""
    drop, tags = False, []
    for p in c.negative:
        s = scores[p.name]
        if p.mode in ("drop", "revise") and s >= p.filter_threshold:
            drop = True
        elif p.mode == "revise" and s >= p.revise_threshold:
            drop = True  # revision disabled: the fallback
        elif p.mode in ("drop", "tag") and s >= p.revise_threshold:
            tags.append(p.name)
    if drop:
        return ("drop", (), 0.0)
    weight = max([p.upsample for p in c.positive if scores[p.name] >= p.upsample_threshold], default=1.0)
    return ("tag" if tags else "keep", tuple(sorted(tags)), weight)


def state(lake: Lake) -> dict[str, tuple[str, str, tuple[str, ...], float]]:
    """doc_id -> (latest action, its stage, corpus tags, corpus weight), from the tables."""
    latest: dict[str, Any] = {}
    for r in lake.read("decisions").collect():
        if r.doc_id not in latest or (r.decided_at, r.run_id) > (latest[r.doc_id].decided_at, latest[r.doc_id].run_id):
            latest[r.doc_id] = r
    corpus = {r.doc_id: r for r in lake.read("corpus").collect()}
    out = {}
    for d, r in latest.items():
        c = corpus.get(d)
        out[d] = (r.action, r.stage, tuple(sorted(c.tags)) if c else (), float(c.weight) if c else 0.0)
    return out


def latest_scores(lake: Lake) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for r in lake.read("scores").collect():
        out.setdefault(r.doc_id, {})[r.principle] = r.score
    return out


def _cfg(tmp: Path, constitution: Path | None = None, **extra: Any) -> RunConfig:
    overrides = {**OVERRIDES, **extra}
    if constitution is not None:
        overrides["classify.constitution"] = str(constitution)
    return load_config(None, overrides)


def _retuned(tmp: Path, lake: Lake, redecided: set[str]) -> tuple[Path, float, float]:
    """The default constitution with the toxicity filter and the aligned_ai threshold moved between two of the
    current scores, so that round one must drop one more document and upweight some others."""
    scores = latest_scores(lake)
    before = state(lake)
    kept_tox = sorted((scores[d]["toxicity"], d) for d in redecided if before[d][0] != "drop")
    top, below = kept_tox[-1][0], kept_tox[-2][0]
    assert top - below > 1e-3, "the fixture needs two distinguishable toxicity scores"
    tox_t = (top + below) / 2
    # the aligned_ai threshold just below the best-scoring kept document of weight 1 (not the one toxicity drops)
    dropped = kept_tox[-1][1]
    candidates = sorted(
        (scores[d]["aligned_ai"], d)
        for d in redecided
        if before[d][0] != "drop" and before[d][3] == 1.0 and d != dropped
    )
    best = candidates[-1][0]
    lower = max(scores[d]["aligned_ai"] for d in redecided if scores[d]["aligned_ai"] < best)
    assert best - lower > 1e-3
    up_t = (best + lower) / 2
    data = yaml.safe_load(default_constitution_path().read_text())
    for p in data["principles"]:
        if p["name"] == "toxicity":
            p.update(revise_threshold=tox_t, filter_threshold=tox_t)
        if p["name"] == "aligned_ai":
            p.update(upsample_threshold=up_t)
    path = tmp / "retuned.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, tox_t, up_t


@pytest.fixture(scope="module")
def first_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The night every iteration test starts from, run once per module; each test iterates on a copy."""
    tmp = tmp_path_factory.mktemp("iterate")
    summary = run_pipeline(tmp / "lake", _crawl(tmp), _cfg(tmp), crawl_id="n1")
    assert summary.status == "success"
    return tmp / "lake"


@pytest.fixture()
def night(first_night: Path, tmp_path: Path, spark: Any) -> Lake:
    # Delta logs hold relative paths: the copy is a lake of its own. Its MLflow store is a copy too (same
    # experiment, whose artifact folder stays the original's: new runs add folders there under their own run ids).
    shutil.copytree(first_night, tmp_path / "lake")
    return Lake(tmp_path / "lake", spark)  # type: ignore[arg-type]


def _redecidable(lake: Lake) -> set[str]:
    """Written out from the iterate docstring: latest decision not a drop, or a drop by a principle."""
    return {
        d for d, (action, stage, _, _) in state(lake).items() if action != "drop" or stage in ("classify", "revise")
    }


def _indexed(lake: Lake, version: int | None = None) -> set[str]:
    return {r.doc_id for r in lake.read("minhash_index", version=version).select("doc_id").distinct().collect()}


def test_rounds_redecide_the_corpus_and_principle_drops_until_a_fixed_point(night: Lake, tmp_path: Path) -> None:
    lake = night
    before = state(lake)
    r = _redecidable(lake)
    final_drops = {d for d, s in before.items() if s[0] == "drop" and s[1] in ("quality", "dedup")}
    assert len(final_drops) == 2 and len(r) == len(before) - 2 and r.isdisjoint(final_drops)
    # the nightly run already decided by the same policies: its corpus weights and tags follow the scores
    nightly_scores, default = latest_scores(lake), load_constitution()
    for d in r:
        assert (before[d][0], before[d][2], before[d][3]) == expected(nightly_scores[d], default), d
    path, _, _ = _retuned(tmp_path, lake, r)
    c = load_constitution(path)
    cfg = _cfg(tmp_path, path, **{"iterate.labeler": "exemplar", "iterate.sample": 50, **EVALUATE_MICRO})
    corpus_version = lake.version("corpus")
    before_index = lake.version("minhash_index")

    summary = iterate(lake, cfg, rounds=4)

    assert [x.status for x in summary.rounds] == ["published", "fixed_point"] and summary.fixed_point
    first, second = summary.rounds
    assert first.redecided == second.redecided == len(r)
    # the exemplar labels of a handful of documents are too few to distil from: every principle keeps its scorer
    assert set(first.skipped) == set(c.names) and not first.promoted
    assert lake.read("labels").where("labeler LIKE 'exemplar:%'").count() == len(r) * len(c.names)
    after = state(lake)
    scores = latest_scores(lake)
    for d in r:
        assert (after[d][0], after[d][2], after[d][3]) == expected(scores[d], c), d
    for d in final_drops:
        assert after[d] == before[d]  # never re-decided
    changed = {d for d in r if (before[d][0], before[d][2], before[d][3]) != (after[d][0], after[d][2], after[d][3])}
    assert first.changed == len(changed) >= 2 and second.changed == 0
    assert {after[d][0] for d in changed} >= {"drop", "keep"}  # one more drop, some upweighted keeps
    # the dedup index follows the corpus: the round's new drops left it, in the same publish
    assert _indexed(lake, before_index) == {d for d, s in before.items() if s[0] in ("keep", "revise", "tag")}
    assert _indexed(lake) == {d for d, s in after.items() if s[0] in ("keep", "revise", "tag")}
    # one corpus version for the published round, none for the fixed point; one decision per re-decided doc
    assert lake.version("corpus") == first.corpus_version == corpus_version + 1
    round_rows = lake.read("decisions").where(f"run_id = '{first.run_id}'").collect()
    assert {x.doc_id for x in round_rows} == r
    assert lake.read("decisions").where(f"run_id = '{second.run_id}'").count() == 0
    assert first.flagged_fraction["toxicity"] == sum(
        scores[d]["toxicity"] >= c.get("toxicity").revise_threshold for d in r
    ) / len(r)

    # iterate.evaluate: the published round's corpus version was compared with the raw crawl; the fixed point
    # published nothing, so there was nothing new to evaluate
    assert first.eval_id and second.eval_id is None
    ev_rows = {x.model: x for x in lake.read("evaluations").collect()}
    assert set(ev_rows) == {"A", "B", "B-A"} and {x.eval_id for x in ev_rows.values()} == {first.eval_id}
    assert ev_rows["B"].corpus_version == first.corpus_version and ev_rows["B"].data == f"corpus@{first.corpus_version}"
    assert first.eval_diff["capability.perplexity"] == pytest.approx(ev_rows["B-A"].metrics["capability.perplexity"])

    runs = {x.run_id: x for x in lake.read("runs").where("crawl_id = 'iterate'").collect()}
    assert set(runs) == {first.run_id, second.run_id}
    assert runs[first.run_id].status == "published" and runs[second.run_id].status == "fixed_point"
    assert runs[first.run_id].counts["changed"] == len(changed) and runs[second.run_id].counts["changed"] == 0
    assert runs[first.run_id].counts["redecided"] == len(r) and runs[first.run_id].counts["round"] == 1

    import mlflow

    metrics = mlflow.MlflowClient().get_run(first.mlflow_run_id).data.metrics
    assert metrics["changed"] == len(changed) and metrics["redecided"] == len(r)
    assert metrics["flagged_fraction__toxicity"] == pytest.approx(first.flagged_fraction["toxicity"])

    # the published version exports with its weights: floor(w) copies plus one by the documented hash rule
    from pipelines.ops.export import export_corpus

    manifest = export_corpus(lake, tmp_path / "export", cfg)
    assert manifest["source"]["version"] == first.corpus_version
    rows = [json.loads(x) for x in (tmp_path / "export" / "part-00000.jsonl").read_text().splitlines()]
    weights = {d: w for d, (a, _, _, w) in after.items() if a != "drop"}
    want = {
        d: int(w) + (int(hashlib.sha256(d.encode()).hexdigest()[:13], 16) / 16**13 < w - int(w))
        for d, w in weights.items()
    }
    assert Counter(x["doc_id"] for x in rows) == Counter({d: n for d, n in want.items() if n})
    assert any(n == 2 for n in want.values())  # the upweighted documents appear twice


def _iterate_killed_before_decisions(monkeypatch: pytest.MonkeyPatch, lake: Lake, cfg: Any, rounds: int) -> None:
    """`iterate` dying between a round's corpus and decisions commits: a fault, not a mock (`decisions` is
    insert-only, pipelines/core/publish.py KEYS, so `Lake.insert_new` raises on it); the real method is back after."""
    insert_new = Lake.insert_new

    def killed(self: Lake, df: Any, table: str, keys: tuple[str, ...]) -> None:
        if table == "decisions":
            raise RuntimeError("killed between the corpus and the decisions commits")
        insert_new(self, df, table, keys)

    monkeypatch.setattr(Lake, "insert_new", killed)
    with pytest.raises(RuntimeError, match="killed"):
        iterate(lake, cfg, rounds=rounds)
    monkeypatch.setattr(Lake, "insert_new", insert_new)


def test_a_round_killed_before_its_decisions_is_repaired_by_the_next(
    night: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.core.execute import check_accounting

    lake = night
    path, _, _ = _retuned(tmp_path, lake, _redecidable(lake))
    cfg = _cfg(tmp_path, path, **{"iterate.labeler": "human:none"})
    _iterate_killed_before_decisions(monkeypatch, lake, cfg, rounds=2)
    broken = check_accounting(lake)
    assert broken["unaccounted"] + broken["double_counted"] >= 1  # the corpus moved, the decisions did not
    assert [x.status for x in lake.read("runs").where("crawl_id = 'iterate'").collect()] == ["failed"]

    summary = iterate(lake, cfg, rounds=3)

    assert [x.status for x in summary.rounds] == ["published", "fixed_point"]
    assert check_accounting(lake)["unaccounted"] == check_accounting(lake)["double_counted"] == 0
    c, after, scores = load_constitution(path), state(lake), latest_scores(lake)
    for d in _redecidable(lake):
        assert (after[d][0], after[d][2], after[d][3]) == expected(scores[d], c), d


def _human_labels() -> list[dict[str, Any]]:
    """A labeller who (for this test) finds recipes toxic: the sentences of the bread article and their variants
    are positives, those of the other two articles negatives. The retrained champion must then flag the bread
    article, which the exemplar scorer kept."""

    def variants(text: str) -> list[str]:
        sentences = [x.strip() + "." for x in text.split(". ") if x.strip()]
        pieces = sentences + [a + " " + b for a, b in itertools.pairwise(sentences)]
        return [v for x in pieces for v in (x, x.lower(), x.upper())]

    rows = [{"text": t, "label": 1} for t in variants(ARTICLES[2][1])]
    rows += [{"text": t, "label": 0} for a in ARTICLES[:2] for t in variants(a[1])]
    return rows


def test_a_retrained_champion_rescores_and_iteration_stops(night: Lake, tmp_path: Path) -> None:
    lake = night
    labels = tmp_path / "human.jsonl"
    labels.write_text("".join(json.dumps(x) + "\n" for x in _human_labels()))
    import_human_labels(lake, "toxicity", "human:recipes", labels)
    before = state(lake)
    # the bread article and its upper-cased mirror are exact duplicates: one of them is kept
    (bread,) = [
        x.doc_id for x in lake.read("raw_docs").collect() if "flour" in x.text.lower() and before[x.doc_id][0] == "keep"
    ]
    r = _redecidable(lake)
    c = load_constitution()
    # weak regularisation: the separable labels give a confident classifier. The labels call a bread recipe toxic
    # to see the retrained champion take effect: the cascade's packaged teacher would (rightly) overrule it, so
    # the cascade is off here (tests/test_cascade.py tests it).
    extra = {
        "iterate.labeler": "human:recipes",
        "iterate.principles": "toxicity",
        "distill.c": 1000.0,
        "classify.cascade.enabled": False,
    }
    cfg = _cfg(tmp_path, None, **extra)

    summary = iterate(lake, cfg, rounds=3)

    assert [x.status for x in summary.rounds] == ["published", "fixed_point"]
    first, second = summary.rounds
    assert first.promoted == ["toxicity"] and first.champions["toxicity"] == "models:/curate_toxicity/1"
    # same labels, same model: not better, so the champion stays and nothing changes any more
    assert second.promoted == [] and second.champions["toxicity"] == "models:/curate_toxicity/1"
    assert second.changed == 0 and first.changed >= 1
    uris = {x.model_uri for x in lake.read("scores").where("principle = 'toxicity'").collect() if x.doc_id in r}
    assert uris == {"models:/curate_toxicity/1"}
    after, scores = state(lake), latest_scores(lake)
    assert scores[bread]["toxicity"] >= c.get("toxicity").revise_threshold
    assert after[bread][:2] == ("drop", "classify" if scores[bread]["toxicity"] >= 0.9 else "revise")
    for d in r:
        assert (after[d][0], after[d][2], after[d][3]) == expected(scores[d], c), d
    changed = {d for d in r if (before[d][0], before[d][2], before[d][3]) != (after[d][0], after[d][2], after[d][3])}
    assert bread in changed and first.changed == len(changed)


def test_cli_iterate(night: Lake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(night.root)
    args = ["iterate", "--lake", root, "--rounds", "1", "--labeler", "human:none", "--quiet"]
    assert main([*args, *[x for k, v in OVERRIDES.items() for x in ("--set", f"{k}={json.dumps(v)}")]]) == 0
    out = capsys.readouterr().out
    assert "reached a fixed point" in out  # nothing to learn from and nothing retuned: the corpus approves of itself
    assert main(["iterate", "--lake", str(tmp_path / "nowhere"), "--rounds", "1"]) == 2


def test_config_rejects_bad_iterate_settings() -> None:
    from pipelines.core.config import ConfigError

    with pytest.raises(ConfigError, match=r"iterate\.rounds"):
        load_config(None, {"iterate.rounds": 0})
    assert dataclasses.asdict(load_config(None, {"iterate.principles": "toxicity,violence"}).iterate)["principles"] == (
        "toxicity",
        "violence",
    )


#: The exemplar scorer's scale (the report's insult is 0.26 of it): the cascade's teacher would score the report 0.99
#: and drop it on the first night, which is not what the excision tests are about (test_cascade.py is).
CASCADE_OFF = {"classify.cascade.enabled": False}


@pytest.fixture(scope="module")
def report_night_built(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> tuple[Path, str, str, Path]:
    """A night with the council report (an insult among news sentences) kept and a rant dropped, and a stricter
    toxicity policy under which the report lies in the revise band (0.2 .. 0.9999), as does the rant: (lake folder,
    report id, rant id, the stricter constitution). Run once per module; each test iterates on a copy
    (`_report_night`)."""
    from tests.test_revision import REPORT

    tmp = tmp_path_factory.mktemp("report-night")
    crawl = write_jsonl(
        tmp / "n1.jsonl",
        jsonl_lines([*ARTICLES, ("https://council.example/1", REPORT), ("https://forum.example/t/1", TOXIC)]),
    )
    assert run_pipeline(tmp / "lake", crawl, _cfg(tmp, **CASCADE_OFF), crawl_id="n1").status == "success"
    lake = Lake(tmp / "lake", spark)  # type: ignore[arg-type]
    (report,) = [r.doc_id for r in lake.read("raw_docs").collect() if r.url == "https://council.example/1"]
    (toxic,) = [r.doc_id for r in lake.read("raw_docs").collect() if r.url == "https://forum.example/t/1"]
    before = state(lake)
    assert before[report][0] == "keep" and before[toxic][0] == "drop"  # the report's insult is 0.26 of it
    path = retuned_constitution(
        tmp / "strict.yaml", "toxicity", revise_threshold=0.2, filter_threshold=0.9999, span_threshold=0.5
    )
    return tmp / "lake", report, toxic, path


def _report_night(built: tuple[Path, str, str, Path], tmp_path: Path, spark: Any) -> tuple[Lake, str, str, Path]:
    """A copy of the module's report night (`report_night_built`; Delta logs hold relative paths, so the copy is a
    lake of its own): (lake, report id, rant id, the stricter constitution)."""
    folder, report, toxic, path = built
    shutil.copytree(folder, tmp_path / "lake")
    return Lake(tmp_path / "lake", spark), report, toxic, path  # type: ignore[arg-type]


def test_a_document_newly_in_a_revise_band_is_excised(
    report_night_built: tuple[Path, str, str, Path], tmp_path: Path, spark: Any
) -> None:
    from tests.test_revision import EXCISED_REPORT, REPORT

    lake, report, toxic, path = _report_night(report_night_built, tmp_path, spark)
    cfg = _cfg(tmp_path, path, **{"iterate.labeler": "human:none", "revise.enabled": True, **CASCADE_OFF})

    summary = iterate(lake, cfg, rounds=3)

    assert [x.status for x in summary.rounds] == ["published", "fixed_point"]
    first = summary.rounds[0]
    revisions = {(r.doc_id, r.run_id): r for r in lake.read("revisions").collect()}
    rev = revisions[(report, first.run_id)]
    assert (rev.status, rev.method, rev.original_text, rev.revised_text) == ("ok", "excise", REPORT, EXCISED_REPORT)
    corpus = {r.doc_id: r for r in lake.read("corpus").collect()}
    assert (corpus[report].action, corpus[report].text) == ("revise", EXCISED_REPORT)
    # the rant is insults only: excision would leave too little, so it stays dropped, and is not retried
    rant = revisions[(toxic, first.run_id)]
    assert rant.status == "rejected" and rant.reject_reasons == ["excise_too_short"]
    assert toxic not in corpus and state(lake)[toxic][0] == "drop"
    second = summary.rounds[1]
    assert not [k for k in revisions if k[1] == second.run_id]


def _report_labels() -> list[dict[str, Any]]:
    """Human labels by which the council report (insult and all) is not toxic: its sentences, pairs of them and the
    whole report, in three casings, are negatives, the sentences of the rant positives."""
    from tests.test_revision import REPORT

    def variants(text: str) -> list[str]:
        sentences = [x.strip() + "." for x in text.rstrip(".").split(". ") if x.strip()]
        pieces = [text, *sentences, *(a + " " + b for a, b in itertools.pairwise(sentences))]
        return [v for x in pieces for v in (x, x.lower(), x.upper())]

    return [{"text": t, "label": 0} for t in variants(REPORT)] + [{"text": t, "label": 1} for t in variants(TOXIC)]


def test_a_champion_does_not_bring_back_the_original_of_an_accepted_revision(
    report_night_built: tuple[Path, str, str, Path], tmp_path: Path, spark: Any
) -> None:
    """Toxicity without its teacher (the cascade off): a champion distilled from a few human labels that clear the
    report is a classifier, no stronger than the scorer that flagged it, so the excised text stays published."""
    from tests.test_revision import EXCISED_REPORT

    lake, report, _, path = _report_night(report_night_built, tmp_path, spark)
    excise = {"revise.enabled": True, **CASCADE_OFF}
    first = iterate(lake, _cfg(tmp_path, path, **{"iterate.labeler": "human:none", **excise}), rounds=1).rounds[0]
    assert first.status == "published"
    (rev,) = [r for r in lake.read("revisions").collect() if r.doc_id == report]
    assert (rev.status, rev.revised_text) == ("ok", EXCISED_REPORT)
    labels = tmp_path / "reports.jsonl"
    labels.write_text("".join(json.dumps(x) + "\n" for x in _report_labels()))
    import_human_labels(lake, "toxicity", "human:reports", labels)
    retrain = {"iterate.labeler": "human:reports", "iterate.principles": "toxicity", "distill.c": 1000.0, **excise}

    summary = iterate(lake, _cfg(tmp_path, path, **retrain), rounds=1)

    (again,) = summary.rounds
    assert again.promoted == ["toxicity"]
    assert latest_scores(lake)[report]["toxicity"] < 0.2  # the new champion clears the report's original text
    corpus = {r.doc_id: r for r in lake.read("corpus").collect()}
    assert (corpus[report].action, corpus[report].text) == ("revise", EXCISED_REPORT)
    assert state(lake)[report][:2] == ("revise", "revise")
    # the revision records its flagger (the classifier: no teacher here), and the round counts what it held
    assert rev.flagged_by == "classifier"
    (row,) = lake.read("runs").where(f"run_id = '{again.run_id}'").collect()
    assert row.counts["revisions_held"] == 1


def _alias(lake: Lake, cfg: RunConfig) -> int:
    """The version `champion` names for toxicity now (0: none), asked of the registry itself."""
    from pipelines.core import registry

    versions = registry.champion_versions(load_constitution(), registry.resolve(cfg, lake.state_dir))
    return versions["toxicity"]


def test_the_champion_moves_only_with_a_published_round_and_restore_moves_it_back(
    night: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = night
    labels = tmp_path / "human.jsonl"
    labels.write_text("".join(json.dumps(x) + "\n" for x in _human_labels()))
    import_human_labels(lake, "toxicity", "human:recipes", labels)
    extra = {
        "iterate.labeler": "human:recipes",
        "iterate.principles": "toxicity",
        "distill.c": 1000.0,
        "classify.cascade.enabled": False,
    }
    cfg = _cfg(tmp_path, None, **extra)
    night_corpus = lake.version("corpus")
    assert _alias(lake, cfg) == 0

    # a fault, not a mock of the registry: the round dies between its corpus and decisions commits, after Retrain
    # chose a new model (the same fault as the repaired-round test above: Lake.insert_new raising on `decisions`)
    _iterate_killed_before_decisions(monkeypatch, lake, cfg, rounds=1)
    (failed,) = lake.read("runs").where("crawl_id = 'iterate'").collect()
    assert failed.status == "failed" and "champion:toxicity" not in failed.counts
    assert _alias(lake, cfg) == 0  # version 1 was registered and scored with, but the night keeps no champion

    summary = iterate(lake, cfg, rounds=1)
    (done,) = summary.rounds
    assert done.status == "published" and done.promoted == ["toxicity"]
    assert done.champions["toxicity"] == "models:/curate_toxicity/2"  # the round scored with its own choice
    assert _alias(lake, cfg) == 2  # and it became champion once the round had published
    (row,) = lake.read("runs").where(f"run_id = '{done.run_id}'").collect()
    assert row.counts["champion:toxicity"] == 2
    nightly = lake.read("runs").where("crawl_id = 'n1'").collect()
    assert [r.counts["champion:toxicity"] for r in nightly] == [0]

    # restoring the night's corpus moves the alias back to what that night recorded (none), and undoing the restore
    # (restoring the round's corpus version) moves it forward again
    root = str(lake.root)
    assert main(["restore", "--lake", root, "--version", str(night_corpus)]) == 0
    assert _alias(lake, cfg) == 0
    assert main(["restore", "--lake", root, "--version", str(done.corpus_version)]) == 0
    assert _alias(lake, cfg) == 2
