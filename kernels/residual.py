"""Residual reconstruction on the device: H.264 inverse transforms of a frame's coefficient blocks.

Input: the `data` buffer of `vccv_gpu.codec.Coefficients` (one int16 tensor: one host-to-device
copy) with n4, n8 and the coded size. Its layout (see `Coefficients.from_buffer`):

    positions4 [n4, 3] | positions8 [n8, 3] | coeffs4 [n4, 4, 4] | coeffs8 [n8, 8, 8]

positions are (plane 0 Y / 1 Cb / 2 Cr, x, y) of the block's top-left sample in its plane; coeffs
are the dequantised coefficients in raster order (DC transforms already folded in). Output: the
int16 residual planes y [coded_h, coded_w], u, v [coded_h/2, coded_w/2], zero outside the blocks,
bit-exact with the parser's CPU `Stream.residual` (csrc/transform.cpp `inverse_transform4x4`,
`inverse_transform8x8`, csrc/residual_planes.cpp `render_residual`):

- 4x4 blocks: 8.5.12.2 (8-338 .. 8-345), rows then columns; 8x8 blocks: 8.5.13.2 (8-349 ..
  8-372), rows then columns; r = (h + 32) >> 6 per sample, stored as int16 (as the C++
  `static_cast<int16_t>`). All arithmetic in int32, `>>` arithmetic on negative values. Any
  int16 input is safe: one pass multiplies magnitudes by at most 3.5 (4x4) or 7.375 (8x8), so
  |h| < 1.8e6 < 2^21 and |r| < 27900: no int32 overflow and no int16 wrap.
- 8x8 blocks are luma blocks: their plane field is ignored (as the C++ does).
- the 4x4 blocks are written first, then the 8x8 blocks (the C++ order). Blocks of a valid stream
  never overlap; if some did, which one wins inside one launch is undefined.
- a block that would not lie wholly inside its plane (or names a plane other than 0..2) is
  dropped by both implementations, so bad positions never write out of bounds. The parser never
  produces such blocks.

Triton (residual_triton.py: `_residual4x4_kernel`, `_residual8x8_kernel`): one launch per block size, one program per
group of BLOCK4 = 128 (4x4, 4 warps) or BLOCK8 = 64 (8x8, 2 warps) transform blocks, one block per
thread: each thread loads its block's 16 or 64 coefficients as int32, runs the row and column
butterflies in registers and stores the int16 samples into the planes. The three planes are
views of one zeroed device buffer (y, then u, then v). Reference: `residual_reference` (plain PyTorch, every block at
once), tested against the C++ and against the Triton kernels in tests/test_residual_kernel.py.

residual_triton.py (and so Triton) is imported only when the Triton backend is first used, so
TRITON_INTERPRET=1 set after `import vccv_gpu.kernels` still takes effect and the reference
works without Triton installed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# transform blocks per program, one per thread (num_warps = BLOCK // 32). On sm_90 (Triton 3.8)
# the 4x4 kernel uses 32 registers a thread, the 8x8 kernel 80, neither spills.
BLOCK4 = 128
BLOCK8 = 64

__all__ = ["BLOCK4", "BLOCK8", "reconstruct_residual", "residual_reference", "residual_triton"]


# ---------------------------------------------------------------------------------------------
# public entry point


def reconstruct_residual(data: Tensor | np.ndarray, n4: int, n8: int, coded_width: int, coded_height: int,
                         backend: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Residual planes (y, u, v; int16, on `data`'s device) of one frame from its coefficient buffer.

    data: the int16 buffer of `Coefficients` (`s.coefficients(i).data`), 3 (n4 + n8) + 16 n4 +
    64 n8 values, as a tensor on the device that should compute (a numpy array is taken as a CPU
    tensor). backend: 'triton', 'reference' or 'auto' (Triton for CUDA tensors), else
    $VCCV_KERNELS, else auto; see `vccv_gpu.kernels.resolve_backend`.
    """
    # imported here: the package's __init__ imports this module
    from . import resolve_backend

    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if resolve_backend(backend, data.device) == "triton":
        return residual_triton(data, n4, n8, coded_width, coded_height)
    return residual_reference(data, n4, n8, coded_width, coded_height)


def check_buffer(data: Tensor, n4: int, n8: int, coded_width: int, coded_height: int) -> Tensor:
    if data.dtype != torch.int16 or data.dim() != 1:
        raise ValueError(f"coefficient buffer must be a 1-D int16 tensor, got {data.dtype} {list(data.shape)}")
    if n4 < 0 or n8 < 0:
        raise ValueError(f"block counts must be >= 0, got n4={n4}, n8={n8}")
    expected = 3 * (n4 + n8) + 16 * n4 + 64 * n8
    if data.numel() != expected:
        raise ValueError(f"coefficient buffer holds {data.numel()} values, n4={n4} and n8={n8} need {expected}")
    if coded_width <= 0 or coded_height <= 0 or coded_width % 16 or coded_height % 16:
        raise ValueError(f"coded size must be positive multiples of 16, got {coded_width}x{coded_height}")
    return data.contiguous()


def planes(buffer: Tensor, coded_width: int, coded_height: int) -> tuple[Tensor, Tensor, Tensor]:
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
    p4_end, p8_end = 3 * n4, 3 * (n4 + n8)
    c4_end = p8_end + 16 * n4
    out = torch.zeros(coded_width * coded_height * 3 // 2, dtype=torch.int16, device=data.device)
    _scatter(out, inverse_transform4x4_reference(data[p8_end:c4_end].view(n4, 4, 4)),
             data[:p4_end].view(n4, 3), 4, False, coded_width, coded_height)
    _scatter(out, inverse_transform8x8_reference(data[c4_end:].view(n8, 8, 8)),
             data[p4_end:p8_end].view(n8, 3), 8, True, coded_width, coded_height)
    return planes(out, coded_width, coded_height)


def residual_triton(data: Tensor, n4: int, n8: int, coded_width: int,
                    coded_height: int) -> tuple[Tensor, Tensor, Tensor]:
    """The Triton implementation (residual_triton.py, imported on first use)."""
    from .residual_triton import residual_triton as run

    return run(data, n4, n8, coded_width, coded_height)
