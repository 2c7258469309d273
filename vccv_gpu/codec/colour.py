"""YCbCr -> RGB for sampled frames and residuals, with the matrix the stream signals.

The frames are converted by PyAV (swscale), which follows the frame's colour matrix and range
(checked with PyAV 18: BT.709-tagged streams are converted with BT.709, full-range ones without
the 16..235 expansion) and uses BT.601 where the matrix is unspecified. Residuals must use the
same matrix so that residual and frame live in the same RGB space; a residual is a difference of
samples, so only the linear part of the conversion applies (no -16 / -128 offsets, no clipping).

    M = rgb_matrix(matrix_coefficients, full_range)   # [3, 3]: rgb = M @ (y, cb, cr) (+ offsets)
    rgb = yuv_to_rgb(y, u, v, M)                       # offsets applied (frames; used to test M)
    res = residual_to_rgb(y, u, v, M)                  # linear part only (residuals)
    rgb = swscale_rgb(y, u, v, swscale_coefficients(mc, full_range))  # swscale's integers (GPU frames)

Chroma is upsampled to luma size by repeating each sample 2x2 (nearest), which is what
swscale's unscaled yuv420p -> rgb24 converter does.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

__all__ = ["KR_KB", "residual_to_rgb", "rgb_matrix", "swscale_coefficients", "swscale_rgb", "upsample_chroma",
           "yuv_to_rgb"]

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


# ----------------------------------------------------------------------------------------
# Frames: libswscale's integer arithmetic
# ----------------------------------------------------------------------------------------

# libswscale/yuv2rgb.c `ff_yuv2rgb_coeffs` (crv, cbu, cgu, cgv in 1/65536, limited-range chroma
# scale included), indexed by matrix_coefficients; `sws_getCoefficients` maps 8 and > 10 to the
# default (5). The same matrices as colour.KR_KB (colour.rgb_matrix), in swscale's fixed point.
_SWS_COEFFS: dict[int, tuple[int, int, int, int]] = {
    0: (104597, 132201, 25675, 53279),
    1: (117489, 138438, 13975, 34925),
    2: (104597, 132201, 25675, 53279),
    3: (104597, 132201, 25675, 53279),
    4: (104448, 132798, 24759, 53109),
    5: (104597, 132201, 25675, 53279),
    6: (104597, 132201, 25675, 53279),
    7: (117579, 136230, 16907, 35559),
    9: (110013, 140363, 12277, 42626),
    10: (110013, 140363, 12277, 42626),
}


def _round_to_int16(value: int) -> int:
    """libswscale's roundToInt16: (f + 2^15) >> 16, saturated to int16."""
    return max(-0x7FFF, min(0x7FFF, (value + (1 << 15)) >> 16))


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates towards zero)."""
    q = abs(a) // b
    return q if a >= 0 else -q


@functools.cache
def swscale_coefficients(matrix_coefficients: int | None, full_range: bool) -> dict[str, int]:
    """The int16 coefficients of libswscale's SIMD yuv2rgb for a stream's matrix and range:
    `ff_yuv2rgb_c_init_tables` (libswscale/yuv2rgb.c) with contrast, saturation and brightness
    at their defaults."""
    mc = int(matrix_coefficients) if matrix_coefficients is not None else 2
    crv, cbu, cgu, cgv = _SWS_COEFFS.get(mc, _SWS_COEFFS[5])
    cgu, cgv = -cgu, -cgv
    cy, oy = 1 << 16, 0
    if not full_range:
        cy, oy = cy * 255 // 219, 16 << 16
    else:
        crv, cbu, cgu, cgv = (_c_div(c * 224, 255) for c in (crv, cbu, cgu, cgv))
    return {"y": _round_to_int16(cy << 13), "y_offset": _round_to_int16(oy << 3),
            "vr": _round_to_int16(crv << 13), "ub": _round_to_int16(cbu << 13),
            "ug": _round_to_int16(cgu << 13), "vg": _round_to_int16(cgv << 13)}


def _mulhi(x: torch.Tensor, coefficient: int) -> torch.Tensor:
    """pmulhw: the high 16 bits of the signed product (an arithmetic shift: floors)."""
    return (x * coefficient) >> 16


def swscale_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, k: dict[str, int]) -> torch.Tensor:
    """uint8 samples (y, u, v of one shape: chroma already repeated to each luma sample) -> uint8
    RGB [3, *shape] with the coefficients `k` (`swscale_coefficients`): the arithmetic of
    libswscale's x86 yuv420p -> rgb24 converter (libswscale/x86/yuv2rgb_template.c: samples << 3
    minus the offsets, pmulhw by the int16 coefficients, saturating add, packuswb). Pointwise, so
    any subset of a frame's samples converts to the same values as the whole frame; bit-exact
    with PyAV's `to_ndarray(format="rgb24")` on x86-64 (tests/test_gpu_frontend.py)."""
    luma = _mulhi((y.to(torch.int32) << 3) - k["y_offset"], k["y"])
    u, v = (u.to(torch.int32) << 3) - 1024, (v.to(torch.int32) << 3) - 1024
    chroma = torch.stack([_mulhi(v, k["vr"]), _mulhi(u, k["ug"]) + _mulhi(v, k["vg"]), _mulhi(u, k["ub"])])
    return (luma[None] + chroma).clamp_(0, 255).to(torch.uint8)
