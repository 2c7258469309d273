"""Intra macroblocks against FFmpeg: the residual of every intra sample equals FFmpeg's decoded
sample minus the intra prediction computed from its decoded neighbours (intra_oracle.py) with
the prediction modes the parser reports, in I, P and B pictures, CAVLC and CABAC, 4x4 and 8x8
transforms, several slices per picture and constrained intra prediction.

The oracle's predictor is checked on its own first, on crafted pictures (intra_stream.py) whose
intra macroblocks carry no residual: there FFmpeg's decoded samples are the prediction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from intra_oracle import intra_residual_oracle, predict_frame, slice_map
from intra_stream import craft_intra_stream
from mv_oracle import decode_with_motion

from tools.clips import write_cqm_file
from vccv_gpu import codec

# Small clips, no deblocking. Low crf gives many Intra4x4/8x8 blocks, high crf (and flat image
# areas: seeds 1 and 4) Intra16x16 ones; seeds 5 and 10 move fast enough for x264 to code many
# intra macroblocks in P and B pictures; slices and constrained intra prediction make
# neighbours unavailable. cqm "custom" stands for write_cqm_file's matrices.
_FIXED = dict(deblock=False, size=(160, 96), frames=10)
CLIPS = {
    "cavlc-4x4-p-slices3": dict(entropy="cavlc", profile="main", crf=26, slices=3),
    "cavlc-8x8-b3-slices2": dict(entropy="cavlc", crf=10, bframes=3, slices=2, seed=5),
    "cavlc-8x8-b3": dict(entropy="cavlc", crf=10, bframes=3, seed=10),
    "cavlc-8x8-b2-crf40": dict(entropy="cavlc", crf=40, bframes=2, seed=4),
    "cavlc-4x4-b3-constrained-slices3": dict(entropy="cavlc", crf=10, bframes=3, transform_8x8=False,
                                             constrained_intra=True, slices=3, seed=5),
    "cavlc-8x8-b2-constrained-odd": dict(entropy="cavlc", crf=20, bframes=2, constrained_intra=True, slices=2,
                                         size=(178, 110)),
    "cabac-8x8-b3": dict(entropy="cabac", crf=10, bframes=3, seed=5),
    "cabac-4x4-b3-slices4": dict(entropy="cabac", crf=10, bframes=3, transform_8x8=False, slices=4, seed=5),
    "cabac-8x8-b2-slices4-crf30": dict(entropy="cabac", crf=30, bframes=2, slices=4),
    "cabac-8x8-b3-crf36": dict(entropy="cabac", crf=36, bframes=3, seed=1),
    "cabac-4x4-b2-constrained": dict(entropy="cabac", crf=20, bframes=2, transform_8x8=False, constrained_intra=True),
    "cabac-4x4-b2-crf40": dict(entropy="cabac", crf=40, bframes=2, transform_8x8=False, seed=4),
    # Quantisation matrices that differ between intra and inter (and, custom, between lists).
    "cavlc-4x4-b3-cqm-jvt": dict(entropy="cavlc", crf=10, bframes=3, transform_8x8=False, cqm="jvt", seed=10),
    "cabac-8x8-b3-cqm-custom": dict(entropy="cabac", crf=10, bframes=3, cqm="custom", seed=5),
}

# FFmpeg's debug=mb_type characters: Intra16x16, Intra4x4/8x8.
_FFMPEG_I16, _FFMPEG_NXN = "I", "i"
_CHROMA_MODES = ("DC", "horizontal", "vertical", "plane")


def _up(a: np.ndarray, f: int) -> np.ndarray:
    return np.repeat(np.repeat(a, f, axis=0), f, axis=1)


def _check_clip(path: Path, constrained_intra: bool) -> Counter:
    """Compares the parser's residual with the oracle on every intra sample of the clip; returns
    the number of compared samples per (picture type, luma size, mode) and (picture type,
    "chroma", mode)."""
    counts: Counter = Counter()
    with codec.open(path) as s:
        assert s.sequence["constrained_intra_pred"] == constrained_intra
        for frame in intra_residual_oracle(path, s):
            mb = s.macroblocks(frame.index)
            if frame.mb_char is not None:  # FFmpeg's own view of the macroblock types
                kind = frame.mb_char.astype("<U1")
                np.testing.assert_array_equal(kind == _FFMPEG_I16, mb.intra_size == 16,
                                              err_msg=f"frame {frame.index}: Intra16x16 macroblocks")
                np.testing.assert_array_equal(kind == _FFMPEG_NXN, np.isin(mb.intra_size, (4, 8)),
                                              err_msg=f"frame {frame.index}: Intra4x4/8x8 macroblocks")
            ours = s.residual(frame.index)
            for name, got, expected, valid in zip("yuv", (ours.y, ours.u, ours.v), frame.residual, frame.valid):
                wrong = valid & (got != expected)
                if wrong.any():
                    y, x = (int(v[0]) for v in np.nonzero(wrong))
                    scale = 16 if name == "y" else 8
                    my, mx = y // scale, x // scale
                    pytest.fail(f"{frame.pict_type} frame {frame.index} {name}: {int(wrong.sum())} of "
                                f"{int(valid.sum())} intra residual samples differ; first at ({x}, {y}): parser "
                                f"{int(got[y, x])}, FFmpeg - prediction {int(expected[y, x])} (Intra"
                                f"{mb.intra_size[my, mx]} mode {mb.intra_pred[y * 4 // scale, x * 4 // scale]}, "
                                f"chroma mode {mb.intra_chroma_pred[my, mx]}, qp {mb.qp[my, mx]})")
            size, mode = _up(mb.intra_size, 16), _up(mb.intra_pred, 4)
            valid_y, valid_u, valid_v = frame.valid
            kinds, numbers = np.unique(np.stack([size[valid_y], mode[valid_y]]), axis=1, return_counts=True)
            for (k, m), n in zip(kinds.T.tolist(), numbers.tolist()):
                counts[(frame.pict_type, k, m)] += n
            chroma = _up(mb.intra_chroma_pred, 8)
            for m in range(4):
                counts[(frame.pict_type, "chroma", m)] += int((valid_u & (chroma == m)).sum() +
                                                               (valid_v & (chroma == m)).sum())
    return counts


@pytest.fixture(scope="module")
def checked(clip_factory, tmp_path_factory) -> Callable[[str], Counter]:
    cache: dict[str, Counter] = {}
    cqm_file = write_cqm_file(tmp_path_factory.mktemp("cqm") / "custom.cfg", seed=5)

    def get(name: str) -> Counter:
        if name not in cache:
            settings = {**_FIXED, **CLIPS[name]}
            if settings.get("cqm") == "custom":
                settings["cqm"] = cqm_file
            cache[name] = _check_clip(clip_factory(".mp4", **settings), settings.get("constrained_intra", False))
        return cache[name]

    return get


def _luma(counts: Counter, types: str, size: int | None = None, mode: int | None = None) -> int:
    return sum(n for (t, k, m), n in counts.items() if t in types and k != "chroma" and
               (size is None or k == size) and (mode is None or m == mode))


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_intra_residuals_are_exact(checked, name):
    counts = checked(name)
    # Most of the I picture and a fair number of intra samples in P/B pictures were compared.
    width, height = CLIPS[name].get("size", _FIXED["size"])
    assert _luma(counts, "I") > 0.6 * width * height
    assert _luma(counts, "PB") >= 256


def test_every_kind_of_intra_block_is_checked(checked):
    """Over the matrix, each luma block size and each mode of it, and each chroma mode, was
    compared on many samples, in I pictures and in P/B pictures (B ones included)."""
    total = sum((checked(name) for name in sorted(CLIPS)), Counter())
    for types in ("I", "PB", "B"):
        for size in (4, 8, 16):
            assert _luma(total, types, size) >= 10000, (types, size, _luma(total, types, size))
    for types in ("I", "PB"):
        for mode, mode_name in enumerate(_CHROMA_MODES):
            chroma = sum(n for (t, k, m), n in total.items() if t in types and k == "chroma" and m == mode)
            assert chroma >= 2000, (types, "chroma", mode_name, chroma)
        for size, modes in ((4, 9), (8, 9), (16, 4)):
            for mode in range(modes):
                assert _luma(total, types, size, mode) >= 500, (types, size, mode, _luma(total, types, size, mode))


@pytest.mark.parametrize("transform_8x8", [False, True], ids=["4x4", "8x8"])
@pytest.mark.parametrize("constrained", [False, True], ids=["unconstrained", "constrained"])
def test_oracle_predicts_crafted_pictures_exactly(tmp_path, transform_8x8, constrained):
    """Without the parser: on crafted I and P pictures (I_PCM texture, intra macroblocks without
    residual, P_Skip, slices starting mid-row) FFmpeg's decoded intra samples equal the oracle's
    prediction from the written modes, every one of them. Then the parser reports those modes."""
    used: Counter = Counter()
    for seed in range(3):
        crafted = craft_intra_stream(seed, transform_8x8=transform_8x8, constrained_intra_pred=constrained)
        path = tmp_path / f"crafted{seed}.h264"
        path.write_bytes(crafted.data)
        frames = decode_with_motion(path, mb_types=False, keep_planes=True)
        assert [f.pict_type for f in frames] == [p.slice_type for p in crafted.pictures]
        for picture, fm in zip(crafted.pictures, frames):
            truth = picture.macroblocks()
            slices = slice_map(picture.first_mbs, picture.width_mbs, picture.height_mbs)
            pred, mask = predict_frame(fm.planes, truth, slices, constrained)
            for name, decoded, p, m in zip("yuv", fm.planes, pred, mask):
                wrong = m & (decoded != p)
                assert not wrong.any(), f"seed {seed} {picture.slice_type} {name}: {wrong.sum()} of {m.sum()} differ"
            if constrained and picture.slice_type == "P":  # the skipped neighbours matter
                with pytest.raises(AssertionError):
                    pred, mask = predict_frame(fm.planes, truth, slices, False)
                    assert all((decoded[m] == p[m]).all() for decoded, p, m in zip(fm.planes, pred, mask))
            for mb in picture.mbs:
                used.update((mb.kind, m) for m in mb.modes)
                used[("chroma", mb.chroma)] += 1
        with codec.open(crafted.data) as s:
            for index, picture in enumerate(crafted.pictures):
                mb, truth = s.macroblocks(index), picture.macroblocks()
                for field in ("mb_type", "intra_size", "intra_pred", "intra_chroma_pred"):
                    np.testing.assert_array_equal(getattr(mb, field), getattr(truth, field),
                                                  err_msg=f"seed {seed} picture {index} {field}")
                residual = s.residual(index)
                assert not any(plane.any() for plane in (residual.y, residual.u, residual.v))
    kinds = [("i4", 9), ("i16", 4), ("chroma", 4)] + ([("i8", 9)] if transform_8x8 else [])
    for kind, modes in kinds:
        assert all(used[(kind, m)] > 0 for m in range(modes)), (kind, used)
