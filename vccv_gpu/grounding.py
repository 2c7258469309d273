"""Grounding: does SAM's attention fall on the object a word names?

    cells = [object_cell(x, y, width, height, size=112, grid=(7, 7)) for x, y in centres]  # per frame
    score = grounding(attention[word_rows], cells)      # attention [T, N, H, W] from attention_maps
    score.mass, score.uniform_mass, score.pointing      # means over (word, frame) pairs

For every (word, frame) pair whose frame shows the object: the share of the frame's attention
within `radius` cells (Chebyshev) of the cell holding the object's centre, the share a uniform map
would put there (the same neighbourhood's size / H*W, smaller at the borders), and the pointing
game (whether the map's arg-max cell lies in that neighbourhood). Object positions come from the
generated set's positions.json (`vccv_gpu.data.synthetic`), in the video's pixels; `object_cell`
maps them through the front end's resize (squash, or keep_aspect's centre crop) onto the grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

__all__ = ["GroundingScore", "grounding", "object_cell"]


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


@dataclass(frozen=True)
class GroundingScore:
    pairs: int            # (word, frame) pairs scored
    mass: float           # mean attention within the neighbourhood
    uniform_mass: float   # mean of what a uniform map puts there
    pointing: float       # share of pairs whose arg-max cell lies in the neighbourhood

    @property
    def mass_ratio(self) -> float:
        """mass / uniform_mass: 1 is no better than looking everywhere alike."""
        return self.mass / self.uniform_mass if self.uniform_mass else float("nan")


def grounding(attention: Tensor, cells: Sequence[tuple[int, int] | None], radius: int = 1) -> GroundingScore:
    """Scores attention maps [T, N, H, W] (T words, N frames) against the object's cell in each
    frame (`cells`, length N; None where the object is not visible). Frames without the object
    are left out; with no pair left, every mean is nan."""
    words, frames, rows, cols = attention.shape
    if len(cells) != frames:
        raise ValueError(f"{len(cells)} object cells for {frames} frames")
    mass = uniform = hits = 0.0
    pairs = 0
    for n, cell in enumerate(cells):
        if cell is None:
            continue
        r, c = cell
        r0, r1, c0, c1 = max(r - radius, 0), min(r + radius + 1, rows), max(c - radius, 0), min(c + radius + 1, cols)
        maps = attention[:, n].float()                                   # [T, H, W]
        total = maps.sum(dim=(1, 2)).clamp_min(1e-12)
        mass += float((maps[:, r0:r1, c0:c1].sum(dim=(1, 2)) / total).sum())
        uniform += words * (r1 - r0) * (c1 - c0) / (rows * cols)
        best = maps.reshape(words, -1).argmax(dim=1)
        best_r, best_c = best // cols, best % cols
        hits += float(((best_r >= r0) & (best_r < r1) & (best_c >= c0) & (best_c < c1)).sum())
        pairs += words
    if not pairs:
        nan = float("nan")
        return GroundingScore(0, nan, nan, nan)
    return GroundingScore(pairs, mass / pairs, uniform / pairs, hits / pairs)
