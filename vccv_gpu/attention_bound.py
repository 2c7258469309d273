"""What the best possible spatial attention could read: an upper bound for SAM on a generated set.

    maps = {"object cell": (None, 0), "Eq. 8-9, one cell": (1.0, 0), "whole frame": (0.0, 0)}
    bound = set_attention_bound(features, captions, ("colour", "shape"), maps)
    bound["Eq. 8-9, one cell"]["shape"]   # % of test clips a probe names right from that pooling

SAM (Eq. 8-10) reads a frame as the I-frame features averaged under a softmax over the grid, and
Eq. 8 puts a tanh before that softmax: every logit lies in [-cap, cap] with cap = 1, so one cell
can weigh at most e^2 = 7.4 times another, however sure the model is. Knowing where the named
object is (the generated set's positions.json), `pooled_at_object` averages V_I under the sharpest
map such a cap allows: +cap on the cells within `radius` of the object, -cap everywhere else (cap
None: the object's cells alone; cap 0: the whole frame, i.e. no attention). A small classifier
trained on the training split's pooled features then names the object's attributes in the test
split (`probe_accuracy`). What it cannot name from the best map, SAM cannot either, unless the
decoder reads more out of the features than the probe does; what it names from the object's cells
alone but not from the capped map is lost to Eq. 8's cap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from vccv_gpu.grounding import neighbourhood, track_cells

__all__ = ["best_attention", "pooled_at_object", "probe_accuracy", "set_attention_bound"]


def best_attention(cell: tuple[int, int], grid: tuple[int, int], cap: float | None, radius: int = 0) -> Tensor:
    """The softmax [H, W] of logits +cap on the `grounding.neighbourhood` of `cell` and -cap
    elsewhere; cap None puts all the weight on those cells."""
    near = neighbourhood(cell, grid, radius)
    if cap is None:
        return near.float() / near.sum()
    logits = torch.where(near, cap, -cap).float()
    return torch.softmax(logits.flatten(), 0).reshape(grid)


def pooled_at_object(v_i: Tensor, cells: Sequence[tuple[int, int] | None], cap: float | None,
                     radius: int = 0) -> Tensor | None:
    """V_I [N, H, W, D] averaged under `best_attention` in each frame that shows the object
    (`cells`, one per frame, None where it is not seen), then over those frames [D]; None when
    no frame shows it."""
    grid = tuple(v_i.shape[1:3])
    pooled = [torch.einsum("hw,hwd->d", best_attention(cell, grid, cap, radius), v_i[n].float())
              for n, cell in enumerate(cells) if cell is not None]
    return torch.stack(pooled).mean(0) if pooled else None


def probe_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, hidden: int = 256,
                   steps: int = 500, seed: int = 0) -> float:
    """Share of `test_y` that a one-hidden-layer classifier (as the RAE's linear layer and ReLU
    before the LSTM) trained on (train_x [n, D], train_y [n] class indices) predicts right."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    generator = torch.Generator().manual_seed(seed)
    classes = int(max(train_y.max(), test_y.max())) + 1
    first, last = torch.nn.Linear(train_x.shape[1], hidden), torch.nn.Linear(hidden, classes)
    with torch.no_grad():  # seeded here, so that the bound does not depend on the caller's RNG state
        for layer in (first, last):
            bound = layer.in_features ** -0.5
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
    probe = torch.nn.Sequential(first, torch.nn.ReLU(), last)
    optimiser = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-3)
    inputs = (train_x - mean) / std
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(probe(inputs), train_y).backward()
        optimiser.step()
    with torch.no_grad():
        return float((probe((test_x - mean) / std).argmax(1) == test_y).float().mean())


def set_attention_bound(features: str | Path, captions: str | Path, attributes: Sequence[str],
                        maps: Mapping[str, tuple[float | None, int]], train: str = "train",
                        test: str = "test") -> dict[str, dict[str, float]]:
    """Per map (name -> (cap, radius) of `pooled_at_object`) and attribute of the named object
    (`synthetic.attribute_named`), the % of a generated set's `test` clips whose attribute a probe
    trained on the `train` clips names right from the V_I of the store `features` so pooled."""
    from vccv_gpu.data import load_dataset
    from vccv_gpu.data.synthetic import attribute_named, named_tracks
    from vccv_gpu.features import FeatureStore

    samples = [s for s in load_dataset("csv", captions) if s.split in (train, test)]
    tracks = named_tracks(Path(captions).parent / "positions.json", samples)
    pooled: dict[str, dict[str, list[Tensor]]] = {split: {name: [] for name in maps} for split in (train, test)}
    labels: dict[str, list[list[str | None]]] = {train: [], test: []}
    with FeatureStore(features) as store:
        for sample in samples:
            v_i, _ = store.load(sample.video_path)
            cells = track_cells(tracks[str(sample.video_path)], store.info(sample.video_path)["frames"], store.config)
            rows = {name: pooled_at_object(v_i, cells, cap, radius) for name, (cap, radius) in maps.items()}
            if any(row is None for row in rows.values()):
                continue  # no sampled frame shows the object
            for name, row in rows.items():
                pooled[sample.split][name].append(row)
            labels[sample.split].append([attribute_named(sample.captions[0], a) for a in attributes])
    if not labels[train] or not labels[test]:
        raise ValueError(f"{captions}: no {train} or no {test} clip shows its named object in a sampled frame")
    x = {name: {split: torch.stack(pooled[split][name]) for split in labels} for name in maps}
    bound: dict[str, dict[str, float]] = {name: {} for name in maps}
    for k, attribute in enumerate(attributes):
        values = sorted({str(row[k]) for rows in labels.values() for row in rows})
        y = {split: torch.tensor([values.index(str(row[k])) for row in labels[split]]) for split in labels}
        for name in maps:
            bound[name][attribute] = 100 * probe_accuracy(x[name][train], y[train], x[name][test], y[test])
    return bound
