"""Tests for the synthetic-clip helpers in ``tools.clips`` (CPU only, fast)."""

from __future__ import annotations

import hashlib
import re
from fractions import Fraction

import av
import numpy as np
import pytest

from tools.clips import (
    _CQM_JVT,
    _CQM_LISTS,
    _expected,
    _verify,
    make_clip,
    make_foreign_clip,
    read_cqm_file,
    render_frames,
    write_cqm_file,
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
    (
        "direct-spatial-b3",
        dict(bframes=3, direct="spatial"),
        "j.mp4",
        {"direct": "1", "bframes": "3", "cqm": "0"},
        {"High"},
    ),
    (
        "direct-temporal-b3",
        dict(bframes=3, direct="temporal", profile="main"),
        "k.h264",
        {"direct": "2", "bframes": "3", "b_pyramid": "2"},
        {"Main"},
    ),
    (
        "weightp-b-sets-weightb",
        dict(bframes=2, weightp=2, direct="temporal"),
        "l.mkv",
        {"weightp": "2", "weightb": "1", "direct": "2"},
        {"High"},
    ),
    (
        "cqm-jvt-no8x8",
        dict(cqm="jvt", transform_8x8=False),
        "m.mp4",
        # Scaling matrices are a High tool: High even without the 8x8 transform.
        {"cqm": "1", "8x8dct": "0"},
        {"High"},
    ),
    (
        # "analyse=INTRA:INTER": p4x4 (0x20) on top of preset medium's i4x4, i8x8, p8x8, b8x8.
        "partitions-all-b2",
        dict(partitions="all", bframes=2, refs=2),
        "o.mp4",
        {"analyse": "0x3:0x133", "bframes": "2"},
        {"High"},
    ),
    (
        "partitions-list-cavlc-no8x8",
        dict(partitions="i4x4,p8x8,p4x4", entropy="cavlc", transform_8x8=False),
        "p.h264",
        {"analyse": "0x1:0x31", "8x8dct": "0"},
        {"Main"},  # weightp (preset medium) is a Main tool
    ),
    (
        "cqm-flat-main",
        dict(cqm="flat", profile="main"),
        "n.mp4",
        {"cqm": "0", "8x8dct": "0"},
        {"Main"},
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
    dict(direct="spatial"),  # no B-frames
    dict(direct="temporal", bframes=0),
    dict(direct="auto", bframes=2),
    dict(direct="none", bframes=2),
    dict(profile="main", cqm="jvt"),
    dict(profile="baseline", entropy="cavlc", cqm="jvt"),
    dict(cqm=3),
    dict(partitions="p4x4"),  # x264 drops p4x4 without p8x8
    dict(partitions="i8x8,p8x8", transform_8x8=False),
    dict(partitions="p8x8,q4x4"),
    dict(partitions=["all"]),
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


def test_bad_cqm_files(tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(FileNotFoundError, match="cqm"):
        make_clip(out, cqm=tmp_path / "missing.cfg")
    with pytest.raises(FileNotFoundError, match="cqm"):
        make_clip(out, cqm="JVT")  # neither a preset nor a file
    cfg = write_cqm_file(tmp_path / "q.cfg")
    with pytest.raises(ValueError, match="high"):
        make_clip(out, cqm=cfg, profile="main")
    short = tmp_path / "short.cfg"
    short.write_text("INTRA4X4_LUMA = 6, 13, 20\nINTER4X4_LUMA = 10\n")
    with pytest.raises(ValueError, match="INTRA4X4_LUMA"):
        make_clip(out, cqm=short)
    bad = tmp_path / "bad.cfg"
    bad.write_text("INTER8X8_LUMA =\n" + ", ".join(["300"] * 64) + "\n")
    with pytest.raises(ValueError, match="bad coefficient"):
        make_clip(out, cqm=bad)
    assert not out.exists()


@pytest.fixture(scope="module")
def high_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "v.mp4", frames=10, gop=5, bframes=2)


def test_verify_accepts_own_expectation(high_clip):
    _verify(high_clip, _expected(entropy="cabac", profile="high", bframes=2, refs=1, slices=1,
                                 transform_8x8=None, subpel=True, deblock=True, weightp=None,
                                 gop=5, crf=23, size=(160, 96), frames=10))
    # x264's default for preset medium: spatial direct, flat matrices.
    _verify(high_clip, _expected(entropy="cabac", profile="high", bframes=2, refs=1, slices=1,
                                 transform_8x8=None, subpel=True, deblock=True, weightp=None,
                                 gop=5, crf=23, size=(160, 96), frames=10, direct="spatial",
                                 cqm="flat"))


@pytest.mark.parametrize("direct,cqm", [("temporal", None), (None, "jvt"), ("spatial", "custom")])
def test_verify_detects_wrong_direct_or_cqm(high_clip, tmp_path, direct, cqm):
    if cqm == "custom":
        cqm = write_cqm_file(tmp_path / "q.cfg")
    wrong = _expected(entropy="cabac", profile="high", bframes=2, refs=1, slices=1,
                      transform_8x8=None, subpel=True, deblock=True, weightp=None,
                      gop=5, crf=23, size=(160, 96), frames=10, direct=direct, cqm=cqm)
    key = "direct" if direct == "temporal" else "cqm"
    with pytest.raises(RuntimeError, match=f"'{key}'"):
        _verify(high_clip, wrong)


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
    ("direct", "2"),
    ("cqm", "1"),
    ("cqm", "2"),
    ("analyse", 0x133),  # preset medium: 0x113, no p4x4
    ("constrained_intra", "1"),
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


# --------------------------------------------------------------------------
# Quantisation matrices: cqm files, and what actually lands in the PPS
# --------------------------------------------------------------------------


def _pps_matrices(path) -> dict[str, np.ndarray]:
    """The scaling matrices (raster order) in force for the clip's first picture, as the
    parser reads them from the SPS/PPS (8x8 ones only with the 8x8 transform)."""
    from vccv_gpu import codec

    with codec.open(path) as s:
        w4, w8 = s.scaling_matrices(0)
        lists = list(w4) + ([w8[0], w8[1]] if s.sequence["transform_8x8_mode"] else [])
    return {name: m.astype(int) for name, m in zip(_CQM_LISTS, lists)}


def _decoded_psnr(path, size, frames, seed=0) -> tuple[int, float]:
    with av.open(str(path)) as c:
        dec = [f.to_ndarray(format="rgb24").astype(np.float64) for f in c.decode(video=0)]
    src = list(render_frames(size, frames, seed))
    mse = np.mean([np.mean((a - b) ** 2) for a, b in zip(dec, src)])
    return len(dec), 10 * np.log10(255.0 ** 2 / mse)


def test_write_read_cqm_roundtrip(tmp_path):
    path = write_cqm_file(tmp_path / "q.cfg", seed=7)
    assert path == tmp_path / "q.cfg"
    mats = read_cqm_file(path)
    assert list(mats) == list(_CQM_LISTS)
    text = path.read_text()
    for name, m in mats.items():
        n = 8 if "8X8" in name else 4
        assert m.shape == (n, n) and m.dtype.kind == "i"
        assert 4 <= m.min() and m.max() <= 64
        assert not np.array_equal(m, m.T)  # transposition would show
        assert not np.array_equal(m.reshape(-1), _CQM_JVT[name]) and len(np.unique(m)) > 3
        # The file lists each matrix row by row (raster order), as x264 reads it.
        block = text.split(f"{name} =\n", 1)[1].split("\n\n", 1)[0]
        rows = [[int(v) for v in re.findall(r"\d+", line)] for line in block.strip().splitlines()]
        assert np.array_equal(np.array(rows), m)
    # x264 has one chroma list per intra/inter: the V lists repeat the U lists.
    assert np.array_equal(mats["INTRA4X4_CHROMAU"], mats["INTRA4X4_CHROMAV"])
    assert np.array_equal(mats["INTER4X4_CHROMAU"], mats["INTER4X4_CHROMAV"])
    assert not np.array_equal(mats["INTRA4X4_LUMA"], mats["INTER4X4_LUMA"])
    # Deterministic in the seed.
    again = read_cqm_file(write_cqm_file(tmp_path / "r.cfg", seed=7))
    other = read_cqm_file(write_cqm_file(tmp_path / "s.cfg", seed=8))
    assert all(np.array_equal(mats[k], again[k]) for k in mats)
    assert not any(np.array_equal(mats[k], other[k]) for k in mats)


def test_read_cqm_file_follows_x264_parser(tmp_path):
    path = tmp_path / "hand.cfg"
    path.write_text(
        "# INTRA4X4_LUMA = 1 1 1 (a comment: ignored)\n"
        "INTRA4X4_LUMA = 1,2,3,4, 5,6,7,8, 9,10,11,12, 13,14,15,16\n"
        "INTRA4X4_CHROMAV = " + " ".join(["20"] * 16) + "\n"  # V first: used for U too
        "INTRA4X4_CHROMAU = " + " ".join(["30"] * 16) + "\n"
        "INTER4X4_LUMA = 0\n"  # leading 0: the JVT default
        "INTRA8X8_LUMA =\n" + ",\n".join(",".join(["40"] * 8) for _ in range(8)) + "\n")
    mats = read_cqm_file(path)
    assert mats["INTRA4X4_LUMA"].tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12],
                                              [13, 14, 15, 16]]
    assert (mats["INTRA4X4_CHROMAU"] == 20).all() and (mats["INTRA4X4_CHROMAV"] == 20).all()
    assert mats["INTER4X4_LUMA"].reshape(-1).tolist() == list(_CQM_JVT["INTER4X4_LUMA"])
    assert (mats["INTER4X4_CHROMAU"] == 16).all()  # missing: flat
    assert (mats["INTRA8X8_LUMA"] == 40).all() and (mats["INTER8X8_LUMA"] == 16).all()
    # Values running into the next list do not count for this one.
    path.write_text("INTRA4X4_LUMA = 1 2 3\nINTER4X4_LUMA = " + " ".join(["9"] * 16) + "\n")
    with pytest.raises(ValueError, match="not enough coefficients in list 'INTRA4X4_LUMA'"):
        read_cqm_file(path)
    path.write_text("INTER4X4_LUMA = 0 1 2\n")  # a leading 0 ends the list: JVT
    assert read_cqm_file(path)["INTER4X4_LUMA"].reshape(-1).tolist() == list(_CQM_JVT["INTER4X4_LUMA"])
    # ... but 0 anywhere else is refused.
    path.write_text("INTER4X4_LUMA = 5 0 " + " ".join(["9"] * 14) + "\n")
    with pytest.raises(ValueError, match="bad coefficient 0"):
        read_cqm_file(path)


@pytest.mark.parametrize("t8x8", [True, False])
def test_cqm_file_clip(tmp_path, t8x8):
    cfg = write_cqm_file(tmp_path / "q.cfg", seed=2)
    path = make_clip(tmp_path / "q.h264", cqm=str(cfg), bframes=2, frames=12, transform_8x8=t8x8)
    sei = x264_settings(path)
    assert sei["cqm"] == "2" and sei["8x8dct"] == ("1" if t8x8 else "0")
    n, psnr = _decoded_psnr(path, (160, 96), 12)
    assert n == 12 and psnr > 25
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.profile == "High"
    # The matrices in the PPS are exactly the file's, in raster order (a
    # zig-zag / transposition mix-up would not match: they are not symmetric).
    want = read_cqm_file(cfg)
    got = _pps_matrices(path)
    assert set(got) == set(_CQM_LISTS if t8x8 else _CQM_LISTS[:6])
    for name, m in got.items():
        assert np.array_equal(m, want[name]), name
    # A cqm=2 clip fails a flat / JVT expectation.
    with pytest.raises(RuntimeError, match="'cqm'"):
        _verify(path, {"cqm": "0"})


def test_cqm_jvt_and_flat_clips_pps(tmp_path):
    jvt = make_clip(tmp_path / "jvt.h264", cqm="jvt", frames=6)
    n, psnr = _decoded_psnr(jvt, (160, 96), 6)
    assert n == 6 and psnr > 25
    got = _pps_matrices(jvt)
    assert set(got) == set(_CQM_LISTS)
    for name, m in got.items():
        assert m.reshape(-1).tolist() == list(_CQM_JVT[name]), name
    flat = make_clip(tmp_path / "flat.h264", frames=6)
    assert all((m == 16).all() for m in _pps_matrices(flat).values())
