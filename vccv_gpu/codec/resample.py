"""Resampling to the model's size: bilinear taps, frames and residuals made small (the same
arithmetic on every device).

    small = resize(x, size, keep_aspect)                   # [..., H, W] -> float32 [..., size, size]
    rgb = frame_from_rgb(rgb24, size, keep_aspect)         # uint8 [H, W, 3] -> uint8 [3, size, size]
    rgb = frame_from_planes(y, u, v, mc, full_range, size, keep_aspect)   # the same from YUV (GPU)
    res = residual_from_planes(y, u, v, matrix, height, width, size, keep_aspect)  # float32

Bilinear, align_corners=False, no antialiasing: output sample o of an axis of n_in samples
resized to n_out reads input samples i0 = floor(s) and i1 = min(i0 + 1, n_in - 1), with
s = max(0, (n_in / n_out) (o + 1/2) - 1/2), weights w1 = s - i0 and w0 = 1 - w1 (float32).
`keep_aspect` resizes the short side to `size` (the long side to round(long * size / short))
and keeps the centre crop (offset (long' - size) // 2). This is torch.nn.functional.interpolate's
definition (within float32 rounding, tested); it is computed as gathers and elementwise
products, (row0 . w0 + row1 . w1) per row and then across rows, each operation rounded to
float32, so that the CPU (the extension's loops in csrc/resample.cpp, for speed), torch on the CPU
and torch on a GPU give the same bits, and so that only the samples it reads need to exist:

* `frame_from_planes` (NVDEC frames): resizing 720p to 224 reads at most 448 of the 720 rows and
  448 of the 1280 columns, so only those samples are converted to RGB (libswscale's arithmetic,
  `colour.swscale_rgb`, pointwise) before the blend: bit-identical to `frame_from_rgb` of
  swscale's whole-frame conversion (PyAV's rgb24 on x86-64).
* `residual_from_planes`: resizing and the colour matrix are both linear, so the Y/U/V residual
  planes are resized first (chroma through its 2x2 repetition: a luma tap i reads chroma sample
  i // 2) and the 3x3 matrix is applied at the output size: the values of converting at full
  size and then resizing, within float32 rounding, for a fraction of the work.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .. import _h264
from .colour import swscale_coefficients, swscale_rgb

__all__ = ["Taps", "axis_taps", "frame_from_planes", "frame_from_rgb", "output_taps", "residual_from_planes",
           "resize"]


@dataclass(frozen=True)
class Taps:
    """Bilinear taps of one axis: output sample o = in[i0[o]] * w0[o] + in[i1[o]] * w1[o]."""

    i0: Tensor  # int64 [n_out]
    i1: Tensor
    w0: Tensor  # float32 [n_out]
    w1: Tensor

    def to(self, device: torch.device | str) -> Taps:
        # blocking: the cached copies are then complete for whichever CUDA stream reads them
        return Taps(*(t.to(device) for t in (self.i0, self.i1, self.w0, self.w1)))

    def halved(self) -> Taps:
        """The taps on a plane subsampled by 2 whose samples are repeated 2x2 (4:2:0 chroma)."""
        return Taps(self.i0 // 2, self.i1 // 2, self.w0, self.w1)

    def compact(self) -> tuple[Tensor, Taps]:
        """(the distinct input samples read, ascending; these taps renumbered into them)."""
        used, inverse = torch.unique(torch.cat([self.i0, self.i1]), sorted=True, return_inverse=True)
        n = len(self.i0)
        return used, Taps(inverse[:n], inverse[n:], self.w0, self.w1)


@functools.lru_cache(maxsize=64)
def axis_taps(n_in: int, n_out: int) -> Taps:
    """The taps resizing an axis of n_in samples to n_out (see the module docstring)."""
    scale = np.float32(n_in) / np.float32(n_out)
    # One rounding of scale * (o + 1/2) - 1/2, as the fused multiply-add PyTorch's CPU kernel uses.
    centre = np.arange(n_out, dtype=np.float32) + np.float32(0.5)
    source = (np.float64(scale) * centre.astype(np.float64) - 0.5).astype(np.float32)
    source = np.maximum(source, np.float32(0))
    i0 = source.astype(np.int64)
    w1 = np.clip(source - i0.astype(np.float32), 0, 1).astype(np.float32)
    w0 = (np.float32(1) - w1).astype(np.float32)
    i1 = i0 + (i0 < n_in - 1)
    return Taps(*(torch.from_numpy(a) for a in (i0, i1, w0, w1)))


@functools.lru_cache(maxsize=64)
def output_taps(height: int, width: int, size: int, keep_aspect: bool) -> tuple[Taps, Taps]:
    """(row taps, column taps) taking a height x width image to size x size (crop included)."""
    if keep_aspect:
        short = min(height, width)
        new_h = size if height == short else max(size, round(height * size / short))
        new_w = size if width == short else max(size, round(width * size / short))
    else:
        new_h = new_w = size

    def cropped(n_in: int, n_new: int) -> Taps:
        t = axis_taps(n_in, n_new)
        start = (n_new - size) // 2
        return Taps(*(a[start:start + size] for a in (t.i0, t.i1, t.w0, t.w1)))

    return cropped(height, new_h), cropped(width, new_w)


@functools.lru_cache(maxsize=64)
def _taps_on(height: int, width: int, size: int, keep_aspect: bool, device: torch.device) -> tuple[Taps, Taps]:
    """output_taps, copied to `device` once."""
    rows, cols = output_taps(height, width, size, keep_aspect)
    return rows.to(device), cols.to(device)


@functools.lru_cache(maxsize=64)
def _compact_taps_on(height: int, width: int, size: int, keep_aspect: bool,
                     device: torch.device) -> tuple[tuple[Tensor, Taps], ...]:
    """(samples read, taps renumbered into them) of each axis, on `device`."""
    return tuple((used.to(device), taps.to(device))
                 for used, taps in (t.compact() for t in output_taps(height, width, size, keep_aspect)))


def _blend(x: Tensor, rows: Taps, cols: Taps) -> Tensor:
    """Bilinear from [..., H, W] (float32, or integers that are converted after the gather)."""
    top, bottom = x[..., rows.i0, :], x[..., rows.i1, :]
    if not top.is_floating_point():
        top, bottom = top.float(), bottom.float()
    top = top[..., cols.i0] * cols.w0 + top[..., cols.i1] * cols.w1
    bottom = bottom[..., cols.i0] * cols.w0 + bottom[..., cols.i1] * cols.w1
    return top * rows.w0[:, None] + bottom * rows.w1[:, None]


def resize(x: Tensor, size: int, keep_aspect: bool = False) -> Tensor:
    """[..., H, W] -> float32 [..., size, size], bilinear (see the module docstring)."""
    return _blend(x, *_taps_on(x.shape[-2], x.shape[-1], size, keep_aspect, x.device))


def _as_numpy_taps(taps: Taps) -> tuple[np.ndarray, ...]:
    return tuple(t.numpy() for t in (taps.i0, taps.i1, taps.w0, taps.w1))


def _rows_contiguous(plane: Tensor) -> np.ndarray:
    a = plane.numpy()
    return a if a.strides[-1] == a.itemsize else np.ascontiguousarray(a)


def frame_from_rgb(rgb: Tensor, size: int, keep_aspect: bool = False, reference: bool = False) -> Tensor:
    """uint8 RGB [H, W, 3] (PyAV's rgb24) -> uint8 [3, size, size]: `resize`, rounded back to uint8
    (half to even, as torch.round). On the CPU the extension's loop (`_h264.resample_rgb`, the same
    operations, no float copy of the frame) unless reference=True."""
    if rgb.device.type == "cpu" and not reference:
        rows, cols = output_taps(rgb.shape[0], rgb.shape[1], size, keep_aspect)
        return torch.from_numpy(_h264.resample_rgb(rgb.numpy(), _as_numpy_taps(rows), _as_numpy_taps(cols)))
    return resize(rgb.permute(2, 0, 1), size, keep_aspect).round_().clamp_(0, 255).to(torch.uint8)


def frame_from_planes(y: Tensor, u: Tensor, v: Tensor, matrix_coefficients: int | None, full_range: bool,
                      size: int, keep_aspect: bool = False) -> Tensor:
    """Decoded 8-bit 4:2:0 planes (y [H, W], u and v [ceil(H/2), ceil(W/2)], any strides; the GPU
    path's NVDEC frames) -> uint8 RGB [3, size, size]: `frame_from_rgb` of libswscale's rgb24
    conversion (`colour.swscale_rgb`), computed from the samples the resize reads only."""
    (used_rows, rows), (used_cols, cols) = _compact_taps_on(y.shape[-2], y.shape[-1], size, keep_aspect, y.device)
    chroma_rows, chroma_cols = used_rows // 2, used_cols // 2
    rgb = swscale_rgb(y[used_rows][:, used_cols], u[chroma_rows][:, chroma_cols], v[chroma_rows][:, chroma_cols],
                      swscale_coefficients(matrix_coefficients, full_range))
    small = _blend(rgb, rows, cols)
    return small.round_().clamp_(0, 255).to(torch.uint8)


def residual_from_planes(y: Tensor, u: Tensor, v: Tensor, matrix: np.ndarray, height: int, width: int,
                         size: int, keep_aspect: bool = False, reference: bool = False) -> Tensor:
    """Residual planes (y of the coded size, u and v half of it; integers) -> float32 RGB residual
    [3, size, size] of the top-left height x width (the display size): the planes resized, then
    `matrix` (colour.rgb_matrix: the linear part of the conversion, no offsets). CPU tensors go to
    the extension's loop (`_h264.resample_residual`, the same operations), others (or
    reference=True) to torch."""
    if y.device.type == "cpu" and not reference:
        rows, cols = output_taps(height, width, size, keep_aspect)
        dtype = torch.int16 if y.dtype == u.dtype == v.dtype == torch.int16 else torch.int32
        planes = (_rows_contiguous(p.to(dtype)) for p in (y, u, v))
        out = _h264.resample_residual(*planes, _as_numpy_taps(rows), _as_numpy_taps(cols),
                                      np.asarray(matrix, dtype=np.float32))
        return torch.from_numpy(out)
    rows, cols = _taps_on(height, width, size, keep_aspect, y.device)
    planes = (_blend(y, rows, cols), _blend(u, rows.halved(), cols.halved()),
              _blend(v, rows.halved(), cols.halved()))
    channels = []
    for weights in np.asarray(matrix, dtype=np.float32):
        # elementwise (no matmul: no TF32 on GPUs, the same bits on every device)
        terms = [plane * float(w) for w, plane in zip(weights, planes) if w != 0.0]
        acc = terms[0] if terms else torch.zeros_like(planes[0])
        for term in terms[1:]:
            acc = acc + term
        channels.append(acc)
    return torch.stack(channels)
