"""Every inter 4x4 block against the decoded pictures: sub-8x8 partitions and direct modes.

FFmpeg exports one vector per 8x8 block (its top-left 4x4 block, see mv_oracle.py), so the
other three 4x4 blocks of a split 8x8 escape the vector comparison of test_macroblock_layer:
sub-8x8 partitions predicted from the wrong neighbours, or direct blocks read from the wrong
co-located 4x4 block, would pass it.  Here each inter 4x4 block is predicted from the parser's
own vectors and reference pictures over FFmpeg's decoded pictures, bi-prediction and several
references included (residual_oracle.prediction_residuals), and decoded - prediction must equal
the parser's residual in every sample that is not clipped.

Sources:
* x264 with ``partitions=all``: P 8x4/4x8/4x4 partitions, several references, B-frames with
  spatial and temporal direct.  x264 writes no B sub-8x8 partitions and always sets
  direct_8x8_inference_flag, so its direct blocks read the co-located picture's corner 4x4
  blocks, which its P sub-8x8 partitions make differ from the rest of their 8x8.
* Conformance streams (shared/conformance) for what x264 cannot write: direct_8x8_inference 0
  with spatial and temporal direct, and B 8x4/4x8/4x4 partitions.  These are coded with the
  deblocking filter, which the oracle has FFmpeg skip (consistently, see its docstring).

Each case also asserts what it covers (counts of 4x4 blocks of each kind), so that it cannot
pass by checking nothing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from mv_oracle import MB_DIRECT, MB_INTER, decode_with_motion
from residual_oracle import predict_inter, prediction_residuals

from vccv_gpu import codec

# x264 clips: no weighted prediction (the oracle does the default sample prediction only).
_X264 = dict(partitions="all", weightp=0, frames=16, size=(176, 112), crf=20)
X264_CLIPS = {
    "x264-p4x4-cavlc-refs3": dict(_X264, profile="high", entropy="cavlc", refs=3, deblock=False),
    "x264-p4x4-cabac-b3-spatial-refs2": dict(_X264, bframes=3, direct="spatial", refs=2, deblock=False),
    "x264-p4x4-cabac-b3-temporal-refs2": dict(_X264, bframes=3, direct="temporal", refs=2, deblock=False),
    # With the deblocking filter: the oracle decodes without it on both sides.
    "x264-p4x4-cavlc-b2-temporal-refs3-deblock": dict(_X264, profile="main", entropy="cavlc", bframes=2,
                                                      direct="temporal", refs=3),
}

# Conformance streams: (path under shared/conformance, display frames checked or None for all,
# the SPS direct_8x8_inference and the B slices' direct modes the case is chosen for).
CONFORMANCE_STREAMS = {
    # direct_8x8_inference 0: every 4x4 block reads its own co-located 4x4 block.
    "CABA3_SVA_B": ("fuzzcorpus/h264/CABA3_SVA_B.264", None, False, {"temporal"}),        # CABAC
    "SL1_SVA_B": ("fuzzcorpus/h264/SL1_SVA_B.264", None, False, {"temporal"}),            # CAVLC, slices
    "CANL4_SVA_B": ("fuzzcorpus/h264/CANL4_SVA_B.264", None, False, {"spatial"}),         # CABAC
    "HCAFR2_HHI": ("fuzzcorpus/h264/HCAFR2_HHI.264", None, False, {"spatial"}),           # High CABAC
    # direct_8x8_inference 1 with B 8x4/4x8/4x4 partitions, and spatial direct whose colZeroFlag
    # depends on which co-located corner block is read.
    "HCAFR1_HHI": ("fuzzcorpus/h264/HCAFR1_HHI.264", None, True, {"spatial"}),           # High CABAC
    "HCAFR3_HHI": ("fuzzcorpus/h264/HCAFR3_HHI.264", None, True, {"spatial"}),           # High CABAC
    "BA3_SVA_C": ("fuzzcorpus/h264/BA3_SVA_C.264", None, True, {"spatial"}),             # Extended, CAVLC
    "FOREMAN_176x144_15_avc_48": ("fuzzcorpus/h264/FOREMAN_176x144_15_avc_48.264", range(40), True,
                                  {"temporal"}),                                          # Main CABAC
}

# What each case must cover, in 4x4 blocks: about a third of what it covers today.
COVERAGE = {
    "x264-p4x4-cavlc-refs3": {"P sub-8x8": 400, "ref_idx > 0": 1000},
    "x264-p4x4-cabac-b3-spatial-refs2": {"P sub-8x8": 300, "direct spatial": 1000, "direct, co-located 8x8 split": 40,
                                         "bi-predicted": 2000},
    "x264-p4x4-cabac-b3-temporal-refs2": {"P sub-8x8": 300, "direct temporal": 700,
                                          "direct, co-located 8x8 split": 50, "bi-predicted": 2000},
    "x264-p4x4-cavlc-b2-temporal-refs3-deblock": {"P sub-8x8": 300, "direct temporal": 600,
                                                  "direct, co-located 8x8 split": 20, "ref_idx > 0": 500},
    "CABA3_SVA_B": {"P sub-8x8": 400, "direct temporal": 6000, "direct 8x8 split": 250,
                    "direct, co-located 8x8 split": 250},
    "SL1_SVA_B": {"P sub-8x8": 500, "direct temporal": 6000, "direct 8x8 split": 300,
                  "direct, co-located 8x8 split": 300},
    "CANL4_SVA_B": {"P sub-8x8": 400, "direct spatial": 6000, "direct 8x8 split": 12,
                    "direct spatial, colZeroFlag split in co-located 8x8": 40},
    "HCAFR2_HHI": {"direct spatial": 2000, "direct 8x8 split": 4, "B 8x8 split (sub-8x8 or direct)": 300},
    "HCAFR1_HHI": {"B sub-8x8": 100, "direct spatial": 8000, "direct spatial, colZeroFlag split in co-located 8x8": 12},
    "HCAFR3_HHI": {"B sub-8x8": 250, "direct spatial": 8000, "direct, co-located 8x8 split": 200},
    "BA3_SVA_C": {"P sub-8x8": 400, "direct spatial": 6000, "direct spatial, colZeroFlag split in co-located 8x8": 50},
    "FOREMAN_176x144_15_avc_48": {"B sub-8x8": 130, "direct temporal": 4500, "direct, co-located 8x8 split": 180},
}


def _split8(mb: codec.Macroblocks) -> np.ndarray:
    """bool [H8, W8]: 8x8 blocks whose 4x4 blocks differ in a vector or reference index."""
    mv, ref = np.asarray(mb.mv), np.asarray(mb.ref_idx)
    _, h4, w4 = ref.shape
    v = mv.reshape(2, h4 // 2, 2, w4 // 2, 2, 2)
    r = ref.reshape(2, h4 // 2, 2, w4 // 2, 2)
    return (v != v[:, :, :1, :, :1]).any(axis=(0, 2, 4, 5)) | (r != r[:, :, :1, :, :1]).any(axis=(0, 2, 4))


def _col_zero(mb: codec.Macroblocks) -> np.ndarray:
    """bool [H4, W4]: colZeroFlag of each 4x4 block were it the co-located block (8.4.1.2.2):
    its list-0 motion, else its list-1 motion, has reference index 0 and both vector
    components within [-1, 1] (the co-located picture is assumed short-term)."""
    ref, mv = np.asarray(mb.ref_idx), np.asarray(mb.mv)
    lst = np.where(ref[0] >= 0, 0, 1)
    r = np.take_along_axis(ref, lst[None], 0)[0]
    v = np.take_along_axis(mv, lst[None, ..., None], 0)[0]
    return (r == 0) & (np.abs(v) <= 1).all(axis=-1)


def _up(a: np.ndarray, f: int) -> np.ndarray:
    return np.repeat(np.repeat(a, f, axis=0), f, axis=1)


def _coverage(s: codec.Stream, info: codec.FrameInfo, by_decode: dict[int, int]) -> Counter:
    """Counts of the frame's 4x4 blocks by kind (the keys of COVERAGE)."""
    mb = s.macroblocks(info.index)
    counts: Counter = Counter()
    split = _up(_split8(mb), 2)
    inter4 = _up(mb.mb_type == MB_INTER, 4)
    ref = np.asarray(mb.ref_idx)
    counts["bi-predicted"] = int(((ref[0] >= 0) & (ref[1] >= 0)).sum())
    counts["ref_idx > 0"] = int((ref > 0).any(axis=0).sum())
    if info.type == "P":
        counts["P sub-8x8"] = int((split & inter4).sum())
        return counts
    # B: with direct_8x8_inference a split 8x8 of a non-direct macroblock is a sub-8x8
    # partition; without it, possibly a direct sub-macroblock of B_8x8 too.
    key = "B sub-8x8" if s.sequence["direct_8x8_inference"] else "B 8x8 split (sub-8x8 or direct)"
    counts[key] = int((split & inter4).sum())
    # Direct macroblocks (B_Skip, B_Direct_16x16), by their slice's direct mode and co-located picture.
    headers = sorted(s.slice_headers(info.index), key=lambda h: h["first_mb_in_slice"])
    firsts = np.array([h["first_mb_in_slice"] for h in headers])
    h16, w16 = mb.mb_type.shape
    slice_of = np.searchsorted(firsts, np.arange(h16 * w16), side="right").reshape(h16, w16) - 1
    direct = mb.mb_type == MB_DIRECT
    for k, h in enumerate(headers):
        here = _up(direct & (slice_of == k), 4)
        col = s.macroblocks(by_decode[h["ref_pic_lists"][1][0][0]])
        counts["direct spatial" if h["direct_spatial_mv_pred"] else "direct temporal"] += int(here.sum())
        counts["direct 8x8 split"] += int((here & split).sum())
        counts["direct, co-located 8x8 split"] += int((here & _up(_split8(col), 2)).sum())
        if h["direct_spatial_mv_pred"]:  # where the co-located block chosen decides colZeroFlag
            zero = _col_zero(col).reshape(h16 * 2, 2, w16 * 2, 2)
            mixed = zero.any(axis=(1, 3)) & ~zero.all(axis=(1, 3))
            counts["direct spatial, colZeroFlag split in co-located 8x8"] += int((here & _up(mixed, 2)).sum())
    return counts


def _check(name: str, path: Path, frames: set[int] | None = None) -> Counter:
    """Runs the prediction oracle over `path`; returns the coverage, fails on any mismatch."""
    covered: Counter = Counter()
    failures = []
    with codec.open(path) as s:
        by_decode = {f.decode_index: f.index for f in s.frames}
        for info, check in zip(s.frames, prediction_residuals(path, s, frames)):
            if check is None:
                continue
            covered += _coverage(s, info, by_decode)
            residual = s.residual(info.index)
            for plane, expected in check.planes.items():
                wrong = expected.valid & (getattr(residual, plane) != expected.residual)
                covered["samples " + plane] += int(expected.valid.sum())
                if wrong.any():
                    f = 4 if plane == "y" else 2
                    ys, xs = np.nonzero(wrong)
                    blocks = {(y // f, x // f) for y, x in zip(ys.tolist(), xs.tolist())}
                    by, bx = min(blocks)
                    failures.append(f"frame {info.index} ({info.type}) {plane}: {int(wrong.sum())} of "
                                    f"{int(expected.valid.sum())} samples differ in {len(blocks)} 4x4 blocks, "
                                    f"first at 4x4 ({bx}, {by}), lists {int(check.lists[by, bx])}")
    assert not failures, f"{name}: prediction inconsistent with the residual in {len(failures)} planes: " + \
        "; ".join(failures[:4])
    return covered


def _assert_covers(name: str, covered: Counter) -> None:
    short = {k: (covered[k], n) for k, n in COVERAGE[name].items() if covered[k] < n}
    assert not short, f"{name}: too few 4x4 blocks checked (got, needed): {short}; all: {dict(covered)}"
    assert min(covered["samples y"], covered["samples u"], covered["samples v"]) > 0


@pytest.mark.parametrize("name", list(X264_CLIPS))
def test_x264_prediction_is_consistent(name, clip_factory):
    path = clip_factory(".mp4", **X264_CLIPS[name])
    with codec.open(path) as s:
        assert s.sequence["direct_8x8_inference"]  # x264 always sets it
    _assert_covers(name, _check(name, path))


@pytest.mark.parametrize("name", list(CONFORMANCE_STREAMS))
def test_conformance_prediction_is_consistent(name, conformance_stream):
    relative, frames, inference, modes = CONFORMANCE_STREAMS[name]
    path = conformance_stream(relative)
    with codec.open(path) as s:
        assert s.sequence["direct_8x8_inference"] == inference
        seen = {"spatial" if h["direct_spatial_mv_pred"] else "temporal"
                for f in s.frames if f.type == "B" for h in s.slice_headers(f.index)}
        assert seen == modes
    _assert_covers(name, _check(name, path, None if frames is None else set(frames)))


def test_oracle_sees_one_wrong_4x4_vector(clip_factory):
    """Self-check: give the other three 4x4 blocks of every split 8x8 of the P frames the
    vector of its top-left 4x4 block (which is all FFmpeg's export shows of it): nearly every
    4x4 block whose vector changed must then mismatch its residual on its own."""
    path = clip_factory(".mp4", **X264_CLIPS["x264-p4x4-cavlc-refs3"])
    decoded = decode_with_motion(path, mb_types=False, keep_planes=True, skip_loop_filter=True)
    changed = caught = 0
    with codec.open(path) as s:
        pictures = {f.decode_index: fm.planes for f, fm in zip(s.frames, decoded)}
        for info, fm in zip(s.frames, decoded):
            if info.type != "P":
                continue
            mv = np.asarray(s.macroblocks(info.index).mv)
            ref_picture = s._parsed(info.index).ref_picture()
            top_left = np.repeat(np.repeat(mv[:, ::2, ::2], 2, axis=1), 2, axis=2)
            preds, lists = predict_inter(top_left, ref_picture, pictures)
            luma = fm.planes[0]
            wrong = (luma.astype(np.int32) - preds[0] != s.residual(info.index).y) & (luma != 0) & (luma != 255)
            h4, w4 = lists.shape
            moved = (top_left != mv).any(axis=(0, 3)) & (lists > 0)
            changed += int(moved.sum())
            caught += int((moved & wrong.reshape(h4, 4, w4, 4).any(axis=(1, 3))).sum())
    assert changed > 300 and caught > 0.9 * changed, (changed, caught)


def test_weighted_prediction_is_refused(clip_factory):
    """The oracle predicts without weights: it refuses streams that signal weighted prediction."""
    path = clip_factory(".mp4", bframes=2, weightp=2, frames=8)
    with codec.open(path) as s, pytest.raises(ValueError, match="weighted prediction"):
        prediction_residuals(path, s)
