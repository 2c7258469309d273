"""The grounding measure on hand-made attention maps."""

from __future__ import annotations

import math

import pytest
import torch

from vccv_gpu.grounding import grounding, object_cell


def test_object_cell_follows_the_front_end_geometry() -> None:
    # Squashed: a 160x96 frame onto 112x112, a 7x7 grid (16 px cells).
    assert object_cell(0, 0, 160, 96, 112, (7, 7)) == (0, 0)
    assert object_cell(159.9, 95.9, 160, 96, 112, (7, 7)) == (6, 6)
    assert object_cell(80, 48, 160, 96, 112, (7, 7)) == (3, 3)
    assert object_cell(-1, 10, 160, 96, 112, (7, 7)) is None
    # keep_aspect: 96 -> 112 (scale 7/6), width 160 -> 187, crop offset 37 px: x = 10 is cut off.
    assert object_cell(10, 48, 160, 96, 112, (7, 7), keep_aspect=True) is None
    assert object_cell(80, 48, 160, 96, 112, (7, 7), keep_aspect=True) == (3, 3)
    assert object_cell(40, 48, 160, 96, 112, (7, 7), keep_aspect=True) == (3, 0)


def test_grounding_on_hand_made_maps() -> None:
    words, frames, h, w = 2, 3, 7, 7
    attention = torch.full((words, frames, h, w), 1.0 / (h * w))  # uniform everywhere
    attention[0, 0] = 0.0
    attention[0, 0, 2, 3] = 1.0          # word 0, frame 0: all on the object's cell
    attention[1, 0] = 0.0
    attention[1, 0, 6, 6] = 1.0          # word 1, frame 0: all far away
    cells = [(2, 3), (0, 0), None]       # frame 1: object in a corner; frame 2: not visible
    score = grounding(attention, cells)
    assert score.pairs == 4               # 2 words x 2 frames with the object
    corner = 4 / 49                       # a corner's neighbourhood: 2 x 2 cells
    # mass: 1, 0 (frame 0); the corner neighbourhood of a uniform map twice (frame 1)
    assert score.mass == pytest.approx((1 + 0 + 2 * corner) / 4)
    assert score.uniform_mass == pytest.approx((2 * 9 / 49 + 2 * corner) / 4)
    # arg-max of a uniform map is cell (0, 0): inside the corner neighbourhood
    assert score.pointing == pytest.approx(3 / 4)
    assert score.mass_ratio == pytest.approx(score.mass / score.uniform_mass)


def test_no_visible_object_gives_nan_and_bad_lengths_fail() -> None:
    attention = torch.rand(1, 2, 7, 7)
    score = grounding(attention, [None, None])
    assert score.pairs == 0 and math.isnan(score.mass) and math.isnan(score.pointing)
    assert (score + grounding(attention, [(3, 3), None])).pairs == 1
    with pytest.raises(ValueError, match="3 object cells for 2 frames"):
        grounding(attention, [None, None, None])


def test_clip_grounding_scores_the_named_words_on_the_sampled_frames() -> None:
    from vccv_gpu.attention import attention_maps
    from vccv_gpu.backbones import BackboneConfig, model_config
    from vccv_gpu.data import Vocabulary
    from vccv_gpu.grounding import clip_grounding
    from vccv_gpu.model import VCCV

    torch.manual_seed(0)
    config = BackboneConfig("tiny", "tiny", size=112, num_segments=3)
    caption = "a red ball moves quickly to the left"
    vocab = Vocabulary.build([caption], min_count=1)
    model = VCCV(model_config(config, len(vocab), embed=8, hidden=16, gate_dim=8, dropout=0.0)).eval()
    h, w = config.grid
    v_i, a_r = torch.randn(3, h, w, config.d_i), torch.randn(3, h, w, config.d_r)
    track = {"size": [160, 96], "centre": [[10.0 * f, 40.0] for f in range(10)], "visible": [f != 5 for f in range(10)]}
    frames = [0, 5, 9]  # frame 5: the object is not visible
    scores = clip_grounding(model, vocab, v_i, a_r, caption, frames, track, config,
                            {"object": {"red", "ball"}, "motion": {"left"}})
    words = vocab.encode(caption)[1:-1]
    attention, _ = attention_maps(model, v_i, a_r, words)
    cells = [object_cell(0, 40, 160, 96, 112, (h, w)), None, object_cell(90, 40, 160, 96, 112, (h, w))]
    for got, rows in ((scores["object"], [1, 2]), (scores["motion"], [7])):  # "red", "ball"; "left"
        want = grounding(attention[rows], cells)
        assert (got.pairs, got.hits) == (want.pairs, want.hits)
        assert (got.mass_sum, got.uniform_sum) == pytest.approx((want.mass_sum, want.uniform_sum), rel=1e-5)
    assert scores["object"].pairs == 4 and scores["motion"].pairs == 2
