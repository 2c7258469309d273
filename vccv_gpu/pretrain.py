"""Pretraining the backbones on a captioned video set, for when no pretrained weights fit.

The paper takes CNN_I from ImageNet (an object classifier) and trains CNN_r for action recognition
on HMDB-51 residual frames. Neither data set is reachable everywhere, so this trains the same kind
of networks on the training split of a caption set, with the caption words as labels:

* each network reads the N sampled frames of a clip (appearance frames for CNN_I, residual frames
  for CNN_r), pools its last feature map per frame and scores every target word with one linear
  layer; the clip's score is the mean over its frames (segment consensus, as in TSN and CoViAR);
* the loss is binary cross-entropy against the set of words in the clip's captions;
* `--iframe-words` / `--residual-words` choose each network's labels (default: every word of the
  vocabulary). Naming, say, only object and colour words for CNN_I makes it an object classifier
  like the paper's ImageNet network, one that never learns motion from the frames.
* `iframe_scene` (CLI `--iframe-scene POSITIONS_JSON`) adds, per video, words for what the frames
  show that the captions do not name: CNN_I's targets become everything in the frame, as ImageNet's are for the
  photo's object. Where a caption names one object of several (the generated set's distractors,
  `synthetic.scene_words`, or on the command line the set's positions.json: every object's colour
  and shape), the caption's words alone are a target one frame cannot
  meet: which of the shapes is the named one is told only by motion. Taught the colours and
  shapes of every object instead, CNN_I's features say what is where, and the attention (SAM) can
  pick the named one out.
* `residual_where` (CLI `--residual-where POSITIONS_JSON`) adds a target for CNN_r: where the
  object the caption names is (`synthetic.named_tracks`). The channel mean of CNN_r's feature
  map, Eq. 7's A^s_r, is what steers SAM's attention through Eq. 8 (W_r starts as a scaled centred identity);
  taught as logits over the grid against the object's neighbourhood in each residual frame (its
  cell and the cells next to it, alike), it peaks where the named object moves, not merely where
  residuals are large. Validation then
  also reports how often A^s_r alone would point at the object (within one cell).
* `iframe_cells` (CLI `--iframe-cells POSITIONS_JSON`) adds a target for CNN_I: what is at each cell
  of its feature grid, the colour and the shape of the object centred there or "none" (one linear
  layer per cell, cross-entropy; `synthetic.scene_tracks`). Word targets pooled over the frame do
  not ask the features at an object's cell to tell its shape, and SAM reads the named object
  there: on the generated set with two distractors, a probe names the object's shape from V_I at
  its cell in 84 % of test clips without this target, 98 % with it (`vccv_gpu.attention_bound`).
  Validation then also reports how often the cells with an object are told right.

Validation (the val split) reports each network's mean average precision over its words. The
result is one backbones file (`FeatureExtractor.save`) for `vccv_gpu.extract --backbones FILE`.

    python -m vccv_gpu.pretrain --data captions.csv --out backbones.safetensors \
        --iframe tiny --residual tiny --size 112 --segments 8

Clips are sampled once and kept in memory (uint8 frames and float16 residuals: about
N x 3 x size^2 x 3 bytes a clip, 0.9 MB for 8 segments at 112 pixels); `--max-clips` bounds it.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vccv_gpu.backbones import ARCHITECTURES, BackboneConfig, FeatureExtractor, MissingWeights
from vccv_gpu.codec import ClipLoader
from vccv_gpu.codec.plan import RESIDUAL_MODES
from vccv_gpu.data import DATA_FORMATS, Sample, Vocabulary, detect_format, load_dataset, tokenize
from vccv_gpu.data.synthetic import named_tracks, objects_shown, scene_tracks
from vccv_gpu.grounding import track_cells
from vccv_gpu.runtime import plain_warnings, resolve_device

__all__ = ["PretrainOptions", "PretrainResult", "main", "pretrain"]


@dataclass
class PretrainOptions:
    data: list[str]
    out: str
    data_format: str = "auto"
    video_dir: str | None = None
    iframe: str = "tiny"
    residual: str = "tiny"
    size: int = 112
    segments: int = 8
    residual_mode: str = "middle"
    init_iframe: str = "none"
    init_residual: str = "none"
    iframe_words: list[str] | None = None  # None: every vocabulary word
    residual_words: list[str] | None = None
    iframe_scene: Mapping[str, Collection[str]] | None = None  # video path -> more CNN_I target words
    residual_where: Mapping[str, Mapping[str, Any]] | None = None  # video path -> the named object's track
    iframe_cells: Mapping[str, Mapping[str, Any]] | None = None  # video path -> every object's track
    epochs: int = 30
    batch: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    max_clips: int | None = None
    progress: bool | None = None


@dataclass
class PretrainResult:
    path: Path
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: losses, val mAP


@dataclass
class _Clips:
    iframes: Tensor    # uint8 [C, N, 3, S, S]
    residuals: Tensor  # float16 [C, N, 3, S, S]
    words: list[set[str]]
    scene: list[set[str]]  # CNN_I's extra targets (PretrainOptions.iframe_scene), per clip
    cells: Tensor | None  # int64 [C, N]: the grid cell (row * W + column) of the named object in each
    #                       residual frame, -1 where it is not seen (PretrainOptions.residual_where)
    contents: Tensor | None = None  # int64 [C, N, H*W, 2]: per cell of each I-frame, the colour and shape
    #                                 class of the object centred there, 0 for none (PretrainOptions.iframe_cells)


class _WordHead(nn.Module):
    """A backbone's clip-level word scores: per-frame pooled features -> linear -> mean over frames."""

    def __init__(self, dim: int, words: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, words)

    def forward(self, features: Tensor, clips: int) -> Tensor:
        pooled = features.mean(dim=(2, 3))  # [C*N, D]
        return self.linear(pooled).view(clips, -1, self.linear.out_features).mean(dim=1)


def _sample(samples: list[Sample], config: BackboneConfig, opts: PretrainOptions, what: str,
            classes: tuple[list[str], list[str]]) -> _Clips:
    loader = ClipLoader([s.video_path for s in samples], batch_size=8, num_segments=config.num_segments,
                        size=config.size, residual=config.residual_mode, workers=opts.workers,
                        progress=opts.progress)
    by_path = {s.video_path: s for s in samples}
    iframes, residuals, words, scene, cells, contents = [], [], [], [], [], []
    extra = {str(path): extra for path, extra in (opts.iframe_scene or {}).items()}
    tracks = {str(path): track for path, track in (opts.residual_where or {}).items()}
    scenes = {str(path): scene for path, scene in (opts.iframe_cells or {}).items()}
    for batch in loader:
        for err in batch.errors:
            print(f"warning: skipped {err.path}: {err.reason}", file=sys.stderr)
        iframes.append(batch.iframes)
        residuals.append(batch.residuals)
        words += [{w for c in by_path[p].captions for w in tokenize(c)} for p in batch.paths]
        scene += [{w.lower() for w in extra.get(str(p), ())} for p in batch.paths]
        if opts.residual_where is not None:
            cells += [_object_cells(tracks.get(str(p)), sample.residual_frames, config)
                      for p, sample in zip(batch.paths, batch.samples)]
        if opts.iframe_cells is not None:
            contents += [_cell_contents(scenes.get(str(p)), sample.frame_indices, config, classes)
                         for p, sample in zip(batch.paths, batch.samples)]
    if not words:
        raise ValueError(f"no {what} clip could be read")
    return _Clips(torch.cat(iframes), torch.cat(residuals), words, scene, torch.tensor(cells) if cells else None,
                  torch.stack(contents) if contents else None)


def _cell_classes(scenes: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """The colours and shapes that `PretrainOptions.iframe_cells` tells CNN_I apart (class k + 1; 0: none)."""
    objects = [o for scene in scenes.values() for o in scene["objects"]]
    return sorted({o["colour"] for o in objects}), sorted({o["shape"] for o in objects})


def _cell_contents(scene: Mapping[str, Any] | None, frames: Sequence[int], config: BackboneConfig,
                   classes: tuple[list[str], list[str]]) -> Tensor:
    """[N, H*W, 2]: per cell of each sampled frame, the colour and shape class of the object whose
    centre it sees (`classes`, 1-based), 0 where none does or the video has no scene."""
    rows, cols = config.grid
    out = torch.zeros(len(frames), rows * cols, 2, dtype=torch.long)
    for obj in (scene or {}).get("objects", ()):
        track = {"size": scene["size"], "centre": obj["centre"], "visible": obj["visible"]}
        for n, cell in enumerate(track_cells(track, frames, config)):
            if cell is not None:
                out[n, cell[0] * cols + cell[1]] = torch.tensor([classes[0].index(obj["colour"]) + 1,
                                                                 classes[1].index(obj["shape"]) + 1])
    return out


def _cells_loss(head: nn.Linear, features: Tensor, contents: Tensor, colours: int) -> Tensor:
    """CNN_I's per-cell target: cross-entropy of one linear layer's colour and shape scores at every
    cell (`colours` + 1 colour classes, then the shape classes) against `contents` [C, N, H*W, 2];
    features [C*N, D, H, W]."""
    scores = head(features.flatten(2).transpose(1, 2))  # [C*N, H*W, classes]
    contents = contents.reshape(-1, 2).to(scores.device)
    scores = scores.reshape(-1, scores.shape[-1])
    return (F.cross_entropy(scores[:, :colours + 1], contents[:, 0]) +
            F.cross_entropy(scores[:, colours + 1:], contents[:, 1]))


def _cells_right(head: nn.Linear, features: Tensor, contents: Tensor, colours: int) -> tuple[int, int]:
    """(cells with an object whose colour and shape the head tells right, cells with an object)."""
    scores = head(features.flatten(2).transpose(1, 2)).reshape(-1, head.out_features).cpu()
    contents = contents.reshape(-1, 2)
    occupied = contents[:, 0] > 0
    colour_right = scores[:, :colours + 1].argmax(1) == contents[:, 0]
    right = colour_right & (scores[:, colours + 1:].argmax(1) == contents[:, 1])
    return int((right & occupied).sum()), int(occupied.sum())


def _object_cells(track: Mapping[str, Any] | None, residual_frames: list[tuple[int, ...]],
                  config: BackboneConfig) -> list[int]:
    """The grid cell (row * W + column) that sees the object of `track` in the middle frame of
    each residual frame's sources; -1 where there is none, the object is hidden or outside the view."""
    if track is None:
        return [-1] * len(residual_frames)
    middle = [sources[len(sources) // 2] if sources else -1 for sources in residual_frames]
    return [-1 if cell is None else cell[0] * config.grid[1] + cell[1] for cell in track_cells(track, middle, config)]


def _where_loss(features: Tensor, cells: Tensor) -> Tensor:
    """CNN_r's "where" target: the channel mean of its feature map (Eq. 7's A^s_r, which steers
    SAM through Eq. 8), as logits over the grid, against the named object's neighbourhood: its
    cell and the cells next to it, alike (soft cross-entropy over the frames that see it). The
    object spans about two cells of the grid, and Eq. 8's tanh lets one cell weigh at most e^2
    times another, so a map spread over the neighbourhood is what SAM can use: the sharpest map
    Eq. 8 allows reads the object's colour in 96 % of test clips over its 3x3 cells, 76 % over its
    one cell (`vccv_gpu.attention_bound`). features [C*N, D, H, W], cells [C, N]."""
    rows, cols = features.shape[2:]
    logits = features.mean(dim=1).flatten(1)
    targets = cells.reshape(-1).to(logits.device)
    seen = targets >= 0
    if not bool(seen.any()):
        return logits.sum() * 0.0
    row, col = targets[seen] // cols, targets[seen] % cols
    grid_rows = torch.arange(rows, device=logits.device)[None, :, None]
    grid_cols = torch.arange(cols, device=logits.device)[None, None, :]
    near = ((grid_rows - row[:, None, None]).abs() <= 1) & ((grid_cols - col[:, None, None]).abs() <= 1)
    target = near.flatten(1).float()
    target = target / target.sum(dim=1, keepdim=True)
    return -(target * F.log_softmax(logits[seen], dim=1)).sum(dim=1).mean()


def _pointing(features: Tensor, cells: Tensor, grid: tuple[int, int]) -> tuple[int, int]:
    """(frames whose A^s_r peaks within one cell of the object, frames that see the object)."""
    peak = features.mean(dim=1).flatten(1).argmax(1).cpu()
    targets = cells.reshape(-1)
    seen = targets >= 0
    cols = grid[1]
    near = ((peak // cols - targets // cols).abs() <= 1) & ((peak % cols - targets % cols).abs() <= 1)
    return int((near & seen).sum()), int(seen.sum())


def _targets(words: list[set[str]], labels: list[str]) -> Tensor:
    index = {w: i for i, w in enumerate(labels)}
    out = torch.zeros(len(words), len(labels))
    for row, clip_words in enumerate(words):
        for w in clip_words & index.keys():
            out[row, index[w]] = 1.0
    return out


def _role_words(clips: _Clips, role: str) -> list[set[str]]:
    """Each clip's target words for one backbone: the captions' words, and for CNN_I also the scene's."""
    return [w | s for w, s in zip(clips.words, clips.scene)] if role == "iframe" else clips.words


def _average_precision(scores: Tensor, targets: Tensor) -> float:
    """Mean over labels (with at least one positive) of the average precision of the ranking."""
    aps = []
    for k in range(targets.shape[1]):
        positives = targets[:, k].sum()
        if positives == 0:
            continue
        order = scores[:, k].argsort(descending=True)
        hits = targets[order, k]
        precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
        aps.append(float((precision * hits).sum() / positives))
    return 100.0 * sum(aps) / len(aps) if aps else math.nan


def _labels(requested: list[str] | None, captions: list[str], role: str) -> list[str]:
    """The requested label words (each must occur in the training captions), or by default the
    caption vocabulary's words (those seen at least 3 times)."""
    if requested is None:
        return Vocabulary.build(captions).words[4:]
    seen = {w for c in captions for w in tokenize(c)}
    unknown = [w for w in requested if w not in seen]
    if unknown:
        raise ValueError(f"--{role}-words not in the training captions: {', '.join(unknown)}")
    return list(dict.fromkeys(requested))


def pretrain(opts: PretrainOptions) -> PretrainResult:
    """Trains CNN_I and CNN_r as word classifiers (see the module docstring); writes opts.out."""
    torch.manual_seed(opts.seed)
    device = resolve_device(opts.device)
    config = BackboneConfig(opts.iframe, opts.residual, size=opts.size, num_segments=opts.segments,
                            residual_mode=opts.residual_mode)
    kind = detect_format(opts.data, opts.data_format)
    train = load_dataset(kind, opts.data, opts.video_dir, split="train")
    val = load_dataset(kind, opts.data, opts.video_dir, split="val")
    if not train:
        raise ValueError(f"no training videos in {', '.join(opts.data)}")
    if opts.max_clips is not None:
        train = train[:opts.max_clips]
    captions = [c for s in train for c in s.captions]
    labels = {"iframe": _labels(opts.iframe_words, captions, "iframe"),
              "residual": _labels(opts.residual_words, captions, "residual")}
    extractor = FeatureExtractor(config, opts.init_iframe, opts.init_residual).to(device)
    heads = nn.ModuleDict({role: _WordHead(ARCHITECTURES[name][0], len(labels[role]))
                           for role, name in (("iframe", opts.iframe), ("residual", opts.residual))}).to(device)

    classes = _cell_classes(opts.iframe_cells) if opts.iframe_cells is not None else ([], [])
    train_clips = _sample(train, config, opts, "training", classes)
    val_clips = _sample(val, config, opts, "validation", classes) if val else None
    targets = {role: _targets(_role_words(train_clips, role), labels[role]) for role in labels}
    cells_head, colours = None, 0
    if opts.iframe_cells is not None:  # made here, so that without it the random stream is as before
        colours, shapes = (len(c) for c in classes)
        cells_head = nn.Linear(ARCHITECTURES[opts.iframe][0], colours + 1 + shapes + 1).to(device)
        heads["cells"] = cells_head  # trained with the word heads, not saved
    params = list(extractor.parameters()) + list(heads.parameters())
    optimiser = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    steps = opts.epochs * math.ceil(len(train_clips.words) / opts.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, opts.lr, total_steps=max(steps, 1))

    def scores(clips: _Clips, rows: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Both networks' word scores, and their feature maps (CNN_I's, CNN_r's)."""
        frames = extractor.normalise_frames(clips.iframes[rows].to(device))
        iframe_features = extractor.cnn_i(frames)
        residual_features = extractor.cnn_r(extractor.normalise_residuals(clips.residuals[rows].to(device)))
        return ({"iframe": heads["iframe"](iframe_features, len(rows)),
                 "residual": heads["residual"](residual_features, len(rows))}, iframe_features, residual_features)

    history: list[dict[str, float]] = []
    from tqdm import tqdm

    for epoch in tqdm(range(opts.epochs), desc="pretraining", unit="epoch", disable=opts.progress is False):
        extractor.train()
        heads.train()
        totals = dict.fromkeys(["iframe", "residual"] + (["where"] if train_clips.cells is not None else []) +
                               (["cells"] if cells_head is not None else []), 0.0)
        order = torch.randperm(len(train_clips.words))
        for start in range(0, len(order), opts.batch):
            rows = order[start:start + opts.batch]
            out, iframe_features, residual_features = scores(train_clips, rows)
            losses = {role: F.binary_cross_entropy_with_logits(out[role], targets[role][rows].to(device))
                      for role in out}
            if train_clips.cells is not None:
                losses["where"] = _where_loss(residual_features, train_clips.cells[rows])
            if cells_head is not None:
                losses["cells"] = _cells_loss(cells_head, iframe_features, train_clips.contents[rows], colours)
            optimiser.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            optimiser.step()
            schedule.step()
            for role, loss in losses.items():
                totals[role] += loss.item() * len(rows)
        record = {f"loss_{role}": total / len(order) for role, total in totals.items()}
        record["epoch"] = epoch + 1
        if val_clips is not None:
            extractor.eval()
            heads.eval()
            batches, near, seen, told, occupied = [], 0, 0, 0, 0
            with torch.no_grad():
                for start in range(0, len(val_clips.words), opts.batch):
                    rows = torch.arange(start, min(start + opts.batch, len(val_clips.words)))
                    out, iframe_features, residual_features = scores(val_clips, rows)
                    batches.append({role: v.cpu() for role, v in out.items()})
                    if val_clips.cells is not None:
                        hits, frames = _pointing(residual_features, val_clips.cells[rows], config.grid)
                        near, seen = near + hits, seen + frames
                    if cells_head is not None:
                        right, objects = _cells_right(cells_head, iframe_features, val_clips.contents[rows], colours)
                        told, occupied = told + right, occupied + objects
            for role in labels:
                record[f"val_map_{role}"] = _average_precision(torch.cat([b[role] for b in batches]),
                                                               _targets(_role_words(val_clips, role), labels[role]))
            if seen:  # how often A^s_r alone would win SAM's pointing game
                record["val_pointing_residual"] = 100.0 * near / seen
            if occupied:  # cells with an object whose colour and shape CNN_I's cell head tells right
                record["val_cells_iframe"] = 100.0 * told / occupied
        history.append(record)
        print("  ".join(f"{k} {v:.4g}" for k, v in record.items()), file=sys.stderr)
    path = extractor.cpu().eval().save(opts.out)
    return PretrainResult(path=path, history=history)


def _words(text: str) -> list[str]:
    return [w for w in text.replace(",", " ").split() if w]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vccv_gpu.pretrain",
        description="Pretrain the I-frame and residual backbones as word classifiers on the training split of "
                    "a caption set (the stand-in for ImageNet and HMDB-51 pretraining when those weights are "
                    "not available); writes one backbones file for `vccv_gpu.extract --backbones`.")
    parser.add_argument("--data", nargs="+", required=True, help="annotation file(s) with train and val splits")
    parser.add_argument("--data-format", default="auto", choices=DATA_FORMATS,
                        help="annotation format (default auto: from the file name and a CSV's header)")
    parser.add_argument("--video-dir", help="folder of the videos (default: as the annotations say)")
    parser.add_argument("--out", required=True, help="output backbones file (.safetensors)")
    parser.add_argument("--iframe", default="tiny", choices=sorted(ARCHITECTURES), help="CNN_I (default tiny)")
    parser.add_argument("--residual", default="tiny", choices=sorted(ARCHITECTURES), help="CNN_r (default tiny)")
    parser.add_argument("--size", type=int, default=112, help="frame size in pixels (default 112)")
    parser.add_argument("--segments", type=int, default=8, help="frames sampled per clip (default 8)")
    parser.add_argument("--residual-mode", default="middle", choices=RESIDUAL_MODES,
                        help="which residual of each GOP (default middle)")
    parser.add_argument("--init-iframe", default="none", help="CNN_I start: none, imagenet or a weights file")
    parser.add_argument("--init-residual", default="none", help="CNN_r start: none, imagenet or a weights file")
    parser.add_argument("--iframe-words", type=_words, help="CNN_I's labels, e.g. 'ball,square,red' (default: all)")
    parser.add_argument("--residual-words", type=_words, help="CNN_r's labels (default: all words)")
    parser.add_argument("--iframe-scene", metavar="POSITIONS_JSON",
                        help="a generated set's positions.json (written beside its captions.csv by "
                             "vccv_gpu.data.synthetic): CNN_I also learns the colour and shape of every object each "
                             "clip shows, not only of the one its caption names (for sets with --distractors; "
                             "only words among CNN_I's labels count; default: the captions' words only)")
    parser.add_argument("--residual-where", metavar="POSITIONS_JSON",
                        help="a generated set's positions.json: CNN_r also learns where the object its caption "
                             "names is, its channel-mean map (A^s_r, which steers the attention) covering the "
                             "object's cell and the cells next to it (default: the words only)")
    parser.add_argument("--iframe-cells", metavar="POSITIONS_JSON",
                        help="a generated set's positions.json: CNN_I also learns what is at each cell of its "
                             "feature grid, the colour and shape of the object centred there or none "
                             "(default: no per-cell target)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    parser.add_argument("--batch", type=int, default=8, help="clips per step (default 8)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate, one-cycle (default 2e-3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K (default auto)")
    parser.add_argument("--workers", type=int, default=2, help="clip sampling threads (default 2)")
    parser.add_argument("--max-clips", type=int, help="use at most this many training clips")
    args = parser.parse_args(argv)
    plain_warnings()
    scene_file, where_file, cells_file = args.iframe_scene, args.residual_where, args.iframe_cells
    opts = PretrainOptions(**{k: v for k, v in vars(args).items()
                              if k not in ("iframe_scene", "residual_where", "iframe_cells")})
    try:
        if scene_file is not None or where_file is not None or cells_file is not None:
            videos = load_dataset(detect_format(opts.data, opts.data_format), opts.data, opts.video_dir)
            if scene_file is not None:
                opts.iframe_scene = objects_shown(scene_file, videos)
            if where_file is not None:
                opts.residual_where = named_tracks(where_file, videos)
            if cells_file is not None:
                opts.iframe_cells = scene_tracks(cells_file, videos)
        result = pretrain(opts)
    except (ValueError, FileNotFoundError, MissingWeights) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result.path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
