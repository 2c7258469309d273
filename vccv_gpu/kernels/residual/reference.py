"""Plain-PyTorch residual reconstruction, every block of a frame at once, and the coefficient
buffer's layout (`check_buffer`, `buffer_offsets`, `planes`) that the Triton kernels share.

Each 4x4 block follows 8.5.12.2 (8-338 .. 8-345), each 8x8 block 8.5.13.2 (8-349 .. 8-372): the
row butterflies, then the column butterflies, then r = (h + 32) >> 6, in int32 with arithmetic
`>>` on negative values, stored as int16 as the C++ `static_cast<int16_t>` does.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["buffer_offsets", "check_buffer", "inverse_transform4x4_reference", "inverse_transform8x8_reference",
           "planes", "residual_reference"]


def buffer_offsets(n4: int, n8: int) -> tuple[int, int, int]:
    """Where coeffs8, positions4 and positions8 start in the buffer of n4 + n8 blocks (coeffs4 at
    0): coeffs4 [n4, 4, 4] | coeffs8 [n8, 8, 8] | positions4 [n4, 3] | positions8 [n8, 3]."""
    c8_start = 16 * n4
    p4_start = c8_start + 64 * n8
    return c8_start, p4_start, p4_start + 3 * n4


def check_buffer(data: Tensor, n4: int, n8: int, coded_width: int, coded_height: int) -> Tensor:
    """`data` made contiguous, after checking that it is the buffer of n4 + n8 blocks of a frame of
    that coded size (ValueError otherwise): both implementations index it without bounds checks."""
    if data.dtype != torch.int16 or data.dim() != 1:
        raise ValueError(f"coefficient buffer must be a 1-D int16 tensor, got {data.dtype} {list(data.shape)}")
    if n4 < 0 or n8 < 0:
        raise ValueError(f"block counts must be >= 0, got n4={n4}, n8={n8}")
    expected = buffer_offsets(n4, n8)[2] + 3 * n8  # positions8's end
    if data.numel() != expected:
        raise ValueError(f"coefficient buffer holds {data.numel()} values, n4={n4} and n8={n8} need {expected}")
    if coded_width <= 0 or coded_height <= 0 or coded_width % 16 or coded_height % 16:
        raise ValueError(f"coded size must be positive multiples of 16, got {coded_width}x{coded_height}")
    return data.contiguous()


def planes(buffer: Tensor, coded_width: int, coded_height: int) -> tuple[Tensor, Tensor, Tensor]:
    """The y, u, v planes as views of one flat y|u|v buffer (one allocation, one zeroing)."""
    luma, chroma = coded_width * coded_height, coded_width * coded_height // 4
    shape = (coded_height // 2, coded_width // 2)
    return (buffer[:luma].view(coded_height, coded_width), buffer[luma:luma + chroma].view(shape),
            buffer[luma + chroma:].view(shape))


# ---------------------------------------------------------------------------------------------
# plain PyTorch reference


def _butterfly4(x0: Tensor, x1: Tensor, x2: Tensor, x3: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One dimension of the 4x4 inverse transform (8-338 .. 8-345)."""
    e0, e1, e2, e3 = x0 + x2, x0 - x2, (x1 >> 1) - x3, x1 + (x3 >> 1)
    return e0 + e3, e1 + e2, e1 - e2, e0 - e3


def _butterfly8(x: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """One dimension of the 8x8 inverse transform (8-349 .. 8-372)."""
    e0 = x[0] + x[4]
    e1 = -x[3] + x[5] - x[7] - (x[7] >> 1)
    e2 = x[0] - x[4]
    e3 = x[1] + x[7] - x[3] - (x[3] >> 1)
    e4 = (x[2] >> 1) - x[6]
    e5 = -x[1] + x[7] + x[5] + (x[5] >> 1)
    e6 = x[2] + (x[6] >> 1)
    e7 = x[3] + x[5] + x[1] + (x[1] >> 1)
    f0, f1, f2, f3 = e0 + e6, e1 + (e7 >> 2), e2 + e4, e3 + (e5 >> 2)
    f4, f5, f6, f7 = e2 - e4, (e3 >> 2) - e5, e0 - e6, e7 - (e1 >> 2)
    return f0 + f7, f2 + f5, f4 + f3, f6 + f1, f6 - f1, f4 - f3, f2 - f5, f0 - f7


def inverse_transform4x4_reference(d: Tensor) -> Tensor:
    """[n, 4, 4] dequantised coefficients -> [n, 4, 4] int16 residual samples (8.5.12.2)."""
    d = d.to(torch.int32)
    g = torch.stack(_butterfly4(*d.unbind(-1)), dim=-1)  # rows: g[b, i, :] from d[b, i, :]
    h = torch.stack(_butterfly4(*g.unbind(-2)), dim=-2)  # columns: h[b, :, j] from g[b, :, j]
    return ((h + 32) >> 6).to(torch.int16)


def inverse_transform8x8_reference(d: Tensor) -> Tensor:
    """[n, 8, 8] dequantised coefficients -> [n, 8, 8] int16 residual samples (8.5.13.2)."""
    d = d.to(torch.int32)
    g = torch.stack(_butterfly8(d.unbind(-1)), dim=-1)
    h = torch.stack(_butterfly8(g.unbind(-2)), dim=-2)
    return ((h + 32) >> 6).to(torch.int16)


def _scatter(out: Tensor, samples: Tensor, positions: Tensor, size: int, luma_only: bool,
             coded_width: int, coded_height: int) -> None:
    """Writes [n, size, size] blocks at their (plane, x, y) into the flat y|u|v buffer `out`."""
    if samples.shape[0] == 0:
        return
    pos = positions.to(torch.int64)
    plane = torch.zeros_like(pos[:, 0]) if luma_only else pos[:, 0]
    x, y = pos[:, 1], pos[:, 2]
    chroma = plane != 0
    width = torch.where(chroma, coded_width // 2, coded_width)
    height = torch.where(chroma, coded_height // 2, coded_height)
    luma, chroma_size = coded_width * coded_height, coded_width * coded_height // 4
    origin = torch.where(plane == 0, 0, luma + (plane - 1) * chroma_size)
    ok = (plane >= 0) & (plane <= 2) & (x >= 0) & (y >= 0) & (x + size <= width) & (y + size <= height)
    steps = torch.arange(size, device=out.device)
    index = (origin + y * width + x)[:, None, None] + steps[None, :, None] * width[:, None, None] + steps[None, None, :]
    out[index[ok]] = samples[ok]


def residual_reference(data: Tensor, n4: int, n8: int, coded_width: int,
                       coded_height: int) -> tuple[Tensor, Tensor, Tensor]:
    """Plain-PyTorch `reconstruct_residual`: every block at once, on `data`'s device."""
    data = check_buffer(data, n4, n8, coded_width, coded_height)
    c8_start, p4_start, p8_start = buffer_offsets(n4, n8)
    out = torch.zeros(coded_width * coded_height * 3 // 2, dtype=torch.int16, device=data.device)
    _scatter(out, inverse_transform4x4_reference(data[:c8_start].view(n4, 4, 4)),
             data[p4_start:p8_start].view(n4, 3), 4, False, coded_width, coded_height)
    _scatter(out, inverse_transform8x8_reference(data[c8_start:p4_start].view(n8, 8, 8)),
             data[p8_start:].view(n8, 3), 8, True, coded_width, coded_height)
    return planes(out, coded_width, coded_height)
