"""Attention pictures: where SAM looked and how TGM weighed the frames for each generated word.

    attention, gate = attention_maps(model, v_i, a_r, caption.tokens)   # [T,N,H,W], [T,N]
    draw_attention("clip.png", sample.iframes, words, attention, gate, "a ball moves left",
                   video="/data/clip.mp4", aspect=4 / 3)

`attention_maps` re-runs the decoder with teacher forcing over a caption that was already chosen
(by beam search): the encoder step that predicts word t reads h_{t-1}, so its attention map A_R
and gate G are the ones behind word t.

`draw_attention` draws a grid: a row per word of the caption (every word), a column per sampled
frame. Each cell is the frame under its attention map (bilinear-upsampled from the feature grid,
one colour scale per picture, a translucent heat map: the more attention, the stronger the tint)
with the gate value g above it; the frame the gate weighs most in each row is framed and its g is
bold. A title names the video (its whole path, wrapped) and the caption; a legend at the bottom
explains g, the framed cell and the heat map's colour scale (in multiples of uniform attention).

Layout, so that any caption fits a picture of reasonable size: rows are wrapped into column
blocks of at most ROWS_PER_BLOCK words (a 30-word caption: 3 blocks of 10 rows side by side, read
down, then the next block), and a cell's longer side is the frames' side (64 to 128 px) unless the
blocks would be wider than GRID_WIDTH px, in which case cells shrink (to 48 px at the least, then
fewer, taller blocks). Each cell has the video's display aspect ratio (`aspect`: the frames the
model sees are often square, made by squashing the picture; the caption CLI passes the stream's
width / height, or 1 where the model saw centre crops), so nothing looks stretched.

The picture is laid out in pixels: the cells are one raster (blended in numpy, placed 1:1), text
and cell frames are drawn over it, and the result is written as a palette PNG (256 colours, no
dithering) through Pillow, with the video's path and the caption in its metadata (Title,
Description). Characters that the font lacks (e.g. Chinese in a file name under the default
DejaVu Sans) are drawn ASCII-escaped, like Python's ascii() writes them (\\u4e2d), so matplotlib
never warns about missing glyphs; no text is parsed as mathtext.

matplotlib (the `viz` extra; Pillow comes with it) is imported only when a picture is drawn;
figures are made with the object API on the Agg canvas, so no GUI backend and no pyplot global
state are involved.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vccv_gpu.model import BOS, VCCV
from vccv_gpu.runtime import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["GRID_WIDTH", "ROWS_PER_BLOCK", "attention_figure", "attention_maps", "draw_attention"]

ROWS_PER_BLOCK = 12   # words per column block; longer captions wrap into blocks side by side
GRID_WIDTH = 1400     # px: the blocks' width above which cells shrink
_CELL_MAX, _CELL_MIN, _CELL_FLOOR = 128, 64, 48  # px: a cell's longer side (frames' side clamped; least)
_DPI = 64             # a power of two: pixel sizes / dpi * dpi are exact, so the layout is pixel-exact
_MARGIN, _GAP, _ROW_GAP, _BLOCK_GAP = 10, 6, 4, 28  # px
_WORD_PX, _SMALL_PX, _TITLE_PX, _LEGEND_PX = 15, 12, 14, 12  # text heights (font size) in px
_HIGHLIGHT = "#00a0ff"  # the strongest frame's frame: a blue the inferno heat map does not contain
_GREY = "#555555"


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




def _pt(px: float) -> float:
    """A size in px as the points matplotlib takes at _DPI."""
    return px * 72 / _DPI


def _font_paths() -> tuple[str, ...]:
    """The files of the fonts the picture's text uses (matplotlib's default family, regular and bold)."""
    from matplotlib.font_manager import FontProperties, findfont

    return tuple(findfont(FontProperties(weight=weight)) for weight in ("normal", "bold"))


@functools.lru_cache(maxsize=4096)
def _drawable_char(ch: str, fonts: tuple[str, ...]) -> str:
    from matplotlib.font_manager import get_font

    if ch.isprintable() and all(get_font(path).get_char_index(ord(ch)) for path in fonts):
        return ch
    return ch.encode("ascii", "backslashreplace").decode("ascii")


def _drawable(text: str) -> str:
    """`text` with the characters that the picture's fonts lack, and unprintable ones (a newline,
    an undecodable byte of a file name), ASCII-escaped as ascii() writes them: no glyph is missing."""
    fonts = _font_paths()
    return "".join(_drawable_char(ch, fonts) for ch in text)


def _wrap(text: str, width: float, measure: Callable[[str], float], breaks: str) -> list[str]:
    """`text` cut into lines no wider than `width` px (as `measure` says), preferably after one
    of `breaks`; the lines joined give `text` back."""
    pieces, piece = [], ""
    for ch in text:
        piece += ch
        if ch in breaks:
            pieces.append(piece)
            piece = ""
    if piece:
        pieces.append(piece)
    lines, line = [], ""
    for piece in pieces:
        if line and measure(line + piece) > width:
            lines.append(line)
            line = ""
        while len(piece) > 1 and measure(line + piece) > width:  # (line is empty) a piece wider than a line
            keep = max(1, min(len(piece) - 1, int(len(piece) * width / measure(piece))))
            lines.append(piece[:keep])
            piece = piece[keep:]
        line += piece
    return [*lines, line] if line or not lines else lines


def _heat(attention: Tensor, size: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """Attention maps [..., H, W] -> levels [..., *size] in [0, 1] on one scale for the whole
    picture, and that scale's ends in multiples of uniform attention.

    Values are taken relative to uniform attention (x H*W: 1 = looking everywhere alike), upsampled
    bilinearly to the cell and mapped from the picture's lowest to its highest value; one scale
    makes words and frames comparable (a flat map is a flat tint, not a false peak)."""
    lead, (h, w) = attention.shape[:-2], attention.shape[-2:]
    relative = attention.reshape(-1, 1, h, w).float() * (h * w)
    up = F.interpolate(relative, size=size, mode="bilinear", align_corners=False)[:, 0]
    low, high = float(up.min()), float(up.max())
    level = ((up - low) / max(high - low, 1e-6)).clamp(0, 1).numpy()
    return level.reshape(*lead, *size), low, high


def _colours(level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heat levels -> inferno RGB in [0, 255] and the opacity (0.15 to 0.75: the rest of the frame
    stays visible)."""
    from matplotlib import colormaps

    table = colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255
    return table[np.rint(level * 255).astype(np.intp)], 0.15 + 0.6 * level[..., None]


@dataclass(frozen=True)
class _Layout:
    n_frames: int
    cell: tuple[int, int]   # (width, height) px
    blocks: int
    rows_per_block: int
    label_width: int        # px: the words' column left of each block
    header: int = 0         # px above a block's first row (frame numbers)
    gate_line: int = 0      # px above each cell (its g)

    @property
    def block_width(self) -> int:
        return self.label_width + self.n_frames * self.cell[0] + (self.n_frames - 1) * _GAP

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) px of the grid."""
        return (self.blocks * self.block_width + (self.blocks - 1) * _BLOCK_GAP,
                self.header + self.rows_per_block * (self.gate_line + self.cell[1] + _ROW_GAP))

    def cell_origin(self, row: int, column: int) -> tuple[int, int]:
        """(x, y) px of a cell's top-left corner in the grid, y downwards."""
        block, r = divmod(row, self.rows_per_block)
        return (block * (self.block_width + _BLOCK_GAP) + self.label_width + column * (self.cell[0] + _GAP),
                self.header + r * (self.gate_line + self.cell[1] + _ROW_GAP) + self.gate_line)


def _layout(n_rows: int, n_frames: int, side: int, aspect: float, label_width: int, header: int,
            gate_line: int) -> _Layout:
    """Blocks and cell size of a grid of n_rows x n_frames cells (see the module docstring)."""

    def cell(longer: int) -> tuple[int, int]:
        return (longer, max(1, round(longer / aspect))) if aspect >= 1 else (max(1, round(longer * aspect)), longer)

    def width(blocks: int, longer: int) -> int:
        return _Layout(n_frames, cell(longer), blocks, 1, label_width).size[0]

    blocks = max(1, math.ceil(n_rows / ROWS_PER_BLOCK))
    longer = min(max(side, _CELL_MIN), _CELL_MAX)
    while longer > _CELL_FLOOR and width(blocks, longer) > GRID_WIDTH:
        longer -= 1
    while blocks > 1 and width(blocks, longer) > GRID_WIDTH:
        blocks -= 1
    return _Layout(n_frames, cell(longer), blocks, math.ceil(n_rows / blocks), label_width, header, gate_line)


def attention_figure(frames: Tensor | np.ndarray, words: Sequence[str], attention: Tensor | None,
                     gate: Tensor | None, caption: str, *, frame_indices: Sequence[int] | None = None,
                     video: str | os.PathLike[str] | None = None, aspect: float | None = None) -> Figure:
    """The picture `draw_attention` writes, as a matplotlib Figure on an Agg canvas, 1 px = 1 px.

    Its artists carry gids: "word" (a row's label, one per word), "gate" (a cell's g), "cell" (a
    Rectangle on each cell's bounds, in pixels from the bottom left), "strongest" (the frame of
    each row's strongest cell), "title" (the video's path, wrapped: its lines joined give the
    path), "caption", "legend"."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import IdentityTransform

    frames_np = (frames.cpu().numpy() if isinstance(frames, Tensor) else np.asarray(frames))
    if frames_np.ndim != 4 or frames_np.shape[1] != 3:
        raise ValueError(f"frames must be [N, 3, H, W], got {list(frames_np.shape)}")
    n_frames, frame_h, frame_w = frames_np.shape[0], *frames_np.shape[2:]
    aspect = float(aspect) if aspect else frame_w / frame_h
    if not math.isfinite(aspect) or aspect <= 0:
        raise ValueError(f"aspect must be a positive width / height, got {aspect}")
    words = [_drawable(w) for w in words]
    for name, value, dims in (("attention", attention, 4), ("gate", gate, 2)):
        if value is not None and (value.dim() != dims or value.shape[0] < len(words) or value.shape[1] != n_frames):
            raise ValueError(f"{name} must have a row per word ({len(words)}) and a column per frame "
                             f"({n_frames}), got {list(value.shape)}")
    notes = []
    if attention is None:
        notes.append("this model has no spatial attention: plain frames")
    if gate is None:
        notes.append("no temporal gate: every frame weighs alike")
    per_word = bool(words) and (attention is not None or gate is not None)
    rows: list[int | None] = list(range(len(words))) if per_word else [None]
    labels = words if per_word else ["(frames)" if words else "(empty caption)"]

    fig = Figure(dpi=_DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    fonts: dict[tuple[float, str], Any] = {}
    advances: dict[tuple[float, str, str], float] = {}

    def measure(text: str, px: float = _TITLE_PX, weight: str = "normal") -> float:
        """Width in px of `text`, as the sum of its characters' (no kerning: a px or two at most)."""
        if (px, weight) not in fonts:
            fonts[px, weight] = FontProperties(size=_pt(px), weight=weight)
        total = 0.0
        for ch in text:
            if (px, weight, ch) not in advances:
                advances[px, weight, ch] = renderer.get_text_width_height_descent(ch, fonts[px, weight], False)[0]
            total += advances[px, weight, ch]
        return total

    label_width = math.ceil(max(measure(label, _WORD_PX) for label in labels)) + 10
    layout = _layout(len(rows), n_frames, max(frame_h, frame_w), aspect, label_width,
                     header=_SMALL_PX + 8 if frame_indices is not None else 2,
                     gate_line=_SMALL_PX + 8 if gate is not None and per_word else 2)
    grid_w, grid_h = layout.size
    width = max(grid_w, 420) + 2 * _MARGIN
    text_w = width - 2 * _MARGIN

    # Title: the video's path (lines joined give it back), the caption, what the model lacks.
    title = _wrap(_drawable(os.fspath(video)), text_w, measure, "/\\ _-.") if video is not None else []
    quoted = _drawable(f"\u201c{caption}\u201d" if caption else "(empty caption)")
    caption_lines = _wrap(quoted, text_w, lambda s: measure(s, weight="bold"), " ")
    note_lines = _wrap(f"({'; '.join(notes)})", text_w, measure, " ") if notes else []
    line = round(_TITLE_PX * 1.3)
    title_h = line * (len(title) + len(caption_lines) + len(note_lines)) + 6

    # Legend: the colour bar and what g and the frames mean.
    columns = "the sampled frames" + (", #n = the frame's number in the video" if frame_indices is not None else "")
    if per_word:
        blocks = " (read each block down, then the next block)" if layout.blocks > 1 else ""
        legend = [f"Rows: the caption's words in order{blocks}; columns: {columns}."]
    else:
        legend = [f"Columns: {columns}."]
    if attention is not None and per_word:
        legend.append("Heat: SAM's spatial attention behind the word; the more attention, the stronger the "
                      "tint. One colour scale for the whole picture (bar above), in multiples of uniform "
                      "attention: 1 = looking everywhere alike.")
    if gate is not None and per_word:
        legend.append("g: TGM's temporal gate for that frame and word (0 to 1): how much the frame's "
                      "residual-guided, attended feature counted against its plain I-frame feature. "
                      "Framed in blue, g in bold: the frame the gate weighs most for that word.")
    legend_lines = [part for paragraph in legend for part in _wrap(paragraph, text_w,
                                                                   lambda s: measure(s, _LEGEND_PX), " ")]
    legend_line = round(_LEGEND_PX * 1.35)
    bar_h = 2 * _SMALL_PX + 18 if attention is not None and per_word else 0
    legend_h = bar_h + legend_line * len(legend_lines) + 4
    height = _MARGIN + title_h + grid_h + 10 + legend_h + _MARGIN
    fig.set_size_inches(width / _DPI, height / _DPI)

    def text(x: float, y: float, s: str, px: float, gid: str, **kwargs: Any) -> None:
        """Text at (x, y) px from the top left."""
        fig.text(x, height - y, s, transform=IdentityTransform(), fontsize=_pt(px), gid=gid, parse_math=False,
                 usetex=False, **kwargs)

    y = _MARGIN
    for s in title:
        text(width / 2, y, s, _TITLE_PX, "title", ha="center", va="top")
        y += line
    for s in caption_lines:
        text(width / 2, y, s, _TITLE_PX, "caption", ha="center", va="top", fontweight="bold")
        y += line
    for s in note_lines:
        text(width / 2, y, s, _TITLE_PX, "note", ha="center", va="top", color=_GREY)
        y += line
    grid_x, grid_y = _MARGIN + (text_w - grid_w) // 2, _MARGIN + title_h

    # The cells: frames resized to the cell (aspect), heat blended in, one raster for the picture.
    cell_w, cell_h = layout.cell
    pixels = F.interpolate(torch.from_numpy(frames_np.astype(np.float32)), size=(cell_h, cell_w), mode="bilinear",
                           align_corners=False, antialias=True).permute(0, 2, 3, 1).numpy()  # [N, h, w, 3]
    cells = np.broadcast_to(pixels, (len(rows), *pixels.shape))
    low = high = 0.0
    if attention is not None and per_word:
        level, low, high = _heat(attention[: len(words)], (cell_h, cell_w))
        colour, alpha = _colours(level)
        cells = cells * (1 - alpha) + colour * alpha
    raster = np.full((height, width, 3), 255, np.uint8)
    for r, t in enumerate(rows):
        strongest = int(gate[t].argmax()) if gate is not None and t is not None else None
        for k in range(n_frames):
            x, y = layout.cell_origin(r, k)
            x, y = x + grid_x, y + grid_y
            raster[y:y + cell_h, x:x + cell_w] = np.clip(np.rint(cells[r, k]), 0, 255)
            fig.add_artist(Rectangle((x, height - y - cell_h), cell_w, cell_h, transform=IdentityTransform(),
                                     fill=False, edgecolor="#999999", linewidth=_pt(1), gid="cell"))
            if k == strongest:
                fig.add_artist(Rectangle((x - 2.5, height - y - cell_h - 2.5), cell_w + 5, cell_h + 5,
                                         transform=IdentityTransform(), fill=False, edgecolor=_HIGHLIGHT,
                                         linewidth=_pt(3), gid="strongest"))
            if gate is not None and t is not None:
                text(x + cell_w / 2, y - 5, f"g={float(gate[t, k]):.2f}", _SMALL_PX, "gate", ha="center",
                     va="bottom", fontweight="bold" if k == strongest else "normal")
            if frame_indices is not None and r % layout.rows_per_block == 0:
                text(x + cell_w / 2, grid_y + 2, f"#{int(frame_indices[k])}", _SMALL_PX, "frame", ha="center",
                     va="top", color=_GREY)
        x, y = layout.cell_origin(r, 0)
        text(grid_x + x - 8, grid_y + y + cell_h / 2, labels[r], _WORD_PX, "word", ha="right", va="center")

    y = grid_y + grid_h + 10
    if bar_h:
        bar_w = min(300, text_w - 140)
        bar_x = _MARGIN + (text_w - bar_w) // 2 + 60
        colour, _ = _colours(np.linspace(0, 1, bar_w))
        raster[y:y + 12, bar_x:bar_x + bar_w] = np.rint(colour).astype(np.uint8)[None]
        fig.add_artist(Rectangle((bar_x, height - y - 12), bar_w, 12, transform=IdentityTransform(), fill=False,
                                 edgecolor="#999999", linewidth=_pt(1), gid="bar"))
        text(bar_x - 8, y + 6, "attention:", _SMALL_PX, "legend", ha="right", va="center")
        ticks = [low, high] + ([1.0] if low + 0.1 * (high - low) < 1 < high - 0.1 * (high - low) else [])
        ticks = ticks if high - low > 1e-3 else [low]  # a flat picture: one value
        for value in ticks:
            at = bar_x + (value - low) / max(high - low, 1e-6) * (bar_w - 1)
            text(at, y + 14, f"{value:.2g}\u00d7", _SMALL_PX, "legend", ha="center", va="top")
        y += bar_h
    for s in legend_lines:
        text(_MARGIN, y, s, _LEGEND_PX, "legend", ha="left", va="top")
        y += legend_line
    fig.figimage(raster, xo=0, yo=0, origin="upper", zorder=0)  # (a copy: after the colour bar is in)
    return fig


def draw_attention(path: str | os.PathLike[str], frames: Tensor | np.ndarray, words: Sequence[str],
                   attention: Tensor | None, gate: Tensor | None, caption: str, *,
                   frame_indices: Sequence[int] | None = None, video: str | os.PathLike[str] | None = None,
                   aspect: float | None = None) -> Path:
    """Writes the PNG `path`: a row per word of `words` (row t shows attention[t] and gate[t]),
    a column per frame of `frames` (uint8 [N, 3, H, W]), drawn `aspect` (width / height; None: the
    frames' own) wide; the video's path `video` and the caption are the title.

    attention [T, N, H', W'] / gate [T, N] as from `attention_maps`; None (a variant without SAM /
    TGM) draws the frames only / leaves the gates out, and the title says so. `frame_indices`
    labels the columns with the frames' positions in the video. A 256-colour PNG, written to a
    temporary file and renamed, so `path` is a whole picture or absent."""
    from PIL import Image, PngImagePlugin

    fig = attention_figure(frames, words, attention, gate, caption, frame_indices=frame_indices, video=video,
                           aspect=aspect)
    fig.canvas.draw()
    rgb = np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    # 256 colours (fast octree; dithering would make the file a third bigger): a third of the RGB PNG's size
    image = Image.fromarray(rgb).quantize(256, method=2, dither=0)  # (ints: Image.Quantize / Dither need Pillow 9.1)
    info = PngImagePlugin.PngInfo()
    for key, value in (("Title", None if video is None else os.fspath(video)), ("Description", caption),
                       ("Software", "vccv_gpu.attention")):
        if value is not None:  # iTXt where Latin-1 does not do; undecodable bytes of a name escaped
            info.add_text(key, value.encode("utf-8", "backslashreplace").decode("utf-8"))
    return atomic_write(path, lambda f: image.save(f, format="PNG", pnginfo=info))
