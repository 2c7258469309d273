"""Expected H.264 intra residuals (decoded - intra prediction), from FFmpeg through PyAV.

Without the deblocking filter (every slice has ``disable_deblocking_filter_idc`` 1, e.g.
``make_clip(..., deblock=False)``) FFmpeg's decoded picture is the reconstruction itself, so
every sample of an intra macroblock is

    decoded = Clip1(prediction + residual)

where the prediction (8.3) is computed here, in integers, from the *decoded* neighbouring
samples - also those of earlier 4x4 / 8x8 blocks of the same macroblock, which the decoder
reconstructed before predicting the next block.  Wherever the decoded sample is neither 0
nor 255, ``decoded - prediction`` is exactly the residual the decoder added.

The prediction modes are the parser's (``Macroblocks.intra_pred``, ``intra_size``,
``intra_chroma_pred``): a wrong mode or block size gives a wrong prediction, so the check
covers the mode derivation (8.3.1.1, 8.3.2.1) as well as the residual.  FFmpeg's own
``debug=mb_type`` table independently says which macroblocks are Intra16x16 ('I') and
Intra4x4/8x8 ('i').

Implemented here from the standard:

* sample availability (8.3.1.2, 8.3.2.2, 8.3.3, 8.3.4 with 6.4.11/6.4.12): a neighbouring
  macroblock is available when it is inside the picture, in the same slice and, with
  ``constrained_intra_pred_flag``, intra coded; inside the current macroblock a sample is
  available when its 4x4 / 8x8 block precedes the current one in decoding order (which gives
  the "not yet decoded" top-right rule of blocks 3, 7, 11, 13 and 15, and 8x8 block 3); samples
  right of the macroblock below its top row never are;
* Intra4x4 (8.3.1.2.1-9) and Intra8x8 (8.3.2.2.2-10) in one routine for N = 4 / 8, with the
  top-right substitution and, for 8x8, the reference sample filtering of 8.3.2.2.1;
* Intra16x16 (8.3.3.1-4) and 4:2:0 chroma (8.3.4.1-4), plane modes with Clip1.

Public API: :func:`intra_residual_oracle`, :func:`predict_frame`, :class:`IntraFrame`,
:func:`predict_nxn`, :func:`filter_8x8_samples`, :func:`predict_16x16`, :func:`predict_chroma`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mv_oracle import FrameMotion, decode_with_motion

__all__ = ["IntraFrame", "intra_residual_oracle", "predict_frame", "predict_nxn", "filter_8x8_samples",
           "predict_16x16", "predict_chroma", "slice_map"]

PathLike = str | Path
Block = list[list[int]]  # [y][x]

# Mode numbers (Tables 8-2, 8-3, 8-4, 8-5).
VERTICAL, HORIZONTAL, DC, DIAG_DOWN_LEFT, DIAG_DOWN_RIGHT, VERTICAL_RIGHT, HORIZONTAL_DOWN, VERTICAL_LEFT, \
    HORIZONTAL_UP = range(9)
PLANE = 3                                                   # Intra16x16PredMode 3
CHROMA_DC, CHROMA_HORIZONTAL, CHROMA_VERTICAL, CHROMA_PLANE = range(4)  # intra_chroma_pred_mode

# The samples each Intra4x4/8x8 mode reads (8.3.1.2.x "shall be used only when ... available").
_NEEDS_TOP = {VERTICAL, DIAG_DOWN_LEFT, DIAG_DOWN_RIGHT, VERTICAL_RIGHT, HORIZONTAL_DOWN, VERTICAL_LEFT}
_NEEDS_LEFT = {HORIZONTAL, DIAG_DOWN_RIGHT, VERTICAL_RIGHT, HORIZONTAL_DOWN, HORIZONTAL_UP}
_NEEDS_CORNER = {DIAG_DOWN_RIGHT, VERTICAL_RIGHT, HORIZONTAL_DOWN}


def _clip1(v: int) -> int:
    return 0 if v < 0 else (255 if v > 255 else v)


def _z4(bx: int, by: int) -> int:
    """luma4x4BlkIdx of the 4x4 block at (bx, by) (in 4x4 blocks) of a macroblock (6.4.3)."""
    return 8 * (by // 2) + 4 * (bx // 2) + 2 * (by % 2) + bx % 2


class Samples:
    """A neighbourhood p[x, y] of one block, x = -1..2N-1 along the top (p[-1, -1] the corner),
    y = 0..N-1 down the left; None where the sample is not available."""

    def __init__(self, top: list[int | None], left: list[int | None]) -> None:
        self.top = top    # p[x, -1] for x = -1 .. len - 2 (top[0] is the corner)
        self.left = left  # p[-1, y] for y = 0 .. len - 1

    def __call__(self, x: int, y: int) -> int:
        v = self.top[x + 1] if y < 0 else self.left[y]
        if v is None:
            raise AssertionError(f"prediction reads p[{x}, {y}], which is not available")
        return v

    @property
    def has_top(self) -> bool:
        return self.top[1] is not None

    @property
    def has_left(self) -> bool:
        return self.left[0] is not None

    @property
    def has_corner(self) -> bool:
        return self.top[0] is not None


def filter_8x8_samples(p: Samples) -> Samples:
    """8.3.2.2.1: the reference samples p' of Intra8x8 prediction (top-right already substituted)."""
    top, left = list(p.top), list(p.left)
    c = p.top[0]
    if p.has_top:  # p[x, -1], x = 0..15 (all available after the substitution)
        t = p.top[1:]
        top[1] = (c + 2 * t[0] + t[1] + 2) >> 2 if c is not None else (3 * t[0] + t[1] + 2) >> 2
        for x in range(1, 15):
            top[x + 1] = (t[x - 1] + 2 * t[x] + t[x + 1] + 2) >> 2
        top[16] = (t[14] + 3 * t[15] + 2) >> 2
    if c is not None:  # p'[-1, -1]
        t0, l0 = p.top[1], p.left[0]
        if t0 is not None and l0 is not None:
            top[0] = (t0 + 2 * c + l0 + 2) >> 2
        elif t0 is not None:
            top[0] = (3 * c + t0 + 2) >> 2
        elif l0 is not None:
            top[0] = (3 * c + l0 + 2) >> 2
    if p.has_left:
        q = p.left
        left[0] = (c + 2 * q[0] + q[1] + 2) >> 2 if c is not None else (3 * q[0] + q[1] + 2) >> 2
        for y in range(1, 7):
            left[y] = (q[y - 1] + 2 * q[y] + q[y + 1] + 2) >> 2
        left[7] = (q[6] + 3 * q[7] + 2) >> 2
    return Samples(top, left)


def predict_nxn(mode: int, p: Samples, n: int) -> Block:
    """Intra4x4 (n = 4, 8.3.1.2) or Intra8x8 (n = 8, 8.3.2.2, p already filtered) prediction."""
    if (mode in _NEEDS_TOP and not p.has_top) or (mode in _NEEDS_LEFT and not p.has_left) or \
            (mode in _NEEDS_CORNER and not p.has_corner):
        raise AssertionError(f"Intra{n}x{n} mode {mode} without the samples it needs")
    out = [[0] * n for _ in range(n)]
    if mode == DC:
        shift = n.bit_length() - 1  # log2(n)
        top = sum(p(x, -1) for x in range(n)) if p.has_top else None
        left = sum(p(-1, y) for y in range(n)) if p.has_left else None
        if top is not None and left is not None:
            v = (top + left + n) >> (shift + 1)
        elif top is not None or left is not None:
            v = ((top if top is not None else left) + n // 2) >> shift  # type: ignore[operator]
        else:
            v = 128
        return [[v] * n for _ in range(n)]
    for y in range(n):
        for x in range(n):
            if mode == VERTICAL:
                v = p(x, -1)
            elif mode == HORIZONTAL:
                v = p(-1, y)
            elif mode == DIAG_DOWN_LEFT:
                if x == n - 1 and y == n - 1:
                    v = (p(2 * n - 2, -1) + 3 * p(2 * n - 1, -1) + 2) >> 2
                else:
                    v = (p(x + y, -1) + 2 * p(x + y + 1, -1) + p(x + y + 2, -1) + 2) >> 2
            elif mode == DIAG_DOWN_RIGHT:
                if x > y:
                    v = (p(x - y - 2, -1) + 2 * p(x - y - 1, -1) + p(x - y, -1) + 2) >> 2
                elif x < y:
                    v = (p(-1, y - x - 2) + 2 * p(-1, y - x - 1) + p(-1, y - x) + 2) >> 2
                else:
                    v = (p(0, -1) + 2 * p(-1, -1) + p(-1, 0) + 2) >> 2
            elif mode == VERTICAL_RIGHT:
                z = 2 * x - y
                if z >= 0 and z % 2 == 0:
                    v = (p(x - (y >> 1) - 1, -1) + p(x - (y >> 1), -1) + 1) >> 1
                elif z >= 0:
                    v = (p(x - (y >> 1) - 2, -1) + 2 * p(x - (y >> 1) - 1, -1) + p(x - (y >> 1), -1) + 2) >> 2
                elif z == -1:
                    v = (p(-1, 0) + 2 * p(-1, -1) + p(0, -1) + 2) >> 2
                else:
                    v = (p(-1, y - 2 * x - 1) + 2 * p(-1, y - 2 * x - 2) + p(-1, y - 2 * x - 3) + 2) >> 2
            elif mode == HORIZONTAL_DOWN:
                z = 2 * y - x
                if z >= 0 and z % 2 == 0:
                    v = (p(-1, y - (x >> 1) - 1) + p(-1, y - (x >> 1)) + 1) >> 1
                elif z >= 0:
                    v = (p(-1, y - (x >> 1) - 2) + 2 * p(-1, y - (x >> 1) - 1) + p(-1, y - (x >> 1)) + 2) >> 2
                elif z == -1:
                    v = (p(-1, 0) + 2 * p(-1, -1) + p(0, -1) + 2) >> 2
                else:
                    v = (p(x - 2 * y - 1, -1) + 2 * p(x - 2 * y - 2, -1) + p(x - 2 * y - 3, -1) + 2) >> 2
            elif mode == VERTICAL_LEFT:
                i = x + (y >> 1)
                if y % 2 == 0:
                    v = (p(i, -1) + p(i + 1, -1) + 1) >> 1
                else:
                    v = (p(i, -1) + 2 * p(i + 1, -1) + p(i + 2, -1) + 2) >> 2
            elif mode == HORIZONTAL_UP:
                z, i = x + 2 * y, y + (x >> 1)
                if z > 2 * n - 3:
                    v = p(-1, n - 1)
                elif z == 2 * n - 3:
                    v = (p(-1, n - 2) + 3 * p(-1, n - 1) + 2) >> 2
                elif z % 2 == 0:
                    v = (p(-1, i) + p(-1, i + 1) + 1) >> 1
                else:
                    v = (p(-1, i) + 2 * p(-1, i + 1) + p(-1, i + 2) + 2) >> 2
            else:
                raise AssertionError(f"Intra{n}x{n} mode {mode} out of range")
            out[y][x] = v
    return out


def _plane(p: Samples, size: int, weight: int) -> Block:
    """Plane prediction of a size x size block (8.3.3.4 luma: 16, weight 5; 8.3.4.4 chroma 4:2:0:
    8, weight 34), Clip1 applied."""
    half = size // 2
    big_h = sum((k + 1) * (p(half + k, -1) - p(half - 2 - k, -1)) for k in range(half))
    big_v = sum((k + 1) * (p(-1, half + k) - p(-1, half - 2 - k)) for k in range(half))
    a = 16 * (p(-1, size - 1) + p(size - 1, -1))
    b = (weight * big_h + 32) >> 6
    c = (weight * big_v + 32) >> 6
    return [[_clip1((a + b * (x - half + 1) + c * (y - half + 1) + 16) >> 5) for x in range(size)]
            for y in range(size)]


def predict_16x16(mode: int, p: Samples) -> Block:
    """Intra16x16 luma prediction (8.3.3)."""
    if (mode == VERTICAL and not p.has_top) or (mode == HORIZONTAL and not p.has_left) or \
            (mode == PLANE and not (p.has_top and p.has_left and p.has_corner)):
        raise AssertionError(f"Intra16x16 mode {mode} without the samples it needs")
    if mode == VERTICAL:
        return [[p(x, -1) for x in range(16)] for _ in range(16)]
    if mode == HORIZONTAL:
        return [[p(-1, y)] * 16 for y in range(16)]
    if mode == DC:
        top = sum(p(x, -1) for x in range(16)) if p.has_top else None
        left = sum(p(-1, y) for y in range(16)) if p.has_left else None
        if top is not None and left is not None:
            v = (top + left + 16) >> 5
        elif top is not None or left is not None:
            v = ((top if top is not None else left) + 8) >> 4  # type: ignore[operator]
        else:
            v = 128
        return [[v] * 16 for _ in range(16)]
    if mode == PLANE:
        return _plane(p, 16, 5)
    raise AssertionError(f"Intra16x16 mode {mode} out of range")


def predict_chroma(mode: int, p: Samples) -> Block:
    """4:2:0 chroma prediction of one 8x8 component (8.3.4)."""
    if (mode == CHROMA_HORIZONTAL and not p.has_left) or (mode == CHROMA_VERTICAL and not p.has_top) or \
            (mode == CHROMA_PLANE and not (p.has_top and p.has_left and p.has_corner)):
        raise AssertionError(f"chroma mode {mode} without the samples it needs")
    if mode == CHROMA_HORIZONTAL:
        return [[p(-1, y)] * 8 for y in range(8)]
    if mode == CHROMA_VERTICAL:
        return [[p(x, -1) for x in range(8)] for _ in range(8)]
    if mode == CHROMA_PLANE:
        return _plane(p, 8, 34)
    if mode != CHROMA_DC:
        raise AssertionError(f"chroma mode {mode} out of range")
    out = [[0] * 8 for _ in range(8)]
    for yo in (0, 4):  # 8.3.4.1-3: per 4x4 chroma block, the preferred side depends on its position
        for xo in (0, 4):
            top = sum(p(xo + x, -1) for x in range(4)) if p.has_top else None
            left = sum(p(-1, yo + y) for y in range(4)) if p.has_left else None
            if (xo == 0) == (yo == 0) and top is not None and left is not None:  # blocks 0 and 3
                v = (top + left + 4) >> 3
            else:
                first, second = (left, top) if xo == 0 and yo > 0 else (top, left)  # block 2 prefers the left
                v = (first + 2) >> 2 if first is not None else ((second + 2) >> 2 if second is not None else 128)
            for y in range(4):
                out[yo + y][xo:xo + 4] = [v] * 4
    return out


@dataclass
class IntraFrame:
    """The intra predictions of one frame (coded size) and where they apply."""

    index: int                                  # display index
    pict_type: str                              # FFmpeg's "I", "P" or "B"
    decoded: tuple[np.ndarray, np.ndarray, np.ndarray]     # uint8 Y, U, V
    prediction: tuple[np.ndarray, np.ndarray, np.ndarray]  # int16, 0 outside intra macroblocks
    predicted: tuple[np.ndarray, np.ndarray, np.ndarray]   # bool: an intra prediction is known
    mb_char: np.ndarray | None               # FFmpeg's debug=mb_type table, if captured

    @property
    def valid(self) -> tuple[np.ndarray, ...]:
        """Samples whose residual is known exactly: predicted and not clipped (1..254)."""
        return tuple(k & (d != 0) & (d != 255) for k, d in zip(self.predicted, self.decoded))

    @property
    def residual(self) -> tuple[np.ndarray, ...]:
        """decoded - prediction (int16), 0 where nothing is predicted."""
        return tuple(np.where(k, d.astype(np.int16) - q, 0).astype(np.int16)
                     for d, q, k in zip(self.decoded, self.prediction, self.predicted))


def slice_map(first_mbs: Sequence[int], width_mbs: int, height_mbs: int) -> np.ndarray:
    """int [H16, W16]: the index of the slice (by first_mb_in_slice) each macroblock is in."""
    starts = np.sort(np.asarray(first_mbs))
    return (np.searchsorted(starts, np.arange(width_mbs * height_mbs), side="right") - 1).reshape(
        height_mbs, width_mbs)


def predict_frame(planes: tuple[np.ndarray, np.ndarray, np.ndarray], mb: Any, slices: np.ndarray,
                  constrained_intra_pred: bool) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Intra predictions of every intra macroblock (not I_PCM) of a decoded picture.

    ``planes``: FFmpeg's decoded (uncropped) Y, U, V; ``mb``: the parser's ``Macroblocks``
    (mb_type, intra_pred, intra_size, intra_chroma_pred); ``slices``: :func:`slice_map`.
    Returns ((pred_y, pred_u, pred_v) int16, (mask_y, mask_u, mask_v) bool).
    """
    h16, w16 = mb.mb_type.shape
    rows = [p.tolist() for p in planes]
    pred = tuple(np.zeros(p.shape, np.int16) for p in planes)
    mask = tuple(np.zeros(p.shape, bool) for p in planes)
    intra = mb.mb_type == 0
    usable = intra | (mb.mb_type == 4) if constrained_intra_pred else np.ones_like(intra)

    for my, mx in zip(*np.nonzero(intra & (mb.intra_size > 0))):
        my, mx = int(my), int(mx)

        def mb_ok(dx: int, dy: int) -> bool:  # 6.4.9 + the constrained_intra_pred rule
            x, y = mx + dx, my + dy
            return 0 <= x < w16 and 0 <= y < h16 and slices[y, x] == slices[my, mx] and bool(usable[y, x])

        avail = {d: mb_ok(*d) for d in ((-1, 0), (0, -1), (1, -1), (-1, -1))}

        def sample_fn(plane: int, size: int) -> Callable[[int, int], int | None]:
            rows_p, x0, y0 = rows[plane], mx * size, my * size

            def at(x: int, y: int, order: Callable[[int, int], bool]) -> int | None:
                """Decoded sample at (x, y) relative to the macroblock, if available."""
                if 0 <= x < size and 0 <= y < size:
                    ok = order(x, y)  # inside: decoded earlier than the current block?
                elif x >= size and y >= 0:
                    ok = False
                else:
                    ok = avail[(-1 if x < 0 else (1 if x >= size else 0), -1 if y < 0 else 0)]
                return rows_p[y0 + y][x0 + x] if ok else None

            return at  # type: ignore[return-value]

        at_y = sample_fn(0, 16)
        size = int(mb.intra_size[my, mx])
        if size == 16:
            never = lambda x, y: False  # noqa: E731
            p = Samples([at_y(x, -1, never) for x in range(-1, 16)], [at_y(-1, y, never) for y in range(16)])
            block = predict_16x16(int(mb.intra_pred[4 * my, 4 * mx]), p)
            pred[0][16 * my:16 * my + 16, 16 * mx:16 * mx + 16] = block
        else:
            n = size // 4  # 4x4 blocks per side of a prediction block
            index = (lambda bx, by: _z4(bx, by)) if size == 4 else (lambda bx, by: 2 * (by // 2) + bx // 2)
            for by in range(0, 4, n):
                for bx in range(0, 4, n):
                    current = index(bx, by)
                    earlier = lambda x, y: index(x // 4, y // 4) < current  # noqa: E731
                    x0, y0 = 4 * bx, 4 * by
                    top = [at_y(x0 + x, y0 - 1, earlier) for x in range(-1, 2 * size)]
                    if top[size + 1] is None and top[size] is not None:  # top-right from p[N-1, -1]
                        top[size + 1:] = [top[size]] * size
                    p = Samples(top, [at_y(x0 - 1, y0 + y, earlier) for y in range(size)])
                    if size == 8:
                        p = filter_8x8_samples(p)
                    block = predict_nxn(int(mb.intra_pred[4 * my + by, 4 * mx + bx]), p, size)
                    pred[0][16 * my + y0:16 * my + y0 + size, 16 * mx + x0:16 * mx + x0 + size] = block
        mask[0][16 * my:16 * my + 16, 16 * mx:16 * mx + 16] = True
        never = lambda x, y: False  # noqa: E731
        for plane in (1, 2):
            at_c = sample_fn(plane, 8)
            p = Samples([at_c(x, -1, never) for x in range(-1, 8)], [at_c(-1, y, never) for y in range(8)])
            pred[plane][8 * my:8 * my + 8, 8 * mx:8 * mx + 8] = predict_chroma(int(mb.intra_chroma_pred[my, mx]), p)
            mask[plane][8 * my:8 * my + 8, 8 * mx:8 * mx + 8] = True
    return pred, mask


def intra_residual_oracle(path: PathLike, stream: Any, frames_wanted: set[int] | None = None, *,
                          skip_loop_filter: bool = False,
                          decoded: list[FrameMotion] | None = None) -> list[IntraFrame]:
    """Intra predictions of every frame of ``path`` (display order; only ``frames_wanted``
    where given) from FFmpeg's decoded pictures and the modes ``stream``
    (``codec.open(path)``) reports.

    ``skip_loop_filter``: FFmpeg decodes without its deblocking filter, so its pictures are
    the unfiltered samples intra prediction reads, and deblocked streams can be checked too.
    ``decoded``: FFmpeg's frames of ``path`` already decoded that way (:func:`decode_with_motion`
    with ``mb_types``, ``keep_planes`` and the same ``skip_loop_filter``), instead of decoding
    them here.

    Raises ValueError for clips this oracle cannot check: deblocking on in some slice (unless
    ``skip_loop_filter``), other than 8-bit 4:2:0, or FFmpeg's frames not matching the stream's.
    """
    if stream.sequence["chroma_format_idc"] != 1 or stream.sequence["bit_depth"] != 8:
        raise ValueError(f"{path}: the intra oracle needs 8-bit 4:2:0")
    frames = decoded if decoded is not None else decode_with_motion(
        path, mb_types=True, keep_planes=True, skip_loop_filter=skip_loop_filter)
    if len(frames) != len(stream.frames):
        raise ValueError(f"{path}: FFmpeg output {len(frames)} frames, the stream lists {len(stream.frames)}")
    constrained = bool(stream.sequence["constrained_intra_pred"])
    w16, h16 = stream.coded_width // 16, stream.coded_height // 16
    out = []
    for info, fm in zip(stream.frames, frames):
        if fm.pict_type != info.type:
            raise ValueError(f"{path}: frame {info.index} is {fm.pict_type} to FFmpeg, {info.type} to the stream")
        if frames_wanted is not None and info.index not in frames_wanted:
            continue
        headers = stream.slice_headers(info.index)
        if not skip_loop_filter and any(h["disable_deblocking_filter_idc"] != 1 for h in headers):
            raise ValueError(f"{path}: frame {info.index} is deblocked; the intra oracle needs deblock=False")
        slices = slice_map([h["first_mb_in_slice"] for h in headers], w16, h16)
        assert fm.planes is not None
        pred, mask = predict_frame(fm.planes, stream.macroblocks(info.index), slices, constrained)
        out.append(IntraFrame(info.index, fm.pict_type, fm.planes, pred, mask, fm.mb_char))
    return out
