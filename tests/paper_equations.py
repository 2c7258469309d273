"""The VCCV paper's model restated for the tests, independently of vccv_gpu.model: Eq. 3-14 written
afresh from the paper's text (section III) with einsum, one clip, one frame set and one decoding
step at a time, with no code shared with the package. The model is checked against this.

Shapes follow the paper: V_I [N, H, W, D_I], A_r [N, H, W, D_r] for the N valid frames of one clip
(padding is dropped before, not masked), h_{t-1} [hidden]. The weights are the model's own
parameters, looked up by name (`params`: `dict(model.named_parameters())`), so that gradients
through this oracle land on the same tensors as the model's.
"""

from __future__ import annotations

import torch
from torch import Tensor

PAD = 0  # the vocabulary's padding token (paper: none; the model's convention)


def encoder(params: dict[str, Tensor], variant: str, v_i: Tensor, a_r: Tensor,
            h: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """F^att_G of Eq. 2 after the steps the paper lists below Eq. 12 (average pooling along frames,
    linear transformation, ReLU; dropout is left out: the tests run without it), with the
    attention map A_R [N, H*W] and the gate G [N] (None where the variant has none)."""
    p = {name.removeprefix("encoder."): value for name, value in params.items() if name.startswith("encoder.")}
    n, height, width, d_r = a_r.shape
    positions = height * width
    v_c = torch.einsum("nhwd->nd", v_i) / positions  # Eq. 3: average over the spatial dimensions
    a_c = torch.einsum("nhwd->nd", a_r) / positions  # Eq. 4
    attention = gate = None
    if variant == "iframe":  # Tables I/II's "I-frame" row: V^c_I alone
        f_g = v_c
    else:
        # Eq. 5: a 1x1 convolution from D_I to D_r channels
        v_conv = torch.einsum("nhwi,oi->nhwo", v_i, p["conv.weight"]) + p["conv.bias"]
        v_s = torch.einsum("nhwd->nhw", v_conv) / d_r  # Eq. 6: average over the channels
        a_s = torch.einsum("nhwd->nhw", a_r) / d_r  # Eq. 7
        # Eq. 8: W_t h_{t-1} expanded over the N frames (E_alpha), W_I and W_r on the H*W grid
        scores = torch.einsum("pk,k->p", p["w_t.weight"], h)[None, :] + \
            torch.einsum("pq,nq->np", p["w_i.weight"], v_s.reshape(n, positions))
        if variant != "rae_no_gate_no_residual":
            scores = scores + torch.einsum("pq,nq->np", p["w_r.weight"], a_s.reshape(n, positions))
        alpha = torch.tanh(scores)
        attention = torch.exp(alpha) / torch.exp(alpha).sum(1, keepdim=True)  # Eq. 9: over the H*W positions
        # Eq. 10: the attention-weighted average of V^conv_I over the positions (E_A: over channels)
        f_r = torch.einsum("np,npd->nd", attention, v_conv.reshape(n, positions, d_r)) / positions
        attended = torch.einsum("ed,nd->ne", p["w_GR.weight"], f_r)  # W_GR F^att_R
        if variant == "rae":
            # Eq. 11: G = sigmoid(w_G . (W_Gt h_{t-1} + W_Gr A^c_r + W_GI V^c_I)), one value per frame
            inner = torch.einsum("gk,k->g", p["w_gt.weight"], h)[None, :] + \
                torch.einsum("gd,nd->ng", p["w_gr.weight"], a_c) + torch.einsum("gd,nd->ng", p["w_gi.weight"], v_c)
            gate = torch.sigmoid(torch.einsum("g,ng->n", p["w_g.weight"][0], inner))
            # Eq. 12: G W_GR F^att_R + (1 - G) W_GI V^c_I, with its own D_I x D_I map W_GI (w_GI_prime)
            plain = torch.einsum("ed,nd->ne", p["w_GI_prime.weight"], v_c)
            f_g = gate[:, None] * attended + (1 - gate[:, None]) * plain
        else:  # the rows without the gate: the attended feature alone
            f_g = attended
    pooled = f_g.mean(0)  # average pooling along the frames
    return torch.relu(torch.einsum("ed,d->e", p["project.weight"], pooled) + p["project.bias"]), attention, gate


def lstm_step(params: dict[str, Tensor], x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 13's LSTM, one step: the standard cell (input, forget, cell and output gates, stacked in
    that order in the weights as torch.nn.LSTMCell stores them)."""
    z = torch.einsum("gk,k->g", params["lstm.weight_ih"], x) + params["lstm.bias_ih"] + \
        torch.einsum("gk,k->g", params["lstm.weight_hh"], h) + params["lstm.bias_hh"]
    i, f, g, o = z.chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def caption_logits(params: dict[str, Tensor], variant: str, v_i: Tensor, a_r: Tensor, tokens: Tensor) -> Tensor:
    """Teacher forcing for one clip (Eq. 13 and the linear layer after it): the logits [T, V] of
    the word after each of tokens [T], from h_0 = c_0 = 0."""
    hidden = params["lstm.weight_hh"].shape[1]
    h = c = v_i.new_zeros(hidden)
    embedding = params["embed.weight"]
    logits = []
    for token in tokens.tolist():
        visual, _, _ = encoder(params, variant, v_i, a_r, h)
        # the word's embedding x_{t-1}; <pad> keeps its fixed embedding (no gradient), as padding
        x = embedding[token].detach() if token == PAD else embedding[token]
        h, c = lstm_step(params, torch.cat([visual, x]), h, c)  # Eq. 13: [F^att_G; x_{t-1}]
        logits.append(torch.einsum("vk,k->v", params["classifier.weight"], h) + params["classifier.bias"])
    return torch.stack(logits)


def negative_log_likelihood(logits: Tensor, tokens: Tensor) -> Tensor:
    """Eq. 14 as a loss over a batch: minus the mean over the non-padding targets y_t of
    log Pr(y_t | ...), logits [B, T, V] scoring tokens[:, 1:]."""
    log_probs = logits[:, :-1] - torch.logsumexp(logits[:, :-1], dim=-1, keepdim=True)
    targets = tokens[:, 1:]
    picked = torch.gather(log_probs, 2, targets[..., None])[..., 0]
    real = targets != PAD
    return -(picked * real).sum() / real.sum()
