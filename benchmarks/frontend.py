"""Front-end speed: `codec.sample_clip` (N frames + N residual frames) against the decode-only
bound and the loaders people use today, side by side on the same clips and device.

    python benchmarks/frontend.py [--device cpu] [--seconds 10] [--sizes 1280x720,1920x1080] [VIDEO ...]

  ours   sample_clip(num_segments=N, size=224, residual="middle")
  bound  the same decoder decoding only the frames the policy needs (no parsing, conversion, resize)
  naive  decode every frame to RGB, then take the sampled frames and frame differences
         (what CoViAR-style loaders do)
  smart  decode every frame but convert only the 2N needed ones (a careful torchcodec/decord user)

Baselines use libavcodec's default threading; clips are generated (grainy photographic content,
GOP 12 without B-frames and GOP 250 with B-frames) unless files are given. `--device cuda` times
the GPU front end (codec/gpu.py: NVDEC frames when PyNvVideoCodec is installed, else PyAV's;
residuals reconstructed on the GPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from vccv_gpu import codec


def timed(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def needed_frames(path: Path, n: int) -> list[int]:
    sample = codec.sample_clip(path, num_segments=n, size=32)
    return sorted(set(sample.frame_indices) | {i for i in sample.residual_indices if i >= 0})


def bound(path: Path, wanted: list[int]) -> None:
    """Decode (no conversion) up to the last needed frame, skipping nothing: the work any
    decoder must do for these frames is at most this; keyframe-only policies need less."""
    last = max(wanted)
    with av.open(str(path)) as c:
        for i, _ in enumerate(c.decode(video=0)):
            if i >= last:
                break


def keyframe_pts(path: Path, keys: list[int]) -> list[int | None]:
    """Container timestamps of the frames `keys` (display order), for `keyframes_only`."""
    with codec.open(path) as s:
        return [s.frames[k].pts for k in keys]


def keyframes_only(path: Path, pts: list[int]) -> None:
    """Seek to and decode just the keyframes at these timestamps (the keyframe policy's own
    bound; the timestamps come from `keyframe_pts`, outside the timing)."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        for p in pts:
            c.seek(p, stream=vs, any_frame=False, backward=True)
            for packet in c.demux(vs):
                if packet.size and packet.decode():
                    break


def naive(path: Path, indices: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every frame to RGB; returns the frames `indices` and their differences with the frame
    before (int16 [H, W, 3])."""
    with av.open(str(path)) as c:
        rgb = [f.to_ndarray(format="rgb24").astype("int16") for f in c.decode(video=0)]
    return [rgb[i] for i in indices], [rgb[i] - rgb[max(i - 1, 0)] for i in indices]


def smart(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """Every frame decoded, only the frames `indices` and the ones before them converted to
    RGB (uint8 [H, W, 3], by display index)."""
    wanted = set(indices) | {max(i - 1, 0) for i in indices}
    with av.open(str(path)) as c:
        return {i: f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i in wanted}


def generate(folder: Path, sizes: list[str], seconds: int) -> list[Path]:
    from vccv_gpu.testing import make_clip

    clips = []
    for size in sizes:
        width, height = (int(v) for v in size.split("x"))
        for name, kw in (("gop12-b0", dict(gop=12, bframes=0)), ("gop250-b3", dict(gop=250, bframes=3))):
            clips.append(make_clip(folder / f"{name}-{height}p.mp4", size=(width, height), frames=25 * seconds,
                                   fps=25, crf=20, **kw))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = args.videos or generate(Path(tmp), args.sizes.split(","), args.seconds)
        for path in tqdm(clips, desc="clips"):
            sample = codec.sample_clip(path, num_segments=args.segments, size=224, device=args.device)
            indices = sample.frame_indices
            wanted = needed_frames(path, args.segments)
            row = dict(clip=path.name, policy=sample.policy,
                       ours=timed(args.repeat, lambda: codec.sample_clip(path, num_segments=args.segments,
                                                                         size=224, device=args.device)),
                       naive=timed(args.repeat, lambda: naive(path, indices)),
                       smart=timed(args.repeat, lambda: smart(path, indices)))
            pts = keyframe_pts(path, indices)
            row["bound"] = (timed(args.repeat, lambda: keyframes_only(path, pts)) if sample.policy == "keyframes"
                            else timed(args.repeat, lambda: bound(path, wanted)))
            rows.append(row)
    print(f"{'clip':24} {'policy':9} {'ours':>9} {'bound':>9} {'naive':>9} {'smart':>9} "
          f"{'ours/bound':>10} {'x naive':>8} {'x smart':>8}   (clips/s)")
    for r in rows:
        print(f"{r['clip']:24} {r['policy']:9} {1 / r['ours']:9.2f} {1 / r['bound']:9.2f} {1 / r['naive']:9.2f} "
              f"{1 / r['smart']:9.2f} {r['bound'] / r['ours']:10.2f} {r['naive'] / r['ours']:8.2f} "
              f"{r['smart'] / r['ours']:8.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
