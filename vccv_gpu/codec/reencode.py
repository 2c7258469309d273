"""`python -m vccv_gpu.codec reencode`: rewrite videos to the paper's preprocessing.

H.264 with a keyframe exactly every `gop` frames (closed GOPs, no scene-cut keyframes), a fixed
number of B-frames, the source's resolution and frame rate; video only, audio is dropped.

* libx264 (``encoder="libx264"``, and ``auto`` without a GPU): decoding, encoding
  (``keyint=min-keyint=gop``, ``scenecut=0``) and muxing through PyAV; odd sizes lose their last
  column/row (4:2:0 needs even sizes).
* NVENC (``encoder="nvenc"``, and ``auto`` when PyNvVideoCodec and CUDA are there):
  PyNvVideoCodec's demuxer and NVDEC decoder feed its NVENC encoder on the GPU (``gop`` and
  ``idrperiod`` = gop, ``bf`` = bframes, constant quality ``cq`` = crf, the x264 preset mapped
  to P1..P7; string values, as in the 2.2.4 wheel's samples/basic/transcode_config.json), the
  pieces of the wheel's samples/advanced/transcode.py, and PyAV muxes the encoded packets,
  video only, with constant-rate timestamps like libx264's. Not PyNvVideoCodec's Transcoder: it
  refuses inputs without audio and copies the audio of the others. Sources must be 8-bit 4:2:0
  of even size (else ``auto`` uses libx264). The result is checked with
  the parser (every keyframe at a multiple of gop and only there, B-frame runs within bframes,
  the source's frame count): a file NVENC got wrong, or a source it cannot take, is an error,
  or under ``auto`` a warning and a libx264 re-encode. Compute GPUs have no NVENC unit (the H100,
  H200, A100: the session is refused with NV_ENC_ERR_UNSUPPORTED_DEVICE); after the first
  refusal ``auto`` uses libx264 without trying again.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Union

import av
import av.filter
from tqdm import tqdm

from ..runtime import plain_warnings, stderr_is_terminal
from .info import VIDEO_SUFFIXES, video_files

PathLike = Union[str, "os.PathLike[str]"]

# Output suffix -> FFmpeg muxer.
OUTPUT_FORMATS = {".mp4": "mp4", ".mkv": "matroska", ".h264": "h264"}
ENCODERS = ("auto", "nvenc", "libx264")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")


# x264 preset -> NVENC preset (P1 fastest .. P7 best), so that --preset means the same trade-off.
NVENC_PRESETS = {"ultrafast": "P1", "superfast": "P1", "veryfast": "P2", "faster": "P3", "fast": "P3",
                 "medium": "P4", "slow": "P5", "slower": "P6", "veryslow": "P7", "placebo": "P7"}
# PyAV muxes NVENC's packets through add_mux_stream, taking the SPS/PPS from the first packet
# (PyAV 18; checked with 18.1).
NVENC_MIN_PYAV = 18
NVENC_PIXEL_FORMATS = ("yuv420p", "yuvj420p")  # what NVDEC hands NVENC as NV12


class ReencodeError(Exception):
    """A file that could not be re-encoded (unreadable, no video stream, ...)."""


def ffmpeg_message(error: av.FFmpegError, src: PathLike) -> str:
    """FFmpeg's own words for a PyAV error ("Invalid data found when processing input"), not PyAV's
    "[Errno 1094995529] ...: 'path'"; prefixed with the file it names when that is not `src`."""
    text = error.strerror or str(error)
    named = error.filename
    return text if named is None or Path(named) == Path(src) else f"{named}: {text}"


# GPUs of this process found to have no NVENC unit (the H100, H200 and A100 have NVDEC only):
# {gpu id: why}. Learnt from the first encoder session they refuse, so that `auto` then goes
# straight to libx264.
_NO_NVENC: dict[int, str] = {}
# nvEncodeAPI.h NVENCSTATUS 2, NV_ENC_ERR_UNSUPPORTED_DEVICE, as PyNvVideoCodec words it
_UNSUPPORTED_DEVICE = re.compile(r"nvEncOpenEncodeSessionEx.*returned error 2\b", re.S)


def nvenc_unusable() -> str | None:
    """Why NVENC cannot be used here, or None when it can (PyNvVideoCodec with its driver, CUDA,
    PyAV >= NVENC_MIN_PYAV, and a GPU not yet found without NVENC)."""
    from .nvcodec import import_pynvvideocodec

    module, why = import_pynvvideocodec()
    if module is None:
        if why is not None and why.startswith("ModuleNotFoundError"):
            return "PyNvVideoCodec is not installed (pip install pynvvideocodec)"
        return f"PyNvVideoCodec cannot be loaded ({why})"
    if int(av.__version__.split(".")[0]) < NVENC_MIN_PYAV:
        return f"NVENC output needs PyAV >= {NVENC_MIN_PYAV}, not {av.__version__}"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device is available"
    return _NO_NVENC.get(torch.cuda.current_device())


def resolve_encoder(encoder: str) -> str:
    """The encoder to use: ``auto`` is nvenc where it is usable, else libx264. ValueError for
    ``nvenc`` where it is not usable."""
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, not {encoder!r}")
    if encoder == "libx264":
        return encoder
    why = nvenc_unusable()
    if encoder == "nvenc" and why is not None:
        raise ValueError(f"--encoder nvenc: {why}")
    return "nvenc" if why is None else "libx264"


def nvenc_config(gop: int, bframes: int, crf: float, preset: str) -> dict[str, str]:
    """PyNvVideoCodec encoder settings for an IDR every `gop` frames and `bframes` B-frames
    (strings: the binding's settings are a Dict[str, str])."""
    return {"codec": "h264", "gop": str(gop), "idrperiod": str(gop), "bf": str(bframes),
            "preset": NVENC_PRESETS[preset], "tuning_info": "high_quality", "rc": "vbr", "cq": str(round(crf))}


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


def _expected_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                     rate: Fraction) -> int | None:
    """The progress bar's total: the container's frame count (MP4/MOV), else duration x rate
    (Matroska, MPEG-TS ... state no count), else None (a bar without an ETA)."""
    if stream.frames:
        return stream.frames
    if stream.duration and stream.time_base:
        seconds = stream.duration * stream.time_base
    elif container.duration:
        seconds = Fraction(container.duration, av.time_base)
    else:
        return None
    return max(1, round(seconds * rate))


def reencode(src: PathLike, dst: PathLike, *, gop: int = 12, bframes: int = 0, crf: float = 18,
             preset: str = "medium", encoder: str = "libx264", progress: bool = False) -> Path:
    """Re-encode the first video stream of `src` into `dst` (.mp4, .mkv or .h264).

    An IDR frame lands exactly every `gop` frames, with at most `bframes` consecutive B-frames;
    size and frame rate are kept (libx264: an odd width or height loses its last column/row,
    with a warning; audio and other streams are dropped). libx264 frames get constant-rate
    timestamps at the source's average frame rate. `encoder`: libx264, nvenc or auto (see the
    module docstring). The file is written under a temporary name and renamed when complete.
    `dst` is overwritten if it exists, but never when it is `src` itself. `progress`: a tqdm bar
    over the frames on stderr, with an ETA where the frame count or duration is known.

    Raises ReencodeError for an unreadable source (or an NVENC result that is not what was
    asked), ValueError for bad settings, a `dst` suffix other than .mp4/.mkv/.h264, or an
    encoder that cannot be used.
    """
    _check_settings(gop, bframes, crf, preset)
    src, dst = Path(src), Path(dst)
    fmt = OUTPUT_FORMATS.get(dst.suffix.lower())
    if fmt is None:
        raise ValueError(f"{dst}: the output must end in {', '.join(OUTPUT_FORMATS)}")
    if dst.resolve() == src.resolve():
        raise ValueError(f"{dst}: refusing to overwrite the input")
    chosen = resolve_encoder(encoder)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.part{dst.suffix}")  # the suffix names the container
    try:
        if chosen == "nvenc":
            try:
                _transcode_nvenc(src, tmp, fmt, gop, bframes, crf, preset, progress)
            except ReencodeError as e:
                if encoder == "nvenc":
                    raise
                warnings.warn(f"{e}; re-encoded with libx264 instead", stacklevel=2)
                chosen = "libx264"
        if chosen == "libx264":
            _transcode(src, tmp, fmt, gop, bframes, crf, preset, progress)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


def _transcode_nvenc(src: Path, tmp: Path, fmt: str, gop: int, bframes: int, crf: float, preset: str,
                     progress: bool) -> None:
    """PyNvVideoCodec's demuxer -> NVDEC -> NVENC on one CUDA stream (and torch's context), PyAV's
    muxer (video only, frame k at pts k / rate), then the result checked."""
    import PyNvVideoCodec as nvc
    import torch

    from .nvcodec import keep_current_context, torch_context

    rate, frames, expected = _nvenc_source(src)
    count = 0
    bar = tqdm(total=expected, desc=src.name, unit="frame", disable=not progress, leave=False)
    gpu_id = torch.cuda.current_device()
    with keep_current_context():  # whatever the binding leaves current, torch's context comes back
        try:
            stream = torch.cuda.Stream(gpu_id)
            handles = {"cudacontext": torch_context(gpu_id), "cudastream": int(stream.cuda_stream)}
            demuxer = nvc.CreateDemuxer(filename=str(src))
            width, height = demuxer.Width(), demuxer.Height()
            decoder = nvc.CreateDecoder(gpuid=gpu_id, codec=demuxer.GetNvCodecId(), usedevicememory=True, **handles)
            encoder = nvc.CreateEncoder(width, height, "NV12", False, gpu_id=str(gpu_id), **handles,
                                        **nvenc_config(gop, bframes, crf, preset))
            with av.open(str(tmp), "w", format=fmt) as out:
                vout = out.add_mux_stream("h264", rate=rate, width=width, height=height)
                vout.time_base = 1 / rate  # the muxer may change the stream's when it writes the header
                written = 0

                def mux(packets: list[dict]) -> None:
                    nonlocal written
                    for encoded in packets:
                        packet = av.Packet(encoded["data"])
                        packet.stream, packet.time_base = vout, 1 / rate
                        # pts: the display index given to Encode; decoding order runs at most
                        # `bframes` pictures ahead of it
                        packet.pts, packet.dts = encoded["timestamp"], written - bframes
                        packet.is_keyframe = 5 in _nal_types(encoded["data"])  # an IDR slice
                        out.mux(packet)
                        written += 1

                for packet in demuxer:  # video packets, then an empty one that flushes the decoder
                    for frame in decoder.Decode(packet):
                        params = nvc.NV_ENC_PIC_PARAMS()
                        params.inputTimeStamp = count
                        mux(encoder.Encode(frame, params))
                        count += 1
                        bar.update()
                mux(encoder.EndEncode())
            stream.synchronize()
        except Exception as e:  # noqa: BLE001 - PyNvVideoCodec raises its own (and plain) exception types
            why = ffmpeg_message(e, src) if isinstance(e, av.FFmpegError) else f"{type(e).__name__}: {e}"
            if _UNSUPPORTED_DEVICE.search(str(e)):
                why = _NO_NVENC.setdefault(gpu_id, f"the {torch.cuda.get_device_name(gpu_id)} has no NVENC encoder "
                                                   "(NV_ENC_ERR_UNSUPPORTED_DEVICE)")
            raise ReencodeError(f"{src}: NVENC re-encoding failed after {count} frames ({why})") from e
        finally:
            bar.close()
    check_gop_structure(tmp, gop, bframes, frames, what=f"{src}: NVENC")


def _nvenc_source(src: Path) -> tuple[Fraction, int | None, int | None]:
    """The frame rate, (where the container states it) frame count and the progress bar's total
    of a source NVENC can take; ReencodeError for one it cannot (no video, not 8-bit 4:2:0, an
    odd size)."""
    try:
        with av.open(str(src)) as container:
            if not container.streams.video:
                raise ReencodeError(f"{src}: no video stream")
            video = container.streams.video[0]
            ctx = video.codec_context
            if ctx.pix_fmt not in NVENC_PIXEL_FORMATS or ctx.width % 2 or ctx.height % 2:
                raise ReencodeError(f"{src}: NVENC takes 8-bit 4:2:0 of even size, not {ctx.pix_fmt} "
                                    f"{ctx.width}x{ctx.height}")
            rate = _frame_rate(video)
            return rate, video.frames or None, _expected_frames(container, video, rate)
    except av.FFmpegError as e:
        raise ReencodeError(f"{src}: {ffmpeg_message(e, src)}") from e
    except OSError as e:
        raise ReencodeError(f"{src}: cannot open: {e}") from e


def _nal_types(annexb: bytes) -> set[int]:
    """The nal_unit_types in an Annex B byte string (start codes cannot occur inside a NAL unit)."""
    types: set[int] = set()
    start = annexb.find(b"\0\0\1")
    while 0 <= start < len(annexb) - 3:
        types.add(annexb[start + 3] & 0x1F)
        start = annexb.find(b"\0\0\1", start + 3)
    return types


def check_gop_structure(path: PathLike, gop: int, bframes: int, frames: int | None = None,
                        what: str | None = None) -> None:
    """Raises ReencodeError unless the H.264 file `path` has its keyframes exactly at the
    multiples of `gop`, no run of more than `bframes` B-frames and (if given) `frames` frames."""
    from .errors import CorruptStream, UnsupportedStream
    from .stream import open as open_stream

    what = what or str(path)
    try:
        with open_stream(path) as s:
            types = [f.type for f in s.frames]
            keys = s.keyframes
    except (CorruptStream, UnsupportedStream) as e:
        raise ReencodeError(f"{what} wrote a file the parser cannot read: {e}") from None
    if frames is not None and len(types) != frames:
        raise ReencodeError(f"{what} wrote {len(types)} frames, the source has {frames}")
    expected = list(range(0, len(types), gop))
    if keys != expected:
        wrong = sorted(set(keys) ^ set(expected))[:5]
        raise ReencodeError(f"{what} put keyframes elsewhere than every {gop} frames (e.g. around frames {wrong})")
    run = longest = 0
    for t in types:
        run = run + 1 if t == "B" else 0
        longest = max(longest, run)
    if longest > bframes:
        raise ReencodeError(f"{what} wrote {longest} consecutive B-frames, more than {bframes}")


def _transcode(src: Path, tmp: Path, fmt: str, gop: int, bframes: int, crf: float,
               preset: str, progress: bool) -> None:
    try:
        inp = av.open(str(src))
    except av.FFmpegError as e:
        raise ReencodeError(f"{src}: {ffmpeg_message(e, src)}") from e
    except OSError as e:
        raise ReencodeError(f"{src}: cannot open: {e}") from e
    with inp:
        if not inp.streams.video:
            raise ReencodeError(f"{src}: no video stream")
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        rate = _frame_rate(vin)
        count = 0
        bar = tqdm(total=_expected_frames(inp, vin, rate), desc=src.name, unit="frame", disable=not progress,
                   leave=False)
        with bar, av.open(str(tmp), "w", format=fmt) as out:
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
                    bar.update()
            except av.FFmpegError as e:
                raise ReencodeError(f"{src}: decoding failed after {count} frames: {ffmpeg_message(e, src)}") from e
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
        description="Re-encode videos to the paper's preprocessing: H.264 (NVENC or libx264), a keyframe "
                    "exactly every --gop frames (closed GOPs, no scene-cut keyframes), --bframes "
                    "B-frames, the same resolution (odd sizes are cropped by one column/row, with a "
                    "note) and frame rate. VIDEO ONLY: audio and subtitle streams are dropped. "
                    "Inputs are never overwritten; existing outputs are skipped unless --overwrite. "
                    "Files that fail are reported on stderr as 'error: PATH: reason' (FFmpeg's own "
                    "words for a file it cannot read) and make the exit status 1. On a terminal, a "
                    "progress bar per file shows the frames done and an ETA.")
    parser.add_argument("inputs", nargs="+", metavar="IN",
                        help="video files, or directories searched recursively for video files "
                             f"({', '.join(sorted(VIDEO_SUFFIXES))})")
    parser.add_argument("out", metavar="OUT",
                        help="output directory (created; directory inputs keep their relative layout, "
                             "outputs end in .mp4), or for a single input file an output file "
                             "ending in .mp4, .mkv or .h264")
    parser.add_argument("--gop", type=int, default=12, help="keyframe interval in frames (default 12)")
    parser.add_argument("--bframes", type=int, default=0, help="consecutive B-frames (default 0)")
    parser.add_argument("--crf", type=float, default=18,
                        help="x264 constant rate factor; NVENC's constant quality cq (default 18)")
    parser.add_argument("--preset", default="medium", choices=X264_PRESETS,
                        help="x264 preset; NVENC gets the matching P1..P7 (default medium)")
    parser.add_argument("--encoder", default="auto", choices=ENCODERS,
                        help="auto (default): NVENC through PyNvVideoCodec where it and CUDA are there "
                             "(a result with the wrong GOP structure, or a source NVENC cannot take, is "
                             "redone with libx264), else libx264; nvenc: NVENC or an error")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)
    plain_warnings()
    try:
        _check_settings(args.gop, args.bframes, args.crf, args.preset)
        resolve_encoder(args.encoder)
    except ValueError as e:
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
    progress = stderr_is_terminal()
    for src, dst in tqdm(pairs, desc="re-encoding", unit="file", disable=not progress or len(pairs) < 2):
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
                         preset=args.preset, encoder=args.encoder, progress=progress)
        except (ReencodeError, ValueError, OSError, av.FFmpegError) as e:
            failures += 1
            why = ffmpeg_message(e, src) if isinstance(e, av.FFmpegError) else str(e)
            tqdm.write(f"error: {src}: {why.removeprefix(f'{src}: ')}", file=sys.stderr)
            continue
        for w in caught:
            tqdm.write(f"note: {w.message}", file=sys.stderr)
        done += 1
    print(f"{done} re-encoded, {skipped} skipped (existing), {failures} failed", file=sys.stderr)
    return 1 if failures else 0
