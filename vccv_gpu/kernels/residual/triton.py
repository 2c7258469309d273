"""Triton residual reconstruction: one launch for the 4x4 blocks, one for the 8x8 blocks, one
program per group of BLOCK4 = 128 (4x4, 4 warps) or BLOCK8 = 64 (8x8, 2 warps) blocks and one block
per thread. Each thread loads its block's 16 or 64 coefficients as int32, runs the standard's row
and column butterflies (8.5.12.2, 8.5.13.2) in registers, with arithmetic right shifts, and stores
r = (h + 32) >> 6 as int16 into the planes, which are views of one zeroed buffer (y, then u, then
v). Reference: `reference.residual_reference`; the buffer checks and the planes come from there.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .reference import buffer_offsets, check_buffer, planes

# transform blocks per program, one per thread (num_warps = BLOCK // 32). On sm_90 (Triton 3.8)
# the 4x4 kernel uses 32 registers a thread, the 8x8 kernel 80, neither spills.
BLOCK4 = 128
BLOCK8 = 64


@triton.jit
def _tl_butterfly4(x0, x1, x2, x3):
    e0 = x0 + x2
    e1 = x0 - x2
    e2 = (x1 >> 1) - x3
    e3 = x1 + (x3 >> 1)
    return e0 + e3, e1 + e2, e1 - e2, e0 - e3


@triton.jit
def _tl_butterfly8(x0, x1, x2, x3, x4, x5, x6, x7):
    e0 = x0 + x4
    e1 = -x3 + x5 - x7 - (x7 >> 1)
    e2 = x0 - x4
    e3 = x1 + x7 - x3 - (x3 >> 1)
    e4 = (x2 >> 1) - x6
    e5 = -x1 + x7 + x5 + (x5 >> 1)
    e6 = x2 + (x6 >> 1)
    e7 = x3 + x5 + x1 + (x1 >> 1)
    f0 = e0 + e6
    f1 = e1 + (e7 >> 2)
    f2 = e2 + e4
    f3 = e3 + (e5 >> 2)
    f4 = e2 - e4
    f5 = (e3 >> 2) - e5
    f6 = e0 - e6
    f7 = e7 - (e1 >> 2)
    return f0 + f7, f2 + f5, f4 + f3, f6 + f1, f6 - f1, f4 - f3, f2 - f5, f0 - f7


@triton.jit
def _tl_row4(data_ptr, base, row, live):
    """Row `row` of each lane's 4x4 block, as four int32 vectors, through the row butterfly."""
    p = data_ptr + base + row * 4
    x0 = tl.load(p, mask=live, other=0).to(tl.int32)
    x1 = tl.load(p + 1, mask=live, other=0).to(tl.int32)
    x2 = tl.load(p + 2, mask=live, other=0).to(tl.int32)
    x3 = tl.load(p + 3, mask=live, other=0).to(tl.int32)
    return _tl_butterfly4(x0, x1, x2, x3)


@triton.jit
def _tl_row8(data_ptr, base, row, live):
    """Row `row` of each lane's 8x8 block, as eight int32 vectors, through the row butterfly."""
    p = data_ptr + base + row * 8
    x0 = tl.load(p, mask=live, other=0).to(tl.int32)
    x1 = tl.load(p + 1, mask=live, other=0).to(tl.int32)
    x2 = tl.load(p + 2, mask=live, other=0).to(tl.int32)
    x3 = tl.load(p + 3, mask=live, other=0).to(tl.int32)
    x4 = tl.load(p + 4, mask=live, other=0).to(tl.int32)
    x5 = tl.load(p + 5, mask=live, other=0).to(tl.int32)
    x6 = tl.load(p + 6, mask=live, other=0).to(tl.int32)
    x7 = tl.load(p + 7, mask=live, other=0).to(tl.int32)
    return _tl_butterfly8(x0, x1, x2, x3, x4, x5, x6, x7)


@triton.jit
def _tl_put(out_ptr, addr, h, ok):
    tl.store(out_ptr + addr, ((h + 32) >> 6).to(tl.int16), mask=ok)


@triton.jit
def _tl_column4(out_ptr, addr, stride, col, f0, f1, f2, f3, ok):
    """Column butterfly of column `col` and its four samples r = (h + 32) >> 6."""
    h0, h1, h2, h3 = _tl_butterfly4(f0, f1, f2, f3)
    a = addr + col
    _tl_put(out_ptr, a, h0, ok)
    _tl_put(out_ptr, a + stride, h1, ok)
    _tl_put(out_ptr, a + 2 * stride, h2, ok)
    _tl_put(out_ptr, a + 3 * stride, h3, ok)


@triton.jit
def _tl_column8(out_ptr, addr, stride, col, f0, f1, f2, f3, f4, f5, f6, f7, ok):
    h0, h1, h2, h3, h4, h5, h6, h7 = _tl_butterfly8(f0, f1, f2, f3, f4, f5, f6, f7)
    a = addr + col
    _tl_put(out_ptr, a, h0, ok)
    _tl_put(out_ptr, a + stride, h1, ok)
    _tl_put(out_ptr, a + 2 * stride, h2, ok)
    _tl_put(out_ptr, a + 3 * stride, h3, ok)
    _tl_put(out_ptr, a + 4 * stride, h4, ok)
    _tl_put(out_ptr, a + 5 * stride, h5, ok)
    _tl_put(out_ptr, a + 6 * stride, h6, ok)
    _tl_put(out_ptr, a + 7 * stride, h7, ok)


@triton.jit
def _tl_block_origin(data_ptr, blk, live, width, height, luma_size, chroma_size,
                     SIZE: tl.constexpr, LUMA_ONLY: tl.constexpr):
    """Flat sample offset of each lane's block in the y|u|v buffer, its plane's stride, and
    whether it lies wholly inside its plane."""
    x = tl.load(data_ptr + 3 * blk + 1, mask=live, other=0).to(tl.int64)
    y = tl.load(data_ptr + 3 * blk + 2, mask=live, other=0).to(tl.int64)
    if LUMA_ONLY:
        plane = x * 0
    else:
        plane = tl.load(data_ptr + 3 * blk, mask=live, other=0).to(tl.int64)
    chroma = plane != 0
    stride = tl.where(chroma, width // 2, width).to(tl.int64)
    rows = tl.where(chroma, height // 2, height).to(tl.int64)
    origin = tl.where(chroma, luma_size + (plane - 1) * chroma_size, 0)
    ok = live & (plane >= 0) & (plane <= 2) & (x >= 0) & (y >= 0) & (x + SIZE <= stride) & (y + SIZE <= rows)
    return origin + y * stride + x, stride, ok


@triton.jit
def _residual4x4_kernel(data_ptr, out_ptr, n_blocks, pos_start, width, height, luma_size, chroma_size,
                        BLOCK: tl.constexpr):
    blk = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = blk < n_blocks
    addr, stride, ok = _tl_block_origin(data_ptr + pos_start, blk, live, width, height, luma_size, chroma_size,
                                        4, False)
    base = 16 * blk
    g00, g01, g02, g03 = _tl_row4(data_ptr, base, 0, live)
    g10, g11, g12, g13 = _tl_row4(data_ptr, base, 1, live)
    g20, g21, g22, g23 = _tl_row4(data_ptr, base, 2, live)
    g30, g31, g32, g33 = _tl_row4(data_ptr, base, 3, live)
    _tl_column4(out_ptr, addr, stride, 0, g00, g10, g20, g30, ok)
    _tl_column4(out_ptr, addr, stride, 1, g01, g11, g21, g31, ok)
    _tl_column4(out_ptr, addr, stride, 2, g02, g12, g22, g32, ok)
    _tl_column4(out_ptr, addr, stride, 3, g03, g13, g23, g33, ok)


@triton.jit
def _residual8x8_kernel(data_ptr, out_ptr, n_blocks, pos_start, coeff_start, width, height, luma_size,
                        chroma_size, BLOCK: tl.constexpr):
    blk = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = blk < n_blocks
    addr, stride, ok = _tl_block_origin(data_ptr + pos_start, blk, live, width, height, luma_size, chroma_size,
                                        8, True)
    base = coeff_start + 64 * blk
    g00, g01, g02, g03, g04, g05, g06, g07 = _tl_row8(data_ptr, base, 0, live)
    g10, g11, g12, g13, g14, g15, g16, g17 = _tl_row8(data_ptr, base, 1, live)
    g20, g21, g22, g23, g24, g25, g26, g27 = _tl_row8(data_ptr, base, 2, live)
    g30, g31, g32, g33, g34, g35, g36, g37 = _tl_row8(data_ptr, base, 3, live)
    g40, g41, g42, g43, g44, g45, g46, g47 = _tl_row8(data_ptr, base, 4, live)
    g50, g51, g52, g53, g54, g55, g56, g57 = _tl_row8(data_ptr, base, 5, live)
    g60, g61, g62, g63, g64, g65, g66, g67 = _tl_row8(data_ptr, base, 6, live)
    g70, g71, g72, g73, g74, g75, g76, g77 = _tl_row8(data_ptr, base, 7, live)
    _tl_column8(out_ptr, addr, stride, 0, g00, g10, g20, g30, g40, g50, g60, g70, ok)
    _tl_column8(out_ptr, addr, stride, 1, g01, g11, g21, g31, g41, g51, g61, g71, ok)
    _tl_column8(out_ptr, addr, stride, 2, g02, g12, g22, g32, g42, g52, g62, g72, ok)
    _tl_column8(out_ptr, addr, stride, 3, g03, g13, g23, g33, g43, g53, g63, g73, ok)
    _tl_column8(out_ptr, addr, stride, 4, g04, g14, g24, g34, g44, g54, g64, g74, ok)
    _tl_column8(out_ptr, addr, stride, 5, g05, g15, g25, g35, g45, g55, g65, g75, ok)
    _tl_column8(out_ptr, addr, stride, 6, g06, g16, g26, g36, g46, g56, g66, g76, ok)
    _tl_column8(out_ptr, addr, stride, 7, g07, g17, g27, g37, g47, g57, g67, g77, ok)


def residual_triton(data: Tensor, n4: int, n8: int, coded_width: int,
                    coded_height: int) -> tuple[Tensor, Tensor, Tensor]:
    """Triton `reconstruct_residual`: two launches (4x4 blocks, then 8x8 blocks)."""
    data = check_buffer(data, n4, n8, coded_width, coded_height)
    luma, chroma = coded_width * coded_height, coded_width * coded_height // 4
    out = torch.zeros(luma + 2 * chroma, dtype=torch.int16, device=data.device)
    c8_start, p4_start, p8_start = buffer_offsets(n4, n8)
    if n4:
        _residual4x4_kernel[(triton.cdiv(n4, BLOCK4),)](data, out, n4, p4_start, coded_width, coded_height, luma,
                                                        chroma, BLOCK=BLOCK4, num_warps=BLOCK4 // 32)
    if n8:
        _residual8x8_kernel[(triton.cdiv(n8, BLOCK8),)](data, out, n8, p8_start, c8_start, coded_width, coded_height,
                                                        luma, chroma, BLOCK=BLOCK8, num_warps=BLOCK8 // 32)
    return planes(out, coded_width, coded_height)
