"""H.264 residual reconstruction on the device: the inverse transforms of a frame's coefficient
blocks, for the codec's GPU front end (`vccv_gpu.codec.gpu`).

Input: the `data` buffer of `vccv_gpu.codec.Coefficients` (one int16 tensor: one host-to-device
copy) with n4, n8 and the coded size. Its layout (see `Coefficients.from_buffer`):

    coeffs4 [n4, 4, 4] | coeffs8 [n8, 8, 8] | positions4 [n4, 3] | positions8 [n8, 3]

positions are (plane 0 Y / 1 Cb / 2 Cr, x, y) of the block's top-left sample in its plane; coeffs
are the dequantised coefficients in raster order (DC transforms already folded in). Output: the
int16 residual planes y [coded_h, coded_w], u, v [coded_h/2, coded_w/2], zero outside the blocks,
bit-exact with the parser's CPU `Stream.residual` (csrc/transform.cpp `inverse_transform4x4`,
`inverse_transform8x8`, csrc/residual_planes.cpp `render_residual`):

- All arithmetic in int32. Any int16 input is safe: one pass multiplies magnitudes by at most 3.5
  (4x4) or 7.375 (8x8), so |h| < 1.8e6 < 2^21 and |r| < 27900: no int32 overflow, no int16 wrap.
- 8x8 blocks are luma blocks: their plane field is ignored (as the C++ does).
- the 4x4 blocks are written first, then the 8x8 blocks (the C++ order). Blocks of a valid stream
  never overlap; if some did, which one wins inside one launch is undefined.
- a block that would not lie wholly inside its plane (or names a plane other than 0..2) is
  dropped by both implementations, so bad positions never write out of bounds. The parser never
  produces such blocks.

Two implementations, tested against the C++ and each other in tests/test_residual_kernel.py:
`reference.py` (plain PyTorch, every block at once) and `triton.py` (one thread per block). The
Triton module is imported on first use, so TRITON_INTERPRET=1 set after `import vccv_gpu.kernels`
still takes effect and the reference works without Triton installed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..backend import resolve_backend
from .reference import residual_reference

__all__ = ["reconstruct_residual"]


def reconstruct_residual(data: Tensor | np.ndarray, n4: int, n8: int, coded_width: int, coded_height: int,
                         backend: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Residual planes (y, u, v; int16, on `data`'s device) of one frame from its coefficient buffer.

    data: the int16 buffer of `Coefficients` (`s.coefficients(i).data`), 16 n4 + 64 n8 +
    3 (n4 + n8) values, as a tensor on the device that should compute (a numpy array is taken as a CPU
    tensor). backend: see `vccv_gpu.kernels.backend.resolve_backend`.
    """
    if isinstance(data, np.ndarray):
        data = torch.tensor(data)  # a copy: Coefficients.data is read-only, which from_numpy warns about
    if resolve_backend(backend, data.device) == "triton":
        from .triton import residual_triton

        return residual_triton(data, n4, n8, coded_width, coded_height)
    return residual_reference(data, n4, n8, coded_width, coded_height)
