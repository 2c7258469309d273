"""Tests for the synthetic-clip helpers in ``vccv_gpu.testing`` (CPU only, fast)."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import av
import numpy as np
import pytest

from vccv_gpu.testing import (
    _expected,
    _verify,
    make_clip,
    make_foreign_clip,
    render_frames,
    x264_settings,
)

# (id, make_clip kwargs, file name, expected SEI subset, expected PyAV profiles)
CASES = [
    (
        "cavlc-baseline",
        dict(entropy="cavlc", profile="baseline"),
        "a.mp4",
        {"cabac": "0", "bframes": "0", "8x8dct": "0", "weightp": "0", "ref": "1"},
        {"Constrained Baseline", "Baseline"},
    ),
    (
        "cabac-main-b3",
        dict(entropy="cabac", profile="main", bframes=3),
        "b.mp4",
        {"cabac": "1", "bframes": "3", "b_pyramid": "2", "8x8dct": "0", "weightb": "1"},
        {"Main"},
    ),
    (
        "high-no8x8-slices4",
        dict(profile="high", transform_8x8=False, slices=4),
        "c.mov",
        {"8x8dct": "0", "slices": "4", "cabac": "1"},
        # x264 signals the lowest profile the tools need: no 8x8 -> Main.
        {"Main"},
    ),
    (
        "odd-size-330x250",
        dict(size=(330, 250), frames=12),
        "d.mp4",
        {"8x8dct": "1", "cabac": "1"},
        {"High"},
    ),
    (
        "refs4-mkv",
        dict(refs=4, bframes=2, transform_8x8=True),
        "e.mkv",
        {"ref": "4", "bframes": "2", "b_pyramid": "2", "8x8dct": "1"},
        {"High"},
    ),
    (
        "long-gop-b3-ts",
        dict(gop=250, bframes=3, frames=30),
        "f.ts",
        {"keyint": "250", "bframes": "3", "scenecut": "0"},
        {"High"},
    ),
    (
        "fullpel-nodeblock-h264",
        dict(subpel=False, deblock=False, weightp=0, bframes=1, gop=6),
        "g.h264",
        {"subme": "0", "deblock": "0:0:0", "weightp": "0", "weightb": "0", "bframes": "1",
         "b_pyramid": "0", "keyint": "6"},
        {"High"},
    ),
    (
        "weightp1-264",
        dict(profile="main", entropy="cavlc", weightp=1, bframes=2, refs=2),
        "h.264",
        {"weightp": "1", "weightb": "1", "cabac": "0", "ref": "2"},
        {"Main"},
    ),
    (
        "main-cavlc-signals-baseline",
        dict(profile="main", entropy="cavlc", weightp=0),
        "i.mp4",
        {"cabac": "0", "weightp": "0", "bframes": "0"},
        {"Constrained Baseline"},
    ),
]


def _decode(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        profile = s.codec_context.profile
        frames = [(f.width, f.height, bool(f.key_frame)) for f in c.decode(s)]
    return profile, frames


@pytest.mark.parametrize("kwargs,name,want_sei,want_profiles",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_make_clip_settings(tmp_path, kwargs, name, want_sei, want_profiles):
    path = make_clip(tmp_path / name, **kwargs)
    assert path == tmp_path / name and path.is_file()
    sei = x264_settings(path)
    assert {k: sei.get(k) for k in want_sei} == want_sei
    assert sei["threads"] == "1" and sei["mbtree"] == "0"
    assert sei.get("slices", "1") == str(kwargs.get("slices", 1))
    profile, frames = _decode(path)
    assert profile in want_profiles
    width, height = kwargs.get("size", (160, 96))
    n = kwargs.get("frames", 24)
    assert len(frames) == n
    assert {(w, h) for w, h, _ in frames} == {(width, height)}
    gop = kwargs.get("gop", 12)
    assert [i for i, (_, _, key) in enumerate(frames) if key] == list(range(0, n, gop))


def test_exact_gop_with_bframes(tmp_path):
    # keyint + scenecut=0 gives an IDR exactly every `gop` frames, B-frames or not.
    path = make_clip(tmp_path / "gop.mkv", frames=23, gop=5, bframes=3)
    _, frames = _decode(path)
    assert [i for i, (_, _, key) in enumerate(frames) if key] == [0, 5, 10, 15, 20]


def test_str_path_and_fraction_fps(tmp_path):
    path = make_clip(str(tmp_path / "ntsc.mp4"), frames=6, fps=Fraction(30000, 1001))
    with av.open(str(path)) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)


def test_deterministic(tmp_path):
    # Interleave two configurations several times in one process: with MB-tree
    # on, x264's AVX-512 paths read stale heap memory and these would differ.
    kw = dict(size=(320, 240), frames=30, bframes=3, refs=3)
    digests: dict[int, set[str]] = {3: set(), 4: set()}
    for rep in range(3):
        for seed in (3, 4):
            path = make_clip(tmp_path / f"{seed}-{rep}.h264", seed=seed, **kw)
            digests[seed].add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests[3]) == 1 and len(digests[4]) == 1
    assert digests[3] != digests[4]
    # Matroska would embed random UIDs without the bitexact flag.
    a = make_clip(tmp_path / "a.mkv", frames=4).read_bytes()
    b = make_clip(tmp_path / "b.mkv", frames=4).read_bytes()
    assert a == b


@pytest.mark.parametrize("kwargs", [
    dict(profile="baseline", entropy="cabac"),
    dict(profile="baseline", entropy="cavlc", bframes=1),
    dict(profile="baseline", entropy="cavlc", weightp=1),
    dict(profile="baseline", entropy="cavlc", transform_8x8=True),
    dict(profile="main", transform_8x8=True),
    dict(size=(161, 96)),
    dict(size=(160, 95)),
    dict(slices=7),  # 96 px = 6 macroblock rows
    dict(bframes=17),
    dict(refs=0),
    dict(refs=17),
    dict(weightp=3),
    dict(crf=0),
    dict(gop=0),
    dict(frames=0),
    dict(entropy="cabad"),
    dict(profile="high10"),
], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_impossible_combinations_raise(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_clip(tmp_path / "x.mp4", **kwargs)
    assert not (tmp_path / "x.mp4").exists()  # rejected before encoding


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        make_clip(tmp_path / "x.avi")
    with pytest.raises(FileNotFoundError):
        make_clip(tmp_path / "missing" / "x.mp4")


@pytest.fixture(scope="module")
def high_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "v.mp4", frames=10, gop=5, bframes=2)


def test_verify_accepts_own_expectation(high_clip):
    _verify(high_clip, _expected(entropy="cabac", profile="high", bframes=2, refs=1, slices=1,
                                 transform_8x8=None, subpel=True, deblock=True, weightp=None,
                                 gop=5, crf=23, size=(160, 96), frames=10))


@pytest.mark.parametrize("key,value", [
    ("cabac", "0"),
    ("ref", "4"),
    ("bframes", "3"),
    ("8x8dct", "0"),
    ("subme", "0"),
    ("deblock", "0"),
    ("weightp", "0"),
    ("keyint", "12"),
    ("slices", "4"),
    ("b_pyramid", "0"),
    ("crf", 30),
    ("profile", ("Main",)),
    ("width", 320),
    ("height", 240),
    ("frames", 24),
    ("keyframes", [0]),
])
def test_verify_detects_mismatch(high_clip, key, value):
    with pytest.raises(RuntimeError, match=f"'{key}'"):
        _verify(high_clip, {key: value})


def test_verify_detects_other_config(high_clip):
    wrong = _expected(entropy="cavlc", profile="main", bframes=0, refs=1, slices=1,
                      transform_8x8=None, subpel=True, deblock=True, weightp=None,
                      gop=5, crf=23, size=(160, 96), frames=10)
    with pytest.raises(RuntimeError, match="requested"):
        _verify(high_clip, wrong)


def test_x264_settings_parse(high_clip):
    sei = x264_settings(high_clip)
    assert sei["cabac"] == "1" and sei["bframes"] == "2" and sei["keyint"] == "5"
    assert sei["deblock"] == "1:0:0"
    assert sei["core"].isdigit()
    assert all(isinstance(v, str) for v in sei.values())


@pytest.mark.parametrize("codec,name,decoder", [
    ("mpeg4", "m.mp4", "mpeg4"),
    ("mpeg4", "m.avi", "mpeg4"),
    ("libvpx-vp9", "v.webm", "vp9"),
    ("libvpx-vp9", "v.mkv", "vp9"),
])
def test_foreign_clip(tmp_path, codec, name, decoder):
    path = make_foreign_clip(tmp_path / name, codec)
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == decoder
    with pytest.raises(ValueError, match="x264"):
        x264_settings(path)


def test_foreign_clip_rejects(tmp_path):
    with pytest.raises(ValueError):
        make_foreign_clip(tmp_path / "a.webm", "mpeg4")
    with pytest.raises(ValueError):
        make_foreign_clip(tmp_path / "a.mp4", "libvpx-vp9")
    with pytest.raises(ValueError):
        make_foreign_clip(tmp_path / "a.mp4", "libx264")


def test_render_frames_content():
    frames = list(render_frames((330, 250), 24, seed=5))
    assert len(frames) == 24
    assert all(f.shape == (250, 330, 3) and f.dtype == np.uint8 for f in frames)
    again = list(render_frames((330, 250), 24, seed=5))
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    other = next(render_frames((330, 250), 1, seed=6))
    assert not np.array_equal(frames[0], other)
    # Real photographs: plenty of texture, and the picture moves every frame.
    assert frames[0].std() > 20
    diffs = [np.abs(a.astype(int) - b).mean() for a, b in zip(frames, frames[1:])]
    assert min(diffs) > 0.5
    # The object appearing mid-clip makes the largest jump at frames // 2.
    assert int(np.argmax(diffs)) + 1 == 12


def test_render_frames_tiny_and_large_sizes():
    assert next(render_frames((16, 16), 1)).shape == (16, 16, 3)
    assert next(render_frames((2, 2), 1)).shape == (2, 2, 3)
    f = next(render_frames((1920, 1080), 1, seed=1))
    assert f.shape == (1080, 1920, 3)
