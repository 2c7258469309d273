"""The residuals-assisted encoder (RAE, paper section III-A, Eq. 2-12): the visual feature that
feeds the LSTM decoder at each step, from the clip's features and the decoder's last state.

Eq. 2, F^att_G = RAE(V_I, A_r, h_{t-1}), runs in one of two ways (the model's backend):

- `literal`: `RAE.literal`, the paper as written: every term recomputed from (V_I, A_r, h_{t-1}) at
  every step, each row (beam) with its own copy of its clip's features. Slow; the other path is
  tested against it.
- `reference` or `triton`: what does not depend on h_{t-1} is computed once per clip
  (`RAE.precompute`: Eq. 3-7 and the clip terms of Eq. 8 and 11), and each step (`RAE.step`) runs
  only the rest, for all beams of all clips at once: SAM (`sam.spatial_attention`) and TGM
  (`tgm.temporal_gate`), in plain PyTorch or as fused Triton kernels.

The equations themselves are written once: Eq. 3-7 in `clip_features`, Eq. 8-10 in `sam`,
Eq. 11-12 in `tgm`; this module holds the weights and puts them together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .clip_features import ClipFeatures, clip_features
from .config import VCCVConfig
from .sam import sam_reference, spatial_attention
from .tgm import confidence_gate, gated_fusion, temporal_gate

__all__ = ["RAE", "W_R_INIT_SCALE", "ClipConstants", "EncoderStep", "frame_mean"]

# Eq. 8's W_r at the start of training: this times the centred identity (see RAE.__init__).
W_R_INIT_SCALE = 3.0


def frame_mean(x: Tensor, frame_mask: Tensor | None, beams: int = 1) -> Tensor:
    """The average pooling along frames that follows Eq. 12, over the valid frames:
    x [C*beams, N, ...] -> [C*beams, ...]."""
    if frame_mask is None:
        return x.mean(1)
    valid = frame_mask.repeat_interleave(beams, 0)
    valid = valid.reshape(valid.shape + (1,) * (x.dim() - 2))
    count = valid.sum(1).clamp(min=1)
    return torch.where(valid, x, 0.0).sum(1) / count


@dataclass
class ClipConstants:
    """Everything about a batch of C clips that does not depend on the decoder state: computed once
    per clip by `RAE.precompute` and shared by all decoding steps and all beams."""

    backend: str  # "literal", "reference" or "triton"
    frame_mask: Tensor | None  # [C, N] bool, None: all frames valid
    v_i: Tensor | None = None  # the literal backend keeps the raw features and recomputes from them
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
    The weights are named after the paper's symbols (w_GI_prime: Eq. 12's W_GI, see
    `tgm.gated_fusion`); their names are the checkpoints' keys.
    """

    def __init__(self, config: VCCVConfig) -> None:
        super().__init__()
        self.config = config
        self.attends = config.variant != "iframe"
        self.uses_residuals = config.variant in ("rae_no_gate", "rae")
        self.gated = config.variant == "rae"
        positions, c = config.positions, config
        if self.attends:
            self.conv = nn.Linear(c.d_i, c.d_r)  # Eq. 5: the 1x1 convolution D_I -> D_r, on channel-last features
            self.w_t = nn.Linear(c.hidden, positions, bias=False)  # Eq. 8
            self.w_i = nn.Linear(positions, positions, bias=False)
            # W_t and W_I start at zero, so that attention starts where the residuals say (W_r below),
            # or uniform without them, rather than at random: Eq. 8's tanh leaves little room for the
            # residual term to outvote random ones. On the generated set with two still distractors
            # (CNN_r pretrained with the "where" target, 3 seeds, full RAE), object words' pointing
            # game 57 +- 3 % from the default initialisation, 65 +- 3 % from zero; colour 73 -> 80 %.
            nn.init.zeros_(self.w_t.weight)
            nn.init.zeros_(self.w_i.weight)
            self.w_GR = nn.Linear(c.d_r, c.d_i, bias=False)  # Eq. 12
            # Eq. 10 divides the attended sum by H x W, so F^att_R starts at 1/(H W) of a weighted mean of
            # V^conv_I, and W_GR F^att_R H W times (49 on the 7 x 7 grid) below Eq. 12's plain path W_GI' V^c_I:
            # the variants without a gate then hardly see, and the gated one opens its gate wide (0.84 on
            # average) to hear the attended path. The layers on either side start
            # sqrt(H W) times PyTorch's default, Eq. 5's conv and W_GR, so the attended feature starts on the
            # plain one's scale. Ablation (issue 24, 300 clips, 3 seeds): CIDEr 446 -> 425 (full RAE; 428 over 6 seeds),
            # 311 -> 404 (no gate), 230 -> 256 (no gate, no residuals; I-frame 238); the moving shape's
            # shape 76 -> 79 % (81 % over 6 seeds). All of it in W_GR (x49) made half
            # the seeds of the full RAE collapse: the larger steps it gives everything before it killed the
            # ReLUs after the frame mean and the gate shut on the plain path. All of it in the conv left the
            # full RAE as it was.
            with torch.no_grad():
                for weight in (self.conv.weight, self.conv.bias, self.w_GR.weight):
                    weight.mul_(math.sqrt(positions))
        if self.uses_residuals:
            self.w_r = nn.Linear(positions, positions, bias=False)  # Eq. 8
            # W_r starts as the centred identity, scaled: each position's term is its own A^s_r minus the
            # frame's mean, times W_R_INIT_SCALE, so attention starts where the residuals are. On the
            # generated set with two still distractors (3 seeds, full RAE), from a random W_r the object
            # words' pointing game was 21 % (chance 18 %), from the centred identity 39 %, CIDEr unchanged
            # (300 vs 297). Scaled (later recipe, CNN_I's per-cell target; 3 seeds): x1, x2, x3, x6 gave the
            # moving shape's colour 84, 87, 87, 85 %, its shape 75, 77, 76, 72 %, attention mass near it
            # 39, 42, 41, 44 %, pointing 74, 77, 76, 69 %, CIDEr 423, 434, 446, 439 (a steeper start
            # puts the positions with little residual near the tanh's floor from the first step).
            with torch.no_grad():
                self.w_r.weight.copy_(W_R_INIT_SCALE * (torch.eye(positions) - 1.0 / positions))
        if self.gated:
            self.w_g = nn.Linear(c.gate_dim, 1, bias=False)  # Eq. 11
            self.w_gt = nn.Linear(c.hidden, c.gate_dim, bias=False)
            self.w_gr = nn.Linear(c.d_r, c.gate_dim, bias=False)
            self.w_gi = nn.Linear(c.d_i, c.gate_dim, bias=False)
            self.w_GI_prime = nn.Linear(c.d_i, c.d_i, bias=False)  # Eq. 12
            # Every gate starts at sigmoid(0) = 1/2, an even mix of the attended and the plain I-frame
            # path. From a random w_G the gates of the generated-set ablation closed on the plain path
            # early in 2 of 3 seeds and never reopened (test CIDEr 367 +- 103; from zero: 517 +- 21).
            nn.init.zeros_(self.w_g.weight)
        self.project = nn.Linear(c.d_i, c.d_i)
        self.dropout = nn.Dropout(c.dropout)

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

    def clip_features(self, v_i: Tensor, a_r: Tensor, frame_mask: Tensor | None) -> ClipFeatures:
        """Eq. 3-7 with this encoder's convolution."""
        conv = getattr(self, "conv", None)
        return clip_features(v_i, a_r, frame_mask, None if conv is None else conv.weight,
                             None if conv is None else conv.bias)

    def clip_term(self, features: ClipFeatures) -> Tensor:
        """The terms of Eq. 8 without h: W_I V^s_I + W_r A^s_r (no W_r without residuals) [C, N, HW]."""
        term = self.w_i(features.v_s)
        return term + self.w_r(features.a_s) if self.uses_residuals else term

    def literal(self, h: Tensor, v_i: Tensor, a_r: Tensor, frame_mask: Tensor | None = None,
                beams: int = 1) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Eq. 2 as the paper writes it: Eq. 3-12 recomputed from v_i [C, N, H, W, D_I], a_r
        [C, N, H, W, D_r] and h [C*beams, hidden], each row with its own copy of its clip's
        features. Returns the mean over valid frames of F^att_G [R, D_I] (before the linear
        layer, ReLU and dropout), the attention map [R, N, HW] and the gate [R, N] (None where
        the variant has none)."""
        if beams > 1:
            v_i, a_r = v_i.repeat_interleave(beams, 0), a_r.repeat_interleave(beams, 0)
            frame_mask = None if frame_mask is None else frame_mask.repeat_interleave(beams, 0)
        features = self.clip_features(v_i, a_r, frame_mask)  # Eq. 3-7
        if not self.attends:  # the I-frame baseline: mean-pooled V^c_I, no attention
            return frame_mean(features.v_c, frame_mask), None, None
        f_r, attention = sam_reference(self.w_t(h), self.clip_term(features), features.v_conv, frame_mask)  # Eq. 8-10
        attended = self.w_GR(f_r)  # W_GR F^att_R [R, N, D_I]
        if not self.gated:  # no temporal gate: the attended feature alone
            return frame_mean(attended, frame_mask), attention, None
        gate = confidence_gate(h, features.a_c, features.v_c, self.w_g.weight, self.w_gt.weight,
                               self.w_gr.weight, self.w_gi.weight)  # Eq. 11 [R, N]
        fused = gated_fusion(gate, attended, self.w_GI_prime(features.v_c))  # Eq. 12 [R, N, D_I]
        if frame_mask is not None:
            gate = torch.where(frame_mask, gate, 0.0)
        return frame_mean(fused, frame_mask), attention, gate

    def precompute(self, v_i: Tensor, a_r: Tensor, frame_mask: Tensor | None = None,
                   backend: str = "reference") -> ClipConstants:
        """The per-clip constants of v_i [C, N, H, W, D_I], a_r [C, N, H, W, D_r]; backend: "literal",
        "reference" or "triton" (already resolved, see `vccv_gpu.kernels.backend`)."""
        self.check_features(v_i, a_r, frame_mask)
        if backend == "literal":
            return ClipConstants(backend, frame_mask, v_i=v_i, a_r=a_r)
        features = self.clip_features(v_i, a_r, frame_mask)
        if not self.attends:
            return ClipConstants(backend, frame_mask, mean_visual=frame_mean(features.v_c, frame_mask))
        constants = ClipConstants(backend, frame_mask, query_weight=self.w_t.weight, v_conv=features.v_conv,
                                  clip_term=self.clip_term(features))
        if self.gated:  # Eq. 11 is affine in h inside the sigmoid: split it per step and per frame
            w_g = self.w_g.weight
            gate_of_h = w_g @ self.w_gt.weight  # [1, hidden]: w_G . W_Gt h = h . (W_Gt^T w_G)
            constants.query_weight = torch.cat([self.w_t.weight, gate_of_h])  # one GEMM per step for both
            constants.gate_frame = F.linear(self.w_gr(features.a_c) + self.w_gi(features.v_c), w_g).squeeze(-1)
            constants.fallback = self.w_GI_prime(features.v_c)
        return constants

    def step(self, h: Tensor, constants: ClipConstants, beams: int = 1) -> EncoderStep:
        """The visual input of one decoding step from h_{t-1} [C*beams, hidden]."""
        mask, attention, gate = constants.frame_mask, None, None
        if constants.backend == "literal":
            pooled, attention, gate = self.literal(h, constants.v_i, constants.a_r, mask, beams)
        elif not self.attends:
            pooled = constants.mean_visual.repeat_interleave(beams, 0) if beams > 1 else constants.mean_visual
        else:
            backend = constants.backend
            query = F.linear(h, constants.query_weight)
            positions = constants.clip_term.shape[-1]
            f_r, attention = spatial_attention(query[:, :positions], constants.clip_term, constants.v_conv, mask,
                                               beams, backend=backend)  # Eq. 8-10
            if self.gated:  # Eq. 11-12 and the frame mean
                gate, pooled_r, pooled_i = temporal_gate(query[:, positions], constants.gate_frame, f_r,
                                                         constants.fallback, mask, beams, backend=backend)
                pooled = torch.addmm(pooled_i, pooled_r, self.w_GR.weight.t())  # W_GR once, after the mean
            else:
                pooled = F.linear(frame_mean(f_r, mask, beams), self.w_GR.weight)
        visual = self.dropout(F.relu(self.project(pooled)))  # after the frame mean: linear, ReLU, dropout
        return EncoderStep(visual, attention, gate)
