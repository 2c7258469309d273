"""Fused spatial attention module (paper Eq. 8-10), forward and backward, in Triton.

One program per (clip, frame, block of D_r channels) loads its frame's V^conv_I block and the
per-clip term W_I V^s_I + W_r A^s_r once and serves every beam of the clip from them: tanh,
softmax over the H x W positions and the attention-weighted pooling happen in registers, and the
per-clip constants are read once per step instead of once per beam.
Reference: `vccv_gpu.model.sam.sam_reference`.

Limits: H x W <= 64, N <= 32 (one tile per frame), any D_r and number of rows; fp32 or bf16 (math
in fp32). All tensors are contiguous except the step term, whose rows may be strided (it is a
slice of the step's one query GEMM).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

MAX_POSITIONS = 64
MAX_FRAMES = 32


@triton.jit
def _tanh(x):
    # from exp: portable across Triton backends and its interpreter; |error| ~1e-7 absolute
    return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)


@triton.jit
def _frame_valid(mask_ptr, cell, HAS_MASK: tl.constexpr):
    if HAS_MASK:
        valid = tl.load(mask_ptr + cell) != 0
    else:  # nothing to read: every frame is valid
        valid = cell >= 0
    return valid


@triton.jit
def _attention(step_ptr, step_stride, row, clip_term, pos, pos_ok):
    """Eq. 8-9 for one row and frame: tanh(W_t h + clip term), softmax over the valid positions."""
    step = tl.load(step_ptr + row * step_stride + pos, mask=pos_ok, other=0.0).to(tl.float32)
    alpha = _tanh(step + clip_term)
    weights = tl.where(pos_ok, tl.exp(alpha), 0.0)  # |alpha| <= 1: no max subtraction needed
    return alpha, weights / tl.sum(weights, axis=0)


@triton.jit
def _sam_forward_kernel(step_ptr, step_stride, clip_term_ptr, v_conv_ptr, mask_ptr, pooled_ptr, attention_ptr,
                        beams, n_frames, positions, dim, inv_positions,
                        HAS_MASK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr):
    clip = tl.program_id(0).to(tl.int64)
    frame = tl.program_id(1)
    d_block = tl.program_id(2)
    pos = tl.arange(0, BLOCK_P)
    cols = d_block * BLOCK_D + tl.arange(0, BLOCK_D)
    pos_ok = pos < positions
    col_ok = cols < dim
    cell = clip * n_frames + frame
    valid = _frame_valid(mask_ptr, cell, HAS_MASK)
    clip_term = tl.load(clip_term_ptr + cell * positions + pos, mask=pos_ok, other=0.0).to(tl.float32)
    tile_ok = pos_ok[:, None] & col_ok[None, :] & valid  # invalid frames: nothing loaded, zeros out
    v_conv = tl.load(v_conv_ptr + (cell * positions + pos[:, None]) * dim + cols[None, :], mask=tile_ok,
                     other=0.0).to(tl.float32)
    for beam in range(beams):
        row = clip * beams + beam
        _, attention = _attention(step_ptr, step_stride, row, clip_term, pos, pos_ok)
        pooled = tl.sum(attention[:, None] * v_conv, axis=0) * inv_positions  # attention-weighted mean
        out = row * n_frames + frame
        tl.store(pooled_ptr + out * dim + cols, pooled.to(pooled_ptr.dtype.element_ty), mask=col_ok)
        if d_block == 0:
            attention = tl.where(valid, attention, 0.0)
            tl.store(attention_ptr + out * positions + pos, attention.to(attention_ptr.dtype.element_ty), mask=pos_ok)


@triton.jit
def _sam_backward_scores_kernel(step_ptr, step_stride, clip_term_ptr, v_conv_ptr, mask_ptr, grad_pooled_ptr,
                                grad_attention_ptr, grad_scores_ptr, beams, n_frames, positions, dim, inv_positions,
                                HAS_MASK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr):
    """d loss / d (W_t h + clip term) per row and frame, through Eq. 10, 9 and 8."""
    clip = tl.program_id(0).to(tl.int64)
    frame = tl.program_id(1)
    pos = tl.arange(0, BLOCK_P)
    pos_ok = pos < positions
    cell = clip * n_frames + frame
    valid = _frame_valid(mask_ptr, cell, HAS_MASK)
    clip_term = tl.load(clip_term_ptr + cell * positions + pos, mask=pos_ok, other=0.0).to(tl.float32)
    for beam in range(beams):
        row = clip * beams + beam
        out = row * n_frames + frame
        alpha, attention = _attention(step_ptr, step_stride, row, clip_term, pos, pos_ok)
        grad_attention = tl.zeros([BLOCK_P], dtype=tl.float32)
        for d_start in range(0, dim, BLOCK_D):
            cols = d_start + tl.arange(0, BLOCK_D)
            col_ok = cols < dim
            v_conv = tl.load(v_conv_ptr + (cell * positions + pos[:, None]) * dim + cols[None, :],
                             mask=pos_ok[:, None] & col_ok[None, :] & valid, other=0.0).to(tl.float32)
            grad_pooled = tl.load(grad_pooled_ptr + out * dim + cols, mask=col_ok, other=0.0).to(tl.float32)
            grad_attention += tl.sum(v_conv * grad_pooled[None, :], axis=1)
        grad_attention = grad_attention * inv_positions
        grad_attention += tl.load(grad_attention_ptr + out * positions + pos, mask=pos_ok, other=0.0).to(tl.float32)
        grad_alpha = attention * (grad_attention - tl.sum(attention * grad_attention, axis=0))  # softmax
        grad_scores = tl.where(pos_ok & valid, grad_alpha * (1.0 - alpha * alpha), 0.0)  # tanh
        tl.store(grad_scores_ptr + out * positions + pos, grad_scores, mask=pos_ok)


@triton.jit
def _sam_backward_features_kernel(step_ptr, step_stride, clip_term_ptr, mask_ptr, grad_pooled_ptr, grad_v_conv_ptr,
                                  beams, n_frames, positions, dim, inv_positions,
                                  HAS_MASK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr):
    """d loss / d V^conv_I: the attention-weighted outer products of Eq. 10, summed over beams."""
    clip = tl.program_id(0).to(tl.int64)
    frame = tl.program_id(1)
    d_block = tl.program_id(2)
    pos = tl.arange(0, BLOCK_P)
    cols = d_block * BLOCK_D + tl.arange(0, BLOCK_D)
    pos_ok = pos < positions
    col_ok = cols < dim
    cell = clip * n_frames + frame
    valid = _frame_valid(mask_ptr, cell, HAS_MASK)
    clip_term = tl.load(clip_term_ptr + cell * positions + pos, mask=pos_ok, other=0.0).to(tl.float32)
    grad = tl.zeros([BLOCK_P, BLOCK_D], dtype=tl.float32)
    for beam in range(beams):
        row = clip * beams + beam
        _, attention = _attention(step_ptr, step_stride, row, clip_term, pos, pos_ok)
        grad_pooled = tl.load(grad_pooled_ptr + (row * n_frames + frame) * dim + cols, mask=col_ok,
                              other=0.0).to(tl.float32)
        grad += attention[:, None] * grad_pooled[None, :]
    grad = tl.where(valid, grad * inv_positions, 0.0)
    tl.store(grad_v_conv_ptr + (cell * positions + pos[:, None]) * dim + cols[None, :],
             grad.to(grad_v_conv_ptr.dtype.element_ty), mask=pos_ok[:, None] & col_ok[None, :])


def _blocks(positions: int, dim: int) -> tuple[int, int]:
    return max(triton.next_power_of_2(positions), 2), min(max(triton.next_power_of_2(dim), 16), 64)


class _SAM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, step_term: Tensor, clip_term: Tensor, v_conv: Tensor, mask: Tensor | None,
                beams: int) -> tuple[Tensor, Tensor]:
        n_clips, n_frames, positions, dim = v_conv.shape
        rows = n_clips * beams
        pooled = v_conv.new_empty(rows, n_frames, dim)
        attention = v_conv.new_empty(rows, n_frames, positions)
        block_p, block_d = _blocks(positions, dim)
        grid = (n_clips, n_frames, triton.cdiv(dim, block_d))
        has_mask = mask is not None
        mask = mask if has_mask else clip_term  # an unread stand-in pointer
        _sam_forward_kernel[grid](step_term, step_term.stride(0), clip_term, v_conv, mask, pooled, attention,
                                  beams, n_frames, positions, dim, 1.0 / positions,
                                  HAS_MASK=has_mask, BLOCK_P=block_p, BLOCK_D=block_d)
        ctx.save_for_backward(step_term, clip_term, v_conv, mask)
        ctx.beams, ctx.has_mask = beams, has_mask
        return pooled, attention

    @staticmethod
    def backward(ctx, grad_pooled: Tensor, grad_attention: Tensor):
        step_term, clip_term, v_conv, mask = ctx.saved_tensors
        beams, has_mask = ctx.beams, ctx.has_mask
        n_clips, n_frames, positions, dim = v_conv.shape
        rows = n_clips * beams
        grad_pooled = grad_pooled.contiguous()
        grad_attention = grad_attention.contiguous()
        block_p, block_d = _blocks(positions, dim)
        args = (beams, n_frames, positions, dim, 1.0 / positions)
        grad_step = grad_clip = grad_v_conv = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            grad_scores = torch.empty(rows, n_frames, positions, dtype=torch.float32, device=v_conv.device)
            _sam_backward_scores_kernel[(n_clips, n_frames)](
                step_term, step_term.stride(0), clip_term, v_conv, mask, grad_pooled, grad_attention, grad_scores,
                *args, HAS_MASK=has_mask, BLOCK_P=block_p, BLOCK_D=block_d)
            # the step term is shared by all frames of a row, the clip term by all beams of a clip
            grad_step = grad_scores.sum(1).to(step_term.dtype)
            grad_clip = grad_scores.view(n_clips, beams, n_frames, positions).sum(1).to(clip_term.dtype)
        if ctx.needs_input_grad[2]:
            grad_v_conv = torch.empty_like(v_conv)
            _sam_backward_features_kernel[(n_clips, n_frames, triton.cdiv(dim, block_d))](
                step_term, step_term.stride(0), clip_term, mask, grad_pooled, grad_v_conv,
                *args, HAS_MASK=has_mask, BLOCK_P=block_p, BLOCK_D=block_d)
        return grad_step, grad_clip, grad_v_conv, None, None


def sam_triton(step_term: Tensor, clip_term: Tensor, v_conv: Tensor, frame_mask: Tensor | None = None,
               beams: int = 1) -> tuple[Tensor, Tensor]:
    """The fused SAM; arguments and results as `vccv_gpu.model.sam.sam_reference`."""
    n_clips, n_frames, positions, _ = v_conv.shape
    if positions > MAX_POSITIONS or n_frames > MAX_FRAMES:
        raise ValueError(f"fused SAM handles H*W <= {MAX_POSITIONS} and N <= {MAX_FRAMES}, "
                         f"got H*W={positions}, N={n_frames}")
    expected_step, expected_clip = (n_clips * beams, positions), (n_clips, n_frames, positions)
    if tuple(step_term.shape) != expected_step or tuple(clip_term.shape) != expected_clip:
        raise ValueError(f"SAM shapes disagree: step {list(step_term.shape)}, clip {list(clip_term.shape)}, "
                         f"v_conv {list(v_conv.shape)}, beams {beams}")
    if step_term.stride(1) != 1:
        step_term = step_term.contiguous()
    mask = None if frame_mask is None else frame_mask.contiguous().view(torch.uint8)
    dtype = v_conv.dtype
    return _SAM.apply(step_term.to(dtype), clip_term.to(dtype).contiguous(), v_conv.contiguous(), mask, beams)
