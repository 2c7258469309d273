"""Plain-PyTorch reference of the residuals-assisted encoder (paper section III-A, Eq. 3-12).

Two levels, both written as the paper's equations:

- `rae_literal`: Eq. 3-12 exactly as written: every decoding step recomputes everything from
  (V_I, A_r, h_{t-1}), for every row (beam) separately. The model is tested against it.
- `sam_reference` and `tgm_reference`: the per-step parts that the fused Triton kernels compute,
  with the kernels' interface: the terms without h_{t-1} are per-clip inputs computed once
  (`clip_features` and the model's `precompute`). Each Triton kernel is tested against these.

Layout: features are channel-last, [C, N, H, W, D] for C clips of N frames. Decoding works on
R = C * beams rows; the rows of clip c are c*beams ... c*beams + beams - 1, so a per-clip tensor
serves all its rows without being copied. `frame_mask` [C, N] (bool) marks the valid frames of
clips shorter than N; None means all valid. Invalid frames get zero attention, zero gate and no
weight in the mean over frames, whatever their features hold.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class ClipFeatures(NamedTuple):
    """Eq. 3-7 of one batch of clips (conv terms are None for the I-frame baseline)."""

    v_c: Tensor  # V^c_I [C, N, D_I]
    a_c: Tensor  # A^c_r [C, N, D_r]
    v_conv: Tensor | None  # V^conv_I [C, N, HW, D_r]
    v_s: Tensor | None  # V^s_I [C, N, HW]
    a_s: Tensor  # A^s_r [C, N, HW]


class RAEWeights(NamedTuple):
    """The encoder's weights as nn.Linear stores them ([out, in]), named after the paper's symbols
    (the convolution of Eq. 5, W_t, W_I, W_r of Eq. 8, w_G, W_Gt, W_Gr, W_GI of Eq. 11, W_GR and
    W_GI of Eq. 12, here W'_GI: a map of its own, D_I -> D_I, not Eq. 11's D_I -> gate_dim).
    A variant leaves out what it does not use: the I-frame baseline everything, the variants
    without residuals w_r, those without the gate the five gate weights."""

    conv_weight: Tensor | None  # D_I -> D_r
    conv_bias: Tensor | None
    w_t: Tensor | None  # hidden -> HW
    w_i: Tensor | None  # HW -> HW
    w_r: Tensor | None  # HW -> HW
    w_g: Tensor | None  # gate_dim -> 1
    w_gt: Tensor | None  # hidden -> gate_dim
    w_gr: Tensor | None  # D_r -> gate_dim
    w_gi: Tensor | None  # D_I -> gate_dim
    w_GR: Tensor | None  # D_r -> D_I
    w_GI_prime: Tensor | None  # D_I -> D_I


def clip_features(v_i: Tensor, a_r: Tensor, frame_mask: Tensor | None,
                  conv_weight: Tensor | None, conv_bias: Tensor | None) -> ClipFeatures:
    """Eq. 3-7 from V_I [C, N, H, W, D_I] and A_r [C, N, H, W, D_r]."""
    if frame_mask is not None:  # padded frames may hold anything, even NaN: make them zeros
        valid = frame_mask[:, :, None, None, None]
        v_i = torch.where(valid, v_i, 0.0)
        a_r = torch.where(valid, a_r, 0.0)
    v_i = v_i.flatten(2, 3)  # [C, N, HW, D_I]
    a_r = a_r.flatten(2, 3)
    v_c = v_i.mean(2)  # Eq. 3
    a_c = a_r.mean(2)  # Eq. 4
    v_conv = v_s = None
    if conv_weight is not None:
        v_conv = F.linear(v_i, conv_weight, conv_bias)  # Eq. 5: a 1x1 convolution D_I -> D_r
        v_s = v_conv.mean(3)  # Eq. 6
    a_s = a_r.mean(3)  # Eq. 7
    return ClipFeatures(v_c, a_c, v_conv, v_s, a_s)


def frame_mean(x: Tensor, frame_mask: Tensor | None, beams: int = 1) -> Tensor:
    """Mean over the valid frames: x [C*beams, N, ...] -> [C*beams, ...]."""
    if frame_mask is None:
        return x.mean(1)
    valid = frame_mask.repeat_interleave(beams, 0)
    valid = valid.reshape(valid.shape + (1,) * (x.dim() - 2))
    count = valid.sum(1).clamp(min=1)
    return torch.where(valid, x, 0.0).sum(1) / count


def sam_reference(step_term: Tensor, clip_term: Tensor, v_conv: Tensor, frame_mask: Tensor | None = None,
                  beams: int = 1) -> tuple[Tensor, Tensor]:
    """Spatial attention module, Eq. 8-10.

    step_term [R, HW]: W_t h_{t-1}; clip_term [C, N, HW]: W_I V^s_I + W_r A^s_r;
    v_conv [C, N, HW, D_r]: V^conv_I. Returns F^att_R [R, N, D_r] and the attention map A_R
    [R, N, HW], both zero on invalid frames.
    """
    n_clips, n_frames, positions, dim = v_conv.shape
    step = step_term.reshape(n_clips, beams, 1, positions)  # E_alpha: the same for every frame
    alpha = torch.tanh(step + clip_term[:, None])  # Eq. 8
    attention = torch.softmax(alpha, dim=-1)  # Eq. 9
    pooled = torch.einsum("cknp,cnpd->cknd", attention, v_conv) / positions  # Eq. 10
    if frame_mask is not None:
        valid = frame_mask[:, None, :, None]
        attention = torch.where(valid, attention, 0.0)
        pooled = torch.where(valid, pooled, 0.0)
    rows = n_clips * beams
    return pooled.reshape(rows, n_frames, dim), attention.reshape(rows, n_frames, positions)


def tgm_reference(gate_step: Tensor, gate_frame: Tensor, f_r: Tensor, fallback: Tensor,
                  frame_mask: Tensor | None = None, beams: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """Temporal gate module, Eq. 11-12, and the mean over frames, rearranged for decoding.

    The gate's argument is affine in h: gate_step [R] = w_G . W_Gt h_{t-1} (one scalar per step and
    row), gate_frame [C, N] = w_G . (W_Gr A^c_r + W_GI V^c_I) (one scalar per frame, per clip).
    The mean over frames commutes with W_GR, so this returns the two frame means
        pooled_r [R, D_r] = mean_n G_n F^att_R,n   (the caller applies W_GR once: one GEMM),
        pooled_i [R, D_I] = mean_n (1 - G_n) W'_GI V^c_I,n   (fallback [C, N, D_I] = W'_GI V^c_I),
    and the gate G [R, N] (zero on invalid frames). `rae_literal` holds Eq. 11-12 as written.
    """
    n_clips, n_frames, _ = fallback.shape
    gate = torch.sigmoid(gate_step.reshape(n_clips, beams, 1) + gate_frame[:, None])  # [C, K, N]
    if frame_mask is None:
        weight = torch.full_like(gate_frame, 1.0 / n_frames)
    else:
        weight = frame_mask / frame_mask.sum(1, keepdim=True).clamp(min=1)
        gate = torch.where(frame_mask[:, None], gate, 0.0)
    weight = weight[:, None].to(gate.dtype)  # [C, 1, N]: masked mean over frames
    f_r = f_r.reshape(n_clips, beams, n_frames, -1)
    pooled_r = torch.einsum("ckn,cknd->ckd", gate * weight, f_r)
    pooled_i = torch.einsum("ckn,cnd->ckd", (1.0 - gate) * weight, fallback)
    rows = n_clips * beams
    return gate.reshape(rows, n_frames), pooled_r.reshape(rows, -1), pooled_i.reshape(rows, -1)


def rae_literal(weights: RAEWeights, v_i: Tensor, a_r: Tensor, h: Tensor, frame_mask: Tensor | None = None,
                beams: int = 1) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The encoder as the paper writes it (Eq. 2: F_G = RAE(V_I, A_r, h_{t-1})), recomputing every
    term at every step, each row (beam) with its own copy of its clip's features.

    v_i [C, N, H, W, D_I], a_r [C, N, H, W, D_r], h [C*beams, hidden]. Returns the mean over valid
    frames of F^att_G [R, D_I] (before the linear layer, ReLU and dropout that follow it), the
    attention map [R, N, HW] and the gate [R, N] (None where the variant has none).
    """
    if beams > 1:
        v_i, a_r = v_i.repeat_interleave(beams, 0), a_r.repeat_interleave(beams, 0)
        frame_mask = None if frame_mask is None else frame_mask.repeat_interleave(beams, 0)
    w = weights
    features = clip_features(v_i, a_r, frame_mask, w.conv_weight, w.conv_bias)
    if w.w_t is None:  # the I-frame baseline: mean-pooled V^c_I, no attention
        return frame_mean(features.v_c, frame_mask), None, None
    # The three terms of Eq. 8: W_t h_{t-1} (expanded over frames), W_I V^s_I, W_r A^s_r.
    step_term = F.linear(h, w.w_t)
    clip_term = F.linear(features.v_s, w.w_i)
    if w.w_r is not None:
        clip_term = clip_term + F.linear(features.a_s, w.w_r)
    f_r, attention = sam_reference(step_term, clip_term, features.v_conv, frame_mask)
    attended = F.linear(f_r, w.w_GR)  # W_GR F^att_R [R, N, D_I]
    if w.w_g is None:  # no temporal gate: the attended feature alone
        return frame_mean(attended, frame_mask), attention, None
    gate_input = F.linear(h, w.w_gt)[:, None] + F.linear(features.a_c, w.w_gr) + F.linear(features.v_c, w.w_gi)
    gate = torch.sigmoid(F.linear(gate_input, w.w_g)).squeeze(-1)  # Eq. 11 [R, N]
    g = gate[..., None]
    fused = g * attended + (1.0 - g) * F.linear(features.v_c, w.w_GI_prime)  # Eq. 12 [R, N, D_I]
    if frame_mask is not None:
        gate = torch.where(frame_mask, gate, 0.0)
    return frame_mean(fused, frame_mask), attention, gate
