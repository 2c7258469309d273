"""The spatial attention module (SAM), Eq. 8-10: where in each frame the decoder looks.

Written in terms of what changes per decoding step and what does not: Eq. 8's W_t h_{t-1} (the
step term, one row per beam) and W_I V^s_I + W_r A^s_r (the clip term, one per clip). Decoding
works on R = C * beams rows; the rows of clip c are c*beams ... c*beams + beams - 1, so a per-clip
tensor serves all its rows without being copied. Invalid frames (`frame_mask` False) get zero
attention and zero pooled features, whatever their features hold.

`sam_reference` is the plain-PyTorch form: both the model's literal path (Eq. 2 recomputed at every
step) and the per-step path use it, and the fused Triton kernel (`vccv_gpu.kernels.sam`) is tested
against it. `spatial_attention` runs one or the other, as the backend says.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vccv_gpu.kernels.backend import resolve_backend

__all__ = ["sam_reference", "spatial_attention"]


def sam_reference(step_term: Tensor, clip_term: Tensor, v_conv: Tensor, frame_mask: Tensor | None = None,
                  beams: int = 1) -> tuple[Tensor, Tensor]:
    """Eq. 8-10. step_term [R, HW]: W_t h_{t-1}; clip_term [C, N, HW]: W_I V^s_I + W_r A^s_r;
    v_conv [C, N, HW, D_r]: V^conv_I. Returns F^att_R [R, N, D_r] and the attention map A_R
    [R, N, HW], both zero on invalid frames."""
    n_clips, n_frames, positions, dim = v_conv.shape
    step = step_term.reshape(n_clips, beams, 1, positions)  # E_alpha: the same for every frame
    alpha = torch.tanh(step + clip_term[:, None])  # Eq. 8
    attention = torch.softmax(alpha, dim=-1)  # Eq. 9: softmax over the H x W positions
    pooled = torch.einsum("cknp,cnpd->cknd", attention, v_conv) / positions  # Eq. 10
    if frame_mask is not None:
        valid = frame_mask[:, None, :, None]
        attention = torch.where(valid, attention, 0.0)
        pooled = torch.where(valid, pooled, 0.0)
    rows = n_clips * beams
    return pooled.reshape(rows, n_frames, dim), attention.reshape(rows, n_frames, positions)


def spatial_attention(step_term: Tensor, clip_term: Tensor, v_conv: Tensor, frame_mask: Tensor | None = None,
                      beams: int = 1, backend: str | None = None) -> tuple[Tensor, Tensor]:
    """`sam_reference`, or the fused Triton kernel when the backend resolves to triton."""
    if resolve_backend(backend, v_conv.device) == "triton":
        from vccv_gpu.kernels.sam import sam_triton  # imported on first use: see vccv_gpu.kernels

        return sam_triton(step_term, clip_term, v_conv, frame_mask, beams)
    return sam_reference(step_term, clip_term, v_conv, frame_mask, beams)
