"""Runs one stream of ../shared/conformance through the parser and FFmpeg (PyAV) and reports
what happened, as plain data a worker process can send back.

`check_stream(path)` opens the stream with `codec.open`, parses every frame's macroblocks,
residual and coefficients, decodes it with FFmpeg exporting motion vectors, and compares frame
count, frame types and every exported vector (for an exported 8x8 block its top-left 4x4, the
vector FFmpeg exports for a split 8x8), and the residuals of the first inter frames through
the prediction-consistency oracle. `run_streams` runs many streams in worker processes,
each with a time limit, so that a crash or a hang is an outcome of its stream, not of the run.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# Streams from other encoders' and decoders' test suites (README.md and MANIFEST.tsv there): the
# project's shared/ folder, which lies beside the repository (here and in CI).
CONFORMANCE = Path(os.environ.get("VCCV_CONFORMANCE", Path(__file__).resolve().parents[2] / "shared" / "conformance"))


def require_conformance() -> None:
    """Skips the calling test where the streams are absent; in CI (CI=true) that fails."""
    import pytest

    if not CONFORMANCE.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the conformance streams are missing: {CONFORMANCE} (../shared beside the checkout)")
        pytest.skip(f"no conformance streams at {CONFORMANCE} (set VCCV_CONFORMANCE)")


# Outcomes of one stream.
OK = "ok"                    # opened, every frame parsed
REFUSED = "unsupported"      # codec.UnsupportedStream at open or in a frame
CORRUPT = "corrupt"          # codec.CorruptStream at open or in a frame
FAILED = "failed"            # any other exception (a parser bug)
CRASHED = "crashed"          # the worker died (signal): a parser bug
TIMED_OUT = "timed out"      # past the time limit: a parser bug


@dataclass
class StreamReport:
    name: str
    outcome: str
    message: str = ""
    frames: int = 0                 # parser frames listed
    types: str = ""                 # their types in display order
    parsed_frames: int = 0          # frames whose macroblocks, residual and coefficients parsed
    ffmpeg_frames: int | None = None
    ffmpeg_types: str = ""
    ffmpeg_error: str = ""
    vectors_compared: int = 0
    vector_mismatches: list[str] = field(default_factory=list)
    residual_samples: int = 0       # inter samples whose residual the prediction oracle knows
    residual_mismatches: list[str] = field(default_factory=list)
    residual_unchecked: str = ""    # why the residual oracle does not apply, where it does not
    intra_samples: int = 0          # intra samples the intra oracle checked
    intra_mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0


# Frames per stream whose residuals are checked (the oracles predict in numpy and Python: slow):
# inter blocks of the first inter frames, intra blocks of the first I frame and inter frames.
RESIDUAL_FRAMES = 6
INTRA_FRAMES = 3


def _ffmpeg_view(path: Path, report: StreamReport) -> list:
    """FFmpeg's frames, decoded once for every comparison: exported vectors, macroblock types and
    planes, without the loop filter (vectors and types do not depend on it; both residual oracles
    need the unfiltered pictures). Raw streams are read as H.264 whatever their first bytes, with
    the reordering depth the standard allows (mv_oracle.decode_with_motion). Errors are recorded,
    not raised (damaged input)."""
    from mv_oracle import decode_with_motion

    raw = path.suffix.lower() not in (".mp4", ".mov", ".mkv", ".ts", ".3gp")
    try:
        motions = decode_with_motion(path, mb_types=True, keep_planes=True, skip_loop_filter=True,
                                     format="h264" if raw else None, strict=True)
    except Exception as e:  # noqa: BLE001 - FFmpeg's own refusal is data here
        report.ffmpeg_error = f"{type(e).__name__}: {e}"
        return []
    report.ffmpeg_frames = len(motions)
    report.ffmpeg_types = "".join(m.pict_type[0] for m in motions)
    return motions


def _compare_vectors(stream, index: int, motion, report: StreamReport) -> None:
    from mv_oracle import expected_mv_grid

    mb = stream.macroblocks(index)
    for lst in (0, 1):
        expected, known = expected_mv_grid(motion, lst, stream.coded_width, stream.coded_height)
        report.vectors_compared += int(known.sum())
        bad = known & (mb.mv[lst] != expected).any(axis=-1)
        if bad.any() and len(report.vector_mismatches) < 5:
            y, x = (int(v) for v in np.argwhere(bad)[0])
            report.vector_mismatches.append(
                f"frame {index} list {lst}: {int(bad.sum())} of {int(known.sum())} vectors differ, first at "
                f"4x4 block ({x}, {y}): parser {tuple(mb.mv[lst][y, x])}, FFmpeg {tuple(expected[y, x])}")


def _compare_planes(stream, index: int, pict_type: str, planes, mismatches: list[str]) -> int:
    """The parser's residual of frame `index` against an oracle's (plane name, valid mask,
    expected residual) triples; mismatches described in `mismatches`. Returns the samples checked."""
    residual = stream.residual(index)
    checked = 0
    for plane, valid, expected in planes:
        checked += int(valid.sum())
        wrong = valid & (getattr(residual, plane) != expected)
        if wrong.any():
            y, x = (int(v) for v in np.argwhere(wrong)[0])
            mismatches.append(f"frame {index} ({pict_type}) {plane}: {int(wrong.sum())} of "
                              f"{int(valid.sum())} samples differ, first at ({x}, {y})")
    return checked


def _compare_residuals(path: Path, stream, decoded: list, report: StreamReport) -> None:
    """The parser's residual of the first inter frames against decoded - inter prediction
    (residual_oracle.prediction_residuals: the parser's vectors and references), wherever the
    decoded sample is not clipped."""
    from residual_oracle import prediction_residuals

    frames = set(sorted(f.index for f in stream.frames if f.type != "I")[:RESIDUAL_FRAMES])
    try:
        checks = prediction_residuals(path, stream, frames, decoded=decoded)
    except ValueError as e:  # weighted prediction, several PPS: outside the oracle
        report.residual_unchecked = str(e)
        return
    for check in checks:
        if check is not None:
            planes = ((name, p.valid, p.residual) for name, p in check.planes.items())
            report.residual_samples += _compare_planes(stream, check.index, check.pict_type, planes,
                                                       report.residual_mismatches)


def _compare_intra_residuals(path: Path, stream, decoded: list, report: StreamReport) -> None:
    """The parser's residual of intra macroblocks against decoded - intra prediction
    (intra_oracle: the parser's prediction modes), in the first I frame and the first inter
    frames, wherever the decoded sample is not clipped."""
    from intra_oracle import intra_residual_oracle

    first_i = [f.index for f in stream.frames if f.type == "I"][:1]
    inter = [f.index for f in stream.frames if f.type != "I"][:INTRA_FRAMES - len(first_i)]
    for check in intra_residual_oracle(path, stream, set(first_i + inter), skip_loop_filter=True, decoded=decoded):
        planes = zip("yuv", check.valid, check.residual)
        report.intra_samples += _compare_planes(stream, check.index, check.pict_type, planes,
                                                report.intra_mismatches)


def manifest(root: Path = CONFORMANCE) -> list[str]:
    """The streams MANIFEST.tsv lists (paths relative to `root`); [] where `root` is absent."""
    if not root.is_dir():
        return []
    with (root / "MANIFEST.tsv").open(newline="") as f:
        return [row["file"] for row in csv.DictReader(f, delimiter="\t")]


def parse_stream(path: Path) -> tuple[StreamReport, object]:
    """Opens one stream from its path and parses every frame's slice headers, scaling
    matrices, macroblocks, residual and coefficients (with the fuzz harness's shape and range
    checks); returns the report and the open stream (None unless it parsed)."""
    from tools.fuzz.harness import check_frame
    from vccv_gpu import codec

    report = StreamReport(path.name, OK)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation warnings: the outcome says it
            stream = codec.open(path)
        report.frames = len(stream.frames)
        report.types = "".join(f.type for f in stream.frames)
        for f in stream.frames:
            stream.slice_headers(f.index)
            stream.scaling_matrices(f.index)
            check_frame(stream, stream.macroblocks(f.index), stream.residual(f.index), stream.coefficients(f.index))
            report.parsed_frames += 1
        return report, stream
    except codec.UnsupportedStream as e:
        report.outcome, report.message = REFUSED, str(e)
    except codec.CorruptStream as e:
        report.outcome, report.message = CORRUPT, str(e)
    except Exception as e:  # noqa: BLE001 - anything else is the finding
        report.outcome = FAILED
        report.message = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
    return report, None


def check_stream(path: Path) -> StreamReport:
    """Parses and compares one stream (see the module docstring)."""
    start = time.monotonic()
    report, stream = parse_stream(path)
    if stream is not None:
        motions = _ffmpeg_view(path, report)
        if report.ffmpeg_frames == report.frames:
            for f, motion in zip(stream.frames, motions):
                if f.type == motion.pict_type[0] and motion.lists is not None:
                    _compare_vectors(stream, f.index, motion, report)
            if report.types == report.ffmpeg_types:
                _compare_residuals(path, stream, motions, report)
                _compare_intra_residuals(path, stream, motions, report)
    report.seconds = time.monotonic() - start
    return report


def _worker(check: Callable[[Path], StreamReport], path: str, connection) -> None:
    try:
        connection.send(asdict(check(Path(path))))
    finally:
        connection.close()


def run_streams(paths: list[Path], *, jobs: int, timeout: float,
                check: Callable[[Path], StreamReport] = check_stream) -> dict[str, StreamReport]:
    """`check` (default `check_stream`) of every path in worker processes (`jobs` at a time,
    forked so that each starts warm; a crash's report, a sanitizer's included, goes to the
    inherited stderr), each killed after `timeout` seconds. Keyed by the path as given."""
    context = multiprocessing.get_context("fork")
    pending = list(paths)
    running: dict = {}
    reports: dict[str, StreamReport] = {}
    while pending or running:
        while pending and len(running) < jobs:
            path = pending.pop(0)
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=(check, str(path), sender), daemon=True)
            process.start()
            sender.close()
            running[path] = (process, receiver, time.monotonic())
        time.sleep(0.02)
        for path, (process, receiver, started) in list(running.items()):
            report = None
            if receiver.poll():
                try:
                    report = StreamReport(**receiver.recv())
                except EOFError:
                    pass
            if report is None and process.is_alive():
                if time.monotonic() - started < timeout:
                    continue
                process.kill()
                report = StreamReport(path.name, TIMED_OUT, f"no result within {timeout:.0f} s")
            elif report is None:
                process.join()
                report = StreamReport(path.name, CRASHED, f"worker exited with status {process.exitcode}")
            process.join()
            receiver.close()
            del running[path]
            reports[str(path)] = report
    return reports


def default_jobs() -> int:
    return max(2, len(os.sched_getaffinity(0)))
