"""`python -m vccv_gpu.codec reencode`: rewrite videos to the paper's preprocessing.

H.264 with a keyframe exactly every `gop` frames (x264 ``keyint=min-keyint=gop``, ``scenecut=0``,
closed GOPs), a fixed number of B-frames, the source's resolution (cropped by one column/row
where it is odd, since 4:2:0 needs even sizes) and frame rate; video only, audio is dropped.
Decoding, encoding (libx264) and muxing go through PyAV.

NVENC (``encoder="nvenc"``) is not implemented: it raises NotImplementedError, and
``encoder="auto"`` uses libx264.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Union

import av
import av.filter
from tqdm import tqdm

from .info import VIDEO_SUFFIXES, video_files

PathLike = Union[str, "os.PathLike[str]"]

# Output suffix -> FFmpeg muxer.
OUTPUT_FORMATS = {".mp4": "mp4", ".mkv": "matroska", ".h264": "h264"}
ENCODERS = ("auto", "nvenc", "libx264")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")


class ReencodeError(Exception):
    """A file that could not be re-encoded (unreadable, no video stream, ...)."""


def _nvenc_usable() -> bool:
    try:
        import PyNvVideoCodec  # noqa: F401
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_encoder(encoder: str) -> str:
    """``"libx264"`` for ``auto`` (and ``libx264``); ``nvenc`` raises NotImplementedError."""
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, not {encoder!r}")
    if encoder == "nvenc":
        raise NotImplementedError(
            "the NVENC encoder (PyNvVideoCodec) is not implemented; use --encoder libx264 or auto")
    # auto: NVENC would be picked when PyNvVideoCodec and CUDA are there (_nvenc_usable()), but
    # that branch is not implemented, so auto always means libx264.
    return "libx264"


def x264_params(gop: int, bframes: int) -> str:
    """The ``x264-params`` string for an IDR exactly every `gop` frames and `bframes` B-frames."""
    params = {"keyint": gop, "min-keyint": gop, "scenecut": 0, "open-gop": 0, "bframes": bframes}
    return ":".join(f"{k}={v}" for k, v in params.items())


def _check_settings(gop: int, bframes: int, crf: float, preset: str) -> None:
    if gop < 1:
        raise ValueError(f"gop must be >= 1, not {gop}")
    if not 0 <= bframes <= 16:
        raise ValueError(f"bframes must be 0..16, not {bframes}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be 0..51, not {crf}")
    if preset not in X264_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, not {preset!r}")


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return Fraction(25)


def reencode(src: PathLike, dst: PathLike, *, gop: int = 12, bframes: int = 0, crf: float = 18,
             preset: str = "medium", encoder: str = "libx264") -> Path:
    """Re-encode the first video stream of `src` into `dst` (.mp4, .mkv or .h264) with libx264.

    An IDR frame lands exactly every `gop` frames, with at most `bframes` consecutive B-frames;
    size and frame rate are kept (an odd width or height loses its last column/row, with a
    warning); audio and other streams are dropped. Frames get constant-rate timestamps at the
    source's average frame rate. The file is written under a temporary name and renamed when
    complete. `dst` is overwritten if it exists, but never when it is `src` itself.

    Raises ReencodeError for an unreadable source, ValueError for bad settings or a `dst`
    suffix other than .mp4/.mkv/.h264, NotImplementedError for ``encoder="nvenc"``.
    """
    _check_settings(gop, bframes, crf, preset)
    resolve_encoder(encoder)
    src, dst = Path(src), Path(dst)
    fmt = OUTPUT_FORMATS.get(dst.suffix.lower())
    if fmt is None:
        raise ValueError(f"{dst}: the output must end in {', '.join(OUTPUT_FORMATS)}")
    if dst.resolve() == src.resolve():
        raise ValueError(f"{dst}: refusing to overwrite the input")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    try:
        _transcode(src, tmp, fmt, gop, bframes, crf, preset)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


def _transcode(src: Path, tmp: Path, fmt: str, gop: int, bframes: int, crf: float,
               preset: str) -> None:
    try:
        inp = av.open(str(src))
    except (av.FFmpegError, OSError) as e:
        raise ReencodeError(f"{src}: cannot open: {e}") from e
    with inp:
        if not inp.streams.video:
            raise ReencodeError(f"{src}: no video stream")
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        rate = _frame_rate(vin)
        count = 0
        with av.open(str(tmp), "w", format=fmt) as out:
            vout = graph = sink = buffer = None
            try:
                for frame in inp.decode(vin):
                    if vout is None:
                        w, h = frame.width - frame.width % 2, frame.height - frame.height % 2
                        if w < 2 or h < 2:
                            raise ReencodeError(f"{src}: frame size {frame.width}x{frame.height} too small")
                        if (w, h) != (frame.width, frame.height):
                            warnings.warn(f"{src}: odd frame size {frame.width}x{frame.height}: cropped "
                                          f"to {w}x{h} (the last column/row dropped)", stacklevel=3)
                        vout = out.add_stream("libx264", rate=rate, options={
                            "crf": f"{crf:g}", "preset": preset,
                            "x264-params": x264_params(gop, bframes)})
                        vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
                        vout.time_base = 1 / rate
                        graph = av.filter.Graph()
                        buffer = graph.add_buffer(width=frame.width, height=frame.height,
                                                  format=frame.format.name,
                                                  time_base=frame.time_base or vin.time_base or 1 / rate)
                        crop = graph.add("crop", f"{w}:{h}:0:0")
                        conv = graph.add("format", "yuv420p")
                        sink = graph.add("buffersink")
                        buffer.link_to(crop)
                        crop.link_to(conv)
                        conv.link_to(sink)
                        graph.configure()
                    buffer.push(frame)
                    conv_frame = sink.pull()
                    conv_frame.pts, conv_frame.time_base = count, 1 / rate
                    conv_frame.pict_type = av.video.frame.PictureType.NONE
                    out.mux(vout.encode(conv_frame))
                    count += 1
            except av.FFmpegError as e:
                raise ReencodeError(f"{src}: decoding failed after {count} frames: {e}") from e
            if vout is None:
                raise ReencodeError(f"{src}: no decodable video frames")
            out.mux(vout.encode(None))


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def plan(inputs: Sequence[str], out: str) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(source, destination) pairs for the CLI, and errors for inputs that name no video."""
    pairs: list[tuple[Path, Path]] = []
    errors: list[str] = []
    out_path = Path(out)
    single_file = (len(inputs) == 1 and not os.path.isdir(inputs[0])
                   and out_path.suffix.lower() in OUTPUT_FORMATS and not out_path.is_dir())
    if single_file:
        return [(Path(inputs[0]), out_path)], errors
    for given in inputs:
        if os.path.isdir(given):
            found = list(video_files(given))
            if not found:
                errors.append(f"{given}: no video files in this directory")
            base = Path(given).resolve().name
            for path in found:
                rel = Path(path).relative_to(given)
                # Several directory inputs: each keeps its own name under OUT.
                prefix = Path(base) if sum(os.path.isdir(g) for g in inputs) > 1 else Path()
                pairs.append((Path(path), out_path / prefix / rel.with_suffix(".mp4")))
        else:
            pairs.append((Path(given), out_path / Path(given).with_suffix(".mp4").name))
    return pairs, errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vccv_gpu.codec reencode",
        description="Re-encode videos to the paper's preprocessing: H.264 (libx264), a keyframe "
                    "exactly every --gop frames (closed GOPs, no scene-cut keyframes), --bframes "
                    "B-frames, the same resolution (odd sizes are cropped by one column/row, with a "
                    "note) and frame rate. VIDEO ONLY: audio and subtitle streams are dropped. "
                    "Inputs are never overwritten; existing outputs are skipped unless --overwrite. "
                    "Files that fail are reported on stderr as 'error: PATH: reason' and make the "
                    "exit status 1.")
    parser.add_argument("inputs", nargs="+", metavar="IN",
                        help="video files, or directories searched recursively for video files "
                             f"({', '.join(sorted(VIDEO_SUFFIXES))})")
    parser.add_argument("out", metavar="OUT",
                        help="output directory (created; directory inputs keep their relative layout, "
                             "outputs end in .mp4), or for a single input file an output file "
                             "ending in .mp4, .mkv or .h264")
    parser.add_argument("--gop", type=int, default=12, help="keyframe interval in frames (default 12)")
    parser.add_argument("--bframes", type=int, default=0, help="consecutive B-frames (default 0)")
    parser.add_argument("--crf", type=float, default=18, help="x264 constant rate factor (default 18)")
    parser.add_argument("--preset", default="medium", choices=X264_PRESETS, help="x264 preset (default medium)")
    parser.add_argument("--encoder", default="auto", choices=ENCODERS,
                        help="auto (default) = libx264; nvenc is not implemented yet and fails")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)
    try:
        _check_settings(args.gop, args.bframes, args.crf, args.preset)
        encoder = resolve_encoder(args.encoder)
    except (ValueError, NotImplementedError) as e:
        parser.error(str(e))

    out_resolved = Path(args.out).resolve()
    clash = [given for given in args.inputs if Path(given).resolve() == out_resolved]
    if clash:
        print(f"error: {args.out}: OUT is the input {clash[0]}; refusing to overwrite it", file=sys.stderr)
        return 1
    pairs, errors = plan(args.inputs, args.out)
    failures = len(errors)
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    inputs = {src.resolve() for src, _ in pairs}
    claimed: dict[Path, Path] = {}  # output -> the input that gets it (e.g. a.mkv and a.mp4 -> a.mp4)
    skipped = done = 0
    show_progress = len(pairs) > 1 and sys.stderr.isatty()
    for src, dst in tqdm(pairs, desc="re-encoding", unit="file", disable=not show_progress):
        if dst.resolve() in inputs:
            failures += 1
            tqdm.write(f"error: {src}: output {dst} is an input; refusing to overwrite it", file=sys.stderr)
            continue
        other = claimed.setdefault(dst.resolve(), src)
        if other != src:
            failures += 1
            tqdm.write(f"error: {src}: output {dst} is also the output of {other}; skipped", file=sys.stderr)
            continue
        if dst.exists() and not args.overwrite:
            skipped += 1
            tqdm.write(f"skipped: {dst} exists (use --overwrite)", file=sys.stderr)
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                reencode(src, dst, gop=args.gop, bframes=args.bframes, crf=args.crf,
                         preset=args.preset, encoder=encoder)
        except (ReencodeError, ValueError, OSError, av.FFmpegError) as e:
            failures += 1
            tqdm.write(f"error: {src}: {str(e).removeprefix(f'{src}: ')}", file=sys.stderr)
            continue
        for w in caught:
            tqdm.write(f"note: {w.message}", file=sys.stderr)
        done += 1
    print(f"{done} re-encoded, {skipped} skipped (existing), {failures} failed", file=sys.stderr)
    return 1 if failures else 0
