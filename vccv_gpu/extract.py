"""Extract the backbones' features of many videos into a feature store (`vccv_gpu.features`).

    python -m vccv_gpu.extract videos/ --out features/mine --backbone-weights imagenet
    python -m vccv_gpu.extract --data train_val_videodatainfo.json --video-dir msrvtt/videos --out features/msrvtt
    python -m vccv_gpu.extract corpus/ --out features/corpus --engine ray [--address auto]

Each video is sampled (`codec.ClipLoader`: N I-frames and residual frames), run through the
FeatureExtractor (inference mode, channels-last, bf16 autocast on CUDA) and stored as fp16.
A run is resumable: videos already in the store are skipped, and a killed run loses at most
the shard it was filling. Videos that cannot be read are named on stderr and listed in
`errors.jsonl`; the exit status is then 1. At corpus scale, `--engine ray` runs sampling and the
backbones as a Ray Data pipeline (`vccv_gpu.ray_engine`, on this machine or a cluster) and this
process writes the store as the features arrive; the workers load the store's own
backbones.safetensors, so on a cluster the store must be on a filesystem every node sees.

In-process (benchmarks): `extract(paths, out, extractor, ...) -> ExtractReport`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vccv_gpu import ray_engine
from vccv_gpu.backbones import ARCHITECTURES, BackboneConfig, FeatureExtractor, MissingWeights
from vccv_gpu.codec.info import VIDEO_SUFFIXES, find_videos, unreadable_message
from vccv_gpu.codec.loader import ClipLoader
from vccv_gpu.codec.plan import RESIDUAL_MODES
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
from vccv_gpu.runtime import plain_warnings, resolve_device, stderr_is_terminal

__all__ = ["ExtractReport", "extract", "main"]


@dataclass
class ExtractReport:
    """What `extract` did. `seconds` is the whole call (store checks, weights fingerprint, index
    merge); `extract_seconds` only sampling, the network and writing the shards, the basis of
    `clips_per_second`."""

    out: Path
    extracted: int = 0                  # videos added to the store by this call
    skipped: int = 0                    # videos already in the store
    failed: list[VideoError] = field(default_factory=list)
    seconds: float = 0.0
    extract_seconds: float = 0.0

    @property
    def clips_per_second(self) -> float:
        return self.extracted / self.extract_seconds if self.extract_seconds > 0 else 0.0


# (key, v_i [N, H, W, D_I], a_r, sampling info) for a video extracted, or its error.
_Item = tuple[str, torch.Tensor, torch.Tensor, dict[str, Any]] | VideoError


def extract(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], extractor: FeatureExtractor,
            batch_size: int = 8, workers: int = 2, device: str | torch.device = "cpu", shard_size: int = 256,
            progress: bool | None = None, on_error: Callable[[VideoError], None] | None = None,
            engine: ray_engine.EngineOptions | None = None) -> ExtractReport:
    """Adds the features of `paths` to the store `out`.

    The store is started for `extractor` if new, else must have been started with the same
    config and weights (FeatureStoreError otherwise). Videos already stored are skipped. The
    plain engine (`engine` None) moves the extractor to `device`, in eval mode and channels-last,
    with `workers` sampling threads; `engine` runs the Ray Data pipeline (after
    `ray_engine.connect`) with the store's backbones file in its model workers. `on_error` is
    called for each video that cannot be read (after it is recorded in the store's errors).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    out = Path(out)
    by_key = {video_key(p): p for p in paths}
    prepare_store(out, extractor)
    report = ExtractReport(out=out)
    with StoreWriter(out, shard_size=shard_size) as writer:
        todo = [by_key[k] for k in sorted(by_key) if k not in writer.done]
        report.skipped = len(by_key) - len(todo)
        loop_started = time.perf_counter()
        if engine is None:
            items = _plain_items(todo, extractor, batch_size, workers, torch.device(device))
        else:
            items = _ray_items(todo, out / BACKBONES_FILE, extractor.config, engine)
        show = stderr_is_terminal() if progress is None else progress
        seen: set[str] = set()  # the ray engine may deliver a retried batch twice
        with tqdm(total=len(todo), unit="clip", desc="extracting", disable=not show, dynamic_ncols=True) as bar:
            for item in items:
                key = video_key(item.path) if isinstance(item, VideoError) else item[0]
                if key in seen:
                    continue
                seen.add(key)
                if isinstance(item, VideoError):
                    writer.error(item)
                    report.failed.append(item)
                    tqdm.write(f"skipped {item.path}: {item.reason}", file=sys.stderr)
                    if on_error is not None:
                        on_error(item)
                    bar.set_postfix(errors=len(report.failed), refresh=False)
                else:
                    writer.add(*item)
                bar.update(1)
    report.extract_seconds = time.perf_counter() - loop_started  # includes writing the last shard
    report.extracted = writer.written
    merge_index(out)
    report.seconds = time.perf_counter() - started
    return report


def _plain_items(todo: list[Any], extractor: FeatureExtractor, batch_size: int, workers: int,
                 device: torch.device) -> Iterator[_Item]:
    extractor.to(device=device, memory_format=torch.channels_last).eval()
    config = extractor.config
    loader = ClipLoader(todo, batch_size=batch_size, num_segments=config.num_segments, size=config.size,
                        device=device, workers=workers, residual=config.residual_mode, progress=False,
                        keep_aspect=config.keep_aspect)
    for batch in loader:
        for err in batch.errors:
            yield VideoError(str(err.path), err.reason, err.kind)
        if len(batch):
            v_i, a_r = extractor.stored_features(batch.iframes, batch.residuals)
            for j, (path, sample) in enumerate(zip(batch.paths, batch.samples)):
                yield video_key(path), v_i[j], a_r[j], sample.info()


def _ray_items(todo: list[Any], backbones: Path, config: BackboneConfig,
               engine: ray_engine.EngineOptions) -> Iterator[_Item]:
    rows = ray_engine.run([str(p) for p in todo], ray_engine.SamplingSpec.of(config), ray_engine.ExtractWorker,
                          {"backbones": str(backbones)}, engine)
    for row in (row for block in rows for row in block):
        if row["error"]:
            yield VideoError(row["path"], row["error"], row["kind"])
        else:
            # (copies: Ray hands out read-only views of its object store)
            yield (video_key(row["path"]), torch.from_numpy(row["v_i"].copy()), torch.from_numpy(row["a_r"].copy()),
                   json.loads(row["info"]))


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
                    "unreadable ones are listed in OUT/errors.jsonl (exit status 1). --engine ray runs it as a "
                    "Ray Data pipeline on this machine or a cluster, for corpora.")
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
                        "seeded: the same in every run); default imagenet ('tiny' has none: random)")
    b.add_argument("--size", type=int, help="frame size in pixels (default 224)")
    b.add_argument("--segments", type=int, help="frames sampled per video, N (default 20)")
    b.add_argument("--residual", choices=RESIDUAL_MODES, help="which residual of a GOP (default middle)")
    b.add_argument("--keep-aspect", action="store_true", default=None,
                   help="resize the short side and centre-crop instead of squashing")
    r = p.add_argument_group("running")
    r.add_argument("--batch", type=int, default=8, help="clips per forward pass (default 8)")
    r.add_argument("--workers", type=int, default=2, help="plain engine: threads sampling clips (default 2)")
    r.add_argument("--device", default="auto",
                   help="plain engine: auto (cuda if available), cpu, cuda or cuda:K (default auto)")
    r.add_argument("--shard-size", type=int, default=256, help="videos per shard file (default 256)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    ray_engine.add_arguments(p)
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

    # Random initialisation is seeded: a resumed run builds the same weights.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return FeatureExtractor(config, iframe_weights=weights(config.iframe),
                                residual_weights=weights(config.residual))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    plain_warnings()
    for name in ("batch", "workers", "shard_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not args.videos and not args.data:
        parser.error("give VIDEO files/folders or --data ANNOT")
    ray_engine.check_arguments(parser, args)
    try:
        device = resolve_device(args.device) if args.engine == "plain" else torch.device("cpu")
        unreadable: list[OSError] = []
        paths = find_videos(args.videos, unreadable)
        for error in unreadable:
            print(f"error: {unreadable_message(error)} (its videos are skipped)", file=sys.stderr)
        if args.data:
            paths += _dataset_videos(args.data, args.data_format, args.video_dir, args.split)
        if not paths:
            raise ValueError("no videos found in " + " ".join(args.videos))
        extractor = _make_extractor(args)
        engine = ray_engine.options_from(args) if args.engine == "ray" else None
        report = extract(paths, args.out, extractor, batch_size=args.batch, workers=args.workers, device=device,
                         shard_size=args.shard_size, progress=False if args.no_progress else None, engine=engine)
    except (ValueError, MissingWeights, FeatureStoreError, OSError, ray_engine.EngineError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = len(report.failed)
    see = f" (see {Path(args.out) / 'errors.jsonl'})" if failed else ""
    print(f"{report.extracted} clips extracted in {report.seconds:.1f} s ({report.clips_per_second:.2f} clips/s), "
          f"{report.skipped} already in the store, {failed} failed{see}; store: {args.out}", file=sys.stderr)
    return 1 if failed or unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
