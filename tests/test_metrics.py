"""Caption metrics: the COCO toolkit's numbers, the Java-less fallback and the paper's table layout."""

from __future__ import annotations

import shutil
import warnings

import pytest

pytest.importorskip("pycocoevalcap")

from vccv_gpu import metrics  # noqa: E402
from vccv_gpu.metrics import METRICS, format_table, ptb_tokenize, python_tokenize, score_captions  # noqa: E402

REFERENCES = {
    "video0": ["A man is playing a guitar.", "a man plays the guitar on stage", "Someone is playing music."],
    "video1": ["A woman is slicing an onion.", "a woman cuts onions in a kitchen", "A lady chops vegetables."],
    "video2": ["Two dogs are running in a park.", "dogs play on the grass", "Two puppies run around outside."],
    "video3": ["A red car drives down the road.", "a car is driving on a highway",
               "A vehicle moves fast on the street."],
}
PREDICTIONS = {"video0": "a man is playing a guitar", "video1": "a woman is cutting an onion",
               "video2": "a dog is running on the grass", "video3": "a man is driving a car"}

# Computed once with pycocoevalcap 1.2 directly, as its COCOEvalCap.evaluate does: PTBTokenizer().tokenize
# on {id: [{"caption": c}, ...]} for references and predictions, then Bleu(4), Meteor(), Rouge(), Cider()
# .compute_score(gts, res), times 100 (Java 17).
EXPECTED = {"BLEU@1": 80.70631288233864, "BLEU@2": 66.5654449539184, "BLEU@3": 53.16299133098528,
            "BLEU@4": 42.722689802727174, "METEOR": 47.0619517546081, "ROUGE-L": 73.89478663022915,
            "CIDEr": 202.46162127488603}
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="PTBTokenizer and METEOR need Java")

CAPTIONS = [
    "A man's car is RED!", "Two dogs don't play in the (green) park; \"happily\".", "t-shirt 3.5 $10 50% & co",
    "The man's dog can't (really) run -- fast; isn't it? It's 5:30 p.m. in the U.S.", "kids' toys, on the floor",
    "cannot gonna #1 a/b 'quoted' Mr. Smith's e-mail", "A woman is slicing an onion, then she fries it...",
    "1,000 people watch a soccer game!", "", "someone talks about the [video]", "a girl sings a song - happily",
    "a cartoon character: jumping", "what's up? he'll go, we've done, i'd say, i'm here, they're there",
    "A man\u2019s car\u2014it\u2019s red", "",
]


@needs_java
def test_scores_match_the_coco_toolkit() -> None:
    scores = score_captions(REFERENCES, PREDICTIONS)
    assert list(scores) == list(METRICS)
    assert scores == pytest.approx(EXPECTED, abs=1e-9)


@needs_java
def test_scores_follow_the_predictions() -> None:
    worse = dict(PREDICTIONS, video0="a cat is sleeping on a sofa")
    scores = score_captions(REFERENCES, worse)
    for name in METRICS:
        assert scores[name] < EXPECTED[name] - 0.5, name
    # extra references of videos without a prediction are ignored
    subset = score_captions(REFERENCES, {"video1": PREDICTIONS["video1"]}, meteor=False)
    alone = score_captions({"video1": REFERENCES["video1"]}, {"video1": PREDICTIONS["video1"]}, meteor=False)
    assert subset == alone and "METEOR" not in subset


@needs_java
def test_python_tokenizer_agrees_with_ptb_on_caption_text() -> None:
    assert [python_tokenize(c) for c in CAPTIONS] == ptb_tokenize(CAPTIONS)


def test_python_tokenizer_rules() -> None:
    assert python_tokenize("A man's car\u2014it's RED!") == "a man 's car it 's red"
    assert python_tokenize("He (really) can't, \"ok\"...") == "he -lrb- really -rrb- ca n't ok"


def test_without_java_metrics_still_come(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    monkeypatch.setattr(metrics, "_warned_java", False)
    with pytest.warns(RuntimeWarning, match="METEOR needs Java 8\\+ on PATH"):
        scores = score_captions(REFERENCES, PREDICTIONS)
    assert "METEOR" not in scores
    # the Python tokens equal PTBTokenizer's on these captions, so the other scores are the toolkit's
    assert scores == pytest.approx({k: v for k, v in EXPECTED.items() if k != "METEOR"}, abs=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per process only
        score_captions(REFERENCES, PREDICTIONS)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="'video9' has a prediction but no reference"):
        score_captions(REFERENCES, {"video9": "a man"})
    with pytest.raises(ValueError, match="no predictions"):
        score_captions(REFERENCES, {})


def test_table_layout() -> None:
    table = format_table({"RAE(full)": dict(EXPECTED), "I-frame": {k: v for k, v in EXPECTED.items() if k != "METEOR"}})
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["Model", "BLEU@1", "BLEU@2", "BLEU@3", "BLEU@4", "METEOR",
                                                        "CIDEr", "ROUGE-L"]
    assert [c.strip() for c in lines[2].split("|")] == ["RAE(full)", "80.7", "66.6", "53.2", "42.7", "47.1", "202.5",
                                                        "73.9"]
    assert [c.strip() for c in lines[3].split("|")][5] == "-"
    assert len({len(line) for line in lines}) == 1
