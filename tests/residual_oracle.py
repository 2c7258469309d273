"""Expected H.264 inter residuals (decoded - prediction), from FFmpeg through PyAV.

For clips coded with one reference frame, no B-frames, no weighted prediction and
no deblocking (``make_clip(..., subpel=False, deblock=False, refs=1, bframes=0,
weightp=0)``), every sample of an inter macroblock of a P frame is

    decoded = Clip1(prediction + residual)

where the prediction is the previous decoded frame (decode order = display
order here) sampled at the block's motion vector (H.264 8.4.2.2; no weighting,
8.4.2.3.1 with a single list is the identity).  Without the deblocking filter
nothing else touches the samples, so ``decoded - prediction`` is exactly the
residual the decoder added wherever the decoded sample is not clipped (1..254).

Motion vectors come from FFmpeg's export (see mv_oracle.py), independent of the
parser.  The prediction is computed here in integers:

* luma: quarter-sample 6-tap interpolation of 8.4.2.2.1 (full-sample vectors are
  a plain copy), reference sample coordinates clamped to
  [0, coded_width-1] x [0, coded_height-1] tap by tap (vectors may point outside
  the picture);
* chroma (4:2:0, frame coding): the luma vector read in 1/8 chroma samples,
  bilinear ``((8-xF)(8-yF)A + xF(8-yF)B + (8-xF)yF C + xF yF D + 32) >> 6`` with
  clamped integer positions (8.4.2.2.2); each 2x2 chroma block uses the vector of
  its 4x4 luma block.

Sub-pel vectors are supported too, so clips with ``subpel=True`` (and no
deblocking / weighting / B-frames / multiple references) also work.

The decoder's uncropped output is used (codec option ``apply_cropping=0``), so the
residual covers the whole coded picture, cropped-away rows/columns included.

``valid`` marks samples whose residual is known exactly:
  * the 4x4 luma block (and its 2x2 chroma blocks) has a known vector: inside a
    16x16 / 16x8 / 8x16 partition exported by FFmpeg (P_Skip included), or the
    top-left 4x4 block of an 8x8 record (P_8x8: the other three 4x4 blocks of each
    8x8 are unknown since sub-8x8 partitions are not exported);
  * the decoded sample is neither 0 nor 255 (Clip1 would hide the residual).
Intra macroblocks in P frames are invalid.  I frames give None.

That oracle is independent of the parser but sees only what FFmpeg exports: P
pictures, list 0, one reference, and one vector per 8x8.  The second one,
:func:`prediction_residuals`, checks *every* inter 4x4 block of P and B pictures
instead, with the **parser's** vectors and reference pictures: the prediction
from FFmpeg's decoded pictures (any number of references, both lists,
bi-prediction averaged as in 8.4.2.3.1) must leave exactly the parser's residual.
A wrong vector in a single 4x4 block (a sub-8x8 partition, a direct block) then
shows as a residual mismatch.  It needs streams without weighted prediction;
deblocking is taken off FFmpeg's decode (``skip_loop_filter``, see
mv_oracle.decode_with_motion), so any stream without weighting will do.

Public API: :func:`inter_residual_oracle`, :func:`prediction_residuals`,
:func:`check_prediction_settings`, :func:`predict_inter`, :func:`predict_luma`,
:func:`predict_chroma`, dataclasses :class:`PlaneResidual`, :class:`ResidualOracle`, :class:`PredictionCheck`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mv_oracle import FrameMotion, decode_with_motion, expected_mv_grid

__all__ = ["PlaneResidual", "ResidualOracle", "inter_residual_oracle", "PredictionCheck",
           "prediction_residuals", "predict_inter", "check_prediction_settings", "predict_luma",
           "predict_chroma", "check_clip_settings"]

PathLike = str | Path

_TAPS = (1, -5, 20, 20, -5, 1)  # 6-tap filter at offsets -2..3


@dataclass
class PlaneResidual:
    residual: np.ndarray    # int16 [h, w]: decoded - prediction (0 where the vector is unknown)
    valid: np.ndarray       # bool [h, w]: residual exactly known
    decoded: np.ndarray     # uint8 [h, w]: FFmpeg's decoded (uncropped) plane
    prediction: np.ndarray  # int16 [h, w]: inter prediction (0 where the vector is unknown)
    known: np.ndarray       # bool [h, w]: vector known (valid without the 0/255 rule)


@dataclass
class ResidualOracle:
    index: int              # display index (== decode index for these clips)
    pts: int | None
    pict_type: str          # "P"
    y: PlaneResidual        # [coded_h, coded_w]
    u: PlaneResidual        # [coded_h/2, coded_w/2]
    v: PlaneResidual
    mv: np.ndarray          # int16 [H4, W4, 2] list-0 vector used per 4x4 block
    mv_known: np.ndarray    # bool [H4, W4]
    motion: FrameMotion     # FFmpeg's export (mb_char / mb_type when captured)
    reference: tuple[np.ndarray, np.ndarray, np.ndarray]  # decoded Y, U, V planes predicted from

    @property
    def planes(self) -> dict[str, PlaneResidual]:
        return {"y": self.y, "u": self.u, "v": self.v}


def _clip1(a: np.ndarray) -> np.ndarray:
    return np.clip(a, 0, 255)


def _reference_stack(ref: np.ndarray, ref_index: np.ndarray | None,
                     shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(int32 [R, H, W] pictures, int [H, W] picture per sample) from a single picture or a stack."""
    refs = ref.astype(np.int32)
    if refs.ndim == 2:
        refs = refs[None]
    if ref_index is None:
        if refs.shape[0] != 1:
            raise ValueError("a stack of reference pictures needs ref_index")
        ref_index = np.zeros(shape, np.intp)
    return refs, ref_index


def predict_luma(ref: np.ndarray, mv: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """Luma inter prediction (8.4.2.2.1) of a whole picture.

    ``ref``: uint8 [H, W] reference picture (coded size), or a stack [R, H, W] with
    ``ref_index`` int [H, W] naming each sample's picture in it; ``mv``: int [H, W, 2]
    per-sample (x, y) vector in quarter samples.  Returns int32 [H, W].
    """
    refs, pick = _reference_stack(ref, ref_index, mv.shape[:2])
    hgt, wid = refs.shape[1:]
    yy, xx = np.mgrid[0:hgt, 0:wid]
    mvx = mv[..., 0].astype(np.int64)
    mvy = mv[..., 1].astype(np.int64)
    xi, yi = xx + (mvx >> 2), yy + (mvy >> 2)
    fx, fy = mvx & 3, mvy & 3

    def s(dx: int, dy: int) -> np.ndarray:
        return refs[pick, np.clip(yi + dy, 0, hgt - 1), np.clip(xi + dx, 0, wid - 1)]

    rows: dict[int, np.ndarray] = {}

    def b1(dy: int) -> np.ndarray:  # horizontal half-sample intermediate, row dy
        if dy not in rows:
            rows[dy] = sum(t * s(k - 2, dy) for k, t in enumerate(_TAPS))
        return rows[dy]

    def h1(dx: int) -> np.ndarray:  # vertical half-sample intermediate, column dx
        return sum(t * s(dx, k - 2) for k, t in enumerate(_TAPS))

    out = s(0, 0).copy()
    if not (np.any(fx) or np.any(fy)):
        return out
    G, H, M = out, s(1, 0), s(0, 1)
    b = _clip1((b1(0) + 16) >> 5)
    ss = _clip1((b1(1) + 16) >> 5)
    h = _clip1((h1(0) + 16) >> 5)
    m = _clip1((h1(1) + 16) >> 5)
    j = _clip1((sum(t * b1(k - 2) for k, t in enumerate(_TAPS)) + 512) >> 10)
    avg = lambda p, q: (p + q + 1) >> 1  # noqa: E731
    table = {
        (0, 0): G, (0, 1): avg(G, h), (0, 2): h, (0, 3): avg(M, h),
        (1, 0): avg(G, b), (1, 1): avg(b, h), (1, 2): avg(h, j), (1, 3): avg(h, ss),
        (2, 0): b, (2, 1): avg(b, j), (2, 2): j, (2, 3): avg(j, ss),
        (3, 0): avg(H, b), (3, 1): avg(b, m), (3, 2): avg(j, m), (3, 3): avg(m, ss),
    }
    for (qx, qy), val in table.items():
        sel = (fx == qx) & (fy == qy)
        out[sel] = val[sel]
    return out


def predict_chroma(ref: np.ndarray, mv: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """4:2:0 chroma inter prediction (8.4.2.2.2) of a whole picture, frame coding.

    ``ref``: uint8 [Hc, Wc], or a stack [R, Hc, Wc] with ``ref_index`` int [Hc, Wc];
    ``mv``: int [Hc, Wc, 2] per-sample *luma* vector (quarter luma samples = eighth
    chroma samples).  Returns int32 [Hc, Wc].
    """
    refs, pick = _reference_stack(ref, ref_index, mv.shape[:2])
    hgt, wid = refs.shape[1:]
    yy, xx = np.mgrid[0:hgt, 0:wid]
    mvx = mv[..., 0].astype(np.int64)
    mvy = mv[..., 1].astype(np.int64)
    xi, yi = xx + (mvx >> 3), yy + (mvy >> 3)
    xf, yf = mvx & 7, mvy & 7
    x0, x1 = np.clip(xi, 0, wid - 1), np.clip(xi + 1, 0, wid - 1)
    y0, y1 = np.clip(yi, 0, hgt - 1), np.clip(yi + 1, 0, hgt - 1)
    a, b, c, d = refs[pick, y0, x0], refs[pick, y0, x1], refs[pick, y1, x0], refs[pick, y1, x1]
    return (((8 - xf) * (8 - yf) * a + xf * (8 - yf) * b + (8 - xf) * yf * c + xf * yf * d + 32)
            >> 6).astype(np.int32)


def check_clip_settings(path: PathLike) -> None:
    """Raise ValueError unless x264's SEI shows the settings this oracle needs.

    Streams without an x264 SEI are not checked (the caller answers for them).
    """
    from tools.clips import x264_settings

    try:
        sei = x264_settings(path)
    except ValueError:
        return
    need = {"ref": "1", "bframes": "0", "weightp": "0"}
    for key, want in need.items():
        if sei.get(key) != want:
            raise ValueError(f"{path}: residual oracle needs {key}={want}, clip has {sei.get(key)!r}")
    if sei.get("deblock", "0").split(":")[0] != "0":
        raise ValueError(f"{path}: residual oracle needs deblocking off, clip has deblock={sei.get('deblock')}")


def _up(a: np.ndarray, f: int) -> np.ndarray:
    return np.repeat(np.repeat(a, f, axis=0), f, axis=1)


def _plane(decoded: np.ndarray, pred: np.ndarray, known: np.ndarray) -> PlaneResidual:
    pred = np.where(known, pred, 0).astype(np.int16)
    residual = np.where(known, decoded.astype(np.int16) - pred, 0).astype(np.int16)
    valid = known & (decoded != 0) & (decoded != 255)
    return PlaneResidual(residual=residual, valid=valid, decoded=decoded, prediction=pred, known=known)


def inter_residual_oracle(path: PathLike, *, check_settings: bool = True,
                          mb_types: bool = True) -> list[ResidualOracle | None]:
    """Expected residuals of every frame of ``path`` in display order (None for I frames).

    ``path`` must be coded with a single reference frame, no B-frames, no weighted
    prediction and no deblocking (checked through the x264 SEI when
    ``check_settings``); its P frames' residuals are then ``decoded - prediction``
    as described in the module docstring.  Any pixel format other than 8-bit
    4:2:0 raises ValueError.
    """
    if check_settings:
        check_clip_settings(path)
    frames = decode_with_motion(path, mb_types=mb_types, keep_planes=True)
    out: list[ResidualOracle | None] = []
    prev: FrameMotion | None = None
    for fm in frames:
        if fm.pict_type == "B":
            raise ValueError(f"{path}: B frame at display index {fm.index}; the oracle needs bframes=0")
        if prev is not None and fm.pts is not None and prev.pts is not None and fm.pts <= prev.pts:
            raise ValueError(f"{path}: output pts not increasing at {fm.index} (reordering?)")
        if fm.pict_type == "I" or prev is None:
            if fm.pict_type != "I":
                raise ValueError(f"{path}: first frame is {fm.pict_type}, not I")
            out.append(None)
            prev = fm
            continue
        if len(fm.lists[1]):
            raise ValueError(f"{path}: list-1 motion in P frame {fm.index}")
        cw, ch = fm.coded_width, fm.coded_height
        mv4, known4 = expected_mv_grid(fm, 0, cw, ch, partitions=True)
        ry, ru, rv = prev.planes
        dy, du, dv = fm.planes
        mv_l = _up(mv4, 4)
        mv_c = _up(mv4, 2)
        pred_y = predict_luma(ry, mv_l)
        pred_u = predict_chroma(ru, mv_c)
        pred_v = predict_chroma(rv, mv_c)
        out.append(ResidualOracle(
            index=fm.index, pts=fm.pts, pict_type=fm.pict_type,
            y=_plane(dy, pred_y, _up(known4, 4)),
            u=_plane(du, pred_u, _up(known4, 2)),
            v=_plane(dv, pred_v, _up(known4, 2)),
            mv=mv4, mv_known=known4, motion=fm, reference=prev.planes))
        prev = fm
    return out


# --------------------------------------------------------------------------
# Prediction consistency: the parser's own motion, every 4x4 block, P and B
# --------------------------------------------------------------------------


@dataclass
class PredictionCheck:
    """``decoded - prediction`` of one P or B frame, the prediction made with the parser's
    vectors and reference pictures (see :func:`prediction_residuals`)."""

    index: int              # display index
    decode_index: int
    pict_type: str          # "P" / "B"
    y: PlaneResidual        # [coded_h, coded_w]
    u: PlaneResidual        # [coded_h/2, coded_w/2]
    v: PlaneResidual
    lists: np.ndarray       # uint8 [H4, W4]: bit L set where the block predicts from list L

    @property
    def planes(self) -> dict[str, PlaneResidual]:
        return {"y": self.y, "u": self.u, "v": self.v}


def check_prediction_settings(stream: codec.Stream) -> None:  # noqa: F821 - vccv_gpu.codec
    """Raise ValueError unless ``stream`` predicts with the default (unweighted) sample
    prediction (8.4.2.3.1) in 8-bit 4:2:0: no weighted_pred_flag, weighted_bipred_idc 0,
    and every slice refers to the picture parameter set those flags were read from."""
    seq = stream.sequence
    if seq["chroma_format_idc"] != 1 or seq["bit_depth"] != 8:
        raise ValueError(f"{stream.name}: prediction oracle needs 8-bit 4:2:0")
    if seq["weighted_pred"] or seq["weighted_bipred_idc"]:
        raise ValueError(f"{stream.name}: weighted prediction (weighted_pred {seq['weighted_pred']}, "
                         f"weighted_bipred_idc {seq['weighted_bipred_idc']})")
    pps_ids = {h["pps_id"] for f in stream.frames for h in stream.slice_headers(f.index)}
    if len(pps_ids) != 1:
        raise ValueError(f"{stream.name}: slices refer to several PPS {sorted(pps_ids)}")


def predict_inter(mv: np.ndarray, ref_picture: np.ndarray,
                  pictures: Mapping[int, tuple[np.ndarray, np.ndarray, np.ndarray]]
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """Inter prediction of a whole frame from per-4x4 motion.

    ``mv``: int [2, H4, W4, 2] list 0/1 vectors (quarter samples); ``ref_picture``: int
    [2, H4, W4] key into ``pictures`` (decoded Y, U, V planes) of each block's reference
    picture per list, -1 where the list is unused.  Each list's prediction is 8.4.2.2's;
    blocks using both lists average them, ``(predL0 + predL1 + 1) >> 1`` (default weighted
    sample prediction, 8.4.2.3.1).  Returns ([Y, U, V] int32 predictions, 0 where no list is
    used; uint8 [H4, W4] lists used, bit L for list L).  A missing picture raises KeyError.
    """
    lists = ((ref_picture[0] >= 0) | ((ref_picture[1] >= 0) << 1)).astype(np.uint8)
    per_list: list[list[np.ndarray] | None] = [None, None]
    for lst in (0, 1):
        used = ref_picture[lst] >= 0
        if not used.any():
            continue
        keys = np.unique(ref_picture[lst][used])
        stacks = [[pictures[int(key)][k] for key in keys] for k in range(3)]
        pick = np.searchsorted(keys, np.where(used, ref_picture[lst], keys[0]))
        per_list[lst] = [(predict_luma if k == 0 else predict_chroma)(np.stack(stacks[k]), _up(mv[lst], f),
                                                                      _up(pick, f))
                         for k, f in ((0, 4), (1, 2), (2, 2))]
    preds = []
    for k, f in ((0, 4), (1, 2), (2, 2)):
        sel = _up(lists, f)
        p0 = per_list[0][k] if per_list[0] is not None else 0
        p1 = per_list[1][k] if per_list[1] is not None else 0
        preds.append(np.where(sel == 3, (p0 + p1 + 1) >> 1, np.where(sel == 1, p0, np.where(sel == 2, p1, 0))))
    return preds, lists


def prediction_residuals(path: PathLike, stream: codec.Stream,  # noqa: F821
                         frames: set[int] | None = None, *,
                         decoded: list[FrameMotion] | None = None) -> list[PredictionCheck | None]:
    """``decoded - prediction`` of every P and B frame of ``path`` (display order; None for I
    frames and for frames not in ``frames``), where the prediction of each inter 4x4 block is
    computed from the **parser's** vectors (``mv``) and reference pictures (``ref_picture``,
    the decoding index each ref_idx names) over FFmpeg's decoded pictures:

    * per list, the luma / chroma sample prediction of 8.4.2.2 from that picture;
    * bi-predicted blocks: the default weighted sample prediction (8.4.2.3.1),
      ``(predL0 + predL1 + 1) >> 1``; one list: that list's prediction.

    FFmpeg decodes without its deblocking filter (``skip_loop_filter``), so its outputs are
    its references and ``decoded = Clip1(prediction + residual)`` holds for every block
    whether or not the stream was coded with deblocking.  The parser's residual must then
    equal ``residual`` wherever ``valid`` (an inter block, decoded sample not clipped): a
    vector, a reference index or a reference list wrong in any single 4x4 block shows as a
    mismatch there.  Intra blocks are not ``known``.

    ``stream`` is the parser's ``codec.open(path)``; it must use no weighted prediction
    (:func:`check_prediction_settings`).  ``decoded``: FFmpeg's frames of ``path`` already
    decoded that way (:func:`decode_with_motion` with ``keep_planes`` and ``skip_loop_filter``),
    instead of decoding them here.
    """
    check_prediction_settings(stream)
    if decoded is None:
        decoded = decode_with_motion(path, mb_types=False, keep_planes=True, skip_loop_filter=True)
    if len(decoded) != len(stream.frames):
        raise AssertionError(f"{path}: FFmpeg outputs {len(decoded)} frames, the parser lists {len(stream.frames)}")
    planes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for info, fm in zip(stream.frames, decoded):
        if info.type != fm.pict_type:
            raise AssertionError(f"{path}: frame {info.index} is {info.type} here, {fm.pict_type} for FFmpeg")
        planes[info.decode_index] = fm.planes
    out: list[PredictionCheck | None] = []
    for info, fm in zip(stream.frames, decoded):
        if info.type == "I" or (frames is not None and info.index not in frames):
            out.append(None)
            continue
        mv = stream.macroblocks(info.index).mv
        ref_picture = stream._parsed(info.index).ref_picture()
        try:
            preds, lists = predict_inter(mv, ref_picture, planes)
        except KeyError as e:
            raise AssertionError(f"{path}: frame {info.index} predicts from picture {e}, "
                                 "which FFmpeg did not output") from None
        result = [_plane(fm.planes[k], preds[k], _up(lists > 0, 4 if k == 0 else 2)) for k in range(3)]
        out.append(PredictionCheck(index=info.index, decode_index=info.decode_index, pict_type=info.type,
                                   y=result[0], u=result[1], v=result[2], lists=lists))
    return out
