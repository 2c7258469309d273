"""Caption videos: H.264 files in, one caption per video out.

    python -m vccv_gpu.caption clip.mp4 videos/ [--checkpoint RUN] [--beam 5] [--json]
    python -m vccv_gpu.caption videos/ --out captions.jsonl             # resumable
    python -m vccv_gpu.caption corpus/ --out captions.jsonl --engine ray [--address auto]
    python -m vccv_gpu.caption clip.mp4 --attention pictures/            # where the model looked

In Python:

    from vccv_gpu.caption import caption_videos
    from vccv_gpu.checkpoint import load_checkpoint
    for result in caption_videos(paths, load_checkpoint("run"), device="cuda"):
        print(result)        # CaptionResult(path, caption, score, seconds) or codec ClipError

Pipeline (the plain engine, the default): `codec.ClipLoader` samples each clip in worker threads,
on a CUDA device through the GPU front end (the checkpoint's BackboneConfig fixes num_segments,
size, residual_mode and keep_aspect), the checkpoint's backbones turn a batch into features, and
`VCCV.generate` runs batched beam search; the best beam is the caption and its summed
log-probability the score. `seconds` is the wall time of the video's batch (waiting for sampling,
backbones, beam search) divided by the videos captioned in that batch. At corpus scale,
`--engine ray` runs the same steps as a Ray Data pipeline (`vccv_gpu.ray_engine`: sampling actors
on CPUs, model actors on GPUs, on this machine or a cluster); there `seconds` is the model
actor's time for the batch per video.

Output: `path<TAB>caption` lines on stdout, or JSON lines with --json; with --out the JSON lines
go to FILE.jsonl instead, appended as batches finish (flushed and fsynced), and a rerun skips the
videos already there, so a kill loses at most the batches in flight. A torn last line (a kill
during the write) is dropped and its video captioned again. When the run ends, FILE.jsonl is
rewritten sorted by path with one line per video, and the videos that could not be read go to
FILE.errors.jsonl (path, reason, kind; removed when there are none); they are not in FILE.jsonl,
so a rerun tries them again. JSON records carry the checkpoint's path and content hash
(`checkpoint`, `checkpoint_sha256`). Paths are written resolved (absolute, symlinks followed),
which is also how videos are matched on resume.

CPU and GPU: the model runs in float32 everywhere, but cuDNN convolutions may use TF32 (PyTorch's
default) and the Triton kernels sum in another order than the reference ops, so features differ
by about 1e-3 relative. Beam output is then the same caption with a score within about 1e-3 per
word, except where two beams' scores are closer than that, when either may win.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vccv_gpu import jsonl, ray_engine
from vccv_gpu.checkpoint import Checkpoint
from vccv_gpu.codec.info import VIDEO_SUFFIXES, find_videos, unreadable_message, unreadable_reason
from vccv_gpu.kernels.backend import BACKENDS, resolve_backend
from vccv_gpu.runtime import atomic_write, plain_warnings, resolve_device, stderr_is_terminal

if TYPE_CHECKING:
    from vccv_gpu.codec.loader import ClipError

__all__ = ["CaptionResult", "caption_videos", "collect_videos", "errors_path", "finish_output", "main",
           "read_records"]


class UsageError(ValueError):
    """A user error reported as one line and exit status 2."""


@dataclass(frozen=True)
class CaptionResult:
    path: str       # as given to caption_videos (the CLI gives resolved paths)
    caption: str    # the best beam's words
    score: float    # its summed log-probability (<eos> included when it finished)
    seconds: float  # the batch's wall time divided by the videos captioned in it

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


@dataclass
class _CaptionedBatch:
    """One batch of `_caption_batches`: per input video its result or error (in input order),
    with what the attention pictures need."""

    items: list[CaptionResult | ClipError]
    batch: Any                  # codec ClipBatch
    v_i: Tensor | None          # [B, N, H, W, D_I] of batch.paths
    a_r: Tensor | None
    tokens: list[list[int]]     # best caption's word ids per batch.paths entry


# -----------------------------------------------------------------------------------------------
# In-process API


def _resolve_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    """`runtime.resolve_device` ('cuda' is cuda:local_rank), its error a UsageError."""
    try:
        return resolve_device(str(device), local_rank)
    except ValueError as e:
        raise UsageError(f"{e} (use --device cpu or auto)") from e


def _check_captioning(checkpoint: Checkpoint) -> None:
    where = checkpoint.path or "the checkpoint"
    if checkpoint.backbones is None:
        raise UsageError(f"{where} has no backbones (backbones.safetensors): it was trained on stored "
                         "features and cannot caption raw video; use a checkpoint that bundles its backbones")


def _caption_batches(paths: Sequence[Any], checkpoint: Checkpoint, *, beam: int, batch_size: int, workers: int,
                     device: str | torch.device | None, max_len: int | None,
                     progress: bool | None) -> Iterator[_CaptionedBatch]:
    from vccv_gpu.codec import ClipLoader

    _check_captioning(checkpoint)
    device = next(checkpoint.model.parameters()).device if device is None else _resolve_device(device)
    model, backbones = checkpoint.model.to(device).eval(), checkpoint.backbones.to(device).eval()
    config = backbones.config
    loader = ClipLoader(paths, batch_size=batch_size, num_segments=config.num_segments, size=config.size,
                        device=device, workers=workers, residual=config.residual_mode, progress=progress,
                        keep_aspect=config.keep_aspect)
    start = time.perf_counter()
    for k, batch in enumerate(loader):
        chunk = loader.paths[k * batch_size:(k + 1) * batch_size]
        v_i = a_r = None
        best = []
        if len(batch):
            with torch.inference_mode():
                v_i, a_r = backbones(batch.iframes, batch.residuals)
                best = [beams[0] for beams in model.generate(v_i, a_r, beam_size=beam, max_len=max_len)]
        seconds = (time.perf_counter() - start) / max(len(batch), 1)  # generate's .tolist() synchronised
        results = iter(CaptionResult(str(p), checkpoint.vocab.decode(c.tokens), float(c.log_prob), seconds)
                       for p, c in zip(batch.paths, best))
        errors = iter(batch.errors)
        # Both lists keep input order: walk the chunk to interleave them back into it.
        good = iter(batch.paths)
        next_good = next(good, None)
        items = []
        for p in chunk:
            if next_good is not None and p is next_good:
                items.append(next(results))
                next_good = next(good, None)
            else:
                items.append(next(errors))
        yield _CaptionedBatch(items, batch, v_i, a_r, [c.tokens for c in best])
        start = time.perf_counter()  # the consumer's time (writing, pictures) is not the batch's


def caption_videos(paths: Iterable[str | os.PathLike[str]], checkpoint: Checkpoint, *, beam: int = 5,
                   batch_size: int = 8, workers: int = 2, device: str | torch.device | None = None,
                   max_len: int | None = None,
                   progress: bool | None = False) -> Iterator[CaptionResult | ClipError]:
    """Captions `paths` in order: a `CaptionResult` per video, or the loader's `ClipError` for a
    video that cannot be read. `device`: None keeps the checkpoint where it is; "auto", "cpu",
    "cuda[:k]" move its model and backbones there (in place). `max_len` defaults to the model's.
    `progress`: the loader's sampling bar (None: on for a terminal). Raises UsageError (a
    ValueError) if the checkpoint cannot caption video (no backbones)."""
    for captioned in _caption_batches([str(p) for p in paths], checkpoint, beam=beam, batch_size=batch_size,
                                      workers=workers, device=device, max_len=max_len, progress=progress):
        yield from captioned.items


# -----------------------------------------------------------------------------------------------
# Video lists and JSONL files


def collect_videos(inputs: Iterable[str | os.PathLike[str]],
                   unreadable: list[OSError] | None = None) -> list[Path]:
    """Resolved, deduplicated, sorted video paths: files as given (whatever their extension),
    directories searched recursively for video files (`codec.info.find_videos`). Folders that
    cannot be listed go to `unreadable` (raised without it). Raises UsageError for a path that
    does not exist and for a readable directory without videos."""
    found: dict[str, Path] = {}
    for item in inputs:
        if not os.path.lexists(item):
            raise UsageError(f"{item}: no such file or directory")
        cannot_list: list[OSError] = []
        videos = find_videos([item], cannot_list if unreadable is not None else None)
        if unreadable is not None:
            unreadable.extend(cannot_list)
        if not videos and not cannot_list:  # only a directory can yield none
            raise UsageError(f"{item}: no videos in this directory ({' '.join(sorted(VIDEO_SUFFIXES))})")
        for video in videos:
            resolved = video.resolve()
            found.setdefault(str(resolved), resolved)
    return [found[key] for key in sorted(found)]


def _is_caption(record: Any) -> bool:
    return isinstance(record, dict) and isinstance(record.get("path"), str)


def read_records(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """The caption records of a JSONL file (none if it is missing). A torn last line (a write cut
    short) is ignored, and with `repair` cut off the file so appends start on a clean line.
    Raises UsageError for a damaged line elsewhere."""
    try:
        records = jsonl.read(path, _is_caption)
    except jsonl.JsonlError as e:
        raise UsageError(str(e)) from e
    if repair and jsonl.repair(path):
        print(f"{path}: dropped a torn last line (an interrupted write); its video is captioned again",
              file=sys.stderr)
    return records


def errors_path(out: Path) -> Path:
    """Where the videos that could not be captioned into `out` are listed."""
    return out.with_name(f"{out.name.removesuffix('.jsonl')}.errors.jsonl")


def finish_output(out: Path, errors: Sequence[ClipError]) -> int:
    """Rewrites `out` sorted by path with one line per video (the first record seen), atomically,
    and lists `errors` in `errors_path(out)` (removed when there are none). Returns the line count."""
    merged: dict[str, dict[str, Any]] = {}
    for record in read_records(out):
        merged.setdefault(record["path"], record)
    text = "".join(json.dumps(merged[key]) + "\n" for key in sorted(merged))
    atomic_write(out, lambda f: f.write(text.encode()))
    listed = errors_path(out)
    if errors:
        lines = "".join(json.dumps({"path": str(e.path), "reason": e.reason, "kind": e.kind}) + "\n"
                        for e in sorted(errors, key=lambda e: str(e.path)))
        atomic_write(listed, lambda f: f.write(lines.encode()))
    else:
        listed.unlink(missing_ok=True)
    return len(merged)


def attention_names(paths: Sequence[Path]) -> dict[Path, str]:
    """PNG file name per video: its stem, plus a short hash of its path where stems clash."""
    stems: dict[str, int] = {}
    for p in paths:
        stems[p.stem] = stems.get(p.stem, 0) + 1
    return {p: (f"{p.stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}" if stems[p.stem] > 1 else p.stem)
            + ".png" for p in paths}


# -----------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vccv_gpu.caption",
        description="Caption H.264 videos with a VCCV checkpoint (one caption per video). --engine ray runs "
                    "the same steps as a Ray Data pipeline on this machine or a cluster, for corpora.",
        epilog="Output fields: path (resolved), caption, score (the best beam's summed log-probability), "
               "seconds (the wall time of the video's batch, sampling + backbones + beam search, divided by "
               "the videos captioned in that batch), checkpoint and checkpoint_sha256 (the model that wrote it). "
               "Exit status: 0 all captioned, 1 some videos could not be read (named on stderr, and in "
               "FILE.errors.jsonl with --out), 2 usage error.")
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR",
                        help=f"video files, or directories searched recursively for {' '.join(sorted(VIDEO_SUFFIXES))}")
    parser.add_argument("--checkpoint", metavar="RUN", default=None,
                        help="checkpoint directory, or a training run folder (its best/); default: the bundled "
                             "demo model")
    parser.add_argument("--beam", type=int, default=5, help="beam size (default 5, as in the paper)")
    parser.add_argument("--max-len", type=int, default=None,
                        help="most tokens per caption, <eos> included (default: the model's max_len)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="plain engine: auto = CUDA if available, else CPU")
    parser.add_argument("--batch", type=int, default=8, help="videos per batch (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="plain engine: threads sampling clips (default 2)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    parser.add_argument("--out", metavar="FILE.jsonl", type=Path, default=None,
                        help="append JSON lines to this file instead of stdout; a rerun skips the videos "
                             "already in it; sorted by path when the run ends")
    parser.add_argument("--recaption", action="store_true",
                        help="with --out: caption again the videos whose lines another checkpoint wrote, "
                             "replacing those lines (without it, such a file is refused)")
    parser.add_argument("--attention", metavar="DIR", type=Path, default=None,
                        help="plain engine: write a PNG per video: the sampled frames under SAM's attention map "
                             "for every generated word and TGM's gate per frame, titled with the video's path")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="how the encoder runs: fused Triton kernels, their PyTorch reference, or the "
                             "paper's equations recomputed every step (default: $VCCV_BACKEND, else auto = "
                             "Triton on CUDA)")
    ray_engine.add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    plain_warnings()
    for name in ("beam", "batch", "workers", "max_len"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    ray_engine.check_arguments(parser, args)
    if args.engine == "ray" and args.attention:
        parser.error("--attention needs the plain engine (the features stay in the model workers)")
    try:
        return _run(args)
    except (UsageError, ray_engine.EngineError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun with the same --out to caption the rest", file=sys.stderr)
        return 130


def _load(args: argparse.Namespace, device: torch.device) -> Checkpoint:
    from vccv_gpu.checkpoint import load_checkpoint

    try:  # a backend that cannot run here (Triton without CUDA) is a usage error, not a crash mid-run
        resolve_backend(args.backend, device)
    except (RuntimeError, ValueError) as e:
        raise UsageError(f"--backend: {e}") from e
    try:
        checkpoint = load_checkpoint(args.checkpoint, device=device, backend=args.backend)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise UsageError(str(e)) from e
    _check_captioning(checkpoint)
    return checkpoint


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vccv_gpu.codec.loader import ClipError

    if args.attention:  # an optional dependency is checked before any work
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError('--attention draws with matplotlib, which is not installed: pip install '
                             '"vccv_gpu[viz]" (from a checkout: pip install -e ".[viz]")') from None
    unreadable: list[OSError] = []
    videos = collect_videos(args.inputs, unreadable)
    # The ray engine's driver only reads the checkpoint (identity, sampling shape): on the CPU.
    device = _resolve_device(args.device) if args.engine == "plain" else torch.device("cpu")
    checkpoint = _load(args, device)
    done = _finished(args.out, checkpoint, args.recaption) if args.out is not None else set()
    if args.checkpoint is None:
        print("note: the bundled demo model only knows the generated shapes set (python -m vccv_gpu.data.synthetic "
              "--distractors 2); "
              "for real video, train one (README: 'Training on your own data') and pass --checkpoint RUN",
              file=sys.stderr)
    errors: list[ClipError] = []
    for error in unreadable:
        errors.append(ClipError(str(error.filename), unreadable_reason(error), type(error).__name__))
        print(f"error: {unreadable_message(error)} (its videos are skipped)", file=sys.stderr)
    todo = [v for v in videos if str(v) not in done]
    skipped = f" ({len(videos) - len(todo)} already in {args.out})" if len(todo) < len(videos) else ""
    print(f"captioning {len(todo)} video{'s' * (len(todo) != 1)}{skipped}", file=sys.stderr)

    if args.engine == "ray":
        batches = _ray_batches(args, todo, checkpoint)
    else:
        batches = _plain_batches(args, todo, checkpoint, device)
    bar = tqdm(total=len(todo), unit="video", desc="captioning", dynamic_ncols=True,
               disable=not (stderr_is_terminal() and len(todo) > args.batch))
    identity = checkpoint.identity()
    seen: set[str] = set()  # the ray engine may deliver a retried batch twice
    writer = jsonl.Appender(args.out) if args.out is not None else None
    try:
        for items in batches:
            items = [item for item in items if str(item.path) not in seen]
            seen.update(str(item.path) for item in items)
            results = []
            for item in items:
                if isinstance(item, ClipError):
                    errors.append(item)
                    bar.write(f"error: {item.path}: {item.reason}", file=sys.stderr)
                else:
                    results.append({**dataclasses.asdict(item), **identity})
            if writer is not None:
                writer.write(results)
            elif results:
                lines = [json.dumps(r, ensure_ascii=False) if args.json else f"{r['path']}\t{r['caption']}"
                         for r in results]
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
            bar.update(len(items))
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if args.out is not None:
        lines = finish_output(args.out, errors)
        print(f"{lines} captions in {args.out}", file=sys.stderr)
    if errors:
        where = f" (listed in {errors_path(args.out)})" if args.out is not None else " (named above)"
        print(f"error: {len(errors)} video{'s' * (len(errors) != 1)} could not be captioned{where}", file=sys.stderr)
    return 1 if errors else 0


def _finished(out: Path, checkpoint: Checkpoint, recaption: bool) -> set[str]:
    """The videos `out` already holds captions of. Lines by another checkpoint are a UsageError,
    or with `recaption` removed from the file (atomically) so that their videos are captioned again."""
    out.parent.mkdir(parents=True, exist_ok=True)
    records = read_records(out, repair=True)
    mine = [r for r in records if r.get("checkpoint_sha256") == checkpoint.sha256]
    if len(mine) < len(records):
        if not recaption:
            others = sorted({f"{r.get('checkpoint') or 'an unrecorded checkpoint'} "
                             f"(sha256 {str(r.get('checkpoint_sha256') or '?')[:12]})"
                             for r in records if r not in mine})
            raise UsageError(
                f"{out} holds {len(records) - len(mine)} captions by another checkpoint: {', '.join(others)}; this "
                f"run's is {checkpoint.path} (sha256 {checkpoint.sha256[:12]}). Use another --out, or --recaption "
                f"to caption those videos again with this checkpoint (their lines are replaced)")
        text = "".join(json.dumps(r) + "\n" for r in mine)
        atomic_write(out, lambda f: f.write(text.encode()))
        print(f"{out}: removed {len(records) - len(mine)} captions by another checkpoint (--recaption)",
              file=sys.stderr)
    return {r["path"] for r in mine}


def _plain_batches(args: argparse.Namespace, todo: list[Path], checkpoint: Checkpoint,
                   device: torch.device) -> Iterator[list[CaptionResult | ClipError]]:
    """One process: ClipLoader threads and the model on `device`; attention pictures when asked."""
    names = attention_names(todo) if args.attention else {}
    for captioned in _caption_batches([str(v) for v in todo], checkpoint, beam=args.beam, batch_size=args.batch,
                                      workers=args.workers, device=device, max_len=args.max_len, progress=False):
        yield captioned.items
        if args.attention:
            _draw_batch(args.attention, captioned, checkpoint, names)


def _ray_batches(args: argparse.Namespace, todo: list[Path],
                 checkpoint: Checkpoint) -> Iterator[list[CaptionResult | ClipError]]:
    """The Ray Data pipeline (`vccv_gpu.ray_engine`), one list per finished block of videos."""
    from vccv_gpu.codec.loader import ClipError

    options = ray_engine.options_from(args)
    kwargs = {"checkpoint": str(checkpoint.path), "backend": args.backend, "beam": args.beam, "max_len": args.max_len}
    spec = ray_engine.SamplingSpec.of(checkpoint.backbones.config)  # type: ignore[union-attr] - checked by _load
    for rows in ray_engine.run([str(v) for v in todo], spec, ray_engine.CaptionWorker, kwargs, options):
        yield [ClipError(row["path"], row["error"], row["kind"]) if row["error"] else
               CaptionResult(row["path"], row["caption"], float(row["score"]), float(row["seconds"])) for row in rows]


def _display_aspect(path: str, keep_aspect: bool) -> float | None:
    """Width / height of what the model's square frames show: 1 for centre crops (keep_aspect),
    else the video's (its SPS's size, read from the headers); None where the file will not say."""
    from vccv_gpu import codec

    if keep_aspect:
        return 1.0
    try:
        with codec.open(path) as stream:
            return stream.width / stream.height
    except (OSError, codec.StreamError):
        return None


def _draw_batch(folder: Path, captioned: _CaptionedBatch, checkpoint: Checkpoint, names: dict[Path, str]) -> None:
    from vccv_gpu.attention import attention_maps, draw_attention
    from vccv_gpu.model import EOS

    words_of = checkpoint.vocab.words
    keep_aspect = checkpoint.backbones.config.keep_aspect  # type: ignore[union-attr] - checked by _check_captioning
    for i, (path, sample) in enumerate(zip(captioned.batch.paths, captioned.batch.samples)):
        tokens = captioned.tokens[i] or [EOS]  # an empty caption: the step that chose <eos>
        with torch.inference_mode():
            attention, gate = attention_maps(checkpoint.model, captioned.v_i[i:i + 1], captioned.a_r[i:i + 1], tokens)
        words = [words_of[t] for t in tokens]
        caption = checkpoint.vocab.decode(captioned.tokens[i])
        draw_attention(folder / names[Path(path)], sample.iframes, words, attention, gate, caption,
                       frame_indices=list(sample.frame_indices), video=str(path),
                       aspect=_display_aspect(str(path), keep_aspect))

if __name__ == "__main__":
    sys.exit(main())
