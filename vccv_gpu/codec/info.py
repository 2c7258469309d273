"""`python -m vccv_gpu.codec info`: the stream structure of H.264 files, as a table or JSON.

Directories are searched (recursively) for video files; `--verify` also entropy-decodes every
frame, so damage anywhere in a file is found, not only in its headers."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..runtime import plain_warnings, stderr_is_terminal
from .errors import CorruptStream, StreamError
from .stream import Stream
from .stream import open as open_stream

# What a directory search picks up: containers FFmpeg reads and raw H.264 streams (.jsv, .26l:
# the JVT conformance suites' names).
VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mov", ".qt", ".3gp", ".3g2", ".mkv", ".webm", ".ts", ".mts", ".m2ts", ".m2t",
    ".h264", ".264", ".avc", ".h26l", ".26l", ".jvt", ".jsv", ".avi", ".flv", ".f4v", ".mpg", ".mpeg",
    ".vob", ".wmv", ".asf", ".ogv", ".mxf", ".nut",
})


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


def video_files(directory: str | os.PathLike[str], unreadable: list[OSError] | None = None) -> Iterator[str]:
    """Video files under `directory` by extension, sorted, hidden files and folders skipped.
    A folder that cannot be listed (permissions) raises its OSError, or with `unreadable` is
    appended there and skipped."""

    def cannot_list(error: OSError) -> None:
        if unreadable is None:
            raise error
        unreadable.append(error)

    for root, dirs, files in os.walk(directory, onerror=cannot_list):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_SUFFIXES:
                yield os.path.join(root, name)


def find_videos(inputs: Iterable[str | os.PathLike[str]], unreadable: list[OSError] | None = None) -> list[Path]:
    """In the order given: files as given (whatever their extension, and missing ones too, so
    they are reported as errors), and each directory's `video_files` (folders that cannot be
    listed: as there)."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        found.extend(map(Path, video_files(path, unreadable)) if path.is_dir() else [path])
    return found


def unreadable_reason(error: OSError) -> str:
    """Why a folder cannot be listed: 'permission denied', or the OS's reason."""
    return "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error)).lower()


def unreadable_message(error: OSError) -> str:
    """How the CLIs name a folder they cannot list: 'permission denied: PATH'."""
    return f"{unreadable_reason(error)}: {error.filename}"


def inspect(path: str, verify: bool = False) -> dict[str, Any]:
    """The `describe` row of one file; a truncated file is listed (and warned about, as by
    `codec.open`). With `verify`, every frame's macroblocks and residual are decoded too, and a
    truncated file is an error instead: raises CorruptStream naming the file."""
    if not verify:
        with open_stream(path) as stream:
            return describe(stream)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the truncation warning becomes the error below
        with open_stream(path) as stream:
            row = describe(stream)
            if stream.truncated:
                found = [re.search(r"truncated \((.*)\); (\d+) complete frames", str(w.message)) for w in caught]
                why = next((f"truncated ({m.group(1)}); {m.group(2)} complete frames" for m in found if m),
                           "truncated")
                raise CorruptStream(why, stream.name)
            for frame in stream.frames:
                stream.residual(frame.index)  # (the macroblocks then come from the same parse)
                stream.macroblocks(frame.index)
    return {**row, "verified": True}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vccv_gpu.codec info",
        description="Print each H.264 file's size, profile, entropy coding, frame count and GOP "
                    "structure (frame types in display order). Files that cannot be read are "
                    "reported on stderr as 'error: PATH: reason' and make the exit status 1; "
                    "truncated files are listed with their complete frames and a "
                    "'warning: PATH: truncated (...)' line on stderr (an error with --verify).")
    parser.add_argument("videos", nargs="+", metavar="VIDEO",
                        help="mp4/mov/mkv/ts or raw .h264 files, or directories to search for video files")
    parser.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    parser.add_argument("--verify", action="store_true",
                        help="also decode every frame's macroblocks and residual (entropy decoding), so "
                             "corrupt slice data anywhere is found; truncated files count as errors")
    args = parser.parse_args(argv)
    plain_warnings()

    rows, failures = [], 0
    paths: list[str] = []
    for given in args.videos:
        if os.path.isdir(given):
            unreadable: list[OSError] = []
            found = list(video_files(given, unreadable))
            for error in unreadable:
                failures += 1
                print(f"error: {unreadable_message(error)}", file=sys.stderr)
            if not found and not unreadable:
                failures += 1
                print(f"error: {given}: no video files in this directory", file=sys.stderr)
            paths += found
        else:
            paths.append(given)
    show_progress = len(paths) > 1 and stderr_is_terminal()
    for path in tqdm(paths, desc="verifying" if args.verify else "parsing", unit="file",
                     disable=not show_progress):
        try:
            row = inspect(path, args.verify)
        except (StreamError, OSError) as e:
            failures += 1
            tqdm.write(f"error: {e}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            rows.append(row)
    if rows:
        print(format_table(rows))
    return 1 if failures else 0
