"""The synthetic motion-captioning set (vccv_gpu.data.synthetic)."""

from __future__ import annotations

import dataclasses
import itertools

import av
import numpy as np
import pytest

from tools.clips import x264_settings
from vccv_gpu import codec
from vccv_gpu.data import load_dataset
from vccv_gpu.data import synthetic as syn

SIZE = (64, 48)
FRAMES = 16


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    return syn.generate(out, 6, seed=3, size=SIZE, frames=FRAMES, fps=12)


def _params(**changes) -> syn.ClipParams:
    base = syn.ClipParams(background="rocket", shape="ball", colour="red", motion="moves", direction="left",
                          speed="quickly", start=(33.0, 23.0), crop=(100.0, 80.0, 2.0), event=6)
    return dataclasses.replace(base, **changes)


def _centroid(weights: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(weights.shape)
    total = weights.sum()
    return float((weights * xs).sum() / total), float((weights * ys).sum() / total)


def test_set_loads_and_every_clip_opens(small_set):
    samples = load_dataset("csv", small_set)
    assert len(samples) == 6
    assert {s.split for s in samples} <= {"train", "val", "test"}
    assert sum(s.split == "train" for s in samples) == 4
    entropies, bframes, gops = set(), set(), set()
    for s in samples:
        assert not s.video_id.startswith("/") and s.video_id.startswith("videos/")
        assert len(s.captions) == 1 and " a photo of " in s.captions[0]
        stream = codec.open(s.video_path)
        assert len(stream.frames) == FRAMES
        sei = x264_settings(s.video_path)
        entropies.add(sei["cabac"])
        bframes.add(sei["bframes"])
        gops.add(sei["keyint"])
    # Six consecutive entries of the 8-entry rotation always cover every setting.
    assert entropies == {"0", "1"} and bframes == {"0", "2"} and gops == {"12", "250"}


def test_deterministic_for_a_seed(small_set, tmp_path):
    again = syn.generate(tmp_path / "a", 6, seed=3, size=SIZE, frames=FRAMES, fps=12)
    assert again.read_bytes() == small_set.read_bytes()
    for name in sorted(p.name for p in (small_set.parent / "videos").iterdir()):
        assert (again.parent / "videos" / name).read_bytes() == (small_set.parent / "videos" / name).read_bytes()
    other = syn.generate(tmp_path / "b", 6, seed=4, size=SIZE, frames=FRAMES, fps=12)
    assert other.read_bytes() != small_set.read_bytes()


def test_grammar_covers_every_direction_and_speed():
    captions = set()
    for motion, direction, speed in itertools.product(syn.MOTIONS, syn.DIRECTIONS, syn.SPEEDS):
        captions.add(syn.describe(_params(motion=motion, direction=direction, speed=speed)))
    # "stays still" ignores direction and speed; every other motion distinguishes all 8.
    assert len(captions) == 3 * 8 + 1
    text = " ".join(captions)
    for phrase in ("to the left", "to the right", " up ", " down ", "slowly", "quickly", "stays still",
                   "appears and moves", "and stops on"):
        assert phrase in text
    assert syn.describe(_params()) == "a red ball moves quickly to the left across a photo of a rocket"
    assert syn.describe(_params(motion="still", shape="square", colour="blue", background="coffee")) == \
        "a blue square stays still on a photo of coffee"
    assert syn.describe(_params(motion="appears", shape="triangle", colour="green", background="chelsea",
                                direction="up", speed="slowly")) == \
        "a green triangle appears and moves slowly up over a photo of a cat"
    # The sampler reaches every direction, speed and motion.
    rng = np.random.default_rng(0)
    drawn = [syn.sample_params(rng, SIZE, FRAMES) for _ in range(200)]
    assert {p.direction for p in drawn} == set(syn.DIRECTIONS)
    assert {p.speed for p in drawn} == set(syn.SPEEDS)
    assert {p.motion for p in drawn} == set(syn.MOTIONS)


def test_first_frame_does_not_tell_direction_or_speed():
    first = [syn.render(_params(direction=d, speed=s), SIZE, FRAMES)[0][0]
             for d, s in itertools.product(syn.DIRECTIONS, syn.SPEEDS)]
    still = syn.render(_params(motion="still"), SIZE, FRAMES)[0][0]
    for frame in first:
        assert np.array_equal(frame, first[0])
    assert np.array_equal(still, first[0])


def test_left_moves_left_and_still_stays(tmp_path):
    left = _params(direction="left", speed="quickly")
    rgb, masks, bg = syn.render(left, SIZE, FRAMES)
    xs = np.array([_centroid(m)[0] for m in masks])
    ys = np.array([_centroid(m)[1] for m in masks])
    assert np.all(np.diff(xs) < -0.5)
    assert np.allclose(ys, ys[0], atol=1e-3)

    # The same on the encoded clip: centroid of the difference from the background, decoded by FFmpeg.
    path = tmp_path / "left.mp4"
    syn._encode_clip(path, rgb, 12, 12, "cabac", 2)
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == FRAMES
    dxs = []
    for frame in decoded:
        diff = np.abs(frame.astype(np.float32) - bg.astype(np.float32)).sum(axis=2)
        dxs.append(_centroid(diff * (diff > 60))[0])
    assert np.all(np.diff(dxs) < 0)
    assert dxs[0] - dxs[-1] > 0.3 * SIZE[0]

    still_masks = syn.render(_params(motion="still"), SIZE, FRAMES)[1]
    assert all(np.array_equal(m, still_masks[0]) for m in still_masks)

    slow = np.array([_centroid(m)[0] for m in syn.render(_params(speed="slowly"), SIZE, FRAMES)[1]])
    assert 0 < slow[0] - slow[-1] < xs[0] - xs[-1]

    up = np.array([_centroid(m)[1] for m in syn.render(_params(direction="up"), SIZE, FRAMES)[1]])
    assert np.all(np.diff(up) < -0.5)


def test_appears_and_stops_mid_clip():
    masks = syn.render(_params(motion="appears", direction="right", event=6), SIZE, FRAMES)[1]
    assert all(m.sum() == 0 for m in masks[:6]) and all(m.sum() > 0 for m in masks[6:])
    xs = [_centroid(m)[0] for m in masks[6:]]
    assert np.all(np.diff(xs) > 0.5)

    masks = syn.render(_params(motion="stops", direction="down", event=6), SIZE, FRAMES)[1]
    ys = [_centroid(m)[1] for m in masks]
    assert np.all(np.diff(ys[:7]) > 0.5)
    assert all(np.array_equal(m, masks[6]) for m in masks[6:])


def test_cli(tmp_path, capsys):
    assert syn.main([str(tmp_path), "--videos", "2", "--size", "32x32", "--frames", "4", "--seed", "1"]) == 0
    assert (tmp_path / "captions.csv").is_file() and len(list((tmp_path / "videos").iterdir())) == 2
    with pytest.raises(SystemExit):
        syn.main([str(tmp_path), "--videos", "1", "--size", "33x32"])


def test_attribute_words_read_back_what_the_caption_says() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        params = syn.sample_params(rng, (160, 96), 48)
        caption = syn.describe(params)
        assert syn.attribute_named(caption, "colour") == params.colour
        assert syn.attribute_named(caption, "shape") == params.shape
        assert syn.attribute_named(caption, "photo") == syn.BACKGROUNDS[params.background].split()[-1]
        still = params.motion == "still"
        assert syn.attribute_named(caption, "direction") == ("still" if still else params.direction)
        assert syn.attribute_named(caption, "speed") == (None if still else params.speed)
        assert syn.attribute_named(caption, "motion") == {"moves": None}.get(params.motion, params.motion)


def test_without_scikit_image_the_generator_names_the_extra_before_writing(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "skimage", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    out = tmp_path / "demo"
    assert syn.main([str(out), "--videos", "2"]) == 2
    err = capsys.readouterr().err
    assert 'vccv_gpu[demo]' in err and "Traceback" not in err
    assert not out.exists()


def test_distractor_sets_name_only_the_moving_object(tmp_path):
    import json

    csv_path = syn.generate(tmp_path / "set", 8, seed=5, size=SIZE, frames=FRAMES, fps=12, distractors=2)
    where = json.loads((tmp_path / "set" / "positions.json").read_text())
    rng = np.random.default_rng(11)
    for sample in load_dataset("csv", csv_path):
        caption = sample.captions[0]
        objects = where[sample.video_id]["objects"]
        named, *others = objects
        assert named["named"] and not any(o["named"] for o in others) and len(others) == 2
        assert syn.attribute_named(caption, "colour") == named["colour"]
        assert syn.attribute_named(caption, "shape") == named["shape"]
        assert all(o["colour"] not in caption.split() for o in others)  # other colours are never named
        assert named["colour"] not in {o["colour"] for o in others} and "still" not in caption.split()
        assert all(len(set(map(tuple, o["centre"]))) == 1 for o in others)  # distractors stand still
        assert len(set(map(tuple, named["centre"]))) > 1  # the named object moves

    # scene_words: what the frames show, every object's colour and shape, named or not.
    scene = syn.scene_words(csv_path)
    for sample in load_dataset("csv", csv_path):
        objects = where[sample.video_id]["objects"]
        assert scene[str(sample.video_path)] == {w for o in objects for w in (o["colour"], o["shape"])}
        assert len({o["colour"] for o in objects} & scene[str(sample.video_path)]) == 3

    # named_tracks: the named object's size, centres and visibility, per video path.
    tracks = syn.named_tracks(tmp_path / "set" / "positions.json", load_dataset("csv", csv_path))
    for sample in load_dataset("csv", csv_path):
        named = where[sample.video_id]["objects"][0]
        assert tracks[str(sample.video_path)] == {"size": where[sample.video_id]["size"], "centre": named["centre"],
                                                  "visible": named["visible"]}

    # scene_tracks: every object (named first), its colour, shape, centres and visibility.
    scenes = syn.scene_tracks(tmp_path / "set" / "positions.json", load_dataset("csv", csv_path))
    for sample in load_dataset("csv", csv_path):
        objects = where[sample.video_id]["objects"]
        assert scenes[str(sample.video_path)] == {
            "size": where[sample.video_id]["size"],
            "objects": [{k: o[k] for k in ("colour", "shape", "centre", "visible")} for o in objects]}

    # The positions file against rendered frames: each object's colour sits at its recorded centre.
    for params in (syn.sample_params(rng, SIZE, FRAMES, distractors=3) for _ in range(6)):
        rgb = syn.render(params, SIZE, FRAMES)[0].astype(np.int32)
        for obj in syn.positions(params, SIZE, FRAMES):
            colour = np.asarray(syn.COLOURS[obj["colour"]])
            for t in (0, FRAMES // 2, FRAMES - 1):
                x, y = obj["centre"][t]
                if not obj["visible"][t] or not (3 <= x < SIZE[0] - 3 and 3 <= y < SIZE[1] - 3):
                    continue
                if obj["named"] or not _covered_by_named(params, t, x, y):
                    assert np.abs(rgb[t, int(y), int(x)] - colour).max() <= 3, (obj, t)


def _covered_by_named(params, t, x, y) -> bool:
    """Whether the named (moving) object, drawn on top, covers pixel (x, y) of frame t."""
    return syn.render(params, SIZE, FRAMES)[1][t, int(y), int(x)] > 0


def test_first_frame_cannot_tell_which_object_moves():
    rng = np.random.default_rng(0)
    drawn = [syn.sample_params(rng, SIZE, FRAMES, distractors=2) for _ in range(600)]
    # The named object's start slot is distributed as the distractors' are (chance: 1 in 3 objects).
    slot = [min(range(6), key=lambda k: abs(p.start[0] / SIZE[0] - (0.2, 0.5, 0.8)[k // 2]) +
                abs(p.start[1] / SIZE[1] - (0.3, 0.7)[k % 2])) for p in drawn]
    counts = np.bincount(slot, minlength=6)
    assert counts.min() > 0.6 * counts.mean()
    with pytest.raises(ValueError, match="distractors"):
        syn.sample_params(rng, SIZE, FRAMES, distractors=syn.MAX_DISTRACTORS + 1)


def test_without_distractors_the_original_draws_are_kept():
    a = [syn.sample_params(np.random.default_rng(4), SIZE, FRAMES) for _ in range(3)]
    b = [syn.sample_params(np.random.default_rng(4), SIZE, FRAMES, distractors=0) for _ in range(3)]
    assert a == b and all(p.distractors == () for p in a)
