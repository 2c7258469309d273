"""The temporal gate module (TGM), Eq. 11-12: per frame, how much the attended feature counts
against the plain I-frame feature.

Two forms of the same equations:

- as the paper writes them, for every row (beam) and frame: `confidence_gate` (Eq. 11) and
  `gated_fusion` (Eq. 12). The model's literal path uses these.
- rearranged for decoding, `tgm_reference`: the gate's argument is affine in h, so it splits into
  one scalar per step and row (w_G . W_Gt h_{t-1}) and one per frame and clip
  (w_G . (W_Gr A^c_r + W_GI V^c_I), computed once per clip); and the mean over frames that follows
  Eq. 12 commutes with W_GR, so W_GR is applied once, after the mean. The fused Triton kernel
  (`vccv_gpu.kernels.tgm`) computes this form and is tested against it; `temporal_gate` runs one
  or the other, as the backend says. The model's tests check the rearranged path against the
  literal one.

Rows and masks as in `vccv_gpu.model.sam`: R = C * beams rows, clip c's rows contiguous; invalid
frames get a zero gate and no weight in the mean over frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vccv_gpu.kernels.backend import resolve_backend

__all__ = ["confidence_gate", "gated_fusion", "temporal_gate", "tgm_reference"]


def confidence_gate(h: Tensor, a_c: Tensor, v_c: Tensor, w_g: Tensor, w_gt: Tensor, w_gr: Tensor,
                    w_gi: Tensor) -> Tensor:
    """Eq. 11, G = sigmoid(w_G . (W_Gt h_{t-1} + W_Gr A^c_r + W_GI V^c_I)): h [R, hidden], a_c
    [R, N, D_r], v_c [R, N, D_I]; weights as nn.Linear stores them ([out, in]). Returns G [R, N]."""
    inner = F.linear(h, w_gt)[:, None] + F.linear(a_c, w_gr) + F.linear(v_c, w_gi)
    return torch.sigmoid(F.linear(inner, w_g)).squeeze(-1)


def gated_fusion(gate: Tensor, attended: Tensor, fallback: Tensor) -> Tensor:
    """Eq. 12, F^att_G = G W_GR F^att_R + (1 - G) W'_GI V^c_I per frame: gate [R, N], attended
    (W_GR F^att_R) and fallback (W'_GI V^c_I) [R, N, D_I]. W'_GI is a map of its own, D_I -> D_I,
    not Eq. 11's W_GI (D_I -> gate_dim): the paper uses one symbol for both."""
    g = gate[..., None]
    return g * attended + (1.0 - g) * fallback


def tgm_reference(gate_step: Tensor, gate_frame: Tensor, f_r: Tensor, fallback: Tensor,
                  frame_mask: Tensor | None = None, beams: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 11-12 and the mean over frames, rearranged for decoding.

    gate_step [R] = w_G . W_Gt h_{t-1}; gate_frame [C, N] = w_G . (W_Gr A^c_r + W_GI V^c_I);
    f_r [R, N, D_r] = F^att_R; fallback [C, N, D_I] = W'_GI V^c_I. Returns the gate G [R, N] (zero on
    invalid frames) and the two frame means
        pooled_r [R, D_r] = mean_n G_n F^att_R,n   (the caller applies W_GR once: one GEMM),
        pooled_i [R, D_I] = mean_n (1 - G_n) W'_GI V^c_I,n.
    """
    n_clips, n_frames, _ = fallback.shape
    gate = torch.sigmoid(gate_step.reshape(n_clips, beams, 1) + gate_frame[:, None])  # Eq. 11 [C, K, N]
    if frame_mask is None:
        weight = torch.full_like(gate_frame, 1.0 / n_frames)
    else:
        weight = frame_mask / frame_mask.sum(1, keepdim=True).clamp(min=1)
        gate = torch.where(frame_mask[:, None], gate, 0.0)
    weight = weight[:, None].to(gate.dtype)  # [C, 1, N]: the masked mean over frames
    f_r = f_r.reshape(n_clips, beams, n_frames, -1)
    pooled_r = torch.einsum("ckn,cknd->ckd", gate * weight, f_r)  # Eq. 12, first term, before W_GR
    pooled_i = torch.einsum("ckn,cnd->ckd", (1.0 - gate) * weight, fallback)  # Eq. 12, second term
    rows = n_clips * beams
    return gate.reshape(rows, n_frames), pooled_r.reshape(rows, -1), pooled_i.reshape(rows, -1)


def temporal_gate(gate_step: Tensor, gate_frame: Tensor, f_r: Tensor, fallback: Tensor,
                  frame_mask: Tensor | None = None, beams: int = 1,
                  backend: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """`tgm_reference`, or the fused Triton kernel when the backend resolves to triton."""
    if resolve_backend(backend, fallback.device) == "triton":
        from vccv_gpu.kernels.tgm import tgm_triton  # imported on first use: see vccv_gpu.kernels

        return tgm_triton(gate_step, gate_frame, f_r, fallback, frame_mask, beams)
    return tgm_reference(gate_step, gate_frame, f_r, fallback, frame_mask, beams)
