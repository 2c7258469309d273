"""Extract the backbones' features of many videos into a feature store (`vccv_gpu.features`).

    python -m vccv_gpu.extract videos/ --out features/mine --backbone-weights imagenet
    python -m vccv_gpu.extract --data train_val_videodatainfo.json --video-dir msrvtt/videos --out features/msrvtt
    torchrun --nproc-per-node 8 -m vccv_gpu.extract ...        # one GPU per rank

Each video is sampled (`codec.ClipLoader`: N I-frames and residual frames), run through the
FeatureExtractor (inference mode, channels-last, bf16 autocast on CUDA) and stored as fp16.
A run is resumable: videos already in the store are skipped, and a killed run loses at most
the shard it was filling. Videos that cannot be read are named on stderr and listed in
`errors.jsonl`; the exit status is then 1. Under torchrun every rank takes every
world_size-th video of the sorted list; rank 0 merges the index when all are done.

In-process (benchmarks): `extract(paths, out, extractor, ...) -> ExtractReport`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vccv_gpu.backbones import ARCHITECTURES, BackboneConfig, FeatureExtractor, MissingWeights
from vccv_gpu.codec.info import VIDEO_SUFFIXES, find_videos
from vccv_gpu.codec.loader import ClipLoader
from vccv_gpu.codec.plan import RESIDUAL_MODES
from vccv_gpu.codec.sample import ClipSample
from vccv_gpu.data import DATA_FORMATS
from vccv_gpu.features import (
    BACKBONES_FILE,
    STORE_FILE,
    FeatureStoreError,
    StoreWriter,
    VideoError,
    merge_index,
    prepare_store,
    video_key,
)
from vccv_gpu.runtime import Ranks, stderr_is_terminal

__all__ = ["ExtractReport", "extract", "main"]

@dataclass
class ExtractReport:
    """What one rank's `extract` did. `seconds` is the whole call (store checks, weights
    fingerprint, waiting for other ranks, index merge); `extract_seconds` only sampling, the
    network and writing the shards, the basis of `clips_per_second`."""

    out: Path
    extracted: int = 0                  # videos added to the store by this call
    skipped: int = 0                    # videos already in the store
    failed: list[VideoError] = field(default_factory=list)
    seconds: float = 0.0
    extract_seconds: float = 0.0
    rank: int = 0
    world_size: int = 1

    @property
    def clips_per_second(self) -> float:
        return self.extracted / self.extract_seconds if self.extract_seconds > 0 else 0.0


def _clip_info(sample: ClipSample) -> dict[str, Any]:
    return {"frames": list(sample.frame_indices), "residual_frames": list(sample.residual_indices),
            "policy": sample.policy, "fps": sample.fps, "duration": sample.duration}


def _fp16(x: torch.Tensor) -> torch.Tensor:
    """fp16 without overflow to inf (bf16/fp32 activations can exceed fp16's range)."""
    limit = torch.finfo(torch.float16).max
    return x.clamp(-limit, limit).to(torch.float16)


def _show_progress(progress: bool | None) -> bool:
    return stderr_is_terminal() if progress is None else progress


def extract(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], extractor: FeatureExtractor,
            batch_size: int = 8, workers: int = 2, device: str | torch.device = "cpu", shard_size: int = 256,
            rank: int = 0, world_size: int = 1, progress: bool | None = None,
            on_error: Callable[[VideoError], None] | None = None) -> ExtractReport:
    """Adds the features of `paths` (this rank's share: sorted, every world_size-th) to the store `out`.

    The store is started for `extractor` if new, else must have been started with the same
    config and weights (FeatureStoreError otherwise). Videos already stored are skipped. The
    extractor is moved to `device`, put in eval mode and channels-last. With world_size > 1
    torch.distributed must be initialised (with a timeout long enough for the slowest rank to
    finish its share): all ranks wait for each other at the end and rank 0 merges the index;
    with one rank the index is merged directly. `on_error` is called for each
    video that cannot be read (after it is recorded in the store's errors).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
    if world_size > 1 and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise ValueError("world_size > 1 needs torch.distributed to be initialised (run under torchrun)")
    started = time.perf_counter()
    out = Path(out)
    device = torch.device(device)
    config = extractor.config
    by_key = {video_key(p): p for p in paths}
    mine = [by_key[k] for k in sorted(by_key)][rank::world_size]

    if rank == 0:
        prepare_store(out, extractor)
    if world_size > 1:
        torch.distributed.barrier()  # rank 0 has started the store
    if rank != 0:
        prepare_store(out, extractor)  # checks config and weights against the store

    report = ExtractReport(out=out, rank=rank, world_size=world_size)
    with StoreWriter(out, rank=rank, shard_size=shard_size) as writer:
        todo = [p for p in mine if video_key(p) not in writer.done]
        report.skipped = len(mine) - len(todo)
        loop_started = time.perf_counter()
        if todo:
            _run(todo, extractor, writer, report, batch_size, workers, device, config, progress, on_error)
    report.extract_seconds = time.perf_counter() - loop_started  # includes writing the last shard
    report.extracted = writer.written

    if world_size > 1:
        torch.distributed.barrier()  # every rank's shards and index lines are written
    if rank == 0:
        merge_index(out)
    report.seconds = time.perf_counter() - started
    return report


def _run(todo: list[Any], extractor: FeatureExtractor, writer: StoreWriter, report: ExtractReport,
         batch_size: int, workers: int, device: torch.device, config: BackboneConfig, progress: bool | None,
         on_error: Callable[[VideoError], None] | None) -> None:
    from tqdm import tqdm

    extractor.to(device=device, memory_format=torch.channels_last).eval()
    loader = ClipLoader(todo, batch_size=batch_size, num_segments=config.num_segments, size=config.size,
                        device=device, workers=workers, residual=config.residual_mode, progress=False,
                        keep_aspect=config.keep_aspect)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    desc = "extracting" if report.world_size == 1 else f"extracting (rank {report.rank})"
    with tqdm(total=len(todo), unit="clip", desc=desc, disable=not _show_progress(progress),
              dynamic_ncols=True, position=report.rank) as bar:
        for batch in loader:
            for err in batch.errors:
                error = VideoError(str(err.path), err.reason, err.kind)
                writer.error(error)
                report.failed.append(error)
                tqdm.write(f"skipped {err.path}: {err.reason}", file=sys.stderr)
                if on_error is not None:
                    on_error(error)
            if len(batch):
                with torch.inference_mode(), autocast:
                    v_i, a_r = extractor(batch.iframes, batch.residuals.float())
                v_i, a_r = _fp16(v_i).cpu(), _fp16(a_r).cpu()
                for j, (path, sample) in enumerate(zip(batch.paths, batch.samples)):
                    writer.add(video_key(path), v_i[j], a_r[j], _clip_info(sample))
            bar.update(len(batch) + len(batch.errors))
            if report.failed:
                bar.set_postfix(errors=len(report.failed), refresh=False)


# -----------------------------------------------------------------------------------------------
# Command line


def _dataset_videos(annotations: Sequence[str], data_format: str, video_dir: str | None,
                    split: str | None) -> list[Path]:
    from vccv_gpu.data import detect_format, load_dataset

    kind = detect_format(annotations, data_format)
    samples = load_dataset(kind, annotations, video_dir=video_dir, split=split)
    if any(s.video_path is None for s in samples):
        raise ValueError(f"{kind} annotations name videos by id only: give --video-dir")
    return [Path(s.video_path) for s in samples if s.video_path is not None]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vccv_gpu.extract",
        description="Extract backbone features (I-frames: CNN_I, residuals: CNN_r) of videos into a "
                    "resumable feature store for training. Videos already in the store are skipped; "
                    "unreadable ones are listed in OUT/errors.jsonl (exit status 1). Under torchrun each "
                    "rank takes a share of the videos.")
    p.add_argument("videos", nargs="*", metavar="VIDEO",
                   help=f"video files, or folders searched recursively for {' '.join(sorted(VIDEO_SUFFIXES))}")
    p.add_argument("--out", required=True, metavar="DIR", help="feature store folder (created or resumed)")
    g = p.add_argument_group("videos of a dataset")
    g.add_argument("--data", action="extend", nargs="+", default=[], metavar="ANNOT",
                   help="annotation file(s) of a dataset whose videos to extract")
    g.add_argument("--data-format", choices=DATA_FORMATS, default="auto",
                   help="format of --data (auto: .json msrvtt, .jsonl jsonl, .csv charades or csv by header)")
    g.add_argument("--video-dir", metavar="D", help="folder of the dataset's videos")
    g.add_argument("--split", choices=("train", "val", "test"), help="only this split of --data")
    b = p.add_argument_group("backbones (default: the store's own when resuming, else resnet152/resnet18 "
                             "with ImageNet weights)")
    b.add_argument("--backbones", metavar="FILE",
                   help="a saved FeatureExtractor (e.g. from pretraining, or a store's backbones.safetensors)")
    b.add_argument("--iframe-backbone", choices=sorted(ARCHITECTURES), help="CNN_I (default resnet152)")
    b.add_argument("--residual-backbone", choices=sorted(ARCHITECTURES), help="CNN_r (default resnet18)")
    b.add_argument("--backbone-weights", choices=("imagenet", "none"),
                   help="imagenet (torchvision's, from the local torch hub cache) or none (random init, "
                        "seeded: the same on every rank and run); default imagenet ('tiny' has none: random)")
    b.add_argument("--size", type=int, help="frame size in pixels (default 224)")
    b.add_argument("--segments", type=int, help="frames sampled per video, N (default 20)")
    b.add_argument("--residual", choices=RESIDUAL_MODES, help="which residual of a GOP (default middle)")
    b.add_argument("--keep-aspect", action="store_true", default=None,
                   help="resize the short side and centre-crop instead of squashing")
    r = p.add_argument_group("running")
    r.add_argument("--batch", type=int, default=8, help="clips per forward pass (default 8)")
    r.add_argument("--workers", type=int, default=2, help="threads sampling clips (default 2)")
    r.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:K (default auto)")
    r.add_argument("--shard-size", type=int, default=256, help="videos per shard file (default 256)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


_SHAPE_OPTIONS = ("iframe_backbone", "residual_backbone", "backbone_weights", "size", "segments", "residual",
                  "keep_aspect")


def _make_extractor(args: argparse.Namespace) -> FeatureExtractor:
    given = [name for name in _SHAPE_OPTIONS if getattr(args, name) is not None]
    if args.backbones is not None:
        if given:
            raise ValueError(f"--backbones FILE fixes the backbones; drop --{given[0].replace('_', '-')}")
        return FeatureExtractor.load(args.backbones)
    stored = Path(args.out) / BACKBONES_FILE
    if not given and (Path(args.out) / STORE_FILE).is_file() and stored.is_file():
        return FeatureExtractor.load(stored)  # resuming: the store's own extractor
    config = BackboneConfig(
        iframe=args.iframe_backbone or "resnet152", residual=args.residual_backbone or "resnet18",
        size=224 if args.size is None else args.size, num_segments=20 if args.segments is None else args.segments,
        residual_mode=args.residual or "middle", keep_aspect=bool(args.keep_aspect))
    def weights(arch: str) -> str:
        return args.backbone_weights or ("none" if arch == "tiny" else "imagenet")

    # Random initialisation is seeded: every rank, and a resumed run, builds the same weights.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return FeatureExtractor(config, iframe_weights=weights(config.iframe),
                                residual_weights=weights(config.residual))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("batch", "workers", "shard_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not args.videos and not args.data:
        parser.error("give VIDEO files/folders or --data ANNOT")
    try:
        ranks, device = Ranks.join(args.device)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return _extract_shard(args, ranks, device)
    finally:
        ranks.close()


def _extract_shard(args: argparse.Namespace, ranks: Ranks, device: torch.device) -> int:
    """This rank's share of the videos, then the summary over every rank (printed by rank 0)."""
    prefix = f"rank {ranks.rank}: " if ranks.distributed else ""
    try:
        paths = find_videos(args.videos)
        if args.data:
            paths += _dataset_videos(args.data, args.data_format, args.video_dir, args.split)
        if not paths:
            raise ValueError("no videos found in " + " ".join(args.videos))
        extractor = _make_extractor(args)
    except (ValueError, MissingWeights, FeatureStoreError, OSError) as e:
        print(f"error: {prefix}{e}", file=sys.stderr)
        return 2

    try:
        report = extract(paths, args.out, extractor, batch_size=args.batch, workers=args.workers, device=device,
                         shard_size=args.shard_size, rank=ranks.rank, world_size=ranks.size,
                         progress=False if args.no_progress else None)
    except (FeatureStoreError, OSError) as e:
        print(f"error: {prefix}{e}", file=sys.stderr)
        return 2
    # The exit status reflects every rank's failures.
    extracted, skipped, failed = ranks.sum([report.extracted, report.skipped, len(report.failed)])
    if ranks.main:
        rate = extracted / report.seconds if report.seconds > 0 else 0.0
        many = f", {ranks.size} ranks" if ranks.distributed else ""
        see = f" (see {Path(args.out) / 'errors.jsonl'})" if failed else ""
        print(f"{extracted} clips extracted in {report.seconds:.1f} s ({rate:.2f} clips/s{many}), "
              f"{skipped} already in the store, {failed} failed{see}; store: {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
