"""Attention pictures: where SAM looked and how TGM weighed the frames for each generated word.

    attention, gate = attention_maps(model, v_i, a_r, caption.tokens)   # [T,N,H,W], [T,N]
    draw_attention("clip.png", sample.iframes, words, attention, gate, "a ball moves left")

`attention_maps` re-runs the decoder with teacher forcing over a caption that was already chosen
(by beam search): the encoder step that predicts word t reads h_{t-1}, so its attention map A_R
and gate G are the ones behind word t. `draw_attention` draws a grid, one row per word and one
column per sampled frame, each frame under its attention map (bilinear-upsampled from the feature
grid, one colour scale per picture, as a translucent heat map) and titled with its gate value
(the frame the gate weighs most in each row in bold).

matplotlib (the `viz` extra) is imported only when a picture is drawn; figures are made with the
object API on the Agg canvas, so no GUI backend and no pyplot global state are involved.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vccv_gpu.model import BOS, VCCV
from vccv_gpu.runtime import atomic_write

__all__ = ["MAX_WORDS", "attention_maps", "draw_attention"]

MAX_WORDS = 12  # rows of a picture; longer captions show their first MAX_WORDS words
_CELL_INCHES = 1.5
_DPI = 72


@torch.no_grad()
def attention_maps(model: VCCV, v_i: Tensor, a_r: Tensor,
                   tokens: Sequence[int] | Tensor) -> tuple[Tensor | None, Tensor | None]:
    """SAM's attention [T, N, H, W] and TGM's gate [T, N] (float32, CPU) behind each of the T
    `tokens` of one clip (v_i [1 or none, N, H, W, D_I], a_r likewise), fed to the decoder with
    teacher forcing from <bos>. Either is None when the model's variant has no such module."""
    if v_i.dim() == 4:
        v_i, a_r = v_i[None], a_r[None]
    if v_i.shape[0] != 1:
        raise ValueError(f"attention_maps takes one clip, got {v_i.shape[0]}")
    tokens = [int(t) for t in (tokens.tolist() if isinstance(tokens, Tensor) else tokens)]
    n, (h, w) = v_i.shape[1], model.config.grid
    was_training = model.training
    model.eval()  # no dropout: the maps of the caption beam search produced
    try:
        constants = model.precompute(v_i, a_r)
        state = model.initial_state(1, v_i)
        previous = torch.tensor([BOS], device=v_i.device)
        maps: list[Tensor] = []
        gates: list[Tensor] = []
        for token in tokens:
            _, state, step = model.decode_step(previous, state, constants)
            if step.attention is not None:
                maps.append(step.attention[0].float().reshape(n, h, w).cpu())
            if step.gate is not None:
                gates.append(step.gate[0].float().cpu())
            previous = torch.tensor([token], device=v_i.device)
    finally:
        model.train(was_training)
    attention = torch.stack(maps) if maps else None
    gate = torch.stack(gates) if gates else None
    if not tokens:  # nothing decoded: empty tensors where the module exists
        attention = torch.zeros(0, n, h, w) if model.encoder.attends else None
        gate = torch.zeros(0, n) if model.encoder.gated else None
    return attention, gate


def _overlays(attention: Tensor, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Attention maps [..., H, W] -> RGBA heat maps [..., *size, 4] on one scale for the whole
    picture, and the scale's top in multiples of uniform attention.

    Values are taken relative to uniform attention (x H*W: 1 = looking everywhere alike), upsampled
    bilinearly to the frame and mapped from the picture's lowest to its highest value onto both
    colour and opacity, so where the model looks is tinted and the rest of the frame stays visible;
    one scale makes words and frames comparable (a flat map is a flat tint, not a false peak)."""
    from matplotlib import colormaps

    lead, (h, w) = attention.shape[:-2], attention.shape[-2:]
    relative = attention.reshape(-1, 1, h, w).float() * (h * w)
    up = F.interpolate(relative, size=size, mode="bilinear", align_corners=False)[:, 0]
    low, high = float(up.min()), float(up.max())
    level = ((up - low) / max(high - low, 1e-6)).clamp(0, 1).numpy()
    rgba = colormaps["inferno"](level)
    rgba[..., 3] = 0.15 + 0.6 * level
    return rgba.reshape(*lead, *size, 4), high


def draw_attention(path: str | os.PathLike[str], frames: Tensor | np.ndarray, words: Sequence[str],
                   attention: Tensor | None, gate: Tensor | None, caption: str, *,
                   frame_indices: Sequence[int] | None = None, video: str | None = None) -> Path:
    """Writes the PNG `path`: rows = the first MAX_WORDS `words` (row t shows attention[t] and
    gate[t], which need rows for the words shown only), columns = the N `frames` (uint8
    [N, 3, S, S]); the caption is the figure title.

    attention [T, N, H, W] / gate [T, N] as from `attention_maps`; None (a variant without SAM /
    TGM) draws the frames only / leaves the gates out, and the title says so. `frame_indices`
    labels the columns with the frames' positions in the video; `video` is named in the title.
    Written to a temporary file and renamed, so `path` is a whole picture or absent."""
    from matplotlib.figure import Figure

    frames_np = (frames.cpu().numpy() if isinstance(frames, Tensor) else np.asarray(frames))
    if frames_np.ndim != 4 or frames_np.shape[1] != 3:
        raise ValueError(f"frames must be [N, 3, S, S], got {list(frames_np.shape)}")
    frames_np = frames_np.transpose(0, 2, 3, 1).astype(np.uint8)
    n_frames, side = frames_np.shape[0], frames_np.shape[1:3]
    words = list(words)
    notes = []
    if len(words) > MAX_WORDS:
        notes.append(f"first {MAX_WORDS} of {len(words)} words")
        words = words[:MAX_WORDS]
    for name, value, dims in (("attention", attention, 4), ("gate", gate, 2)):
        if value is not None and (value.dim() != dims or value.shape[0] < len(words) or value.shape[1] != n_frames):
            raise ValueError(f"{name} must have a row per word shown ({len(words)}) and a column per frame "
                             f"({n_frames}), got {list(value.shape)}")
    if attention is None:
        notes.append("this model has no spatial attention: frames only")
        rows = [None]  # one row of plain frames
    else:
        rows = list(range(len(words))) or [None]
    if gate is None:
        notes.append("no temporal gate: every frame weighs 1")
    heat = None
    if attention is not None and words:
        heat, peak = _overlays(attention[: len(words)], tuple(side))
        notes.append(f"heat: SAM attention, brightest = {peak:.1f}x uniform")

    fig = Figure(figsize=(n_frames * _CELL_INCHES + 1.4, len(rows) * _CELL_INCHES + 1.1), dpi=_DPI,
                 layout="constrained")
    axes = fig.subplots(len(rows), n_frames, squeeze=False)
    for r, t in enumerate(rows):
        for k in range(n_frames):
            ax = axes[r][k]
            ax.imshow(frames_np[k])
            if t is not None and heat is not None:
                ax.imshow(heat[t, k], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            label = []
            if r == 0 and frame_indices is not None:
                label.append(f"#{int(frame_indices[k])}")
            if t is not None and gate is not None:
                label.append(f"g={float(gate[t, k]):.2f}")
            if label:  # the frame the gate weighs most in bold
                strongest = t is not None and gate is not None and k == int(gate[t].argmax())
                ax.set_title("  ".join(label), fontsize=9, fontweight="bold" if strongest else "normal")
        row_label = words[t] if t is not None else ("(frames)" if words else "(empty caption)")
        axes[r][0].set_ylabel(row_label, rotation=0, ha="right", va="center", fontsize=12, labelpad=8)
    heading = textwrap.fill(f"\u201c{caption}\u201d" if caption else "(empty caption)", width=max(40, 12 * n_frames))
    if video:
        heading = f"{video}\n{heading}"
    if notes:
        heading += f"\n({'; '.join(notes)})"
    fig.suptitle(heading, fontsize=11)

    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=_DPI))
