"""`python -m vccv_gpu.codec info`: the stream structure of H.264 files, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any, Sequence

from tqdm import tqdm

from .errors import StreamError
from .stream import Stream, open as open_stream


def gop_lengths(stream: Stream) -> list[int]:
    """Frames from each keyframe to the next (display order); the last GOP may be partial."""
    keys = stream.keyframes
    return [b - a for a, b in zip(keys, keys[1:] + [len(stream.frames)])]


def describe(stream: Stream) -> dict[str, Any]:
    types = "".join(f.type for f in stream.frames)
    gops = gop_lengths(stream)
    first_key = stream.keyframes[0] if stream.keyframes else 0
    return {
        "file": stream.name,
        "container": stream.container,
        "width": stream.width,
        "height": stream.height,
        "coded_width": stream.coded_width,
        "coded_height": stream.coded_height,
        "profile": stream.profile,
        "level": stream.level,
        "entropy": stream.entropy,
        "fps": stream.fps,
        "duration": stream.duration,
        "frames": len(stream.frames),
        "keyframes": len(stream.keyframes),
        "gop_lengths": gops,
        "types": types,  # display order
        "first_gop": types[first_key:first_key + (gops[0] if gops else 0)],
        "max_slices": max(f.num_slices for f in stream.frames),
        "truncated": stream.truncated,
    }


def _keyint(gops: list[int]) -> str:
    whole = gops[:-1] or gops  # the last GOP is usually cut short by the end of the clip
    if not whole:
        return "-"
    return str(whole[0]) if min(whole) == max(whole) else f"{min(whole)}-{max(whole)}"


def _gop_pattern(first_gop: str, width: int = 24) -> str:
    return first_gop if len(first_gop) <= width else f"{first_gop[:width]}...({len(first_gop)})"


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ["file", "size", "profile", "level", "entropy", "frames", "keyint", "gop"]
    cells = [[
        r["file"], f"{r['width']}x{r['height']}", r["profile"], r["level"], r["entropy"],
        str(r["frames"]) + (" (truncated)" if r["truncated"] else ""), _keyint(r["gop_lengths"]),
        _gop_pattern(r["first_gop"]),
    ] for r in rows]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *cells])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vccv_gpu.codec info",
        description="Print each H.264 file's size, profile, entropy coding, frame count and GOP "
                    "structure (frame types in display order).")
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="mp4/mov/mkv/ts or raw .h264 files")
    parser.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    args = parser.parse_args(argv)

    rows, failures = [], 0
    show_progress = len(args.videos) > 1 and sys.stderr.isatty()
    for path in tqdm(args.videos, desc="parsing", unit="file", disable=not show_progress):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # truncation is reported in the output instead
                with open_stream(path) as stream:
                    row = describe(stream)
        except (StreamError, OSError) as e:
            failures += 1
            print(f"error: {e}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            rows.append(row)
    if rows:
        print(format_table(rows))
    return 1 if failures else 0
