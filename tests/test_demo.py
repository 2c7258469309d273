"""The bundled demo checkpoint: complete, small, and right about clips of the generated set it
never saw (the README's 100 clips of seed 7; it was trained on seed 0) more often than any
constant guess.

A constant guess, one caption for every clip, names an attribute right as often as that
attribute's most common value among the clips (counting "not named" as a value: a caption that
never names a speed is right on every still clip). On these clips that is direction 28 %, speed
45 %, motion 49 %, colour 23 %, shape 38 %, photo 29 %; the demo scores 65, 51, 77, 90, 50,
100 %. Each attribute must beat the constant guess by MARGIN, which sits a few clips under what
the demo achieves: it hardly knows speed, and shape only a little.
"""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from vccv_gpu.caption import CaptionResult, caption_videos
from vccv_gpu.checkpoint import DEMO_CHECKPOINT, load_checkpoint
from vccv_gpu.data.synthetic import ATTRIBUTE_WORDS, attribute_named, generate

CLIPS = 100
# How much more often than the best constant guess the captions must name each attribute right.
MARGIN = {"direction": 0.25, "speed": 0.03, "motion": 0.2, "colour": 0.5, "shape": 0.08, "photo": 0.5}


@pytest.fixture(scope="module")
def unseen(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("demo")
    generate(folder, videos=CLIPS, seed=7)
    with open(folder / "captions.csv", encoding="utf-8") as f:
        return {str((folder / row["video"]).resolve()): row["caption"] for row in csv.DictReader(f)}


def constant_guess_score(truths: list[str | None]) -> float:
    """The best fraction of right answers that one answer for every clip achieves."""
    return Counter(truths).most_common(1)[0][1] / len(truths)


def test_constant_guess_score() -> None:
    assert constant_guess_score(["ball", None, "ball", "square"]) == 0.5
    assert constant_guess_score([None, None, "slowly"]) == pytest.approx(2 / 3)


def test_demo_checkpoint_is_bundled_and_small() -> None:
    files = {p.name: p.stat().st_size for p in DEMO_CHECKPOINT.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.json", "backbones.safetensors"} <= set(files)
    assert sum(files.values()) < 10 * 2**20
    ckpt = load_checkpoint(None)
    assert ckpt.backbones is not None and ckpt.model.config.variant == "rae"
    assert {w for words in ATTRIBUTE_WORDS.values() for w in words} <= set(ckpt.vocab.words)


def test_demo_beats_a_constant_guess_on_unseen_clips(unseen: dict[str, str]) -> None:
    results = list(caption_videos(sorted(unseen), load_checkpoint(None), beam=5, workers=2))
    assert all(isinstance(r, CaptionResult) for r in results) and len(results) == CLIPS
    for attribute in ATTRIBUTE_WORDS:
        truths = [attribute_named(unseen[r.path], attribute) for r in results]
        right = sum(attribute_named(r.caption, attribute) == truth for r, truth in zip(results, truths))
        constant = constant_guess_score(truths)
        assert right / CLIPS >= constant + MARGIN[attribute], (attribute, right, constant, [r.caption for r in results])
