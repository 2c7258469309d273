"""Train the captioning model on stored features (paper section IV-A).

    python -m vccv_gpu.train --data train_val_videodatainfo.json --video-dir videos \\
        --features features/msrvtt --variant rae --out runs/rae
    torchrun --nproc-per-node 8 -m vccv_gpu.train ...          # DDP, one GPU per rank

The vocabulary is built from the train split's captions (words seen at least 3 times); the model's
feature sizes come from the feature store's backbones. Training: teacher forcing with the masked
cross-entropy of Eq. 14 (`model.caption_loss`), Adam (lr 1e-4), batch 8, dropout 0.5 on the LSTM
output (the paper's settings), gradients clipped to norm 5 (the paper states no clipping; 0 turns
it off), bf16 autocast on CUDA. The paper gives no epoch count; 20 is the default.

One epoch, by default, is every (video, caption) pair of the train split once, shuffled
(MSR-VTT: ~130k pairs). `--captions-per-video K` instead draws K captions per video afresh every
epoch (all of a video's captions when it has fewer), which makes epochs of equal length over
videos with very different caption counts; the draw depends only on the seed and the epoch.

Every `--val-every` epochs (and after the last) the val split is captioned by beam search and
scored with the COCO metrics; the checkpoint with the best CIDEr is RUN/best (with the feature
store's backbones, so it can caption raw video, and the data and feature paths, so
`python -m vccv_gpu.evaluate RUN` needs nothing else). Without val videos, RUN/best is the
latest epoch. RUN/last is the latest epoch's checkpoint; RUN/trainer.pt (written atomically after
each epoch) holds everything to continue: weights, optimizer, epoch, best score, history and the
random number generators' states, so `--resume` gives the same model as an uninterrupted run.
RUN/history.json lists the epochs' losses and val scores; TensorBoard logs go to RUN/tb.

Videos of the dataset that are missing from the feature store are counted in a warning and
skipped. In-process (benchmarks): `run_training(TrainOptions(...)) -> TrainResult`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler

from vccv_gpu.backbones import FeatureExtractor, model_config
from vccv_gpu.checkpoint import save_checkpoint
from vccv_gpu.data import (
    DATA_FORMATS,
    MAX_CAPTION_TOKENS,
    MIN_WORD_COUNT,
    DataFormatError,
    Vocabulary,
    detect_format,
    load_samples,
    pad_batch,
)
from vccv_gpu.evaluate import caption_videos
from vccv_gpu.feature_dataset import StoredFeatures, StoredVideo, find_in_store, warn_missing
from vccv_gpu.features import FeatureStore
from vccv_gpu.kernels.backend import BACKENDS
from vccv_gpu.metrics import score_captions
from vccv_gpu.model import PAD, VARIANTS, VCCV, VCCVConfig, caption_loss
from vccv_gpu.runtime import Ranks, atomic_write, plain_warnings

__all__ = ["TRAINER_FILE", "CaptionPairs", "TrainOptions", "TrainResult", "build_parser", "collate_pairs", "main",
           "run_training"]

TRAINER_FILE = "trainer.pt"
TRAINER_FORMAT = 1
SELECT_BY = "CIDEr"


@dataclass
class TrainOptions:
    """Everything a training run needs; the CLI flags map one to one (see `build_parser`)."""

    data: list[str]
    features: str
    out: str
    data_format: str = "auto"
    video_dir: str | None = None
    variant: str = "rae"
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-4
    dropout: float = 0.5
    embed: int = 500
    hidden: int = 512
    gate_dim: int = 512
    max_len: int = MAX_CAPTION_TOKENS
    min_count: int = MIN_WORD_COUNT
    clip_grad: float = 5.0
    captions_per_video: int = 0  # 0: every (video, caption) pair each epoch
    beam: int = 5
    val_split: str = "val"
    val_every: int = 1
    val_batch: int = 16
    meteor: bool = True
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    backend: str | None = None
    resume: bool = False
    log_dir: str | None = None
    progress: bool = True
    verbose: bool = True

    def check(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "embed": self.embed, "hidden": self.hidden,
                    "gate_dim": self.gate_dim, "max_len": self.max_len, "min_count": self.min_count,
                    "beam": self.beam, "val_every": self.val_every, "val_batch": self.val_batch}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.captions_per_video < 0 or self.workers < 0:
            raise ValueError("captions_per_video and workers must be >= 0")
        if self.lr <= 0 or self.clip_grad < 0 or not 0 <= self.dropout < 1:
            raise ValueError(f"need lr > 0, clip_grad >= 0, 0 <= dropout < 1 (got {self.lr}, {self.clip_grad}, "
                             f"{self.dropout})")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if not self.data:
            raise ValueError("no annotation files given")


@dataclass
class TrainResult:
    run: Path
    best_path: Path  # RUN/best, the checkpoint to evaluate
    last_path: Path  # RUN/last
    best_epoch: int | None  # 1-based; None when nothing was validated
    best_metrics: dict[str, float] | None
    history: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Data


class CaptionPairs(StoredFeatures):
    """(v_i, a_r, caption ids) training examples. `set_epoch` chooses the epoch's pairs: all of
    them, or `per_video` captions per video drawn from (seed, epoch)."""

    def __init__(self, root: str | os.PathLike[str], videos: Sequence[StoredVideo],
                 encoded: Sequence[Sequence[list[int]]], per_video: int = 0, seed: int = 0) -> None:
        super().__init__(root, [v.key for v in videos])
        self.encoded = [list(captions) for captions in encoded]
        self.per_video = per_video
        self.seed = seed
        self.pairs: list[tuple[int, int]] = []
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        if self.per_video == 0:
            self.pairs = [(v, c) for v, captions in enumerate(self.encoded) for c in range(len(captions))]
            return
        rng = np.random.default_rng([self.seed, epoch])
        self.pairs = []
        for v, captions in enumerate(self.encoded):
            count = len(captions)
            if count <= self.per_video:
                chosen: Any = range(count)
            else:
                chosen = sorted(rng.choice(count, self.per_video, replace=False))
            self.pairs.extend((v, int(c)) for c in chosen)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, list[int]]:  # type: ignore[override]
        video, caption = self.pairs[index]
        v_i, a_r = self.features(self.keys[video])
        return v_i, a_r, self.encoded[video][caption]


def collate_pairs(items: list[tuple[Tensor, Tensor, list[int]]]) -> tuple[Tensor, Tensor, Tensor]:
    """Stacked float32 features [B, N, H, W, D] and the captions padded to [B, T]."""
    return (torch.stack([v for v, _, _ in items]), torch.stack([a for _, a, _ in items]),
            pad_batch([ids for _, _, ids in items]))


# ---------------------------------------------------------------------------------------------
# Files of a run


def _rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]),
            "python": random.getstate()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])


def _plain(options: TrainOptions) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(options), default=str))


# ---------------------------------------------------------------------------------------------
# Training


def _log(options: TrainOptions, world: Ranks, message: str) -> None:
    if options.verbose and world.main:
        from tqdm import tqdm

        tqdm.write(message)


def _format_scores(scores: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.1f}" for name, value in scores.items())


def _checkpoint_info(options: TrainOptions, kind: str, epoch: int, scores: dict[str, float] | None) -> dict[str, Any]:
    return {"args": _plain(options), "epoch": epoch, "val": scores, "val_split": options.val_split,
            "data": [str(Path(a).resolve()) for a in options.data], "data_format": kind,
            "video_dir": str(Path(options.video_dir).resolve()) if options.video_dir else None,
            "features": str(Path(options.features).resolve())}


def run_training(options: TrainOptions) -> TrainResult:
    """Trains (or, with options.resume, continues) a run; returns where its checkpoints are and
    the per-epoch history. Raises ValueError / FileNotFoundError for unusable input."""
    options.check()
    run = Path(options.out)
    trainer_path = run / TRAINER_FILE
    if trainer_path.is_file() and not options.resume:
        raise ValueError(f"{run} already holds a training run ({TRAINER_FILE}); pass --resume to continue it "
                         "or choose another --out")
    world, device = Ranks.join(options.device)
    try:
        return _train(options, run, trainer_path, world, device)
    finally:
        world.close()


@dataclass
class _Videos:
    kind: str  # dataset format
    train_samples: list[Any]  # every train video of the annotations (the vocabulary's captions)
    train: list[StoredVideo]  # train videos with features and captions
    val: list[StoredVideo]  # validation videos with features and captions


def _select_videos(options: TrainOptions, store: FeatureStore, world: Ranks) -> _Videos:
    """The train and validation videos of the annotations that are in the store."""
    kind = detect_format(options.data, options.data_format)
    samples = load_samples(options.data, kind, options.video_dir)
    if all(s.split == "all" for s in samples):
        train_samples, val_samples = samples, []
        if world.main:
            warnings.warn(f"{', '.join(options.data)}: no split information; training on all {len(samples)} videos "
                          "without validation", RuntimeWarning, stacklevel=3)
    else:
        train_samples = [s for s in samples if s.split == "train"]
        val_samples = [s for s in samples if s.split == options.val_split]
    if not train_samples:
        raise ValueError(f"no train videos in {', '.join(options.data)}")
    keys = store.keys()
    train, missing = find_in_store(train_samples, keys)
    val, val_missing = find_in_store(val_samples, keys)
    if world.main:
        warn_missing(missing, len(train_samples), options.features, "train")
        warn_missing(val_missing, len(val_samples), options.features, options.val_split)
    train = [v for v in train if v.captions]
    if not train:
        raise ValueError(f"none of the {len(train_samples)} train videos has features and captions in "
                         f"{options.features}")
    val = [v for v in val if v.captions]
    if not val:
        _log(options, world, f"no {options.val_split} videos with features: no validation, best = latest epoch")
    return _Videos(kind, train_samples, train, val)


def _load_trainer_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: name it
        raise ValueError(f"{path}: unreadable trainer state ({e})") from None
    if not isinstance(state, dict) or state.get("format") != TRAINER_FORMAT:
        raise ValueError(f"{path}: not a trainer state of format {TRAINER_FORMAT}")
    return state


def _check_same_config(saved: VCCVConfig, config: VCCVConfig, path: Path) -> None:
    if saved != config:
        changed = {k: (getattr(saved, k), getattr(config, k)) for k in dataclasses.asdict(config)
                   if getattr(saved, k) != getattr(config, k)}
        raise ValueError(f"{path}: the run was trained with another model configuration; changed (saved, now): "
                         f"{changed}")


def _train_epoch(model: torch.nn.Module, parameters: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                 loader: DataLoader, options: TrainOptions, device: torch.device, step: int, writer: Any,
                 bar: Any) -> tuple[Tensor, Tensor, int]:
    """One pass over the loader; (sum of token losses, number of target tokens, global step)."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    token_sum = torch.zeros((), dtype=torch.float64, device=device)
    model.train()
    for v_i, a_r, tokens in loader:
        v_i = v_i.to(device, non_blocking=True)
        a_r = a_r.to(device, non_blocking=True)
        tokens = tokens.to(device, non_blocking=True)
        with autocast:
            logits = model(v_i, a_r, tokens)
        loss = caption_loss(logits, tokens)  # in float32 whatever the autocast
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if options.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(parameters, options.clip_grad)
        optimizer.step()
        targets = (tokens[:, 1:] != PAD).sum()
        loss_sum += loss.detach().double() * targets
        token_sum += targets
        step += 1
        bar.update(1)
        if writer is not None and step % 10 == 0:  # .item() waits for the GPU: not every step
            value = loss.item()
            writer.add_scalar("train/loss", value, step)
            bar.set_postfix(loss=f"{value:.3f}")
    return loss_sum, token_sum, step


def _train(options: TrainOptions, run: Path, trainer_path: Path, world: Ranks, device: torch.device) -> TrainResult:
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    store = FeatureStore(options.features)
    videos = _select_videos(options, store, world)

    # vocabulary, model, optimizer: fresh (seeded) or from trainer.pt
    resume_state = _load_trainer_state(trainer_path) if options.resume and trainer_path.is_file() else None
    if resume_state is not None:
        vocab = Vocabulary.from_dict(resume_state["vocab"])
    else:
        if options.resume:
            _log(options, world, f"nothing to resume in {run}: starting")
        vocab = Vocabulary.build((c for s in videos.train_samples for c in s.captions), min_count=options.min_count)
    config = model_config(store.config, len(vocab), embed=options.embed, hidden=options.hidden,
                          dropout=options.dropout, max_len=options.max_len, variant=options.variant,
                          gate_dim=options.gate_dim)
    torch.manual_seed(options.seed)
    random.seed(options.seed)
    np.random.seed(options.seed)
    model = VCCV(config, backend=options.backend).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    start_epoch, global_step, history = 0, 0, []
    best: dict[str, Any] = {"score": None, "epoch": None, "metrics": None}
    if resume_state is not None:
        _check_same_config(VCCVConfig.from_json(resume_state["model_config"]), config, trainer_path)
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = options.lr
        start_epoch, global_step = int(resume_state["epoch"]), int(resume_state["global_step"])
        history, best = list(resume_state["history"]), dict(resume_state["best"])
        _log(options, world, f"resuming {run} after epoch {start_epoch}")
    elif world.rank > 0:
        torch.manual_seed(options.seed + 1_000_003 * world.rank)  # own dropout masks per rank
    train_model: torch.nn.Module = model
    if world.size > 1:
        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    encoded = [[vocab.encode(c, max_len=options.max_len) for c in v.captions] for v in videos.train]
    dataset = CaptionPairs(options.features, videos.train, encoded, options.captions_per_video, options.seed)
    sampler = DistributedSampler(dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=options.seed)
    backbones = FeatureExtractor.load(store.backbones_path) if store.backbones_path is not None else None
    references = {v.video_id: list(v.captions) for v in videos.val}
    writer = None
    if world.main:
        run.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(options.log_dir or str(run / "tb"), purge_step=global_step or None)
        _log(options, world, f"train: {len(videos.train)} videos, {len(dataset)} pairs per epoch; "
                             f"{options.val_split}: {len(videos.val)} videos; vocabulary {len(vocab)}; "
                             f"{sum(p.numel() for p in model.parameters()):,} parameters; {device}"
                             + (f" x {world.size}" if world.size > 1 else ""))
    if resume_state is not None:  # last: the setup above draws random numbers (e.g. module initialisation)
        rng = resume_state["rng"]
        _set_rng_state(rng[world.rank] if world.rank < len(rng) else rng[0])

    for epoch in range(start_epoch, options.epochs):
        started = time.perf_counter()
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=options.batch_size, sampler=sampler, num_workers=options.workers,
                            collate_fn=collate_pairs, pin_memory=device.type == "cuda",
                            generator=torch.Generator().manual_seed(options.seed + epoch))
        with tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{options.epochs}", unit="batch", leave=False,
                  disable=not (options.progress and world.main)) as bar:
            loss_sum, token_sum, global_step = _train_epoch(train_model, list(model.parameters()), optimizer, loader,
                                                            options, device, global_step, writer, bar)
        if world.size > 1:
            totals = torch.stack([loss_sum, token_sum])
            dist.all_reduce(totals)
            loss_sum, token_sum = totals[0], totals[1]
        epoch_loss = float(loss_sum / token_sum.clamp(min=1))
        record: dict[str, Any] = {"epoch": epoch + 1, "loss": epoch_loss, "steps": global_step}

        if world.main:  # validation and checkpoints
            scores = None
            if videos.val and ((epoch + 1) % options.val_every == 0 or epoch + 1 == options.epochs):
                predictions = caption_videos(model, vocab, options.features, [v.key for v in videos.val],
                                             beam=options.beam, batch_size=options.val_batch, device=device,
                                             workers=options.workers, progress=options.progress,
                                             desc=f"validating {epoch + 1}")
                scores = score_captions(references, {v.video_id: p for v, p in zip(videos.val, predictions)},
                                        meteor=options.meteor)
                record["val"] = scores
                for name, value in scores.items():
                    writer.add_scalar(f"val/{name}", value, epoch + 1)
            improved = not videos.val or (scores is not None and (best["score"] is None
                                                                  or scores[SELECT_BY] > best["score"]))
            info = _checkpoint_info(options, videos.kind, epoch + 1, scores)
            if improved:
                best = {"score": scores[SELECT_BY] if scores else None, "epoch": epoch + 1, "metrics": scores}
                save_checkpoint(run / "best", model, vocab, backbones=backbones, info=info)
            save_checkpoint(run / "last", model, vocab, backbones=backbones, info=info)
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            writer.add_scalar("train/epoch_loss", epoch_loss, epoch + 1)
            writer.flush()
            line = f"epoch {epoch + 1}/{options.epochs}: loss {epoch_loss:.4f} ({record['seconds']:.0f} s)"
            if scores is not None:
                line += f"; {options.val_split} {_format_scores(scores)}" + (" (best)" if improved else "")
            _log(options, world, line)

        # the state to resume from, written last: a kill before this point repeats the epoch
        rng_states: list[Any] = [_rng_state()]
        if world.size > 1:
            gathered: list[Any] = [None] * world.size
            dist.all_gather_object(gathered, rng_states[0])
            rng_states = gathered
        if world.main:
            state = {"format": TRAINER_FORMAT, "epoch": epoch + 1, "global_step": global_step,
                     "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "model_config": config.to_json(), "vocab": vocab.to_dict(), "best": best, "history": history,
                     "rng": rng_states, "options": json.dumps(_plain(options))}
            atomic_write(trainer_path, lambda f: torch.save(state, f))
            atomic_write(run / "history.json", lambda f: f.write((json.dumps(history, indent=1) + "\n").encode()))
        world.barrier()

    if writer is not None:
        writer.close()
    if world.main and best["epoch"] is not None:
        _log(options, world, f"best: epoch {best['epoch']}"
             + (f", {options.val_split} {_format_scores(best['metrics'])}" if best["metrics"] else "")
             + f" -> {run / 'best'}")
    return TrainResult(run, run / "best", run / "last", best["epoch"], best["metrics"], history)


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    d = TrainOptions(data=[], features="", out="")
    p = argparse.ArgumentParser(
        prog="python -m vccv_gpu.train",
        description="Train the VCCV captioning model on stored features (python -m vccv_gpu.extract). "
                    "Keeps the checkpoint with the best val CIDEr in RUN/best, the latest in RUN/last, "
                    "and RUN/trainer.pt to --resume. Under torchrun, one process per GPU (DDP).")
    g = p.add_argument_group("data")
    g.add_argument("--data", nargs="+", required=True, metavar="ANNOT",
                   help="annotation file(s): MSR-VTT JSON, Charades CSV, or own CSV/JSONL (video, caption[, split])")
    g.add_argument("--data-format", choices=DATA_FORMATS, default=d.data_format,
                   help="format of --data (auto: .json msrvtt, .jsonl jsonl, .csv charades or csv by header)")
    g.add_argument("--video-dir", metavar="D", help="folder of the dataset's videos (the paths the features "
                                                     "were extracted from)")
    g.add_argument("--features", required=True, metavar="STORE", help="feature store folder")
    g.add_argument("--out", required=True, metavar="RUN", help="run folder (checkpoints, logs)")
    g.add_argument("--val-split", default=d.val_split, choices=("val", "test"),
                   help="split used to pick the best epoch (default val; Charades has only train/test)")
    m = p.add_argument_group("model")
    m.add_argument("--variant", choices=VARIANTS, default=d.variant,
                   help="row of the paper's Tables I/II: iframe, rae_no_gate_no_residual, rae_no_gate, rae "
                        "(default rae, the full model)")
    m.add_argument("--embed", type=int, default=d.embed, help=f"word embedding size (default {d.embed})")
    m.add_argument("--hidden", type=int, default=d.hidden, help=f"LSTM hidden size (default {d.hidden})")
    m.add_argument("--gate-dim", type=int, default=d.gate_dim,
                   help=f"inner size of the temporal gate, Eq. 11 (default {d.gate_dim})")
    m.add_argument("--dropout", type=float, default=d.dropout, help=f"dropout (default {d.dropout})")
    m.add_argument("--max-len", type=int, default=d.max_len,
                   help=f"captions cut at this many words; longest generated caption (default {d.max_len})")
    m.add_argument("--min-count", type=int, default=d.min_count,
                   help=f"words seen fewer times in the train captions become <unk> (default {d.min_count})")
    m.add_argument("--backend", choices=BACKENDS,
                   help="how the encoder runs (default: $VCCV_BACKEND, else auto)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    t.add_argument("--batch-size", "--batch", type=int, default=d.batch_size,
                   help=f"captions per batch (per process under DDP; default {d.batch_size})")
    t.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr:g})")
    t.add_argument("--clip-grad", type=float, default=d.clip_grad,
                   help=f"clip the gradient norm to this (0: off; default {d.clip_grad:g})")
    t.add_argument("--captions-per-video", type=int, default=d.captions_per_video, metavar="K",
                   help="per epoch, K captions per video drawn afresh (default 0: every (video, caption) pair)")
    t.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    t.add_argument("--device", default=d.device, help="auto (cuda if available), cpu, cuda or cuda:K (default auto)")
    t.add_argument("--workers", type=int, default=d.workers,
                   help=f"DataLoader processes reading features (default {d.workers}; 0: in the main process)")
    t.add_argument("--resume", action="store_true", help="continue RUN from its last finished epoch")
    v = p.add_argument_group("validation and logs")
    v.add_argument("--beam", type=int, default=d.beam, help=f"beam size for validation (default {d.beam})")
    v.add_argument("--val-every", type=int, default=d.val_every,
                   help=f"validate every this many epochs, and after the last (default {d.val_every})")
    v.add_argument("--val-batch", type=int, default=d.val_batch,
                   help=f"videos per beam search batch (default {d.val_batch})")
    v.add_argument("--no-meteor", action="store_true", help="skip METEOR in validation (best is chosen by CIDEr)")
    v.add_argument("--log-dir", metavar="DIR", help="TensorBoard folder (default RUN/tb)")
    v.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions(
        data=[str(a) for a in args.data], features=args.features, out=args.out, data_format=args.data_format,
        video_dir=args.video_dir, variant=args.variant, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        dropout=args.dropout, embed=args.embed, hidden=args.hidden, gate_dim=args.gate_dim, max_len=args.max_len,
        min_count=args.min_count, clip_grad=args.clip_grad, captions_per_video=args.captions_per_video,
        beam=args.beam, val_split=args.val_split, val_every=args.val_every, val_batch=args.val_batch,
        meteor=not args.no_meteor, seed=args.seed, device=args.device, workers=args.workers, backend=args.backend,
        resume=args.resume, log_dir=args.log_dir, progress=not args.no_progress)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = options_from_args(parser.parse_args(argv))
    plain_warnings()
    try:
        options.check()
    except ValueError as err:
        parser.error(str(err))
    try:
        run_training(options)
    except (FileNotFoundError, ValueError, DataFormatError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
