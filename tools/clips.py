"""Synthetic H.264 clips with exactly known encoder settings, for tests and benchmarks.

Nothing here is used by the captioning pipeline itself.  The module makes short
clips from real photographs (scikit-image's bundled sample images: a background
that pans and zooms with sub-pixel motion, plus a few moving cut-out objects),
encodes them with libx264 through PyAV with the requested coding tools, and
then *checks* that libx264 really used those tools (it silently overrides
some combinations), so that a test which asks for e.g. CAVLC + 4 slices can
rely on getting exactly that.

Public API:

* :func:`make_clip` - encode an H.264 clip with given settings and verify them.
* :func:`x264_settings` - parse the option string libx264 embeds in its SEI.
* :func:`make_foreign_clip` - a short clip in another codec (MPEG-4 part 2, VP9),
  for "this is not H.264" tests.
* :func:`render_frames` - the raw RGB frames that :func:`make_clip` encodes.
* :func:`write_cqm_file` / :func:`read_cqm_file` - custom quantisation matrices in
  the JM format libx264's ``cqmfile`` option reads (for ``make_clip(cqm=...)``).
"""

from __future__ import annotations

import math
import os
import pathlib
import re
from collections.abc import Iterator, Mapping
from fractions import Fraction

import av
import numpy as np

from vccv_gpu.data.scenes import photo as _photo
from vccv_gpu.data.scenes import sample_bilinear as _sample

__all__ = ["make_clip", "make_foreign_clip", "make_tagged_clip", "read_cqm_file", "render_frames",
           "write_cqm_file", "x264_settings"]

PathLike = str | pathlib.Path

# Container per file extension.  Raw Annex-B uses FFmpeg's "h264" muxer.
_H264_FORMATS: dict[str, str] = {
    ".mp4": "mp4",
    ".mkv": "matroska",
    ".mov": "mov",
    ".ts": "mpegts",
    ".h264": "h264",
    ".264": "h264",
}

# Foreign codecs: PyAV encoder name -> (allowed extensions, decoder name PyAV reports).
_FOREIGN: dict[str, tuple[dict[str, str], str]] = {
    "mpeg4": ({".mp4": "mp4", ".avi": "avi", ".mkv": "matroska", ".mov": "mov"}, "mpeg4"),
    "libvpx-vp9": ({".webm": "webm", ".mkv": "matroska"}, "vp9"),
}

# Muxers otherwise write random UIDs / dates (Matroska), which would make
# clips from the same seed differ byte-wise.
_CONTAINER_OPTIONS = {"fflags": "+bitexact"}

# subme used when sub-pixel motion is requested (x264's "medium" default).
_SUBME = 7

# Bundled scikit-image photographs (no network access needed).  Colour ones
# make better backgrounds; any of them can be an object texture.
_BACKGROUNDS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
_TEXTURES = _BACKGROUNDS + (
    "camera", "coins", "moon", "brick", "grass", "gravel", "clock", "hubble_deep_field",
)

_SEI_MARKER = b"x264 - core"

# B-frame direct MV prediction: make_clip's name -> x264's "direct=" value in the SEI
# (index into x264_direct_pred_names: none, spatial, temporal, auto).
_DIRECT = {"spatial": "1", "temporal": "2"}

# Macroblock partitions x264 may choose (x264 "partitions=" names) -> its X264_ANALYSE_* bit,
# which the SEI's "analyse=INTRA:INTER" shows in its INTER field.  p4x4 = P sub-macroblock
# partitions 8x4/4x8/4x4; b8x8 = B_8x8 with 8x8 sub-macroblocks (x264 has no smaller B ones).
_PARTITIONS = {"i4x4": 0x1, "i8x8": 0x2, "p8x8": 0x10, "p4x4": 0x20, "b8x8": 0x100}

# Quantisation matrices: x264's "cqm=" value in the SEI (X264_CQM_FLAT/JVT/CUSTOM).
_CQM_SEI = {"flat": "0", "jvt": "1", "custom": "2"}

# The eight lists of a JM-format cqm file, in the order they are written.  x264
# (4:2:0) keeps a single chroma list per intra/inter: its parser looks up
# "INTRA4X4_CHROMA" / "INTER4X4_CHROMA" and takes whichever of the U / V lists
# comes first, and the PPS signals "Cr = Cb".
_CQM_LISTS = (
    "INTRA4X4_LUMA", "INTRA4X4_CHROMAU", "INTRA4X4_CHROMAV",
    "INTER4X4_LUMA", "INTER4X4_CHROMAU", "INTER4X4_CHROMAV",
    "INTRA8X8_LUMA", "INTER8X8_LUMA",
)

# H.264 default scaling matrices (Tables 7-3/7-4, x264's x264_cqm_jvt*), raster order.
_CQM_JVT4I = (6, 13, 20, 28, 13, 20, 28, 32, 20, 28, 32, 37, 28, 32, 37, 42)
_CQM_JVT4P = (10, 14, 20, 24, 14, 20, 24, 27, 20, 24, 27, 30, 24, 27, 30, 34)
_CQM_JVT8I = (
    6, 10, 13, 16, 18, 23, 25, 27, 10, 11, 16, 18, 23, 25, 27, 29,
    13, 16, 18, 23, 25, 27, 29, 31, 16, 18, 23, 25, 27, 29, 31, 33,
    18, 23, 25, 27, 29, 31, 33, 36, 23, 25, 27, 29, 31, 33, 36, 38,
    25, 27, 29, 31, 33, 36, 38, 40, 27, 29, 31, 33, 36, 38, 40, 42,
)
_CQM_JVT8P = (
    9, 13, 15, 17, 19, 21, 22, 24, 13, 13, 17, 19, 21, 22, 24, 25,
    15, 17, 19, 21, 22, 24, 25, 27, 17, 19, 21, 22, 24, 25, 27, 28,
    19, 21, 22, 24, 25, 27, 28, 30, 21, 22, 24, 25, 27, 28, 30, 32,
    22, 24, 25, 27, 28, 30, 32, 33, 24, 25, 27, 28, 30, 32, 33, 35,
)
_CQM_JVT = {
    "INTRA4X4_LUMA": _CQM_JVT4I, "INTRA4X4_CHROMAU": _CQM_JVT4I, "INTRA4X4_CHROMAV": _CQM_JVT4I,
    "INTER4X4_LUMA": _CQM_JVT4P, "INTER4X4_CHROMAU": _CQM_JVT4P, "INTER4X4_CHROMAV": _CQM_JVT4P,
    "INTRA8X8_LUMA": _CQM_JVT8I, "INTER8X8_LUMA": _CQM_JVT8P,
}


# --------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------


def _bounce(p0: float, v: float, t: np.ndarray | float, span: float) -> np.ndarray | float:
    """Position at time t of a point moving at v and reflecting inside [0, span]."""
    if span <= 0:
        return 0.0 * np.asarray(t)
    u = np.mod(p0 + v * np.asarray(t, dtype=np.float64), 2.0 * span)
    return span - np.abs(u - span)


class _Object:
    """A textured cut-out (rectangle or ellipse) moving with sub-pixel steps."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], texture: np.ndarray,
                 appear: int) -> None:
        w, h = size
        base = min(w, h)
        oh = max(2, min(h, int(base * rng.uniform(0.22, 0.4))))
        ow = max(2, min(w, int(oh * rng.uniform(0.7, 1.6))))
        # Texture: a random window of another photo, resampled to the object size.
        th, tw = texture.shape[:2]
        zoom = rng.uniform(0.5, 1.0)
        wh, ww = th * zoom, tw * zoom
        ty, tx = rng.uniform(0, th - wh), rng.uniform(0, tw - ww)
        tex = _sample(texture, np.linspace(ty, ty + wh - 1, oh), np.linspace(tx, tx + ww - 1, ow))
        if rng.random() < 0.5:  # ellipse with an anti-aliased edge
            yy = (np.arange(oh) + 0.5 - oh / 2) / (oh / 2)
            xx = (np.arange(ow) + 0.5 - ow / 2) / (ow / 2)
            r = np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)
            alpha = np.clip((1.0 - r) * min(oh, ow) / 2 + 0.5, 0.0, 1.0).astype(np.float32)
        else:
            alpha = np.ones((oh, ow), np.float32)
        # Premultiplied, padded by one pixel so a fractional shift spills into it.
        a = np.pad(alpha, 1)[:, :, None]
        self.premul = np.pad(tex, ((1, 1), (1, 1), (0, 0))) * a
        self.alpha = a
        self.span = (w - (ow + 2), h - (oh + 2))
        self.p0 = (rng.uniform(0, max(self.span[0], 0)), rng.uniform(0, max(self.span[1], 0)))
        # Non-integer velocities (output pixels per frame), different per object.
        speed = rng.uniform(0.6, 3.5) * max(1.0, base / 240)
        ang = rng.uniform(0, 2 * math.pi)
        self.v = (speed * math.cos(ang), speed * math.sin(ang))
        self.appear = appear

    def draw(self, frame: np.ndarray, t: int) -> None:
        if t < self.appear:
            return
        x = float(_bounce(self.p0[0], self.v[0], t, self.span[0]))
        y = float(_bounce(self.p0[1], self.v[1], t, self.span[1]))
        ix, iy = int(x), int(y)
        fx, fy = x - ix, y - iy

        def shift(a: np.ndarray) -> np.ndarray:
            # Bilinear sub-pixel shift by (fx, fy); the zero pad absorbs the spill.
            s = a * ((1 - fx) * (1 - fy))
            s[1:, :] += a[:-1, :] * ((1 - fx) * fy)
            s[:, 1:] += a[:, :-1] * (fx * (1 - fy))
            s[1:, 1:] += a[:-1, :-1] * (fx * fy)
            return s

        pm, al = shift(self.premul), shift(self.alpha)
        h, w = pm.shape[:2]
        region = frame[iy:iy + h, ix:ix + w]
        h, w = region.shape[:2]  # clipped at the frame border for tiny frames
        region *= 1.0 - al[:h, :w]
        region += pm[:h, :w]


def render_frames(size: tuple[int, int] = (160, 96), frames: int = 24,
                  seed: int = 0) -> Iterator[np.ndarray]:
    """Yield ``frames`` uint8 RGB frames of shape (height, width, 3).

    A background photograph pans and zooms smoothly (sub-pixel, varying
    velocity), 2-3 cut-outs of other photographs move over it at different
    velocities (one appears mid-clip), and a mild brightness dip part-way
    through gives weighted prediction something to do.  Deterministic in
    ``seed``.
    """
    w, h = size
    rng = np.random.default_rng(seed)
    bg_name = _BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))]
    bg = _photo(bg_name)
    sh, sw = bg.shape[:2]

    # Magnification (output px per source px) so that the largest view
    # (zoomed out by `zamp`) covers 75% of the photo, leaving room to pan.
    zamp = rng.uniform(0.06, 0.15)
    m0 = max(w / (0.75 * sw), h / (0.75 * sh)) * (1 + zamp)
    half_w, half_h = w / (2 * m0 * (1 - zamp)), h / (2 * m0 * (1 - zamp))
    amp_x, amp_y = sw / 2 - half_w - 1, sh / 2 - half_h - 1
    # Peak pan speed ~1-3 output px/frame (scaled with resolution); angular
    # frequencies follow from speed = amplitude * omega * magnification.
    speed = rng.uniform(1.0, 3.0) * max(1.0, min(w, h) / 240)
    om_x = speed / max(amp_x * m0, 1e-6)
    om_y = 0.6 * speed / max(amp_y * m0, 1e-6)
    ph_x, ph_y, ph_z = rng.uniform(0, 2 * math.pi, 3)
    om_z = 2 * math.pi / rng.uniform(40, 90)

    n_obj = int(rng.integers(2, 4))
    names = [n for n in _TEXTURES if n != bg_name]
    objects = []
    for k in range(n_obj):
        tex = _photo(names[int(rng.integers(len(names)))])
        # The last object appears mid-clip (exercises new content in P/B frames).
        appear = frames // 2 if k == n_obj - 1 else 0
        objects.append(_Object(rng, (w, h), tex, appear))

    fade_mid = rng.uniform(0.3, 0.7) * frames
    fade_len = max(4.0, frames / 6)
    xs0 = np.arange(w) - (w - 1) / 2
    ys0 = np.arange(h) - (h - 1) / 2
    for t in range(frames):
        m = m0 * (1 + zamp * math.sin(om_z * t + ph_z))
        cx = sw / 2 + amp_x * math.sin(om_x * t + ph_x)
        cy = sh / 2 + amp_y * math.sin(om_y * t + ph_y)
        frame = _sample(bg, cy + ys0 / m, cx + xs0 / m)
        for obj in objects:
            obj.draw(frame, t)
        gain = 1.0 - 0.25 * math.exp(-(((t - fade_mid) / fade_len) ** 2))
        frame *= gain
        np.clip(frame, 0, 255, out=frame)
        yield (frame + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------
# Reading the settings back
# --------------------------------------------------------------------------


def _parse_sei(blob: bytes) -> dict[str, str] | None:
    i = blob.find(_SEI_MARKER)
    if i < 0:
        return None
    end = blob.find(b"\x00", i)
    text = blob[i:end if end >= 0 else len(blob)].decode("latin-1")
    _, sep, opts = text.partition("options:")
    if not sep:
        return None
    out: dict[str, str] = {}
    for tok in opts.split():
        key, eq, val = tok.partition("=")
        if eq:
            out[key] = val
    # The header names the x264 build ("x264 - core 165 - ..."), useful in reports.
    core = text.split(" - ")[1] if " - " in text else ""
    if core.startswith("core "):
        out.setdefault("core", core[5:].strip())
    return out


def x264_settings(path: PathLike) -> dict[str, str]:
    """Parse the option string libx264 embeds in its "user data unregistered" SEI.

    Returns e.g. ``{"cabac": "1", "ref": "3", "deblock": "1:0:0", "bframes": "3",
    ..., "core": "165"}`` (values as written by x264; ``core`` is the x264 build).
    Keys x264 omits are absent: ``slices`` when no slice count was set (x264's
    default, one slice; :func:`make_clip` always sets it, so writes ``slices=1``),
    ``b_pyramid``/``weightb`` etc. without B-frames.

    The SEI is looked for in the demuxed packets of the first video stream (so
    MPEG-TS packetisation cannot split the text), then in the raw file bytes.
    Raises ``ValueError`` when there is no x264 SEI (not H.264, or not x264).
    """
    path = pathlib.Path(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            extradata = stream.codec_context.extradata
            found = _parse_sei(extradata) if extradata else None
            if found is not None:
                return found
            # x264 writes the SEI into the first access unit; look a little further
            # in case a muxer reorders or splits it.
            for n, packet in enumerate(container.demux(stream)):
                found = _parse_sei(bytes(packet))
                if found is not None:
                    return found
                if n >= 16:
                    break
    except (av.FFmpegError, IndexError):
        pass
    # Fallback: scan the file in chunks (the SEI is near the start in practice).
    overlap = 4096
    with open(path, "rb") as f:
        tail = b""
        while chunk := f.read(1 << 20):
            blob = tail + chunk
            i = blob.find(_SEI_MARKER)
            if i >= 0:
                rest = blob[i:] + f.read(overlap)
                found = _parse_sei(rest)
                if found is not None:
                    return found
            tail = blob[-overlap:]
    raise ValueError(f"{path}: no x264 SEI found (not an x264-encoded H.264 stream?)")


# --------------------------------------------------------------------------
# Quantisation matrices (x264 "cqmfile", JM format)
# --------------------------------------------------------------------------


def write_cqm_file(path: PathLike, *, seed: int = 0) -> pathlib.Path:
    """Write a JM-format quantisation-matrix file for libx264's ``cqmfile`` option.

    All eight lists (:data:`_CQM_LISTS`) are written, in raster order (row by
    row; the row index is the vertical frequency), which is the order x264's
    parser (``x264_cqm_parse_file`` in common/set.c) expects: x264 transposes
    them to its transposed-DCT layout and writes them to the PPS in zig-zag
    order itself.  The matrices grow with frequency at a different rate
    horizontally and vertically, plus a little noise, so they are clearly
    neither flat nor the JVT defaults and none is symmetric (a transposed or
    mis-scanned matrix cannot pass for the right one); values lie in 4..64.
    Deterministic in ``seed``.

    x264 has one chroma matrix per intra/inter for 4:2:0 (it reads whichever
    of the U/V lists comes first and signals "Cr = Cb"), so the V lists repeat
    the U lists: the file says exactly what x264 will use.

    Returns the path; read it back with :func:`read_cqm_file`.
    """
    path = pathlib.Path(path)
    rng = np.random.default_rng(seed)

    def matrix(n: int) -> np.ndarray:
        step = 16.0 / n  # ramps span about the same range for 4x4 and 8x8
        a = rng.uniform(0.25, 1.5) * step
        b = a + rng.choice((-1, 1)) * rng.uniform(0.4, 1.0) * step
        b = max(b, 0.1 * step)
        r, c = np.mgrid[0:n, 0:n]
        m = rng.uniform(6, 12) + a * r + b * c + rng.integers(-3, 4, (n, n))
        m = np.clip(np.rint(m), 4, 64).astype(np.int32)
        if np.array_equal(m, m.T):  # practically never: a != b
            m[0, -1] = m[-1, 0] + 1 if m[-1, 0] < 64 else m[-1, 0] - 1
        return m

    mats: dict[str, np.ndarray] = {}
    for name in _CQM_LISTS:
        if name.endswith("CHROMAV"):
            mats[name] = mats[name[:-1] + "U"]
        else:
            mats[name] = matrix(8 if "8X8" in name else 4)
    lines = [
        f"# Custom quantisation matrices for x264 cqmfile (JM format), seed={seed}.",
        "# Raster order, one matrix row per line.  x264 uses a single chroma list",
        "# per intra/inter (4:2:0), so each V list repeats its U list.",
    ]
    for name in _CQM_LISTS:
        m = mats[name]
        lines.append("")
        lines.append(f"{name} =")
        lines.append(",\n".join(",".join(f"{int(v):3d}" for v in row) for row in m))
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


_DIGITS = re.compile(r"[0-9]+")


def _find_any(text: str, start: int, chars: str) -> int:
    """C's strpbrk on ``text[start:]``: index of the first of ``chars``, or -1."""
    for i in range(start, len(text)):
        if text[i] in chars:
            return i
    return -1


def _parse_jm_list(text: str, name: str, jvt: tuple[int, ...], length: int,
                   path: pathlib.Path) -> list[int]:
    """Port of x264's ``cqm_parse_jmlist`` (common/set.c), same quirks included."""
    p = text.find(name)
    if p < 0:
        return [16] * length  # a missing list is flat
    p += len(name)
    if p < len(text) and text[p] in "UV":
        p += 1
    nextvar = text.find("INT", p)
    out: list[int] = []
    while len(out) < length:
        p = _find_any(text, p, " \t\n,")
        if p < 0:
            break
        p = _find_any(text, p, "0123456789")
        if p < 0:
            break
        coef = int(_DIGITS.match(text, p).group())  # type: ignore[union-attr]
        if not out and coef == 0:
            return list(jvt)  # a leading 0 selects the default (JVT) list
        if not 1 <= coef <= 255:
            raise ValueError(f"{path}: bad coefficient {coef} in list {name!r} (must be 1..255)")
        out.append(coef)
    if (nextvar >= 0 and p > nextvar) or len(out) != length:
        raise ValueError(f"{path}: not enough coefficients in list {name!r} "
                         f"(need {length}, found {len(out)} before the next list)")
    return out


def read_cqm_file(path: PathLike) -> dict[str, np.ndarray]:
    """The quantisation matrices libx264 will use for a JM-format ``cqmfile``.

    Returns ``{name: matrix}`` for the eight names of :func:`write_cqm_file`
    (``INTRA4X4_LUMA`` ... ``INTER8X8_LUMA``), each a 4x4 or 8x8 int32 array
    in raster order (``m[row, col]``, row = vertical frequency), i.e. the
    ``weightScale`` matrix a decoder derives from the PPS scaling lists.

    Parsed the way x264 parses it (``x264_cqm_parse_file`` / ``cqm_parse_jmlist``
    in common/set.c): ``#`` starts a comment; the values follow the list's name
    and at least one space/tab/newline/comma, separated by any non-digits; a
    missing list is flat (16); a list whose first value is 0 is the JVT
    default.  ``*_CHROMAU`` and ``*_CHROMAV`` are the same matrix: x264 reads
    whichever of the two lists comes first in the file for both Cb and Cr.
    Raises ``ValueError`` where x264 would refuse the file (a value outside
    1..255, too few values in a list).
    """
    path = pathlib.Path(path)
    text = path.read_bytes().decode("latin-1").split("\0", 1)[0]
    text = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), text)
    out: dict[str, np.ndarray] = {}
    for name in _CQM_LISTS:
        n = 8 if "8X8" in name else 4
        key = name[:-1] if name.endswith(("CHROMAU", "CHROMAV")) else name
        vals = _parse_jm_list(text, key, _CQM_JVT[name], n * n, path)
        out[name] = np.array(vals, dtype=np.int32).reshape(n, n)
    return out


def _partition_names(partitions: str, transform_8x8: bool) -> set[str]:
    """make_clip's ``partitions`` as a set of :data:`_PARTITIONS` names: ``"all"`` (i8x8
    only with the 8x8 transform), ``"none"``, or names joined by commas."""
    if not isinstance(partitions, str):
        raise ValueError(f"partitions must be None, 'all', 'none' or x264 partition names, got {partitions!r}")
    if partitions == "all":
        return {n for n in _PARTITIONS if n != "i8x8" or transform_8x8}
    if partitions == "none":
        return set()
    names = {n.strip() for n in partitions.split(",")}
    unknown = names - _PARTITIONS.keys()
    if unknown:
        raise ValueError(f"unknown partitions {sorted(unknown)}; use 'all', 'none' or some of {sorted(_PARTITIONS)}")
    return names


def _cqm_kind(cqm: PathLike | None) -> str:
    """``"flat"``, ``"jvt"`` or ``"custom"`` (a cqm file) for make_clip's ``cqm``."""
    if cqm is None:
        return "flat"
    if isinstance(cqm, str) and cqm in ("flat", "jvt"):
        return cqm
    return "custom"


def _av_escape(value: str) -> str:
    """Escape a value for FFmpeg's ``x264-params`` (av_dict_parse_string, "=" and ":")."""
    return "".join("\\" + ch if ch in "\\':=" or ch.isspace() else ch for ch in value)


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------


def _encode(path: pathlib.Path, fmt: str, codec: str, size: tuple[int, int], frames: int,
            seed: int, fps: int | Fraction, options: Mapping[str, str]) -> None:
    w, h = size
    rate = Fraction(fps)
    with av.open(str(path), "w", format=fmt, container_options=_CONTAINER_OPTIONS) as out:
        stream = out.add_stream(codec, rate=rate, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        time_base = 1 / rate
        for i, rgb in enumerate(render_frames(size, frames, seed)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _expected(*, entropy: str, profile: str, bframes: int, refs: int, slices: int,
              transform_8x8: bool | None, subpel: bool, deblock: bool, weightp: int | None,
              gop: int, crf: float, size: tuple[int, int], frames: int,
              direct: str | None = None, cqm: PathLike | None = None,
              partitions: str | None = None, constrained_intra: bool = False) -> dict[str, object]:
    """What the finished clip must show, as checked by :func:`_verify`.

    Keys that are x264 SEI option names compare against :func:`x264_settings`
    (a value of ``None`` means "must be absent"); ``profile``, ``width``,
    ``height``, ``frames`` and ``keyframes`` are checked by decoding.
    """
    eff_8x8 = (profile == "high") if transform_8x8 is None else transform_8x8
    # x264 defaults for preset "medium": weightp 2, but 0 is forced for baseline.
    eff_weightp = (0 if profile == "baseline" else 2) if weightp is None else weightp
    cqm_kind = _cqm_kind(cqm)
    exp: dict[str, object] = {
        "threads": "1",
        "mbtree": "0",
        "cabac": "1" if entropy == "cabac" else "0",
        "ref": str(refs),
        "bframes": str(bframes),
        "8x8dct": "1" if eff_8x8 else "0",
        "subme": str(_SUBME) if subpel else "0",
        "deblock": "1" if deblock else "0",
        "weightp": str(eff_weightp),
        "keyint": str(gop),
        "scenecut": "0",
        "slices": str(slices),
        "crf": crf,
        # Always in the SEI: 0 flat, 1 JVT defaults, 2 custom (cqmfile).
        "cqm": _CQM_SEI[cqm_kind],
        "constrained_intra": "1" if constrained_intra else "0",
    }
    if bframes:
        exp["b_pyramid"] = "2" if bframes >= 2 else "0"
        if weightp is not None:
            exp["weightb"] = "1" if weightp else "0"
        if direct is not None:
            # x264 writes direct= only with B-frames.
            exp["direct"] = _DIRECT[direct]
    # x264 signals the *lowest* profile that covers the tools actually used
    # (profile= is only an upper bound): High iff 8x8 transform or non-flat
    # quantisation matrices, else Main iff CABAC / B-frames / weighted P
    # prediction, else Baseline, always with constraint_set1 (FFmpeg:
    # "Constrained Baseline").
    if eff_8x8 or cqm_kind != "flat":
        exp["profile"] = ("High",)
    elif entropy == "cabac" or bframes or eff_weightp:
        exp["profile"] = ("Main",)
    else:
        exp["profile"] = ("Constrained Baseline", "Baseline")
    if partitions is not None:
        # "analyse=INTRA:INTER" (hex); the INTER flags are what P and B macroblocks may use.
        exp["analyse"] = sum(_PARTITIONS[n] for n in _partition_names(partitions, eff_8x8))
    exp["width"], exp["height"] = size
    exp["frames"] = frames
    exp["keyframes"] = list(range(0, frames, gop))
    return exp


def _mismatch(name: str, want: object, got: object, path: pathlib.Path) -> RuntimeError:
    return RuntimeError(f"{path}: setting {name!r} did not take effect: requested {want!r}, got {got!r}")


def _verify(path: PathLike, expected: Mapping[str, object]) -> None:
    """Raise ``RuntimeError`` naming the first setting that does not match ``expected``."""
    path = pathlib.Path(path)
    decoded_keys = {"profile", "width", "height", "frames", "keyframes"}
    sei = x264_settings(path)
    for key, want in expected.items():
        if key in decoded_keys:
            continue
        got = sei.get(key)
        if key == "slices" and got is None:
            got = "1"  # x264 omits slices=1
        if key == "deblock" and got is not None:
            got = got.split(":")[0]  # "1:alpha:beta"
        if key == "analyse" and got is not None:
            _, _, inter = got.partition(":")
            if int(inter or "-1", 16) != want:
                raise _mismatch(key, f"inter flags {want:#x} (partitions)", got, path)
            continue
        if key == "crf" and want is not None and got is not None:
            if not math.isclose(float(got), float(want)):  # type: ignore[arg-type]
                raise _mismatch(key, want, got, path)
            continue
        if got != want:
            raise _mismatch(key, want, got, path)

    if not decoded_keys & expected.keys():
        return
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if "profile" in expected:
            want = expected["profile"]
            allowed = (want,) if isinstance(want, str) else tuple(want)  # type: ignore[arg-type]
            if ctx.profile not in allowed:
                raise _mismatch("profile", want, ctx.profile, path)
        keyframes = []
        n = 0
        width = height = None
        for n, frame in enumerate(container.decode(stream), start=1):
            width, height = frame.width, frame.height
            if frame.key_frame:
                keyframes.append(n - 1)
    for key, got in (("width", width), ("height", height), ("frames", n), ("keyframes", keyframes)):
        if key in expected and expected[key] != got:
            raise _mismatch(key, expected[key], got, path)


def _check_args(path: pathlib.Path, size: tuple[int, int], frames: int, entropy: str,
                profile: str, bframes: int, refs: int, slices: int,
                transform_8x8: bool | None, weightp: int | None, gop: int, crf: float,
                fps: int | Fraction, direct: str | None = None,
                cqm: PathLike | None = None, partitions: str | None = None) -> str:
    """Validate everything up front; return the container format name."""
    fmt = _H264_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported extension {path.suffix!r}; use one of {sorted(_H264_FORMATS)}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"parent directory of {path} does not exist")
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    if w < 2 or h < 2:
        raise ValueError(f"size must be at least 2x2, got {w}x{h}")
    if w % 2 or h % 2:
        # libx264 with 4:2:0 chroma cannot encode odd dimensions (avcodec_open2 fails).
        raise ValueError(f"width and height must be even for yuv420p H.264, got {w}x{h}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if entropy not in ("cabac", "cavlc"):
        raise ValueError(f"entropy must be 'cabac' or 'cavlc', got {entropy!r}")
    if profile not in ("baseline", "main", "high"):
        raise ValueError(f"profile must be 'baseline', 'main' or 'high', got {profile!r}")
    if not 0 <= bframes <= 16:
        raise ValueError(f"bframes must be in 0..16, got {bframes}")
    if not 1 <= refs <= 16:
        raise ValueError(f"refs must be in 1..16, got {refs}")
    mb_rows = (h + 15) // 16
    if not 1 <= slices <= mb_rows:
        # x264 silently clamps the slice count to the number of macroblock rows.
        raise ValueError(f"slices must be in 1..{mb_rows} (macroblock rows) for height {h}, got {slices}")
    if weightp is not None and weightp not in (0, 1, 2):
        raise ValueError(f"weightp must be None, 0, 1 or 2, got {weightp!r}")
    if gop < 1:
        raise ValueError(f"gop must be >= 1, got {gop}")
    if not 1 <= crf <= 51:
        # crf 0 is lossless, which x264 only allows in the High 4:4:4 profile.
        raise ValueError(f"crf must be in 1..51, got {crf}")
    if Fraction(fps) <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    # libx264's profile= silently overrides conflicting tools; refuse instead.
    if profile == "baseline":
        if entropy == "cabac":
            raise ValueError("profile 'baseline' does not allow CABAC; use entropy='cavlc'")
        if bframes:
            raise ValueError("profile 'baseline' does not allow B-frames; use bframes=0")
        if weightp:
            raise ValueError("profile 'baseline' does not allow weighted prediction; use weightp=0/None")
    if transform_8x8 and profile != "high":
        raise ValueError(f"transform_8x8 requires profile 'high', got {profile!r}")
    if direct is not None:
        if direct not in _DIRECT:
            raise ValueError(f"direct must be None, 'spatial' or 'temporal', got {direct!r}")
        if not bframes:
            # x264 drops direct prediction (direct=none) without B-frames.
            raise ValueError(f"direct={direct!r} needs B-frames; use bframes >= 1")
    if partitions is not None:
        eff_8x8 = (profile == "high") if transform_8x8 is None else transform_8x8
        names = _partition_names(partitions, eff_8x8)  # ValueError for unknown names
        # x264 silently drops these two; refuse instead.
        if "p4x4" in names and "p8x8" not in names:
            raise ValueError(f"partitions={partitions!r}: p4x4 needs p8x8 (x264 drops it otherwise)")
        if "i8x8" in names and not eff_8x8:
            raise ValueError(f"partitions={partitions!r}: i8x8 needs the 8x8 transform")
    if cqm is not None and not isinstance(cqm, (str, os.PathLike)):
        raise ValueError(f"cqm must be None, 'flat', 'jvt' or the path of a cqm file, got {cqm!r}")
    cqm_kind = _cqm_kind(cqm)
    if cqm_kind != "flat" and profile != "high":
        # Scaling matrices are a High-profile tool.  With profile=main libx264
        # still takes cqm from x264-params and silently signals High.
        raise ValueError(f"cqm={cqm!r} (non-flat quantisation matrices) requires profile 'high', "
                         f"got {profile!r}")
    if cqm_kind == "custom":
        cqm_path = pathlib.Path(cqm)  # type: ignore[arg-type]
        if not cqm_path.is_file():
            raise FileNotFoundError(f"cqm file {cqm_path} does not exist "
                                    "(cqm is 'flat', 'jvt' or the path of a JM-format cqm file)")
        read_cqm_file(cqm_path)  # ValueError where x264 would reject the file
    return fmt


def make_clip(path: PathLike, *, size: tuple[int, int] = (160, 96), frames: int = 24,
              entropy: str = "cabac", profile: str = "high", bframes: int = 0, refs: int = 1,
              slices: int = 1, transform_8x8: bool | None = None, subpel: bool = True,
              deblock: bool = True, weightp: int | None = None, gop: int = 12,
              crf: float = 23, seed: int = 0, fps: int | Fraction = 25,
              direct: str | None = None, cqm: PathLike | None = None,
              partitions: str | None = None, constrained_intra: bool = False) -> pathlib.Path:
    """Encode a synthetic clip with libx264 and verify the settings took effect.

    Args:
        path: output file; the extension picks the container (``.mp4``, ``.mkv``,
            ``.mov``, ``.ts``, or raw Annex-B ``.h264``/``.264``).  Its parent
            directory must exist.
        size: (width, height); must be even (4:2:0), need not be a multiple of
            16 (then the SPS carries cropping).
        frames: number of frames.
        entropy: ``"cabac"`` or ``"cavlc"``.
        profile: ``"baseline"``, ``"main"`` or ``"high"`` - the *maximum*
            profile; x264 signals the lowest profile covering the tools used
            (e.g. high with 8x8 off signals Main).
        bframes: max consecutive B-frames, 0..16 (b-pyramid "normal" when >= 2;
            x264's adaptive B decision may use fewer).
        refs: reference frames, 1..16.
        slices: slices per frame, at most the number of macroblock rows.
        transform_8x8: None = x264's default for the profile (on for high).
        subpel: False = full-pel motion vectors only (``subme=0``), else subme 7.
        deblock: False disables the in-loop deblocking filter.
        weightp: None = x264 default (2; 0 for baseline), else 0..2.  An explicit
            value also sets ``weightb`` (weighted bipred) on/off accordingly
            when there are B-frames.
        gop: keyframe interval; with ``scenecut=0`` an IDR lands exactly every
            ``gop`` frames (display order).
        crf: constant rate factor, 1..51.
        seed: picks the photographs and motion.
        fps: frame rate (int or Fraction).
        direct: B-frame direct MV prediction, ``"spatial"`` or ``"temporal"``
            (SEI ``direct=1`` / ``direct=2``); needs ``bframes >= 1``.  None =
            x264's default (spatial for preset medium), not checked.
        cqm: quantisation matrices: None or ``"flat"`` (x264's default, SEI
            ``cqm=0``), ``"jvt"`` (the H.264 default matrices, ``cqm=1``), or
            the path (``str`` or ``Path``) of a JM-format matrix file, e.g. from
            :func:`write_cqm_file` (x264 ``cqmfile``, ``cqm=2``; a file named
            ``flat`` or ``jvt`` must be given as a ``Path``).  Non-flat
            matrices need profile ``"high"``, and make x264 signal High even
            with ``transform_8x8=False``.  x264 writes them into the PPS.
        partitions: the macroblock partitions x264 may choose in P and B
            frames (x264 ``partitions``; checked through the SEI's ``analyse``
            inter flags): ``"all"`` adds ``p4x4`` (P sub-macroblock partitions
            8x4, 4x8 and 4x4) to preset medium's ``p8x8,b8x8,i8x8,i4x4``
            (``i8x8`` only with the 8x8 transform), ``"none"``, or names from
            ``i4x4``, ``i8x8``, ``p8x8``, ``p4x4``, ``b8x8`` joined by commas
            (``p4x4`` needs ``p8x8``, ``i8x8`` the 8x8 transform).  None =
            x264's default, not checked.  x264 codes B_8x8 sub-macroblocks as
            8x8 only: it never writes B 8x4/4x8/4x4 partitions.  It also always
            sets ``direct_8x8_inference_flag``.
        constrained_intra: intra prediction only from intra macroblocks
            (``constrained_intra_pred_flag`` in the PPS; SEI ``constrained_intra=1``).

    Always set: preset medium, ``threads=1`` and ``mbtree=0`` (both needed for
    byte-identical output per seed), ``scenecut=0``.  The clip is decoded
    once afterwards to check profile, size, frame count and keyframe positions.

    Returns:
        The path of the written clip.

    Raises:
        ValueError: an impossible or out-of-range combination (checked before
            encoding).
        RuntimeError: the encoded clip does not show a requested setting.
    """
    path = pathlib.Path(path)
    fmt = _check_args(path, size, frames, entropy, profile, bframes, refs, slices,
                      transform_8x8, weightp, gop, crf, fps, direct=direct, cqm=cqm,
                      partitions=partitions)
    size = (int(size[0]), int(size[1]))

    params = {
        # One thread, no sliced threads: output is a pure function of the inputs.
        "threads": "1",
        # MB-tree off: with it on, x264's AVX-512 code reads uninitialised memory
        # and the output varies run to run even with threads=1 (masking AVX-512
        # or asm=0 also fixes it, but is less portable / much slower).
        "mbtree": "0",
        "cabac": "1" if entropy == "cabac" else "0",
        "ref": str(refs),
        "bframes": str(bframes),
        "b-pyramid": "normal" if bframes >= 2 else "none",
        "slices": str(slices),
        "subme": str(_SUBME) if subpel else "0",
        # Fixed GOP: keyint every `gop` frames, no scene-cut IDRs.  x264 clamps
        # min-keyint to keyint/2+1 anyway.
        "keyint": str(gop),
        "min-keyint": str(max(1, min(gop, gop // 2 + 1))),
        "scenecut": "0",
    }
    if transform_8x8 is not None:
        params["8x8dct"] = "1" if transform_8x8 else "0"
    if not deblock:
        # Not "deblock=0": x264 parses that as alpha offset 0 with the filter on.
        params["no-deblock"] = "1"
    if weightp is not None:
        params["weightp"] = str(weightp)
        if bframes:
            params["weightb"] = "1" if weightp else "0"
    if direct is not None:
        params["direct"] = direct
    if partitions is not None:
        params["partitions"] = partitions
    if constrained_intra:
        params["constrained-intra"] = "1"
    cqm_kind = _cqm_kind(cqm)
    if cqm_kind == "custom":
        # Absolute, so the encoder's working directory does not matter.
        cqm_file = os.path.abspath(os.fspath(cqm))  # type: ignore[arg-type]
        params["cqmfile"] = _av_escape(cqm_file)
    elif cqm is not None:
        params["cqm"] = cqm_kind
    options = {
        "profile": profile,
        "preset": "medium",
        "crf": f"{crf:g}",
        "x264-params": ":".join(f"{k}={v}" for k, v in params.items()),
    }
    _encode(path, fmt, "libx264", size, frames, seed, fps, options)
    _verify(path, _expected(entropy=entropy, profile=profile, bframes=bframes, refs=refs,
                            slices=slices, transform_8x8=transform_8x8, subpel=subpel,
                            deblock=deblock, weightp=weightp, gop=gop, crf=crf, size=size,
                            frames=frames, direct=direct, cqm=cqm, partitions=partitions,
                            constrained_intra=constrained_intra))
    return path


def make_tagged_clip(path: PathLike, colorspace: int, color_range: int, size: tuple[int, int] = (160, 96),
                     frames: int = 4) -> pathlib.Path:
    """A few libx264 frames whose VUI signals the given matrix (FFmpeg's AVColorSpace number, e.g.
    1 = BT.709, 2 = unspecified) and range (1 = limited, 2 = full): for colour-conversion tests."""
    path = pathlib.Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.colorspace = colorspace
        stream.codec_context.color_range = color_range
        stream.options = {"x264-params": "keyint=4:threads=1", "crf": "18"}
        for t, rgb in enumerate(render_frames(size, frames, 1)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_foreign_clip(path: PathLike, codec: str, *, size: tuple[int, int] = (160, 96),
                      frames: int = 10, seed: int = 0,
                      fps: int | Fraction = 25) -> pathlib.Path:
    """Encode a short non-H.264 clip, for tests that must reject such input.

    ``codec`` is ``"mpeg4"`` (MPEG-4 part 2; ``.mp4``/``.avi``/``.mkv``/``.mov``)
    or ``"libvpx-vp9"`` (VP9; ``.webm``/``.mkv``).  Raises ``ValueError`` for
    other codecs/extensions and ``RuntimeError`` if the result does not decode
    as the requested codec.
    """
    path = pathlib.Path(path)
    if codec not in _FOREIGN:
        raise ValueError(f"codec must be one of {sorted(_FOREIGN)}, got {codec!r}")
    formats, decoder = _FOREIGN[codec]
    fmt = formats.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{codec} clips need one of {sorted(formats)}, got {path.suffix!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"parent directory of {path} does not exist")
    w, h = (int(v) for v in size)
    if w < 2 or h < 2 or w % 2 or h % 2:
        raise ValueError(f"size must be even and at least 2x2, got {w}x{h}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if codec == "libvpx-vp9":
        # Fastest realtime settings; single-threaded for reproducibility.
        options = {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0", "threads": "1"}
    else:
        options = {"b": "300k", "threads": "1"}
    _encode(path, fmt, codec, (w, h), frames, seed, fps, options)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        name = stream.codec_context.name
        n = sum(1 for _ in container.decode(stream))
    if name != decoder:
        raise RuntimeError(f"{path}: expected a {decoder} stream, got {name!r}")
    if n != frames:
        raise RuntimeError(f"{path}: expected {frames} frames, decoded {n}")
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.clips OUT`: write one sample clip (for trying the tools)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tools.clips",
        description="Encode a sample H.264 clip from scikit-image photographs with libx264.")
    parser.add_argument("out", help="output file: .mp4, .mkv, .mov, .ts or .h264")
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT, even (default 640x360)")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--bframes", type=int, default=3)
    parser.add_argument("--gop", type=int, default=25)
    parser.add_argument("--entropy", choices=("cabac", "cavlc"), default="cabac")
    parser.add_argument("--profile", choices=("baseline", "main", "high"), default="high")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    path = make_clip(args.out, size=(width, height), frames=args.frames, bframes=args.bframes,
                     gop=args.gop, entropy=args.entropy, profile=args.profile, seed=args.seed)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
