"""YCbCr -> RGB for sampled frames and residuals, with the matrix the stream signals.

The frames are converted by PyAV (swscale), which follows the frame's colour matrix and range
(checked with PyAV 18: BT.709-tagged streams are converted with BT.709, full-range ones without
the 16..235 expansion) and uses BT.601 where the matrix is unspecified. Residuals must use the
same matrix so that residual and frame live in the same RGB space; a residual is a difference of
samples, so only the linear part of the conversion applies (no -16 / -128 offsets, no clipping).

    M = rgb_matrix(matrix_coefficients, full_range)   # [3, 3]: rgb = M @ (y, cb, cr) (+ offsets)
    rgb = yuv_to_rgb(y, u, v, M)                       # offsets applied (frames; used to test M)
    res = residual_to_rgb(y, u, v, M)                  # linear part only (residuals)

Chroma is upsampled to luma size by repeating each sample 2x2 (nearest), which is what
swscale's unscaled yuv420p -> rgb24 converter does.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["KR_KB", "residual_to_rgb", "rgb_matrix", "upsample_chroma", "yuv_to_rgb"]

# (Kr, Kb) per H.264 matrix_coefficients (Table E-5), the matrices swscale has coefficients for.
# Everything else (0 identity, 2 unspecified, 3 reserved, 8 YCgCo, 11+) falls back to BT.601,
# swscale's default.
KR_KB: dict[int, tuple[float, float]] = {
    1: (0.2126, 0.0722),    # BT.709
    4: (0.30, 0.11),        # FCC
    5: (0.299, 0.114),      # BT.470 B/G (= BT.601)
    6: (0.299, 0.114),      # SMPTE 170M (= BT.601)
    7: (0.212, 0.087),      # SMPTE 240M
    9: (0.2627, 0.0593),    # BT.2020 non-constant luminance
    10: (0.2627, 0.0593),   # BT.2020 constant luminance (swscale treats it like 9)
}
BT601 = (0.299, 0.114)


def rgb_matrix(matrix_coefficients: int | None, full_range: bool) -> np.ndarray:
    """The float64 [3, 3] matrix taking (Y, Cb, Cr) sample differences to (R, G, B) differences,
    in 8-bit pixel units. Limited range scales luma by 255/219 and chroma by 255/224."""
    kr, kb = KR_KB.get(int(matrix_coefficients) if matrix_coefficients is not None else 2, BT601)
    kg = 1.0 - kr - kb
    ys, cs = (1.0, 1.0) if full_range else (255.0 / 219.0, 255.0 / 224.0)
    # R = Y + 2(1-Kr) Cr;  B = Y + 2(1-Kb) Cb;  G = (Y - Kr R - Kb B) / Kg
    return np.array([
        [ys, 0.0, cs * 2 * (1 - kr)],
        [ys, -cs * 2 * (1 - kb) * kb / kg, -cs * 2 * (1 - kr) * kr / kg],
        [ys, cs * 2 * (1 - kb), 0.0],
    ])


def upsample_chroma(plane: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[..., h/2, w/2] -> [..., height, width]: each chroma sample repeated 2x2, then cropped."""
    return plane.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., :height, :width]


def residual_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, matrix: np.ndarray,
                    height: int | None = None, width: int | None = None) -> torch.Tensor:
    """Residual planes (luma [H, W], chroma [H/2, W/2]; any integer or float dtype) -> float32
    RGB residual [3, height, width] in pixel units; planes are cropped to height x width from
    the top-left (the coded size carries the SPS cropping at the right and bottom)."""
    height = y.shape[-2] if height is None else height
    width = y.shape[-1] if width is None else width
    yuv = torch.stack([y[..., :height, :width].float(), upsample_chroma(u.float(), height, width),
                       upsample_chroma(v.float(), height, width)], dim=-3)
    m = torch.as_tensor(matrix, dtype=torch.float32, device=yuv.device)
    return torch.einsum("ck,...khw->...chw", m, yuv)


def yuv_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, matrix: np.ndarray,
               full_range: bool) -> torch.Tensor:
    """Decoded 8-bit planes -> float32 RGB [3, H, W], not rounded or clipped: the full affine
    conversion (used by the tests to check that `rgb_matrix` is the one swscale applies)."""
    offset_y = 0.0 if full_range else 16.0
    return residual_to_rgb(y.float() - offset_y, u.float() - 128.0, v.float() - 128.0, matrix)
