"""Self-checks of the FFmpeg-based oracles (mv_oracle, residual_oracle); no parser needed.

The residual oracle is exact by construction where it says ``valid`` (it is
decoded - prediction), so the checks that matter are the ones a wrong
*prediction* would fail: every P_Skip macroblock has zero residual by
definition, so FFmpeg's decoded samples must equal our prediction exactly there
- luma and chroma, at half/quarter-sample positions, and at picture edges with
vectors pointing outside (negative controls below show these cases really occur
and that edge clamping / chroma interpolation errors would be caught).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from mv_oracle import (
    MB_INTRA,
    MB_PCM,
    MB_SKIP,
    expected_mv_grid,
    ffmpeg_motion_vectors,
    unused_list_mask,
)
from oracles import pyav_oracle
from residual_oracle import inter_residual_oracle, predict_chroma, predict_luma

# Residual-oracle clips: one reference, no B, no weighting, no deblocking.
_RES_BASE = dict(subpel=False, deblock=False, refs=1, bframes=0, weightp=0, frames=24, gop=12)
RESIDUAL_CLIPS = {
    "fullpel-cabac-160x96": dict(_RES_BASE, size=(160, 96), entropy="cabac"),
    "fullpel-cavlc-176x120": dict(_RES_BASE, size=(176, 120), entropy="cavlc"),
    # High crf: hundreds of P_Skip macroblocks, many pointing outside the picture.
    "fullpel-cabac-160x96-crf36": dict(_RES_BASE, size=(160, 96), entropy="cabac", crf=36),
    "fullpel-cavlc-176x120-crf36": dict(_RES_BASE, size=(176, 120), entropy="cavlc", crf=36, seed=1),
    # Quarter-pel vectors: the skip macroblocks of this clip hit all 16 luma fractions.
    "subpel-cabac-160x96-crf36": dict(_RES_BASE, size=(160, 96), entropy="cabac", crf=36, subpel=True),
}
SKIP_RICH = [k for k in RESIDUAL_CLIPS if "crf36" in k]

# Motion-oracle clips.
MV_CLIPS = {
    "subpel-b3-cabac": dict(bframes=3, size=(160, 96)),
    "subpel-b2-cavlc-176x120-refs2": dict(bframes=2, refs=2, size=(176, 120), entropy="cavlc",
                                          profile="main"),
    "fullpel-cabac-160x96": RESIDUAL_CLIPS["fullpel-cabac-160x96"],
    "fullpel-cavlc-176x120": RESIDUAL_CLIPS["fullpel-cavlc-176x120"],
}

_SEG = {" ": (16, 16), "-": (16, 8), "|": (8, 16), "+": (8, 8)}


@pytest.fixture(scope="module")
def residuals(clip_factory):
    cache = {}

    def get(name):
        if name not in cache:
            path = clip_factory(".mp4", **RESIDUAL_CLIPS[name])
            cache[name] = (path, inter_residual_oracle(path))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def motions(clip_factory):
    cache = {}

    def get(name):
        if name not in cache:
            path = clip_factory(".mp4", **MV_CLIPS[name])
            cache[name] = (path, ffmpeg_motion_vectors(path))
        return cache[name]

    return get


def _skip_mbs(ro):
    ys, xs = np.nonzero(ro.motion.mb_type == MB_SKIP)
    return list(zip(ys.tolist(), xs.tolist()))


def _mb_slices(y, x):
    return np.s_[16 * y:16 * y + 16, 16 * x:16 * x + 16], np.s_[8 * y:8 * y + 8, 8 * x:8 * x + 8]


# --------------------------------------------------------------------------
# Residual oracle
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RESIDUAL_CLIPS))
def test_residual_shapes_and_reconstruction(residuals, name):
    path, oracle = residuals(name)
    w, h = RESIDUAL_CLIPS[name]["size"]
    cw, ch = -(-w // 16) * 16, -(-h // 16) * 16
    assert len(oracle) == 24
    assert [i for i, ro in enumerate(oracle) if ro is None] == [0, 12]  # the IDRs
    for ro in filter(None, oracle):
        assert ro.pict_type == "P"
        assert ro.motion.coded_width == cw and ro.motion.coded_height == ch
        assert (ro.motion.width, ro.motion.height) == (w, h)
        for key, plane in ro.planes.items():
            shape = (ch, cw) if key == "y" else (ch // 2, cw // 2)
            assert plane.residual.shape == plane.valid.shape == shape
            assert plane.residual.dtype == np.int16 and plane.valid.dtype == bool
            rec = np.clip(plane.prediction.astype(np.int32) + plane.residual, 0, 255)
            assert np.array_equal(rec[plane.known], plane.decoded[plane.known])
            assert not plane.valid[~plane.known].any()
            assert not np.isin(plane.decoded[plane.valid], (0, 255)).any()
        # Known vectors never in intra macroblocks; every inter macroblock has
        # either all 16 4x4 vectors (16x16/16x8/8x16, skip) or the 4 top-left ones (8x8).
        known_per_mb = ro.mv_known.reshape(ch // 16, 4, cw // 16, 4).sum(axis=(1, 3))
        intra = np.isin(ro.motion.mb_type, (MB_INTRA, MB_PCM))
        assert (known_per_mb[intra] == 0).all()
        eight = np.array([[c[1] == "+" for c in row] for row in ro.motion.mb_char])
        assert (known_per_mb[~intra & eight] == 4).all()
        assert (known_per_mb[~intra & ~eight] == 16).all()


@pytest.mark.parametrize("name", list(RESIDUAL_CLIPS))
def test_residual_valid_fraction(residuals, name):
    _, oracle = residuals(name)
    ps = [ro for ro in oracle if ro is not None]
    for key in "yuv":
        frac = np.mean([getattr(ro, key).valid.mean() for ro in ps])
        assert frac > 0.5, f"{key}: only {frac:.1%} valid"


@pytest.mark.parametrize("name", list(RESIDUAL_CLIPS))
def test_skip_macroblocks_have_zero_residual(residuals, name):
    """P_Skip has no residual: FFmpeg's decoded samples must equal our prediction
    exactly over the whole macroblock (clipped samples included) in Y, U and V."""
    _, oracle = residuals(name)
    n_skip = 0
    bad = []
    for ro in filter(None, oracle):
        for y, x in _skip_mbs(ro):
            n_skip += 1
            sl, sc = _mb_slices(y, x)
            assert ro.y.known[sl].all() and ro.u.known[sc].all()
            # one 16x16 vector over the whole macroblock
            assert (ro.mv[4 * y:4 * y + 4, 4 * x:4 * x + 4] == ro.mv[4 * y, 4 * x]).all()
            for plane, s in ((ro.y, sl), (ro.u, sc), (ro.v, sc)):
                if plane.residual[s].any():
                    bad.append((ro.index, y, x))
    assert n_skip >= (100 if "crf36" in name else 5)
    assert not bad, f"non-zero residual in {len(bad)}/{n_skip} skip macroblocks, e.g. {bad[:5]}"


def test_inter_blocks_often_exactly_zero(residuals):
    """With the right prediction many coded inter 4x4 blocks (cbp bits 0) are
    exactly zero; a prediction off by a sample or a rounding would leave almost
    none.  (Full-pel crf 23 clips: measured 17-45 % of known non-skip 4x4 blocks.)"""
    for name in ("fullpel-cabac-160x96", "fullpel-cavlc-176x120"):
        _, oracle = residuals(name)
        zero = total = 0
        for ro in filter(None, oracle):
            h4, w4 = ro.mv_known.shape
            r = ro.y.residual.reshape(h4, 4, w4, 4).swapaxes(1, 2).reshape(h4, w4, 16)
            skip4 = np.repeat(np.repeat(ro.motion.mb_type == MB_SKIP, 4, 0), 4, 1)
            sel = ro.mv_known & ~skip4
            zero += int((~r[sel].any(axis=1)).sum())
            total += int(sel.sum())
        assert total > 1000 and zero / total > 0.1, (name, zero, total)


def test_cropped_area_is_covered(residuals):
    """176x120 is coded as 176x128: the oracle decodes uncropped (apply_cropping=0)
    and the 8 cropped rows are predicted/validated like any other."""
    _, oracle = residuals("fullpel-cavlc-176x120-crf36")
    valid_rows = skips_bottom = 0
    for ro in filter(None, oracle):
        assert ro.y.decoded.shape == (128, 176)
        valid_rows += int(ro.y.valid[120:].sum())
        for y, x in _skip_mbs(ro):
            if y == 7:
                skips_bottom += 1
                sl, sc = _mb_slices(y, x)
                assert not ro.y.residual[sl].any() and not ro.u.residual[sc].any()
    assert valid_rows > 0 and skips_bottom > 0


def _pad_predict(ref, mv, pad, luma):
    """Prediction with the reference extended by *reflection* instead of edge
    clamping (a wrong decoder), for the negative control."""
    big = np.pad(ref, pad, mode="reflect")
    mvb = np.pad(mv, ((pad, pad), (pad, pad), (0, 0)))
    p = (predict_luma if luma else predict_chroma)(big, mvb)
    return p[pad:-pad, pad:-pad]


@pytest.mark.parametrize("name", SKIP_RICH)
def test_skip_check_is_sensitive(residuals, name):
    """Negative controls: the skip-MB check above would catch (a) reflecting
    instead of clamping out-of-picture reference samples, (b) chroma without the
    1/8-sample bilinear filter (full-pel luma vectors with odd components land on
    half chroma samples), (c) a vector off by one quarter sample."""
    _, oracle = residuals(name)
    outside = odd = 0
    caught = Counter()
    for ro in filter(None, oracle):
        skips = _skip_mbs(ro)
        if not skips:
            continue
        ry, ru, _ = ro.reference
        mv_l = np.repeat(np.repeat(ro.mv, 4, 0), 4, 1)
        mv_c = np.repeat(np.repeat(ro.mv, 2, 0), 2, 1)
        refl_y = _pad_predict(ry, mv_l, 64, True)
        refl_u = _pad_predict(ru, mv_c, 32, False)
        flat_u = predict_chroma(ru, mv_c & ~7)             # integer chroma positions only
        off_y = predict_luma(ry, mv_l + np.array([1, 0]))  # quarter sample to the right
        cw, ch = ro.motion.coded_width, ro.motion.coded_height
        for y, x in skips:
            sl, sc = _mb_slices(y, x)
            vx, vy = (int(v) for v in ro.mv[4 * y, 4 * x])
            px, py = 16 * x + (vx >> 2), 16 * y + (vy >> 2)
            if px < 2 or py < 2 or px + 19 > cw or py + 19 > ch:  # 6-tap support leaves the picture
                outside += 1
                if (refl_y[sl] != ro.y.decoded[sl]).any() or (refl_u[sc] != ro.u.decoded[sc]).any():
                    caught["clamp"] += 1
            if (vx & 7) or (vy & 7):
                odd += 1
                if (flat_u[sc] != ro.u.decoded[sc]).any():
                    caught["chroma"] += 1
            if (off_y[sl] != ro.y.decoded[sl]).any():
                caught["offset"] += 1
    assert outside >= 5 and odd >= 50
    assert caught["clamp"] >= 10, (outside, caught)
    assert caught["chroma"] >= 0.5 * odd, (odd, caught)
    assert caught["offset"] >= 50, caught


def test_subpel_clip_covers_all_luma_fractions(residuals):
    """The quarter-pel skip check exercises every 6-tap/average case of 8.4.2.2.1."""
    _, oracle = residuals("subpel-cabac-160x96-crf36")
    fractions = set()
    for ro in filter(None, oracle):
        for y, x in _skip_mbs(ro):
            fractions.add(tuple(int(v) & 3 for v in ro.mv[4 * y, 4 * x]))
    assert len(fractions) == 16, sorted(fractions)


def test_residual_oracle_rejects_unsuitable_clip(clip_factory):
    path = clip_factory(".mp4", **MV_CLIPS["subpel-b3-cabac"])
    with pytest.raises(ValueError):
        inter_residual_oracle(path)


# --------------------------------------------------------------------------
# Motion-vector oracle
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MV_CLIPS))
def test_mv_export_structure(motions, name):
    path, fms = motions(name)
    ref = pyav_oracle(path)
    assert [fm.pict_type for fm in fms] == [f.type for f in ref.frames]
    assert [fm.pts for fm in fms] == [f.pts for f in ref.frames]
    types = Counter()
    for fm in fms:
        cw, ch = fm.coded_width, fm.coded_height
        assert cw % 16 == 0 and ch % 16 == 0 and cw >= fm.width and ch >= fm.height
        n0, n1 = len(fm.lists[0]), len(fm.lists[1])
        if fm.pict_type == "I":
            assert n0 == n1 == 0
        elif fm.pict_type == "P":
            assert n0 > 0 and n1 == 0
        else:
            assert n0 + n1 > 0
        types[fm.pict_type, n1 > 0] += 1
        rec = fm.records
        if rec.size:
            assert (rec["motion_scale"] == 4).all() and (rec["flags"] == 0).all()
            trunc = np.trunc(rec["motion_x"] / 4).astype(int), np.trunc(rec["motion_y"] / 4).astype(int)
            assert (rec["src_x"] == rec["dst_x"] + trunc[0]).all()
            assert (rec["src_y"] == rec["dst_y"] + trunc[1]).all()
        for li, ml in enumerate(fm.lists):
            assert set(zip(ml.w.tolist(), ml.h.tolist())) <= set(_SEG.values())
            assert (ml.x % ml.w == 0).all() and (ml.y % ml.h == 0).all()   # dst = block centre
            assert (ml.x >= 0).all() and (ml.y >= 0).all()
            assert (ml.x + ml.w <= cw).all() and (ml.y + ml.h <= ch).all()
            mv, mask = expected_mv_grid(fm, li, cw, ch)            # raises on overlap
            unused = unused_list_mask(fm, li, cw, ch)
            assert not (mask & unused).any()
            assert mv.shape == (ch // 4, cw // 4, 2) and mv.dtype == np.int16
            assert not mv[~mask].any()
            if fm.pict_type == "P" and li == 1:
                assert unused.all()
    if any(fm.pict_type == "B" for fm in fms):
        assert types["B", True] > 0        # list-1 exports exist, only in B frames
    assert types["P", True] == 0 and types["I", True] == 0


@pytest.mark.parametrize("name", list(MV_CLIPS))
def test_mv_export_matches_ffmpeg_mb_types(motions, name):
    """Export granularity = FFmpeg's macroblock partition (its debug=mb_type table):
    16x16 -> 1 record, 16x8/8x16 -> 2, 8x8 -> 4 per used list; none for intra;
    P_Skip is a single 16x16 list-0 record."""
    _, fms = motions(name)
    seen = Counter()
    for fm in fms:
        assert fm.mb_char is not None and fm.mb_type is not None
        h16, w16 = fm.coded_height // 16, fm.coded_width // 16
        assert fm.mb_char.shape == (h16, w16)
        for li, ml in enumerate(fm.lists):
            per = Counter()
            shapes = {}
            for k in range(len(ml)):
                key = (int(ml.y[k]) // 16, int(ml.x[k]) // 16)
                per[key] += 1
                shapes.setdefault(key, set()).add((int(ml.w[k]), int(ml.h[k])))
            for y in range(h16):
                for x in range(w16):
                    t, seg = fm.mb_char[y, x]
                    uses = {">": li == 0, "<": li == 1, "X": True, "S": li == 0}.get(t)
                    if t in "iIP":
                        assert per[y, x] == 0
                        continue
                    if uses is not None:
                        assert (per[y, x] > 0) == uses, (fm.index, y, x, t, li)
                    if per[y, x]:
                        w, h = _SEG[seg]
                        assert per[y, x] == (16 // w) * (16 // h)
                        assert shapes[y, x] == {(w, h)}
                        seen[t + seg] += 1
    if "fullpel" in name:
        assert seen["S "] > 0
    assert seen["> "] > 0 and seen[">+"] + seen["X+"] > 0


@pytest.mark.parametrize("name", list(MV_CLIPS))
def test_mv_units(motions, name):
    _, fms = motions(name)
    mvs = np.concatenate([ml.mv for fm in fms for ml in fm.lists])
    assert len(mvs) > 500
    if "fullpel" in name:
        assert (mvs % 4 == 0).all()
    else:
        assert (mvs % 4 != 0).any()  # quarter-pel units
    assert np.abs(mvs).max() < 4 * 200
