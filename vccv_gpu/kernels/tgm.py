"""Fused temporal gate module (paper Eq. 11-12) and the mean over frames, forward and backward,
in Triton.

The gate's argument is affine in h, so G = sigmoid(s + c_n) from one scalar per step and row
(s = w_G . W_Gt h) and one per frame (c_n = w_G . (W_Gr A^c_r + W_GI V^c_I), per clip). The mean
over frames commutes with W_GR, so the kernel returns the two gated frame means
mean_n G_n F^att_R,n [R, D_r] and mean_n (1 - G_n) W'_GI V^c_I,n [R, D_I]; the caller's single
GEMM with W_GR finishes Eq. 12. Programs run per (clip, block of channels): the clip's
W'_GI V^c_I block is read once for all its beams. Reference: `vccv_gpu.model.tgm.tgm_reference`
(which also holds Eq. 11-12 as the paper writes them).

Limits: N <= 32; any D_r, D_I and number of rows; fp32 or bf16 (math in fp32).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

MAX_FRAMES = 32


@triton.jit
def _frame_weights(mask_ptr, clip, n_frames, frames, frame_ok, HAS_MASK: tl.constexpr):
    """1/count on the valid frames of a clip, 0 elsewhere: the masked mean over frames. Without a
    mask nothing is read: every frame is valid."""
    if HAS_MASK:
        valid = tl.load(mask_ptr + clip * n_frames + frames, mask=frame_ok, other=0).to(tl.float32)
    else:
        valid = frame_ok.to(tl.float32)
    return valid / tl.maximum(tl.sum(valid, axis=0), 1.0)


@triton.jit
def _gate(gate_step_ptr, gate_step_stride, row, gate_frame):
    return tl.sigmoid(tl.load(gate_step_ptr + row * gate_step_stride).to(tl.float32) + gate_frame)


@triton.jit
def _tgm_forward_kernel(gate_step_ptr, gate_step_stride, gate_frame_ptr, f_r_ptr, fallback_ptr, mask_ptr,
                        gate_ptr, pooled_r_ptr, pooled_i_ptr, beams, n_frames, dim_r, dim_i, blocks_r,
                        HAS_MASK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    clip = tl.program_id(0).to(tl.int64)
    block = tl.program_id(1)
    frames = tl.arange(0, BLOCK_N)
    frame_ok = frames < n_frames
    weight = _frame_weights(mask_ptr, clip, n_frames, frames, frame_ok, HAS_MASK)
    used = frame_ok & (weight > 0)
    gate_frame = tl.load(gate_frame_ptr + clip * n_frames + frames, mask=frame_ok, other=0.0).to(tl.float32)
    if block < blocks_r:  # mean_n G_n F_R,n for this block of D_r
        cols = block * BLOCK_D + tl.arange(0, BLOCK_D)
        col_ok = cols < dim_r
        for beam in range(beams):
            row = clip * beams + beam
            gate = _gate(gate_step_ptr, gate_step_stride, row, gate_frame)
            if block == 0:
                tl.store(gate_ptr + row * n_frames + frames, tl.where(used, gate, 0.0).to(gate_ptr.dtype.element_ty),
                         mask=frame_ok)
            f_r = tl.load(f_r_ptr + (row * n_frames + frames[:, None]) * dim_r + cols[None, :],
                          mask=used[:, None] & col_ok[None, :], other=0.0).to(tl.float32)
            pooled = tl.sum((gate * weight)[:, None] * f_r, axis=0)
            tl.store(pooled_r_ptr + row * dim_r + cols, pooled.to(pooled_r_ptr.dtype.element_ty), mask=col_ok)
    else:  # mean_n (1 - G_n) W'_GI V^c_I,n for this block of D_I, the clip's block shared by its beams
        cols = (block - blocks_r) * BLOCK_D + tl.arange(0, BLOCK_D)
        col_ok = cols < dim_i
        fallback = tl.load(fallback_ptr + (clip * n_frames + frames[:, None]) * dim_i + cols[None, :],
                           mask=used[:, None] & col_ok[None, :], other=0.0).to(tl.float32)
        for beam in range(beams):
            row = clip * beams + beam
            gate = _gate(gate_step_ptr, gate_step_stride, row, gate_frame)
            pooled = tl.sum(((1.0 - gate) * weight)[:, None] * fallback, axis=0)
            tl.store(pooled_i_ptr + row * dim_i + cols, pooled.to(pooled_i_ptr.dtype.element_ty), mask=col_ok)


@triton.jit
def _tgm_backward_kernel(gate_step_ptr, gate_step_stride, gate_frame_ptr, f_r_ptr, fallback_ptr, mask_ptr,
                         grad_pooled_r_ptr, grad_pooled_i_ptr, grad_f_r_ptr, grad_fallback_ptr, grad_gate_parts_ptr,
                         rows, beams, n_frames, dim_r, dim_i, blocks_r,
                         HAS_MASK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """Gradients of F_R and W'_GI V^c_I, and each channel block's part of d loss / d G."""
    clip = tl.program_id(0).to(tl.int64)
    block = tl.program_id(1)
    frames = tl.arange(0, BLOCK_N)
    frame_ok = frames < n_frames
    weight = _frame_weights(mask_ptr, clip, n_frames, frames, frame_ok, HAS_MASK)
    used = frame_ok & (weight > 0)
    gate_frame = tl.load(gate_frame_ptr + clip * n_frames + frames, mask=frame_ok, other=0.0).to(tl.float32)
    parts = grad_gate_parts_ptr + block * rows * n_frames
    if block < blocks_r:
        cols = block * BLOCK_D + tl.arange(0, BLOCK_D)
        col_ok = cols < dim_r
        tile_ok = frame_ok[:, None] & col_ok[None, :]
        for beam in range(beams):
            row = clip * beams + beam
            gate = _gate(gate_step_ptr, gate_step_stride, row, gate_frame)
            grad = tl.load(grad_pooled_r_ptr + row * dim_r + cols, mask=col_ok, other=0.0).to(tl.float32)
            offsets = (row * n_frames + frames[:, None]) * dim_r + cols[None, :]
            tl.store(grad_f_r_ptr + offsets, ((gate * weight)[:, None] * grad[None, :]).to(
                grad_f_r_ptr.dtype.element_ty), mask=tile_ok)
            f_r = tl.load(f_r_ptr + offsets, mask=used[:, None] & col_ok[None, :], other=0.0).to(tl.float32)
            tl.store(parts + row * n_frames + frames, tl.sum(f_r * grad[None, :], axis=1) * weight, mask=frame_ok)
    else:
        cols = (block - blocks_r) * BLOCK_D + tl.arange(0, BLOCK_D)
        col_ok = cols < dim_i
        offsets = (clip * n_frames + frames[:, None]) * dim_i + cols[None, :]
        fallback = tl.load(fallback_ptr + offsets, mask=used[:, None] & col_ok[None, :], other=0.0).to(tl.float32)
        grad_fallback = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
        for beam in range(beams):
            row = clip * beams + beam
            gate = _gate(gate_step_ptr, gate_step_stride, row, gate_frame)
            grad = tl.load(grad_pooled_i_ptr + row * dim_i + cols, mask=col_ok, other=0.0).to(tl.float32)
            grad_fallback += ((1.0 - gate) * weight)[:, None] * grad[None, :]
            tl.store(parts + row * n_frames + frames, -tl.sum(fallback * grad[None, :], axis=1) * weight,
                     mask=frame_ok)
        tl.store(grad_fallback_ptr + offsets, grad_fallback.to(grad_fallback_ptr.dtype.element_ty),
                 mask=frame_ok[:, None] & col_ok[None, :])


def _block_sizes(n_frames: int, dim_r: int, dim_i: int) -> tuple[int, int]:
    return max(triton.next_power_of_2(n_frames), 2), min(max(triton.next_power_of_2(max(dim_r, dim_i)), 16), 128)


class _TGM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate_step: Tensor, gate_frame: Tensor, f_r: Tensor, fallback: Tensor, mask: Tensor | None,
                beams: int) -> tuple[Tensor, Tensor, Tensor]:
        n_clips, n_frames, dim_i = fallback.shape
        rows, dim_r = n_clips * beams, f_r.shape[2]
        gate = f_r.new_empty(rows, n_frames)
        pooled_r = f_r.new_empty(rows, dim_r)
        pooled_i = fallback.new_empty(rows, dim_i)
        block_n, block_d = _block_sizes(n_frames, dim_r, dim_i)
        blocks_r, blocks_i = triton.cdiv(dim_r, block_d), triton.cdiv(dim_i, block_d)
        has_mask = mask is not None
        mask = mask if has_mask else gate_frame  # an unread stand-in pointer
        _tgm_forward_kernel[(n_clips, blocks_r + blocks_i)](
            gate_step, gate_step.stride(0), gate_frame, f_r, fallback, mask, gate, pooled_r, pooled_i,
            beams, n_frames, dim_r, dim_i, blocks_r, HAS_MASK=has_mask, BLOCK_N=block_n, BLOCK_D=block_d)
        ctx.save_for_backward(gate_step, gate_frame, f_r, fallback, mask)
        ctx.beams, ctx.has_mask = beams, has_mask
        return gate, pooled_r, pooled_i

    @staticmethod
    def backward(ctx, grad_gate: Tensor, grad_pooled_r: Tensor, grad_pooled_i: Tensor):
        gate_step, gate_frame, f_r, fallback, mask = ctx.saved_tensors
        beams, has_mask = ctx.beams, ctx.has_mask
        n_clips, n_frames, dim_i = fallback.shape
        rows, dim_r = n_clips * beams, f_r.shape[2]
        block_n, block_d = _block_sizes(n_frames, dim_r, dim_i)
        blocks_r, blocks_i = triton.cdiv(dim_r, block_d), triton.cdiv(dim_i, block_d)
        grad_f_r = torch.empty_like(f_r)
        grad_fallback = torch.empty_like(fallback)
        grad_gate_parts = torch.empty(blocks_r + blocks_i, rows, n_frames, dtype=torch.float32, device=f_r.device)
        _tgm_backward_kernel[(n_clips, blocks_r + blocks_i)](
            gate_step, gate_step.stride(0), gate_frame, f_r, fallback, mask, grad_pooled_r.contiguous(),
            grad_pooled_i.contiguous(), grad_f_r, grad_fallback, grad_gate_parts,
            rows, beams, n_frames, dim_r, dim_i, blocks_r, HAS_MASK=has_mask, BLOCK_N=block_n, BLOCK_D=block_d)
        # the small [R, N] tail: d loss / d G, through the sigmoid, then summed per row and per clip frame
        grad_g = grad_gate_parts.sum(0) + grad_gate.float()
        if has_mask:  # the gate output is zero on invalid frames
            grad_g = torch.where(mask.bool().repeat_interleave(beams, 0), grad_g, 0.0)
        gate = torch.sigmoid(gate_step.float().view(n_clips, beams, 1) + gate_frame.float()[:, None])
        gate = gate.view(rows, n_frames)
        grad_logit = grad_g * gate * (1.0 - gate)
        grad_step = grad_logit.sum(1).to(gate_step.dtype)
        grad_frame = grad_logit.view(n_clips, beams, n_frames).sum(1).to(gate_frame.dtype)
        return grad_step, grad_frame, grad_f_r, grad_fallback, None, None


def tgm_triton(gate_step: Tensor, gate_frame: Tensor, f_r: Tensor, fallback: Tensor,
               frame_mask: Tensor | None = None, beams: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """The fused TGM; arguments and results as `vccv_gpu.model.tgm.tgm_reference`."""
    n_clips, n_frames, _ = fallback.shape
    if n_frames > MAX_FRAMES:
        raise ValueError(f"fused TGM handles N <= {MAX_FRAMES}, got {n_frames}")
    rows = n_clips * beams
    if tuple(gate_step.shape) != (rows,) or tuple(gate_frame.shape) != (n_clips, n_frames) or \
            f_r.dim() != 3 or tuple(f_r.shape[:2]) != (rows, n_frames):
        raise ValueError(f"TGM shapes disagree: gate_step {list(gate_step.shape)}, gate_frame "
                         f"{list(gate_frame.shape)}, f_r {list(f_r.shape)}, fallback {list(fallback.shape)}, "
                         f"beams {beams}")
    mask = None if frame_mask is None else frame_mask.contiguous().view(torch.uint8)
    dtype = fallback.dtype
    return _TGM.apply(gate_step.to(dtype), gate_frame.to(dtype).contiguous(), f_r.to(dtype).contiguous(),
                      fallback.contiguous(), mask, beams)
