"""Stream-layer speed: `codec.open` (demux + NAL/SPS/PPS/slice-header parsing + display order)
against PyAV demuxing alone and PyAV decoding every frame, on the same generated clips.

    python benchmarks/parse_speed.py [--size 1280x720] [--frames 250] [--repeat 5] [--out report.json]
    python benchmarks/parse_speed.py --clips DIR   # existing clips; without PyAV only codec.open
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from vccv_gpu import codec

try:
    import av
except ImportError:  # the GPU machine has no PyAV: only raw .h264 clips, only codec.open
    av = None


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def demux_only(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(video=0) if p.size)


def decode_all(path: Path) -> int:
    with av.open(str(path)) as c:
        c.streams.video[0].thread_count = 1
        return sum(1 for _ in c.decode(video=0))


def generate(folder: Path, size: str, frames: int) -> list[Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/ is outside the package
    from tools.clips import make_clip

    width, height = (int(v) for v in size.split("x"))
    configs = {
        "gop12-b0-cavlc.mp4": dict(entropy="cavlc", profile="main", bframes=0, gop=12),
        "gop250-b3-cabac.mp4": dict(bframes=3, gop=250),
        "gop250-b3-cabac.h264": dict(bframes=3, gop=250),
    }
    return [make_clip(folder / name, size=(width, height), frames=frames, **settings)
            for name, settings in tqdm(configs.items(), desc="encoding")]


def measure(path: Path, repeat: int) -> dict[str, float | str]:
    result: dict[str, float | str] = dict(clip=path.name, mbytes=path.stat().st_size / 1e6,
                                          parse_s=best_of(repeat, lambda: codec.open(path)))
    if av is not None:
        result["demux_s"] = best_of(repeat, lambda: demux_only(path))
        result["decode_1thread_s"] = best_of(max(1, repeat // 2), lambda: decode_all(path))
        result["parse_over_demux"] = result["parse_s"] / result["demux_s"]
        result["decode_over_parse"] = result["decode_1thread_s"] / result["parse_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720", help="WxH of the generated clips (default 1280x720)")
    parser.add_argument("--frames", type=int, default=250, help="frames per generated clip (default 250)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs per measurement; the fastest is kept (default 5; PyAV's full decode: half)")
    parser.add_argument("--clips", type=Path, help="measure the clips in this folder instead of generating")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clips = sorted(args.clips.iterdir()) if args.clips else generate(Path(tmp), args.size, args.frames)
        results = [measure(path, args.repeat) for path in tqdm(clips, desc="clips")]
    print(f"{'clip':24} {'MB':>6} {'codec.open':>11} {'PyAV demux':>11} {'decode(1t)':>11} "
          f"{'open/demux':>10} {'decode/open':>11}")
    for r in results:
        row = f"{r['clip']:24} {r['mbytes']:6.2f} {r['parse_s'] * 1e3:9.1f}ms"
        if "demux_s" in r:
            row += (f" {r['demux_s'] * 1e3:9.1f}ms {r['decode_1thread_s'] * 1e3:9.1f}ms "
                    f"{r['parse_over_demux']:10.2f} {r['decode_over_parse']:11.1f}")
        print(row)
    if av is not None:
        print(f"median decode/open: {statistics.median(r['decode_over_parse'] for r in results):.1f}x")
    if args.out:
        args.out.write_text(json.dumps(dict(size=args.size, frames=args.frames, results=results), indent=2))


if __name__ == "__main__":
    main()
