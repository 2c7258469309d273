"""`python -m vccv_gpu.codec motion VIDEO_OR_DIR... --out DIR`: every frame's motion (and
residual) of whole videos, written as numpy shards.

Per video, OUT/<name>-<8 hex digits of its path's SHA-1>/ holds:
- shard-00000.npz, shard-00001.npz, ...: up to --shard-frames frames each (fewer where a frame is
  large), in display order, as arrays with the frame axis first: index int32 [K] (display
  index), type |S1 [K] (b"I", b"P", b"B"), pts int64 [K] (-1 where unknown), key bool [K],
  mb_type int8 [K, H16, W16], qp int8 [K, H16, W16], mv int16 [K, 2, H4, W4, 2] (list 0/1,
  x/y in quarter pels), ref_idx int8 [K, 2, H4, W4]; with --residual also y int16 [K, H, W],
  u and v int16 [K, H/2, W/2] (coded size). Field meanings: codec.Macroblocks / Residual.
- index.json (written last: a video without it is unfinished and redone): the source, its size,
  the stream's sizes, fps and time base, the frame count and the shards.

A rerun skips videos whose index.json matches the source (same size and modification time, and
--residual not newly asked for). Bad files are reported as `error: PATH: reason` and skipped
(exit status 1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..runtime import atomic_write, plain_warnings, stderr_is_terminal
from .errors import StreamError
from .info import find_videos, unreadable_message
from .motion import MotionFrame, default_threads, motion_frames
from .stream import open as open_stream

FORMAT = "vccv-motion/1"
SHARD_BYTES = 256 << 20  # a shard's arrays stay below this (one frame at least)


def output_dir(out: Path, video: Path) -> Path:
    digest = hashlib.sha1(str(video.resolve()).encode()).hexdigest()[:8]
    return out / f"{video.stem}-{digest}"


def _finished(folder: Path, video: Path, residual: bool) -> bool:
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        return False
    stat = video.stat()
    return (index.get("format") == FORMAT and index.get("source_size") == stat.st_size
            and index.get("source_mtime_ns") == stat.st_mtime_ns and (index.get("residual") or not residual))


def _shard_arrays(frames: list[MotionFrame], residual: bool) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {
        "index": np.array([f.index for f in frames], np.int32),
        "type": np.array([f.type.encode() for f in frames], "S1"),
        "pts": np.array([-1 if f.pts is None else f.pts for f in frames], np.int64),
        "key": np.array([f.key for f in frames], bool),
    }
    for name in ("mb_type", "qp", "mv", "ref_idx"):
        arrays[name] = np.stack([getattr(f.macroblocks, name) for f in frames])
    if residual:
        for plane in ("y", "u", "v"):
            arrays[plane] = np.stack([getattr(f.residual, plane) for f in frames])
    return arrays


def write_video(video: Path, folder: Path, *, residual: bool, threads: int, shard_frames: int,
                progress: bool) -> int:
    """Writes one video's shards and index; returns its frame count."""
    with open_stream(video) as stream:
        h16, w16 = stream.coded_height // 16, stream.coded_width // 16
        # Per macroblock: mb_type and qp (1 byte each); per 4x4 block and list: mv (4) and ref_idx (1);
        # residual: 384 int16 samples.
        frame_bytes = 16 + h16 * w16 * (2 + 16 * 2 * 5 + (384 * 2 if residual else 0))
        per_shard = max(1, min(shard_frames, SHARD_BYTES // frame_bytes))
        shards: list[dict[str, Any]] = []
        batch: list[MotionFrame] = []

        def flush() -> None:
            name = f"shard-{len(shards):05d}.npz"
            arrays = _shard_arrays(batch, residual)
            atomic_write(folder / name, lambda f: np.savez_compressed(f, **arrays))
            shards.append({"file": name, "first": batch[0].index, "count": len(batch)})
            batch.clear()

        bar = tqdm(total=len(stream.frames), desc=video.name, unit="frame", disable=not progress, leave=False)
        with bar:
            for frame in motion_frames(stream, residual=residual, threads=threads):
                batch.append(frame)
                bar.update()
                if len(batch) == per_shard:
                    flush()
            if batch:
                flush()
        stat = video.stat()
        index = {
            "format": FORMAT, "source": str(video.resolve()), "source_size": stat.st_size,
            "source_mtime_ns": stat.st_mtime_ns, "width": stream.width, "height": stream.height,
            "coded_width": stream.coded_width, "coded_height": stream.coded_height, "fps": stream.fps,
            "time_base": None if stream.time_base is None else str(stream.time_base),
            "frames": len(stream.frames), "residual": residual, "shards": shards,
        }
    atomic_write(folder / "index.json", lambda f: f.write(json.dumps(index, indent=1).encode()))
    return index["frames"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vccv_gpu.codec motion",
        description="Write every frame's macroblock types, QPs, motion vectors and reference indices "
                    "(and residual planes with --residual) of H.264 videos, read from the bitstream "
                    "without decoding pictures, as numpy .npz shards with an index.json per video. "
                    "Format: python -m pydoc vccv_gpu.codec.motion_cli.")
    parser.add_argument("videos", nargs="+", metavar="VIDEO_OR_DIR", help="video files, or directories to search")
    parser.add_argument("--out", required=True, type=Path, help="output directory (one folder per video)")
    parser.add_argument("--residual", action="store_true", help="also write the residual planes (large)")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="pictures parsed at a time (default: every core)")
    parser.add_argument("--shard-frames", type=int, default=250, metavar="K",
                        help="frames per shard at most (default 250; fewer where frames are large)")
    args = parser.parse_args(argv)
    plain_warnings()
    if args.threads < 1 or args.shard_frames < 1:
        parser.error("--threads and --shard-frames must be at least 1")

    unreadable: list[OSError] = []
    videos = find_videos(args.videos, unreadable)
    for error in unreadable:
        print(f"error: {unreadable_message(error)} (its videos are skipped)", file=sys.stderr)
    failures = len(unreadable)
    progress = stderr_is_terminal()
    for video in tqdm(videos, desc="videos", unit="video", disable=not progress or len(videos) < 2):
        folder = output_dir(args.out, video)
        try:
            if _finished(folder, video, args.residual):
                continue
            count = write_video(video, folder, residual=args.residual, threads=args.threads,
                                shard_frames=args.shard_frames, progress=progress)
        except (StreamError, OSError) as e:
            failures += 1
            tqdm.write(f"error: {e}" if isinstance(e, StreamError) else f"error: {video}: {e.strerror or e}",
                       file=sys.stderr)
            continue
        tqdm.write(f"{video}: {count} frames -> {folder}", file=sys.stderr)
    return 1 if failures else 0
