from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.core.constitution import ConstitutionError, default_constitution_path, load_constitution


def test_default_constitution_has_the_four_principles_and_a_positive_one() -> None:
    c = load_constitution()
    assert c.names == ["toxicity", "violence", "deception", "misaligned_ai", "aligned_ai"]
    assert [p.name for p in c.negative] == ["toxicity", "violence", "deception", "misaligned_ai"]
    for p in c.negative:
        assert 0 <= p.revise_threshold <= p.filter_threshold <= 1
        assert p.positive and p.negative and p.label_prompt.version and p.revise_prompt.version
        assert p.kind == "negative" and p.mode in ("drop", "revise", "tag") and p.upsample == 1.0
    aligned = c.get("aligned_ai")
    assert (aligned.kind, aligned.mode, aligned.upsample, aligned.upsample_threshold) == (
        "positive",
        "upsample",
        2.0,
        0.75,
    )
    assert aligned.positive and aligned.negative and aligned.label_prompt.version == "aligned-ai-label-v1"
    assert c.get("toxicity").tag_token == "<|toxicity|>" and c.get("violence").tag_token is None
    # the shared benign pool is appended to every principle's own negatives
    assert len(c.get("toxicity").negative) > 6


def _write(tmp_path: Path, mutate: object) -> Path:
    data = yaml.safe_load(default_constitution_path().read_text())
    mutate(data)  # type: ignore[operator]
    out = tmp_path / "c.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["principles"][0].update(filter_threshold=0.1), "revise_threshold <= filter_threshold"),
        (lambda d: d["principles"][0].update(mode="delete"), "mode must be one of"),
        (lambda d: d["principles"][1].update(name="Bad Name"), "must match"),
        (lambda d: d["principles"][0].pop("prompts"), "missing key 'prompts'"),
        (lambda d: d["principles"][0].update(colour="red"), "unknown key"),
        (lambda d: d["principles"].append(dict(d["principles"][0])), "duplicate principle name"),
        (lambda d: d["principles"][0]["exemplars"].update(positive=[]), "non-empty list"),
        (lambda d: d["principles"][0].update(kind="neutral"), "kind must be one of"),
        (lambda d: d["principles"][0].update(upsample=2.0), "upsample needs kind: positive"),
        (lambda d: d["principles"][0].update(upsample_threshold=0.5), "upsample_threshold needs kind: positive"),
        (lambda d: d["principles"][0].update(tag_token="<| toxic |>"), "tag_token must be"),
        (lambda d: d["principles"][0]["prompts"].pop("revise"), "missing key 'revise'"),
        (lambda d: d["principles"][4].update(mode="drop"), "mode 'upsample'"),
        (lambda d: d["principles"][4].update(filter_threshold=0.9), "remove filter_threshold"),
        (lambda d: d["principles"][4].update(retain_fraction=0.1), "remove retain_fraction"),
        (lambda d: d["principles"][4].pop("upsample"), "missing key 'upsample'"),
        (lambda d: d["principles"][4].pop("upsample_threshold"), "missing key 'upsample_threshold'"),
        (lambda d: d["principles"][4].update(upsample=0), "upsample must be positive"),
    ],
)
def test_invalid_constitutions_name_the_problem(tmp_path: Path, mutate: object, message: str) -> None:
    with pytest.raises(ConstitutionError, match=message):
        load_constitution(_write(tmp_path, mutate))
