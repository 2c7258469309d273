"""GPU kernels of vccv_gpu (installed as `vccv_gpu.kernels`).

The per-decoding-step part of the residuals-assisted encoder, as two fused ops:

- `spatial_attention`: the spatial attention module (SAM, paper Eq. 8-10): tanh, softmax over
  the H x W positions and attention-weighted pooling of V^conv_I, from the per-step term W_t h
  and per-clip constants.
- `temporal_gate`: the temporal gate module (TGM, Eq. 11-12) and the mean over frames: the frame
  gates from one scalar per step and one per frame, and the two gated frame means (W_GR is
  applied once, after).

Each op has a Triton implementation (`sam.py`, `tgm.py`, forward and backward) and a plain
PyTorch one beside it (`reference.py`, which also holds the literal Eq. 3-12); the tests compare
them. Which one runs: the `backend` argument, else the environment variable VCCV_KERNELS:
`auto` (default: Triton for CUDA tensors, the reference elsewhere), `triton` or `reference`.
Triton on CPU tensors needs TRITON_INTERPRET=1 set before the kernels are first used (slow:
for tests only).
"""

from __future__ import annotations

from torch import Tensor

from .backend import BACKENDS, ENV_VAR, resolve_backend
from .reference import sam_reference, tgm_reference
from .residual import reconstruct_residual

__all__ = ["BACKENDS", "ENV_VAR", "reconstruct_residual", "resolve_backend", "spatial_attention", "temporal_gate"]


def spatial_attention(step_term: Tensor, clip_term: Tensor, v_conv: Tensor, frame_mask: Tensor | None = None,
                      beams: int = 1, backend: str | None = None) -> tuple[Tensor, Tensor]:
    """SAM, Eq. 8-10: step_term [R, HW] (W_t h), clip_term [C, N, HW] (W_I V^s_I + W_r A^s_r),
    v_conv [C, N, HW, D_r], frame_mask [C, N] bool, R = C * beams. Returns F^att_R [R, N, D_r] and
    the attention map [R, N, HW], zero on invalid frames. See `reference.sam_reference`."""
    if resolve_backend(backend, v_conv.device) == "triton":
        from .sam import sam_triton

        return sam_triton(step_term, clip_term, v_conv, frame_mask, beams)
    return sam_reference(step_term, clip_term, v_conv, frame_mask, beams)


def temporal_gate(gate_step: Tensor, gate_frame: Tensor, f_r: Tensor, fallback: Tensor,
                  frame_mask: Tensor | None = None, beams: int = 1,
                  backend: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """TGM, Eq. 11-12 with the mean over frames: gate_step [R], gate_frame [C, N], f_r [R, N, D_r],
    fallback [C, N, D_I] (W'_GI V^c_I). Returns the gate [R, N], mean_n G F_R [R, D_r] and
    mean_n (1 - G) W'_GI V^c_I [R, D_I]. See `reference.tgm_reference`."""
    if resolve_backend(backend, fallback.device) == "triton":
        from .tgm import tgm_triton

        return tgm_triton(gate_step, gate_frame, f_r, fallback, frame_mask, beams)
    return tgm_reference(gate_step, gate_frame, f_r, fallback, frame_mask, beams)
