"""The residuals-assisted encoder (RAE, paper section III-A): per-clip constants and the per-step
visual feature that feeds the LSTM decoder.

The equations themselves live once, in `vccv_gpu.kernels.reference` (the literal Eq. 3-12 and the
plain-PyTorch form of the two fused ops); this module holds the weights, splits the work into what
is computed once per clip (`precompute`) and what runs at every decoding step for every beam
(`step`), and dispatches the per-step ops to the Triton kernels or their references.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vccv_gpu import kernels
from vccv_gpu.kernels.reference import RAEWeights, clip_features, frame_mean, rae_literal

from .config import RAEConfig

# How the per-step ops run: the kernel backends, plus "literal" (everything recomputed each step).
MODES: tuple[str, ...] = kernels.BACKENDS + ("literal",)


def resolve_mode(requested: str | None, device: torch.device) -> str:
    """'literal', 'triton' or 'reference' (see `vccv_gpu.kernels.resolve_backend`)."""
    name = requested or os.environ.get(kernels.ENV_VAR) or "auto"
    if name == "literal":
        return name
    if name not in MODES:
        raise ValueError(f"kernels must be one of {MODES}, got {name!r}")
    return kernels.resolve_backend(name, device)


@dataclass
class ClipConstants:
    """Everything about a batch of C clips that does not depend on the decoder state: computed once
    per clip by `RAE.precompute` and shared by all decoding steps and all beams."""

    mode: str
    frame_mask: Tensor | None  # [C, N] bool, None: all frames valid
    v_i: Tensor | None = None  # literal mode keeps the raw features and recomputes from them
    a_r: Tensor | None = None
    mean_visual: Tensor | None = None  # I-frame baseline: mean over frames of V^c_I [C, D_I]
    query_weight: Tensor | None = None  # [HW (+1), hidden]: W_t, and w_G W_Gt when gated
    clip_term: Tensor | None = None  # W_I V^s_I + W_r A^s_r [C, N, HW]
    v_conv: Tensor | None = None  # V^conv_I [C, N, HW, D_r]
    gate_frame: Tensor | None = None  # w_G . (W_Gr A^c_r + W_GI V^c_I) [C, N]
    fallback: Tensor | None = None  # W'_GI V^c_I [C, N, D_I]


class EncoderStep(NamedTuple):
    visual: Tensor  # F^att_G after the frame mean, linear layer, ReLU and dropout [R, D_I]
    attention: Tensor | None  # A_R [R, N, HW], for visualisation
    gate: Tensor | None  # G [R, N]


class RAE(nn.Module):
    """Residuals-assisted encoder. The variant picks a row of the paper's Tables I/II:

    - `iframe` ("I-frame"): the mean over frames of V^c_I (Eq. 3); no attention, no residuals.
    - `rae_no_gate_no_residual` ("RAE w/o gate and residuals"): SAM with Eq. 8 lacking the
      W_r A^s_r term, so attention from h and the I-frames only; F = mean_n W_GR F^att_R.
    - `rae_no_gate` ("RAE w/o gate"): SAM with the residual term of Eq. 8; F = mean_n W_GR F^att_R.
    - `rae` ("RAE (full)"): SAM and the temporal gate, Eq. 11-12.

    In every variant the frame mean is followed by a linear layer (D_I -> D_I), ReLU and dropout.
    """

    def __init__(self, config: RAEConfig) -> None:
        super().__init__()
        self.config = config
        self.attends = config.variant != "iframe"
        self.uses_residuals = config.variant in ("rae_no_gate", "rae")
        self.gated = config.variant == "rae"
        positions, c = config.positions, config
        if self.attends:
            self.conv = nn.Linear(c.d_i, c.d_r)  # the 1x1 convolution D_I -> D_r, on channel-last features
            self.w_t = nn.Linear(c.hidden, positions, bias=False)
            self.w_i = nn.Linear(positions, positions, bias=False)
            self.w_GR = nn.Linear(c.d_r, c.d_i, bias=False)
        if self.uses_residuals:
            self.w_r = nn.Linear(positions, positions, bias=False)
        if self.gated:
            self.w_g = nn.Linear(c.gate_dim, 1, bias=False)
            self.w_gt = nn.Linear(c.hidden, c.gate_dim, bias=False)
            self.w_gr = nn.Linear(c.d_r, c.gate_dim, bias=False)
            self.w_gi = nn.Linear(c.d_i, c.gate_dim, bias=False)
            self.w_GI_prime = nn.Linear(c.d_i, c.d_i, bias=False)
            # Every gate starts at sigmoid(0) = 1/2, an even mix of the attended and the plain I-frame
            # path. From a random w_G the gates of the generated-set ablation closed on the plain path
            # early in 2 of 3 seeds and never reopened (test CIDEr 367 +- 103; from zero: 517 +- 21).
            nn.init.zeros_(self.w_g.weight)
        self.project = nn.Linear(c.d_i, c.d_i)
        self.dropout = nn.Dropout(c.dropout)

    def weights(self) -> RAEWeights:
        def get(name: str, part: str = "weight") -> Tensor | None:
            module = getattr(self, name, None)
            return None if module is None else getattr(module, part)

        return RAEWeights(get("conv"), get("conv", "bias"), get("w_t"), get("w_i"), get("w_r"), get("w_g"),
                          get("w_gt"), get("w_gr"), get("w_gi"), get("w_GR"), get("w_GI_prime"))

    def check_features(self, v_i: Tensor, a_r: Tensor, frame_mask: Tensor | None) -> None:
        c = self.config
        expected_i = (c.n_frames, *c.grid, c.d_i)
        expected_r = (c.n_frames, *c.grid, c.d_r)
        if v_i.dim() != 5 or tuple(v_i.shape[1:]) != expected_i:
            raise ValueError(f"v_i must be [B, {', '.join(map(str, expected_i))}], got {list(v_i.shape)}")
        if a_r.dim() != 5 or tuple(a_r.shape[1:]) != expected_r or a_r.shape[0] != v_i.shape[0]:
            raise ValueError(f"a_r must be [{v_i.shape[0]}, {', '.join(map(str, expected_r))}], got {list(a_r.shape)}")
        if frame_mask is not None:
            if frame_mask.dtype != torch.bool or tuple(frame_mask.shape) != (v_i.shape[0], c.n_frames):
                raise ValueError(f"frame_mask must be bool [{v_i.shape[0]}, {c.n_frames}], "
                                 f"got {frame_mask.dtype} {list(frame_mask.shape)}")
            if not bool(frame_mask.any(1).all()):
                raise ValueError("every clip needs at least one valid frame")

    def precompute(self, v_i: Tensor, a_r: Tensor, frame_mask: Tensor | None = None,
                   mode: str = "reference") -> ClipConstants:
        """The per-clip constants of v_i [C, N, H, W, D_I], a_r [C, N, H, W, D_r]."""
        self.check_features(v_i, a_r, frame_mask)
        if mode == "literal":
            return ClipConstants(mode, frame_mask, v_i=v_i, a_r=a_r)
        w = self.weights()
        features = clip_features(v_i, a_r, frame_mask, w.conv_weight, w.conv_bias)
        if not self.attends:
            return ClipConstants(mode, frame_mask, mean_visual=frame_mean(features.v_c, frame_mask))
        constants = ClipConstants(mode, frame_mask, query_weight=w.w_t, v_conv=features.v_conv)
        clip_term = F.linear(features.v_s, w.w_i)  # the per-clip terms of Eq. 8
        if self.uses_residuals:
            clip_term = clip_term + F.linear(features.a_s, w.w_r)
        constants.clip_term = clip_term
        if self.gated:  # Eq. 11 is affine in h inside the sigmoid: split it per step and per frame
            gate_of_h = w.w_g @ w.w_gt  # [1, hidden]: w_G . W_Gt h = h . (W_Gt^T w_G)
            constants.query_weight = torch.cat([w.w_t, gate_of_h])  # one GEMM per step for both
            gate_frame = F.linear(F.linear(features.a_c, w.w_gr) + F.linear(features.v_c, w.w_gi), w.w_g)
            constants.gate_frame = gate_frame.squeeze(-1)
            constants.fallback = F.linear(features.v_c, w.w_GI_prime)
        return constants

    def step(self, h: Tensor, constants: ClipConstants, beams: int = 1) -> EncoderStep:
        """The visual input of one decoding step from h_{t-1} [C*beams, hidden]."""
        mask, attention, gate = constants.frame_mask, None, None
        if constants.mode == "literal":
            pooled, attention, gate = rae_literal(self.weights(), constants.v_i, constants.a_r, h, mask, beams)
        elif not self.attends:
            pooled = constants.mean_visual.repeat_interleave(beams, 0) if beams > 1 else constants.mean_visual
        else:
            backend = constants.mode
            query = F.linear(h, constants.query_weight)
            positions = constants.clip_term.shape[-1]
            f_r, attention = kernels.spatial_attention(query[:, :positions], constants.clip_term, constants.v_conv,
                                                       mask, beams, backend=backend)
            if self.gated:
                gate, pooled_r, pooled_i = kernels.temporal_gate(query[:, positions], constants.gate_frame, f_r,
                                                                 constants.fallback, mask, beams, backend=backend)
                pooled = torch.addmm(pooled_i, pooled_r, self.w_GR.weight.t())  # W_GR once, after the mean
            else:
                pooled = F.linear(frame_mean(f_r, mask, beams), self.w_GR.weight)
        visual = self.dropout(F.relu(self.project(pooled)))
        return EncoderStep(visual, attention, gate)
