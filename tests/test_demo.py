"""The bundled demo checkpoint: complete, small, right about clips of the generated set it never
saw (the README's 100 clips of seed 7 with 2 still distractors, the set it was trained on with
seed 0) more often than a constant guess, and looking at the shape that moves.

A constant guess, one caption for every clip, names an attribute right as often as that
attribute's most common value among the clips (counting "not named" as a value: a caption that
never names an event is right on every clip that only moves). On these clips that is direction
36 %, speed 51 %, motion 57 %, colour 22 %, shape 38 %, photo 29 %; the demo (issue 24's model,
trained on 600 clips: CNN_I also taught the colour and shape at each cell of its grid, CNN_r where
the named shape is, Eq. 8's W_t and W_I started at zero and W_r at three times the centred
identity, Eq. 5's conv and W_GR at sqrt(H W) times their default) scores 36, 54, 74, 94, 86 and
100 %. MARGIN, how much more often than the constant guess it must be right, sits 6 clips under
what it achieves: it knows the moving shape's colour and shape and, less surely, whether it
appears or stops; its direction and speed not better than a constant guess (MARGIN below 0 there:
a floor against collapse, not a claim; the residuals reach the decoder only as where to look and
as the gate, and the frames are averaged after Eq. 12, so their order is lost). The same recipe on
300 clips scored 26, 49, 70, 82, 68 and 100 %; with Eq. 5's conv and W_GR at their default 37, 71,
52, 86, 57 and 100 %; with W_r started at the centred identity, 30, 72, 55, 75, 63 and 100 %;
without CNN_I's per-cell target 47, 54, 51, 78, 40 and 98 %; without the "where" target the
direction 59 %, the colour 64 %, the shape 36 %.
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
MARGIN = {"direction": -0.06, "speed": -0.03, "motion": 0.11, "colour": 0.66, "shape": 0.42, "photo": 0.65}


@pytest.fixture(scope="module")
def unseen(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("demo")
    generate(folder, videos=CLIPS, seed=7, distractors=2)
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
    # every attribute word but "still": a set with distractors has no still clips (nothing could
    # tell which of the still shapes a caption named)
    assert {w for words in ATTRIBUTE_WORDS.values() for w in words} - {"still"} <= set(ckpt.vocab.words)


def test_demo_beats_a_constant_guess_on_unseen_clips(unseen: dict[str, str]) -> None:
    results = list(caption_videos(sorted(unseen), load_checkpoint(None), beam=5, workers=2))
    assert all(isinstance(r, CaptionResult) for r in results) and len(results) == CLIPS
    for attribute in ATTRIBUTE_WORDS:
        truths = [attribute_named(unseen[r.path], attribute) for r in results]
        right = sum(attribute_named(r.caption, attribute) == truth for r, truth in zip(results, truths))
        constant = constant_guess_score(truths)
        assert right / CLIPS >= constant + MARGIN[attribute], (attribute, right, constant, [r.caption for r in results])


GROUNDING_CLIPS = 12
GROUNDING_SEED = 24  # not a seed the demo was trained on (0) nor the README's (7)
# The demo model, teacher-forced on the true captions of unseen clips with 2 still distractors,
# over the sampled frames that show the named (moving) object: object words' (colour, shape)
# pointing game and attention mass within one cell of it. Measured (issue 24's demo model, trained
# on 600 clips): on these 12 clips pointing 0.682 (a uniform map: 0.181), mass 1.95x uniform; on 12
# clips of seeds 25, 26, 27: 0.52-0.60, 1.86-2.05x. Its attention is broader than that of the same
# recipe on 300 clips (0.830 and 2.43x here, 0.65-0.82 and 2.25-2.48x on the others), which named
# the shape in 68 % of the README's clips against 86 %. Before: with Eq. 5's conv and W_GR at their
# default 0.761 and 2.21x, with W_r started at the centred identity 0.767 and 2.30x, without the
# per-cell target 0.739 and 1.97x, with a one-cell "where" target 0.705 and 1.88x; the model before
# issue 24 (trained without distractors) 0.33 and 1.20x. Thresholds: pointing three times a uniform
# map's, mass 1.7x, both with margin.
MIN_OBJECT_POINTING = 0.55
MIN_OBJECT_MASS_RATIO = 1.7


def test_demo_attention_finds_the_moving_object_among_distractors(tmp_path) -> None:
    """Where the captions' object words look (vccv_gpu.grounding, as benchmarks/ablation.py
    measures it): the pointing game clearly above what a uniform map gives (its arg-max is as
    likely anywhere: the neighbourhood's share of the grid, about 0.18 here), and more attention
    near the object than a uniform map puts there."""
    from vccv_gpu.data import load_dataset
    from vccv_gpu.extract import extract
    from vccv_gpu.grounding import set_grounding

    captions = generate(tmp_path / "set", videos=GROUNDING_CLIPS, seed=GROUNDING_SEED, distractors=2)
    checkpoint = load_checkpoint(None)
    extract([s.video_path for s in load_dataset("csv", captions)], tmp_path / "features", checkpoint.backbones,
            workers=1, progress=False)
    groups = {"object": {*ATTRIBUTE_WORDS["colour"], *ATTRIBUTE_WORDS["shape"]}}
    total = set_grounding(checkpoint.model, checkpoint.vocab, tmp_path / "features", captions, groups)["object"]
    measured = (f"object words: {total.pairs} (word, frame) pairs, pointing {total.pointing:.3f} "
                f"(uniform {total.uniform_mass:.3f}), mass {total.mass_ratio:.2f}x uniform")
    print(measured)
    assert total.pairs >= GROUNDING_CLIPS * 8, measured  # most (word, frame) pairs show the object
    assert total.pointing >= MIN_OBJECT_POINTING, measured
    assert total.mass_ratio >= MIN_OBJECT_MASS_RATIO, measured
