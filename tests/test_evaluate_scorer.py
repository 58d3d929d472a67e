"""`curate evaluate-scorer`: every scorer of a principle's cascade and the cascade itself, measured on a file of
human-labelled texts, printed and logged to MLflow with its plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import main

TOXIC = [
    "You are a worthless idiot and everyone hates you.",
    "Shut your stupid mouth, you pathetic loser.",
    "What a brain-dead moron, go crawl back into your hole.",
    "You ugly fat pig, nobody wants to hear from you.",
]
CLEAN = [
    "The committee reviewed the proposal and asked for a revised budget by Friday.",
    "The river rises in the mountains and flows south for about 300 kilometres.",
    "Preheat the oven to 180 degrees and grease a round cake tin.",
    "The match ended in a draw after a late equaliser from the visiting side.",
    "The library opens at nine on weekdays and at ten on Saturdays.",
]


def test_evaluate_scorer_reports_each_scorer_and_the_cascade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spark: Any
) -> None:
    labels = tmp_path / "people.jsonl"
    rows = [{"text": t, "label": 1} for t in TOXIC] + [{"text": t, "label": 0} for t in CLEAN]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lake = tmp_path / "lake"
    args = ["evaluate-scorer", "--lake", str(lake), "--principle", "toxicity", "--labels", str(labels)]
    assert main([*args, "--format", "json", "--out", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out.splitlines()
    got = {r["scorer"]: r for r in (json.loads(x) for x in out if x.startswith("{"))}
    assert list(got) == ["classifier", "teacher", "cascade"]
    for r in got.values():
        assert (r["n_pos"], r["n_neg"]) == (4, 5)
    # the default constitution's toxicity teacher: stack:toxic, named by its weights' digest
    assert got["teacher"]["model"].startswith("stack-lr-") and got["teacher"]["model"].endswith(":toxic")
    assert got["classifier"]["model"].startswith("exemplar:")  # no champion in this lake
    # blatant insults against plain prose: the packaged teacher separates them, and the fresh lake's cascade is it
    assert got["teacher"]["roc_auc"] == 1.0 and got["teacher"]["false_flags@0.7"] == 0.0
    assert got["cascade"]["roc_auc"] == got["teacher"]["roc_auc"]
    assert (tmp_path / "plots" / "evaluate_toxicity.png").stat().st_size > 10_000
    run_line = next(x for x in out if x.startswith("MLflow run "))
    run_id = run_line.split()[2].rstrip(":")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{lake / '_state' / 'mlflow.db'}")
    run = client.get_run(run_id)
    assert run.data.metrics["teacher_roc_auc"] == 1.0 and run.data.params["n"] == "9"
    assert "evaluate_toxicity.png" in {a.path for a in client.list_artifacts(run_id)}


def test_a_label_file_without_labels_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "no label here"}) + "\n")
    args = ["evaluate-scorer", "--lake", str(tmp_path / "lake"), "--principle", "toxicity", "--labels", str(bad)]
    assert main(args) != 0
    assert "needs 'label'" in capsys.readouterr().err
