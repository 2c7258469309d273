"""A synthetic captioning set where one frame cannot tell the caption but motion can.

Each clip shows a static crop of one of scikit-image's bundled colour photographs (named in the
caption: "a photo of a rocket", "a photo of a cat", ...) and one flat-coloured shape (ball,
square, triangle in red / green / blue / yellow / white) that moves left / right / up / down,
slowly or quickly, stays still, appears mid-clip and then moves, or moves and stops mid-clip.

Every object starts at the frame centre plus a random offset, whatever its direction, speed or
motion, so the first frame of "moves quickly to the left" and of "moves slowly up" come from the
same distribution: only the motion tells them apart.

With `distractors` k > 0 (CLI `--distractors K`), k more shapes in other colours stand still
in the clip while the caption names only the one that moves (colour, shape, motion). All k + 1
objects start at distinct slots of one grid (jittered), the moving one chosen at random, so one
frame cannot tell which object the caption names: only motion, i.e. the residuals, can. A
"still" clip then names one of k + 1 still objects: such clips are left out of these sets
(nothing could tell which). Every set also gets OUT/positions.json: per clip, each object's
centre (pixels, x, y) and visibility in every frame, for measuring where a model looks.

Clips are encoded with libx264 through PyAV (mp4, one thread, MB-tree off, bit-exact muxing, so a
seed gives byte-identical files) with a rotation of encoder settings: GOP 12 / 250, CAVLC / CABAC,
no B-frames / 2 B-frames; each clip is checked afterwards to really use its settings.

CLI::

    python -m vccv_gpu.data.synthetic OUT --videos N [--seed S] [--size 160x96] [--frames 48] [--fps 12]
                                      [--distractors K]

writes OUT/videos/clip_00000.mp4, ... and OUT/captions.csv (``video,caption,split``, relative
paths, ~70/15/15 train/val/test) for ``load_dataset("csv", OUT / "captions.csv")``, and
OUT/positions.json.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from vccv_gpu.data import Sample, load_dataset, scenes

__all__ = ["ATTRIBUTE_WORDS", "BACKGROUNDS", "COLOURS", "DIRECTIONS", "ENCODER_SETTINGS", "MAX_DISTRACTORS", "MOTIONS",
           "SHAPES", "SPEEDS", "ClipParams", "Distractor", "attribute_named", "describe", "generate", "main",
           "named_tracks", "objects_shown", "positions", "render", "sample_params", "scene_tracks", "scene_words"]

# Bundled colour photographs -> how the caption names them.
BACKGROUNDS: dict[str, str] = {
    "rocket": "a rocket",
    "coffee": "coffee",
    "chelsea": "a cat",
    "astronaut": "an astronaut",
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 60, 235),
    "yellow": (245, 225, 20),
    "white": (250, 250, 250),
}
SHAPES: tuple[str, ...] = ("ball", "square", "triangle")
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
SPEEDS: tuple[str, ...] = ("slowly", "quickly")
# moves: whole clip; still: never moves; appears: invisible until `event`, then moves;
# stops: moves until `event`, then stays where it is.
MOTIONS: tuple[str, ...] = ("moves", "still", "appears", "stops")
_MOTION_WEIGHTS = (0.5, 0.2, 0.15, 0.15)

# The words by which a caption names each attribute of a clip (a caption names at most one of each;
# "still" is the direction of a shape that stays, and a shape that simply moves names no motion word).
ATTRIBUTE_WORDS: dict[str, tuple[str, ...]] = {
    "direction": (*DIRECTIONS, "still"),
    "speed": SPEEDS,
    "motion": ("appears", "stops", "still"),
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "photo": tuple(name.split()[-1] for name in BACKGROUNDS.values()),
}


def attribute_named(caption: str, attribute: str) -> str | None:
    """The word of `caption` that names `attribute` (see ATTRIBUTE_WORDS), or None."""
    words = set(caption.lower().split())
    return next((w for w in ATTRIBUTE_WORDS[attribute] if w in words), None)


_DIRECTION_PHRASE = {"left": "to the left", "right": "to the right", "up": "up", "down": "down"}
_UNIT = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
# Distance covered over a whole clip of moving, as a fraction of the frame extent along the motion.
_TRAVEL = {"slowly": 0.14, "quickly": 0.36}
_START_JITTER = 0.08  # start = centre +- this fraction of width / height
_RADIUS = 0.13        # object half-size as a fraction of min(width, height)

# (gop, entropy, bframes): every combination; clip i uses entry (i + offset(seed)) % 8.
ENCODER_SETTINGS: tuple[tuple[int, str, int], ...] = tuple(
    itertools.product((12, 250), ("cavlc", "cabac"), (0, 2)))
_CRF = 23

_SPLIT_FRACTIONS = (0.70, 0.15, 0.15)


@dataclass(frozen=True)
class Distractor:
    """A shape that stands still for the whole clip, never named by the caption."""

    shape: str
    colour: str
    start: tuple[float, float]  # centre (pixels, x, y)


@dataclass(frozen=True)
class ClipParams:
    """Everything that determines one clip's pixels and caption.

    start: object centre at frame 0 (pixels, x, y); crop: (x0, y0, step) of the background crop
    in source-image pixels; event: frame where "appears" / "stops" happens (ignored otherwise);
    distractors: the still shapes the caption does not name (drawn under the named one).
    """

    background: str
    shape: str
    colour: str
    motion: str
    direction: str
    speed: str
    start: tuple[float, float]
    crop: tuple[float, float, float]
    event: int
    distractors: tuple[Distractor, ...] = ()


def describe(params: ClipParams | Mapping[str, Any]) -> str:
    """The caption of a clip, from a small grammar:

    * moves:   "a {colour} {shape} moves {speed} {direction} across a photo of {bg}"
    * still:   "a {colour} {shape} stays still on a photo of {bg}"
    * appears: "a {colour} {shape} appears and moves {speed} {direction} over a photo of {bg}"
    * stops:   "a {colour} {shape} moves {speed} {direction} and stops on a photo of {bg}"

    with direction "to the left" / "to the right" / "up" / "down".
    """
    p = asdict(params) if isinstance(params, ClipParams) else dict(params)
    thing = f"a {p['colour']} {p['shape']}"
    photo = f"a photo of {BACKGROUNDS[p['background']]}"
    motion = p["motion"]
    if motion == "still":
        return f"{thing} stays still on {photo}"
    way = f"{p['speed']} {_DIRECTION_PHRASE[p['direction']]}"
    if motion == "moves":
        return f"{thing} moves {way} across {photo}"
    if motion == "appears":
        return f"{thing} appears and moves {way} over {photo}"
    if motion == "stops":
        return f"{thing} moves {way} and stops on {photo}"
    raise ValueError(f"unknown motion {motion!r}: expected one of {', '.join(MOTIONS)}")


# Start slots of the distractor sets (fractions of width, height): far enough apart that still
# shapes do not overlap (2 * _RADIUS of the height apart), jittered by _SLOT_JITTER.
_SLOTS = tuple(itertools.product((0.2, 0.5, 0.8), (0.3, 0.7)))
_SLOT_JITTER = 0.04
MAX_DISTRACTORS = len(_SLOTS) - 1


def sample_params(rng: np.random.Generator, size: tuple[int, int], frames: int, distractors: int = 0) -> ClipParams:
    """Draw one clip's content. The start position does not depend on motion, direction or speed;
    with distractors, every object's start comes from the same slots (module docstring). With
    none, the draws are those of the original set (a seed gives the same clips)."""
    if not 0 <= distractors <= MAX_DISTRACTORS:
        raise ValueError(f"distractors must be 0..{MAX_DISTRACTORS}, got {distractors}")
    params = _sample_named(rng, size, frames)
    if not distractors:
        return params
    while params.motion == "still":  # k + 1 still objects: no way to tell which one is named
        params = _sample_named(rng, size, frames)
    w, h = size
    slots = rng.choice(len(_SLOTS), size=distractors + 1, replace=False)
    starts = [(float((_SLOTS[k][0] + rng.uniform(-_SLOT_JITTER, _SLOT_JITTER)) * w),
               float((_SLOTS[k][1] + rng.uniform(-_SLOT_JITTER, _SLOT_JITTER)) * h)) for k in slots]
    colours = [c for c in COLOURS if c != params.colour]
    others = rng.choice(len(colours), size=distractors, replace=False)
    still = tuple(Distractor(shape=str(rng.choice(SHAPES)), colour=colours[k], start=starts[1 + i])
                  for i, k in enumerate(others))
    return replace(params, start=starts[0], distractors=still)


def _sample_named(rng: np.random.Generator, size: tuple[int, int], frames: int) -> ClipParams:
    """The named object's clip (the original set's draws, in their order)."""
    w, h = size
    background = str(rng.choice(list(BACKGROUNDS)))
    src_h, src_w = scenes.photo(background).shape[:2]
    step = float(rng.uniform(0.6, 0.95) * min(src_w / w, src_h / h))
    x0 = float(rng.uniform(0.0, src_w - 1 - step * (w - 1)))
    y0 = float(rng.uniform(0.0, src_h - 1 - step * (h - 1)))
    start = (float(w / 2 + rng.uniform(-_START_JITTER, _START_JITTER) * w),
             float(h / 2 + rng.uniform(-_START_JITTER, _START_JITTER) * h))
    lo, hi = max(1, frames // 3), max(2, (2 * frames) // 3)
    return ClipParams(
        background=background,
        shape=str(rng.choice(SHAPES)),
        colour=str(rng.choice(list(COLOURS))),
        motion=str(rng.choice(MOTIONS, p=_MOTION_WEIGHTS)),
        direction=str(rng.choice(DIRECTIONS)),
        speed=str(rng.choice(SPEEDS)),
        start=start,
        crop=(x0, y0, step),
        event=int(rng.integers(lo, hi)),
    )


def _background(params: ClipParams, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    x0, y0, step = params.crop
    src = scenes.photo(params.background)
    ys = y0 + step * np.arange(h, dtype=np.float64)
    return scenes.sample_bilinear(src, ys, x0 + step * np.arange(w, dtype=np.float64))


def _centres(params: ClipParams, size: tuple[int, int], frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres (frames, 2) as x, y in pixels; visible (frames,) bool)."""
    w, h = size
    t = np.arange(frames, dtype=np.float64)
    ux, uy = _UNIT[params.direction]
    extent = w if ux else h
    per_frame = _TRAVEL[params.speed] * extent / max(frames - 1, 1)
    if params.motion == "still":
        moved = np.zeros_like(t)
    elif params.motion == "moves":
        moved = t
    elif params.motion == "appears":
        moved = np.maximum(t - params.event, 0.0)
    elif params.motion == "stops":
        moved = np.minimum(t, params.event)
    else:
        raise ValueError(f"unknown motion {params.motion!r}")
    centres = np.stack([params.start[0] + ux * per_frame * moved, params.start[1] + uy * per_frame * moved], axis=1)
    visible = t >= params.event if params.motion == "appears" else np.ones(frames, dtype=bool)
    return centres, visible


def _alpha(shape: str, cx: float, cy: float, r: float, size: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage (H, W) float32 in 0..1 of a shape centred at (cx, cy)."""
    w, h = size
    xs = np.arange(w, dtype=np.float32)[None, :] + 0.5 - cx
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5 - cy
    if shape == "ball":
        inside = r - np.sqrt(xs * xs + ys * ys)
    elif shape == "square":
        inside = r - np.maximum(np.abs(xs), np.abs(ys))
    elif shape == "triangle":
        # Upward-pointing isosceles triangle inscribed in the r-box: base at y = +r, apex at y = -r.
        n = np.float32(1.0 / np.sqrt(5.0))  # normal of the slanted edges, |(2, 1)| = sqrt 5
        left = (-2 * xs + ys + r) * n   # > 0 right of the left edge
        right = (2 * xs + ys + r) * n   # > 0 left of the right edge
        inside = np.minimum(np.minimum(left, right), r - ys)
    else:
        raise ValueError(f"unknown shape {shape!r}: expected one of {', '.join(SHAPES)}")
    return np.clip(inside + 0.5, 0.0, 1.0).astype(np.float32)


def render(params: ClipParams, size: tuple[int, int] = (160, 96),
           frames: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb (frames, H, W, 3) uint8, the named object's coverage masks (frames, H, W) float32,
    the background with the still distractors (H, W, 3) uint8)."""
    w, h = size
    bg = _background(params, size)
    r = _RADIUS * min(w, h)
    for d in params.distractors:
        a = _alpha(d.shape, d.start[0], d.start[1], r, size)[:, :, None]
        bg = bg * (1.0 - a) + np.asarray(COLOURS[d.colour], dtype=np.float32) * a
    colour = np.asarray(COLOURS[params.colour], dtype=np.float32)
    centres, visible = _centres(params, size, frames)
    out = np.empty((frames, h, w, 3), dtype=np.uint8)
    masks = np.zeros((frames, h, w), dtype=np.float32)
    for i in range(frames):
        if visible[i]:
            masks[i] = _alpha(params.shape, float(centres[i, 0]), float(centres[i, 1]), r, size)
        a = masks[i][:, :, None]
        out[i] = np.clip(bg * (1.0 - a) + colour * a + 0.5, 0, 255).astype(np.uint8)
    return out, masks, np.clip(bg + 0.5, 0, 255).astype(np.uint8)


def positions(params: ClipParams, size: tuple[int, int], frames: int) -> list[dict[str, Any]]:
    """Every object of a clip, the named one first: shape, colour, named, radius (pixels), and
    per frame its centre (x, y, pixels) and whether any of it is in the frame."""
    w, h = size
    r = _RADIUS * min(w, h)
    centres, shown = _centres(params, size, frames)
    inside = (centres[:, 0] > -r) & (centres[:, 0] < w + r) & (centres[:, 1] > -r) & (centres[:, 1] < h + r)
    objects = [{"shape": params.shape, "colour": params.colour, "named": True, "radius": r,
                "centre": [[round(float(x), 2), round(float(y), 2)] for x, y in centres],
                "visible": [bool(v) for v in shown & inside]}]
    for d in params.distractors:
        objects.append({"shape": d.shape, "colour": d.colour, "named": False, "radius": r,
                        "centre": [[round(d.start[0], 2), round(d.start[1], 2)]] * frames, "visible": [True] * frames})
    return objects


def _positions_of(positions_json: str | Path, samples: Iterable[Sample]) -> tuple[dict[str, Any], list[Sample]]:
    """positions.json's entries and `samples` as a list; ValueError naming a video the file lacks."""
    where = json.loads(Path(positions_json).read_text(encoding="utf-8"))
    samples = list(samples)
    missing = [s.video_id for s in samples if s.video_id not in where]
    if missing:
        raise ValueError(f"{positions_json}: no objects for {len(missing)} video(s), e.g. {missing[0]}")
    return where, samples


def objects_shown(positions_json: str | Path, samples: Iterable[Sample]) -> dict[str, set[str]]:
    """Per video of `samples` (keyed by its path, as a string), the colour and shape words of every
    object a generated set's positions.json lists for it, named by the caption or not: what one
    frame shows, as opposed to what the caption names. The stand-in for ImageNet's "everything in
    the frame" as CNN_I's pretraining target (`PretrainOptions.iframe_scene`). Raises ValueError
    naming a video the file does not list."""
    where, samples = _positions_of(positions_json, samples)
    return {str(s.video_path): {str(w) for o in where[s.video_id]["objects"] for w in (o["colour"], o["shape"])}
            for s in samples}


def named_tracks(positions_json: str | Path, samples: Iterable[Sample]) -> dict[str, dict[str, object]]:
    """Per video of `samples` (keyed by its path, as a string), where the object its caption names
    is in every frame: {"size": [width, height], "centre": [[x, y], ...], "visible": [bool, ...]}
    from a generated set's positions.json, in the video's pixels: what grounding scores attention
    against (`grounding.track_cells`) and CNN_r's "where" pretraining target
    (`PretrainOptions.residual_where`). Raises ValueError naming a video the file does not list."""
    where, samples = _positions_of(positions_json, samples)
    tracks = {}
    for s in samples:
        named = next(o for o in where[s.video_id]["objects"] if o["named"])
        tracks[str(s.video_path)] = {"size": where[s.video_id]["size"], "centre": named["centre"],
                                     "visible": named["visible"]}
    return tracks


def scene_tracks(positions_json: str | Path, samples: Iterable[Sample]) -> dict[str, dict[str, object]]:
    """Per video of `samples` (keyed by its path, as a string), every object it shows, named or
    not: {"size": [width, height], "objects": [{"colour", "shape", "centre": [[x, y], ...],
    "visible": [bool, ...]}, ...]} from a generated set's positions.json, in the video's pixels:
    CNN_I's per-cell pretraining target (`PretrainOptions.iframe_cells`). Raises ValueError
    naming a video the file does not list."""
    where, samples = _positions_of(positions_json, samples)
    return {str(s.video_path): {"size": where[s.video_id]["size"],
                                "objects": [{key: o[key] for key in ("colour", "shape", "centre", "visible")}
                                            for o in where[s.video_id]["objects"]]}
            for s in samples}


def scene_words(captions: str | Path) -> dict[str, set[str]]:
    """`objects_shown` for every video of a generated set, from the positions.json beside `captions`."""
    return objects_shown(Path(captions).parent / "positions.json", load_dataset("csv", captions))


def _encode_clip(path: Path, rgb: np.ndarray, fps: int, gop: int, entropy: str, bframes: int) -> None:
    frames, h, w = rgb.shape[:3]
    params = {
        "threads": "1", "mbtree": "0",  # byte-identical output per seed
        "cabac": "1" if entropy == "cabac" else "0",
        "bframes": str(bframes),
        "b-pyramid": "normal" if bframes >= 2 else "none",
        "keyint": str(gop), "min-keyint": str(max(1, min(gop, gop // 2 + 1))), "scenecut": "0",
    }
    options = {"profile": "high", "preset": "medium", "crf": str(_CRF),
               "x264-params": ":".join(f"{k}={v}" for k, v in params.items())}
    rate = Fraction(fps)
    # bitexact: no muxer version string or date, so a seed always gives the same bytes.
    with av.open(str(path), "w", format="mp4", container_options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("libx264", rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rgb[i], format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, 1 / rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    _check_encoded(path, entropy, bframes, gop, (w, h), frames)


def _check_encoded(path: Path, entropy: str, bframes: int, gop: int, size: tuple[int, int], frames: int) -> None:
    """The clip as the parser reads it has the settings asked of libx264 (which overrides some
    silently): entropy coding, size, frame count, a keyframe every `gop` frames and only there,
    runs of at most `bframes` B-frames. RuntimeError naming the first that differs."""
    from vccv_gpu import codec

    with codec.open(path) as s:
        keyframes = [f.index for f in s.frames if f.key]
        run = longest = 0
        for f in s.frames:
            run = run + 1 if f.type == "B" else 0
            longest = max(longest, run)
        found = {"entropy": s.entropy, "size": (s.width, s.height), "frames": len(s.frames),
                 "keyframes": keyframes, "B-frame runs": longest <= bframes}
    wanted = {"entropy": entropy, "size": size, "frames": frames, "keyframes": list(range(0, frames, gop)),
              "B-frame runs": True}
    for key, want in wanted.items():
        if found[key] != want:
            raise RuntimeError(f"{path}: libx264 did not encode {key} {want} (found {found[key]})")


def _splits(n: int, rng: np.random.Generator) -> list[str]:
    n_val = round(n * _SPLIT_FRACTIONS[1])
    n_test = round(n * _SPLIT_FRACTIONS[2])
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    labels = ["val"] * n_val + ["test"] * n_test
    labels += ["train"] * (n - len(labels))
    return [labels[i] for i in rng.permutation(n)]


def _check(videos: int, size: Sequence[int], frames: int, fps: int) -> tuple[int, int]:
    if videos < 1:
        raise ValueError(f"videos must be >= 1, got {videos}")
    w, h = (int(size[0]), int(size[1]))
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise ValueError(f"size must be even and at least 16x16, got {w}x{h}")
    if frames < 3:
        raise ValueError(f"frames must be >= 3, got {frames}")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    return w, h


def generate(out_dir: str | Path, videos: int, *, seed: int = 0, size: tuple[int, int] = (160, 96),
             frames: int = 48, fps: int = 12, progress: bool = False, distractors: int = 0) -> Path:
    """Write `videos` clips to out_dir/videos/, out_dir/captions.csv and out_dir/positions.json
    ({video: {"size": [w, h], "objects": `positions`}}); returns the CSV path.

    Everything (content, captions, encoder settings, splits) is a deterministic function of `seed`
    (and `distractors`).
    """
    if not 0 <= distractors <= MAX_DISTRACTORS:
        raise ValueError(f"distractors must be 0..{MAX_DISTRACTORS}, got {distractors}")
    size = _check(videos, size, frames, fps)
    scenes.require_photos()  # before the folder exists
    out_dir = Path(out_dir)
    video_dir = out_dir / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    offset = int(rng.integers(len(ENCODER_SETTINGS)))
    splits = _splits(videos, rng)
    indices: Any = range(videos)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="clips", unit="clip")
    rows = []
    where: dict[str, Any] = {}
    for i in indices:
        params = sample_params(rng, size, frames, distractors)
        gop, entropy, bframes = ENCODER_SETTINGS[(i + offset) % len(ENCODER_SETTINGS)]
        rel = f"videos/clip_{i:05d}.mp4"
        rgb, _, _ = render(params, size, frames)
        _encode_clip(out_dir / rel, rgb, fps, gop, entropy, bframes)
        rows.append((rel, describe(params), splits[i]))
        where[rel] = {"size": list(size), "objects": positions(params, size, frames)}
    (out_dir / "positions.json").write_text(json.dumps(where) + "\n", encoding="utf-8")
    csv_path = out_dir / "captions.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("video", "caption", "split"))
        writer.writerows(rows)
    return csv_path


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 160x96, got {text!r}") from None
    return w, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vccv_gpu.data.synthetic",
        description="Write a synthetic H.264 captioning set (photo background + one moving shape; "
                    "the caption depends on the motion) as OUT/videos/*.mp4 and OUT/captions.csv.")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--videos", type=int, required=True, help="number of clips")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=_size, default=(160, 96), help="WIDTHxHEIGHT, even (default 160x96)")
    parser.add_argument("--frames", type=int, default=48, help="frames per clip (default 48)")
    parser.add_argument("--fps", type=int, default=12, help="frame rate (default 12)")
    parser.add_argument("--distractors", type=int, default=0,
                        help=f"still shapes in other colours beside the named, moving one (0..{MAX_DISTRACTORS}, "
                             "default 0): only motion tells which object the caption names")
    args = parser.parse_args(argv)
    try:
        path = generate(args.out, args.videos, seed=args.seed, size=args.size, frames=args.frames, fps=args.fps,
                        progress=True, distractors=args.distractors)
    except ValueError as err:
        parser.error(str(err))
    except ImportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
