"""The attention bound (vccv_gpu.attention_bound): the sharpest maps Eq. 8-9 allow, pooling, and the
probe, on hand-made features whose named object's colour sits only at its own cell."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import pytest
import torch

from vccv_gpu.attention_bound import best_attention, pooled_at_object, probe_accuracy, set_attention_bound
from vccv_gpu.backbones import BackboneConfig, FeatureExtractor
from vccv_gpu.features import StoreWriter, merge_index, prepare_store, video_key


def test_best_attention_is_capped_by_eq_8s_tanh() -> None:
    capped = best_attention((2, 3), (7, 7), cap=1.0)
    assert capped.sum().item() == pytest.approx(1.0)
    assert capped[2, 3] / capped[0, 0] == pytest.approx(math.e ** 2)  # tanh's range: at most e^2 apart
    assert capped.flatten().argmax().item() == 2 * 7 + 3
    blob = best_attention((0, 0), (7, 7), cap=None, radius=1)  # a corner: 2 x 2 cells inside the grid
    assert torch.equal(blob[:2, :2], torch.full((2, 2), 0.25)) and blob.sum().item() == pytest.approx(1.0)
    assert torch.allclose(best_attention((3, 3), (7, 7), cap=0.0), torch.full((7, 7), 1 / 49))


def test_pooled_at_object_averages_the_frames_that_show_it() -> None:
    v_i = torch.randn(3, 7, 7, 5)
    pooled = pooled_at_object(v_i, [(1, 2), None, (4, 4)], cap=None)
    assert torch.allclose(pooled, (v_i[0, 1, 2] + v_i[2, 4, 4]) / 2)
    assert torch.allclose(pooled_at_object(v_i, [(1, 2), None, None], cap=0.0), v_i[0].mean((0, 1)), atol=1e-6)
    assert pooled_at_object(v_i, [None, None, None], cap=1.0) is None


def test_probe_separates_what_the_features_tell_and_no_more() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=g)
    told = torch.nn.functional.one_hot(labels, 3).float() + 0.1 * torch.randn(300, 3, generator=g)
    noise = torch.randn(300, 3, generator=g)
    assert probe_accuracy(told[:200], labels[:200], told[200:], labels[200:]) == 1.0
    assert probe_accuracy(noise[:200], labels[:200], noise[200:], labels[200:]) < 0.6  # 3 classes: chance 1/3
    assert probe_accuracy(told[:200], labels[:200], told[200:], labels[200:]) == \
        probe_accuracy(told[:200], labels[:200], told[200:], labels[200:])  # seeded: the same every time


COLOURS = ("red", "green", "blue")


def _hand_made_set(root: Path, clips: int = 60) -> Path:
    """A generated-set lookalike: per clip three still objects of three colours at three cells of a
    7x7 grid; the caption names one. V_I holds each object's colour as a one-hot at its cell, over
    noise in those channels, so only pooling at the named object's cell tells its colour."""
    config = BackboneConfig(iframe="tiny", residual="tiny", size=112, num_segments=4)
    store = root / "features"
    prepare_store(store, FeatureExtractor(config))
    rng, g = random.Random(0), torch.Generator().manual_seed(0)
    rows, positions = [], {}
    with StoreWriter(store) as writer:
        for i in range(clips):
            video_id = f"videos/clip_{i:03d}.mp4"
            colours = rng.sample(COLOURS, 3)  # colours[0] is the named object's
            cells = rng.sample([(r, c) for r in range(7) for c in range(7)], 3)
            v_i = torch.zeros(config.num_segments, 7, 7, config.d_i)
            v_i[..., :3] = 0.2 * torch.randn(config.num_segments, 7, 7, 3, generator=g)
            for colour, (r, c) in zip(colours, cells):
                v_i[:, r, c, COLOURS.index(colour)] += 1.0
            a_r = torch.zeros(config.num_segments, 7, 7, config.d_r)
            writer.add(video_key(root / video_id), v_i, a_r, info={"frames": list(range(config.num_segments))})
            objects = [{"shape": "ball", "colour": colour, "named": k == 0, "radius": 4.0,
                        "centre": [[16 * c + 8, 16 * r + 8]] * config.num_segments,
                        "visible": [True] * config.num_segments}
                       for k, (colour, (r, c)) in enumerate(zip(colours, cells))]
            positions[video_id] = {"size": [112, 112], "objects": objects}
            rows.append({"video": video_id, "caption": f"a {colours[0]} ball stays still on a photo of a cat",
                         "split": "train" if i < 2 * clips // 3 else "test"})
    merge_index(store)
    (root / "positions.json").write_text(json.dumps(positions))
    with open(root / "captions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["video", "caption", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "captions.csv"


def test_set_attention_bound_reads_the_named_object_only_where_attention_is_on_it(tmp_path: Path) -> None:
    captions = _hand_made_set(tmp_path)
    maps = {"object": (None, 0), "capped": (1.0, 0), "frame": (0.0, 0)}
    bound = set_attention_bound(tmp_path / "features", captions, ("colour", "shape"), maps)
    assert bound["object"]["colour"] == 100.0
    # The whole frame holds all three colours alike: no better than chance (1/3 of 20 test clips).
    assert bound["frame"]["colour"] <= 60.0
    assert bound["capped"]["colour"] > bound["frame"]["colour"]
    assert all(scores["shape"] == 100.0 for scores in bound.values())  # one shape: nothing to tell
    with pytest.raises(ValueError, match="no val"):
        set_attention_bound(tmp_path / "features", captions, ("colour",), maps, test="val")
