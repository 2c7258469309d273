"""Eq. 3-7: the features the encoder draws from a clip's V_I and A_r before looking at the decoder
state, by average pooling over space (for TGM) and over channels (for SAM).

Layout: features are channel-last, V_I [C, N, H, W, D_I] and A_r [C, N, H, W, D_r] for C clips of
N frames; the H x W grid is flattened to HW positions. `frame_mask` [C, N] (bool) marks the valid
frames of clips shorter than N; None means all valid.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ClipFeatures", "clip_features"]


class ClipFeatures(NamedTuple):
    """Eq. 3-7 of a batch of clips (the convolution terms are None when there is no convolution)."""

    v_c: Tensor  # V^c_I [C, N, D_I]
    a_c: Tensor  # A^c_r [C, N, D_r]
    v_conv: Tensor | None  # V^conv_I [C, N, HW, D_r]
    v_s: Tensor | None  # V^s_I [C, N, HW]
    a_s: Tensor  # A^s_r [C, N, HW]


def clip_features(v_i: Tensor, a_r: Tensor, frame_mask: Tensor | None, conv_weight: Tensor | None,
                  conv_bias: Tensor | None) -> ClipFeatures:
    """Eq. 3-7 from V_I [C, N, H, W, D_I] and A_r [C, N, H, W, D_r]; conv_weight [D_r, D_I] and
    conv_bias [D_r] are Eq. 5's 1x1 convolution (None: the I-frame baseline has none)."""
    if frame_mask is not None:  # padded frames may hold anything, even NaN: make them zeros
        valid = frame_mask[:, :, None, None, None]
        v_i = torch.where(valid, v_i, 0.0)
        a_r = torch.where(valid, a_r, 0.0)
    v_i = v_i.flatten(2, 3)  # [C, N, HW, D_I]
    a_r = a_r.flatten(2, 3)
    v_c = v_i.mean(2)  # Eq. 3: V^c_I, the mean over the H x W positions
    a_c = a_r.mean(2)  # Eq. 4: A^c_r
    v_conv = v_s = None
    if conv_weight is not None:
        v_conv = F.linear(v_i, conv_weight, conv_bias)  # Eq. 5: a 1x1 convolution D_I -> D_r
        v_s = v_conv.mean(3)  # Eq. 6: V^s_I, the mean over the D_r channels
    a_s = a_r.mean(3)  # Eq. 7: A^s_r
    return ClipFeatures(v_c, a_c, v_conv, v_s, a_s)
