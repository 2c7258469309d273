"""Grounding: does SAM's attention fall on the object a word names?

    cells = [object_cell(x, y, width, height, size=112, grid=(7, 7)) for x, y in centres]  # per frame
    score = grounding(attention[word_rows], cells)      # attention [T, N, H, W] from attention_maps
    score.mass, score.uniform_mass, score.pointing      # means over (word, frame) pairs
    track_cells(track, frames, config)  # a synthetic.named_tracks track's cells in those frames
    clip_grounding(model, vocab, v_i, a_r, caption, frames, track, config, groups)  # one clip
    set_grounding(model, vocab, features, captions, groups, split="test")  # a generated set's clips

For every (word, frame) pair whose frame shows the object: the share of the frame's attention
within `radius` cells (Chebyshev) of the cell holding the object's centre, the share a uniform map
would put there (the same neighbourhood's size / H*W, smaller at the borders), and the pointing
game (whether the map's arg-max cell lies in that neighbourhood). Object positions come from the
generated set's positions.json (`vccv_gpu.data.synthetic`), in the video's pixels; `object_cell`
maps them through the front end's resize (squash, or keep_aspect's centre crop) onto the grid.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from vccv_gpu.backbones import BackboneConfig
    from vccv_gpu.data import Vocabulary
    from vccv_gpu.model import VCCV

__all__ = ["GroundingScore", "clip_grounding", "grounding", "neighbourhood", "object_cell", "set_grounding",
           "track_cells"]


def object_cell(x: float, y: float, width: int, height: int, size: int, grid: tuple[int, int],
                keep_aspect: bool = False) -> tuple[int, int] | None:
    """(row, column) of the feature-grid cell that sees video pixel (x, y) of a width x height
    frame sampled at size x size (`codec.resample`'s geometry); None outside the sampled view."""
    if keep_aspect:  # short side to `size`, centre crop of the long side
        scale = size / min(width, height)
        x0 = (round(width * scale) - size) // 2
        y0 = (round(height * scale) - size) // 2
        u, v = x * scale - x0, y * scale - y0
    else:
        u, v = x * size / width, y * size / height
    if not (0 <= u < size and 0 <= v < size):
        return None
    rows, cols = grid
    return min(int(v * rows / size), rows - 1), min(int(u * cols / size), cols - 1)


def track_cells(track: Mapping[str, Any], frames: Sequence[int],
                config: BackboneConfig) -> list[tuple[int, int] | None]:
    """The grid cell that sees the object of `track` (`synthetic.named_tracks`: its video's
    "size", and its "centre" and "visible" per video frame) in each of `frames` (display indices;
    -1 for none); None where there is no frame, the object is hidden or outside the sampled view."""
    width, height = track["size"]
    return [object_cell(*track["centre"][f], width, height, config.size, config.grid, config.keep_aspect)
            if f >= 0 and track["visible"][f] else None for f in frames]


@dataclass(frozen=True)
class GroundingScore:
    """Sums over scored (word, frame) pairs; scores of several clips add up (`+`)."""

    pairs: int = 0            # (word, frame) pairs scored
    mass_sum: float = 0.0     # attention within the neighbourhood
    uniform_sum: float = 0.0  # what a uniform map puts there
    hits: int = 0             # pairs whose arg-max cell lies in the neighbourhood

    def __add__(self, other: GroundingScore) -> GroundingScore:
        return GroundingScore(self.pairs + other.pairs, self.mass_sum + other.mass_sum,
                              self.uniform_sum + other.uniform_sum, self.hits + other.hits)

    def _mean(self, total: float) -> float:
        return total / self.pairs if self.pairs else float("nan")

    @property
    def mass(self) -> float:
        """Mean attention mass within `radius` cells of the object."""
        return self._mean(self.mass_sum)

    @property
    def uniform_mass(self) -> float:
        return self._mean(self.uniform_sum)

    @property
    def pointing(self) -> float:
        """Share of pairs whose arg-max cell lies within `radius` cells of the object."""
        return self._mean(self.hits)

    @property
    def mass_ratio(self) -> float:
        """mass / uniform_mass: 1 is no better than looking everywhere alike."""
        return self.mass_sum / self.uniform_sum if self.uniform_sum else float("nan")


def neighbourhood(cell: tuple[int, int], grid: tuple[int, int], radius: int = 1) -> Tensor:
    """bool [H, W]: the cells within `radius` (Chebyshev) of `cell`, clipped to the grid: where
    `grounding` scores attention, and where `attention_bound` puts its ideal maps."""
    rows, cols = grid
    r, c = cell
    near = torch.zeros(rows, cols, dtype=torch.bool)
    near[max(r - radius, 0):r + radius + 1, max(c - radius, 0):c + radius + 1] = True
    return near


def grounding(attention: Tensor, cells: Sequence[tuple[int, int] | None], radius: int = 1) -> GroundingScore:
    """Scores attention maps [T, N, H, W] (T words, N frames) against the object's cell in each
    frame (`cells`, length N; None where the object is not visible, which leaves the frame out)."""
    words, frames, rows, cols = attention.shape
    if len(cells) != frames:
        raise ValueError(f"{len(cells)} object cells for {frames} frames")
    score = GroundingScore()
    for n, cell in enumerate(cells):
        if cell is None or not words:
            continue
        near = neighbourhood(cell, (rows, cols), radius)
        maps = attention[:, n].float()                                   # [T, H, W]
        total = maps.sum(dim=(1, 2)).clamp_min(1e-12)
        best = maps.reshape(words, -1).argmax(dim=1)
        score += GroundingScore(
            pairs=words, mass_sum=float((torch.where(near, maps, 0.0).sum(dim=(1, 2)) / total).sum()),
            uniform_sum=words * int(near.sum()) / (rows * cols), hits=int(near.flatten()[best].sum()))
    return score


def clip_grounding(model: VCCV, vocab: Vocabulary, v_i: Tensor, a_r: Tensor, caption: str, frames: Sequence[int],
                   track: Mapping[str, Any], config: BackboneConfig,
                   groups: Mapping[str, Collection[str]], radius: int = 1) -> dict[str, GroundingScore]:
    """Per group of words (e.g. {"object": colours and shapes, "motion": ...}), the grounding of
    SAM's attention behind those words of `caption` (teacher-forced: `attention.attention_maps`)
    on the object of `track` (`track_cells`), over the sampled `frames` (display indices) of one
    clip's features v_i, a_r [N, H, W, D]."""
    from vccv_gpu.attention import attention_maps

    words = vocab.encode(caption)[1:-1]  # without <bos> and <eos>
    attention, _ = attention_maps(model, v_i.float(), a_r.float(), words)
    if attention is None:
        raise ValueError("this model variant has no spatial attention (SAM) to score")
    cells = track_cells(track, frames, config)
    names = [vocab.words[t] for t in words]
    scores = {}
    for group, members in groups.items():
        rows = [t for t, word in enumerate(names) if word in members]
        scores[group] = grounding(attention[rows], cells, radius)
    return scores


def set_grounding(model: VCCV, vocab: Vocabulary, features: str | Path, captions: str | Path,
                  groups: Mapping[str, Collection[str]], split: str | None = None,
                  radius: int = 1) -> dict[str, GroundingScore]:
    """`clip_grounding` summed over the videos (of `split`, default all) of a generated set: its
    captions.csv `captions`, the positions.json beside it, and their features in the store
    `features` (`vccv_gpu.extract`); each clip teacher-forced on its first caption."""
    from vccv_gpu.data import load_dataset
    from vccv_gpu.data.synthetic import named_tracks
    from vccv_gpu.features import FeatureStore

    samples = load_dataset("csv", captions, split=split)
    tracks = named_tracks(Path(captions).parent / "positions.json", samples)
    totals = {group: GroundingScore() for group in groups}
    with FeatureStore(features) as store:
        for sample in samples:
            v_i, a_r = store.load(sample.video_path)
            scores = clip_grounding(model, vocab, v_i, a_r, sample.captions[0], store.info(sample.video_path)["frames"],
                                    tracks[str(sample.video_path)], store.config, groups, radius)
            totals = {group: totals[group] + scores[group] for group in totals}
    return totals
