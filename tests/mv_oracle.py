"""FFmpeg's exported H.264 motion vectors (through PyAV) as a test oracle.

What FFmpeg exports for H.264 (``flags2=+export_mvs`` -> ``AV_FRAME_DATA_MOTION_VECTORS``;
code: ``ff_print_debug_info2``/``add_mb`` in libavcodec/mpegutils.c, called by the
H.264 decoder when a picture is *output*, so the side data is attached to the
frame in display order).  Verified against FFmpeg 8 (libavcodec 62) with PyAV 18:

* One record per (macroblock, list, partition) for every macroblock whose
  ``mb_type`` uses that list (``USES_LIST``).  Intra and I_PCM macroblocks are
  never exported.  ``source`` is -1 for list 0 and +1 for list 1 (whatever the
  reference's actual display position; it is the *list*, not past/future).
* Granularity follows FFmpeg's macroblock partition flag, never finer:
    - 16x16 (``w=h=16``): P_L0_16x16, P_Skip, B_*_16x16, B_Skip / B_Direct_16x16
      when FFmpeg's direct derivation found the macroblock uniform;
    - 16x8 / 8x16: two records per list (also direct macroblocks whose colocated
      macroblock was 16x8 / 8x16 - FFmpeg gives those that partition type);
    - 8x8 (P_8x8, P_8x8ref0, B_8x8, non-uniform direct): four records per list,
      one per 8x8 quadrant, ``w=h=8``, whatever the sub-macroblock partition.
  The vector of every record is read from FFmpeg's ``motion_val`` at the
  **top-left 4x4 block** of the record's block.  For 16x16/16x8/8x16 that is the
  vector of the whole partition (H.264 gives a partition one vector; FFmpeg only
  labels a direct macroblock 16x16/16x8/8x16 when its derived vectors are
  uniform over those partitions).  For 8x8 records with sub-8x8 partitions
  (8x4, 4x8, 4x4) only the top-left 4x4 block's vector is exported; the other
  three 4x4 blocks are unknown.  The sub-macroblock type is not exported, so an
  8x8 record is only ever known to describe its top-left 4x4 block.
* ``dst_x, dst_y`` is the block *centre* (``mb_x*16 + 8`` for 16-wide blocks,
  ``mb_x*16 + 4 + 8*i`` for 8-wide ones), in luma samples of the coded
  (uncropped) picture; ``w, h`` the block size, so the top-left corner is
  ``(dst_x - w//2, dst_y - h//2)``.  ``motion_x, motion_y`` are in
  quarter-luma-sample units with ``motion_scale == 4`` (always, for H.264), and
  ``src_x = dst_x + motion_x / motion_scale`` with C truncation towards zero
  (so src_* is lossy; use motion_*).  ``flags`` is always 0.
* Lists a macroblock does not use for some of its partitions still get a record
  if the macroblock-level ``mb_type`` uses the list (e.g. B_8x8 always flags both
  lists, B_16x8 with one half L0-only and the other L1-only flags both); such
  records carry the vector FFmpeg stores for an unused list: (0, 0).  That matches
  the parser contract (``mv`` 0 where unused) but says nothing about ref_idx.
  Conversely, *no* record for list L in a macroblock means no partition of that
  macroblock uses list L (ref_idx must be -1 there).
* No reference index is exported.
* Skipped macroblocks: P_Skip is a 16x16 list-0 record (its inferred vector,
  often non-zero); B_Skip like B_Direct_16x16 (16x16 / 16x8 / 8x16 / 8x8 records,
  list(s) as derived).  The export cannot tell skip from coded macroblocks, so
  this module also captures FFmpeg's ``debug=mb_type`` log (one character per
  macroblock printed from the same ``mb_type`` table) to classify macroblocks:
  ``FrameMotion.mb_char`` / ``mb_type`` below.

Public API: :func:`ffmpeg_motion_vectors`, :func:`expected_mv_grid`,
:func:`unused_list_mask`, dataclasses :class:`MotionList`, :class:`FrameMotion`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.logging
import numpy as np
from av.video.frame import PictureType

__all__ = [
    "MB_INTRA", "MB_INTER", "MB_SKIP", "MB_DIRECT", "MB_PCM", "MB_UNKNOWN",
    "MotionList", "FrameMotion", "ffmpeg_motion_vectors", "decode_with_motion",
    "expected_mv_grid", "unused_list_mask", "exported_block_mask", "MV_RECORD_DTYPE",
]

PathLike = str | Path

# Parser contract macroblock codes (mb.mb_type); MB_UNKNOWN only here.
MB_INTRA, MB_INTER, MB_SKIP, MB_DIRECT, MB_PCM, MB_UNKNOWN = 0, 1, 2, 3, 4, -1

# FFmpeg's debug=mb_type type character -> contract code.  'S' = P_Skip,
# 'd' = B_Skip (direct + skip), 'D' = B_Direct_16x16, '>' '<' 'X' = coded
# inter using list 0 only / list 1 only / both (B_8x8 always shows 'X').
_CHAR_TO_CODE = {
    "i": MB_INTRA,   # Intra 4x4 or 8x8
    "I": MB_INTRA,   # Intra 16x16
    "P": MB_PCM,
    "S": MB_SKIP,
    "d": MB_SKIP,
    "D": MB_DIRECT,
    ">": MB_INTER,
    "<": MB_INTER,
    "X": MB_INTER,
}


@dataclass(frozen=True)
class MotionList:
    """The exported blocks of one reference list of one frame (N records).

    Coordinates are luma samples of the coded (uncropped) picture.
    """

    x: np.ndarray    # int32 [N] top-left column (dst_x - w // 2)
    y: np.ndarray    # int32 [N] top-left row (dst_y - h // 2)
    w: np.ndarray    # int32 [N] 16 or 8
    h: np.ndarray    # int32 [N] 16 or 8
    mv: np.ndarray   # int32 [N, 2] (x, y) in quarter luma samples

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def partition_uniform(self) -> np.ndarray:
        """bool [N]: the vector holds for the whole w x h block (16x16/16x8/8x16),
        False for 8x8 records (only their top-left 4x4 block is known)."""
        return ~((self.w == 8) & (self.h == 8))


@dataclass
class FrameMotion:
    """FFmpeg's motion export for one output frame."""

    index: int                 # display (output) order, from 0
    pts: int | None
    pict_type: str             # "I" / "P" / "B" (FFmpeg's picture type)
    key: bool
    coded_width: int           # decoder's uncropped size (multiples of 16)
    coded_height: int
    width: int                 # display (cropped) size
    height: int
    lists: tuple[MotionList, MotionList]   # list 0 (source < 0), list 1 (source > 0)
    records: np.ndarray        # the raw AVMotionVector records (structured array)
    # From FFmpeg's debug=mb_type log, [H16, W16]; None if the log was not captured.
    mb_char: np.ndarray | None = None   # '<U2': type char + partition char ('+','-','|',' ')
    mb_type: np.ndarray | None = None   # int8 contract codes (B_Skip -> MB_SKIP)
    planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def mb_skip(self) -> np.ndarray | None:
        """bool [H16, W16]: P_Skip or B_Skip."""
        return None if self.mb_char is None else np.isin(_first_char(self.mb_char), ["S", "d"])

    @property
    def mb_direct(self) -> np.ndarray | None:
        """bool [H16, W16]: B_Skip or B_Direct_16x16 (FFmpeg's IS_DIRECT)."""
        return None if self.mb_char is None else np.isin(_first_char(self.mb_char), ["d", "D"])

    @property
    def mb_intra(self) -> np.ndarray | None:
        """bool [H16, W16]: intra (including I_PCM)."""
        return None if self.mb_char is None else np.isin(_first_char(self.mb_char), ["i", "I", "P"])


def _first_char(chars: np.ndarray) -> np.ndarray:
    return chars.astype("<U1")  # numpy truncates on the narrowing cast


# AVMotionVector as PyAV 18 returns it from MotionVectors.to_ndarray().
MV_RECORD_DTYPE = np.dtype([
    ("source", "<i4"), ("w", "u1"), ("h", "u1"), ("src_x", "<i2"), ("src_y", "<i2"),
    ("dst_x", "<i2"), ("dst_y", "<i2"), ("flags", "<u8"), ("motion_x", "<i4"),
    ("motion_y", "<i4"), ("motion_scale", "<u2")], align=True)


def _empty_list() -> MotionList:
    z = np.zeros(0, np.int32)
    return MotionList(z, z, z, z, np.zeros((0, 2), np.int32))


def _split_lists(rec: np.ndarray) -> tuple[MotionList, MotionList]:
    if rec is None or rec.size == 0:
        return _empty_list(), _empty_list()
    if np.any(rec["motion_scale"] != 4):
        raise AssertionError(f"unexpected motion_scale {np.unique(rec['motion_scale'])} (H.264 is 4)")
    out = []
    for sel in (rec["source"] < 0, rec["source"] > 0):
        r = rec[sel]
        w = r["w"].astype(np.int32)
        h = r["h"].astype(np.int32)
        x = r["dst_x"].astype(np.int32) - w // 2
        y = r["dst_y"].astype(np.int32) - h // 2
        mv = np.stack([r["motion_x"], r["motion_y"]], axis=1).astype(np.int32)
        mv = mv * 4 // r["motion_scale"].astype(np.int32)[:, None]
        out.append(MotionList(x, y, w, h, mv))
    if np.any(rec["source"] == 0):
        raise AssertionError("record with source == 0")
    return out[0], out[1]


# --------------------------------------------------------------------------
# Capturing FFmpeg's debug=mb_type table
# --------------------------------------------------------------------------


def _margin_left(mb_width: int) -> int:
    """Width of the row-label column ff_print_debug_info2 prints."""
    margin, n = 2, mb_width << 4
    while True:
        n //= 10
        if not n:
            return margin
        margin += 1


def _parse_mb_tables(logs: list[tuple[int, str, str]], mb_width: int,
                     mb_height: int) -> list[tuple[str, np.ndarray]]:
    """[(picture type char, '<U2' [mb_height, mb_width])] per 'New frame' block."""
    msgs = [m for (_lvl, name, m) in logs if name == "h264"]
    margin = _margin_left(mb_width)
    tables: list[tuple[str, np.ndarray]] = []
    i = 0
    while i < len(msgs):
        m = msgs[i]
        if not m.startswith("New frame, type: "):
            i += 1
            continue
        ptype = m[len("New frame, type: ")].strip()
        rows = msgs[i + 2:i + 2 + mb_height]  # skip the column header
        table = np.empty((mb_height, mb_width), "<U2")
        ok = len(rows) == mb_height
        for y, row in enumerate(rows if ok else []):
            row = row.rstrip("\n")
            label, body = row[:margin], row[margin:]
            if not label.strip().isdigit() or int(label) != y * 16:
                ok = False
                break
            body = body.ljust(3 * mb_width)
            for x in range(mb_width):
                t, s = body[3 * x], body[3 * x + 1]
                if t not in _CHAR_TO_CODE:
                    ok = False
                table[y, x] = t + s
        tables.append((ptype, table if ok else None))
        i += 2 + mb_height
    return tables


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------


def _plane_array(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """uint8 [height, width] copy of one plane (honouring the line size)."""
    buf = np.frombuffer(plane, np.uint8)
    return buf.reshape(-1, plane.line_size)[:plane.height, :plane.width].copy()


def decode_with_motion(path: PathLike, *, mb_types: bool = True, keep_planes: bool = False,
                       skip_loop_filter: bool = False, format: str | None = None,
                       strict: bool = False) -> list[FrameMotion]:
    """Decode ``path`` with FFmpeg (single-threaded, no cropping) and collect, per output
    frame, the motion export, the debug mb_type table and optionally the decoded
    uncropped planes (Y, U, V uint8 arrays of the coded size; 4:2:0 only).

    ``apply_cropping=0`` makes FFmpeg return the whole decoded picture (coded size,
    multiples of 16) instead of the display window: needed for residual oracles
    on sizes that are not multiples of 16.

    ``skip_loop_filter``: FFmpeg skips the deblocking filter of every picture
    (``skip_loop_filter=all``).  The pictures it outputs are then the ones it also
    predicts from, so ``decoded = Clip1(prediction from earlier outputs + residual)``
    holds exactly even for streams coded with deblocking (the output drifts from the
    intended pictures, consistently).

    ``format`` names the demuxer where FFmpeg's probing would not find it (``"h264"`` for
    raw streams with unusual headers).  ``strict`` makes FFmpeg hold as many frames for
    reordering as the standard allows where the SPS does not say how many
    (``strict=strict``): without it, FFmpeg guesses the reordering depth and drops a frame
    that arrives after a later one was output.
    """
    path = Path(path)
    prev_level = av.logging.get_level()
    prev_skip = av.logging.get_skip_repeated()
    results: list[FrameMotion] = []
    logs: list = []
    try:
        if mb_types:
            av.logging.set_skip_repeated(False)
            av.logging.set_level(av.logging.DEBUG)
        with av.logging.Capture(local=True) as captured:
            with av.open(str(path), format=format) as container:
                stream = container.streams.video[0]
                ctx = stream.codec_context
                options = {"flags2": "+export_mvs", "apply_cropping": "0"}
                if strict:
                    options["strict"] = "strict"
                if mb_types:
                    options["debug"] = "mb_type"
                if skip_loop_filter:
                    options["skip_loop_filter"] = "all"
                ctx.options = options
                ctx.thread_count = 1
                display_w, display_h = ctx.width, ctx.height
                for n, frame in enumerate(container.decode(stream)):
                    sd = frame.side_data.get("MOTION_VECTORS")
                    rec = sd.to_ndarray().copy() if sd is not None else None
                    lists = _split_lists(rec)
                    planes = None
                    if keep_planes:
                        if frame.format.name not in ("yuv420p", "yuvj420p"):
                            raise ValueError(f"{path}: pixel format {frame.format.name} is not 4:2:0 8-bit")
                        planes = tuple(_plane_array(p) for p in frame.planes[:3])
                    results.append(FrameMotion(
                        index=n, pts=frame.pts,
                        pict_type=PictureType(frame.pict_type).name,
                        key=bool(frame.key_frame),
                        coded_width=frame.width, coded_height=frame.height,
                        width=display_w, height=display_h,
                        lists=lists,
                        records=rec if rec is not None else np.zeros(0, MV_RECORD_DTYPE),
                        planes=planes))
            logs = list(captured)
    finally:
        if mb_types:
            av.logging.set_level(prev_level)
            av.logging.set_skip_repeated(prev_skip)
    if mb_types and results:
        fm0 = results[0]
        if fm0.coded_width % 16 or fm0.coded_height % 16:
            raise AssertionError(f"uncropped size {fm0.coded_width}x{fm0.coded_height} is not MB aligned")
        tables = _parse_mb_tables(logs, fm0.coded_width // 16, fm0.coded_height // 16)
        if len(tables) == len(results):
            for fm, (ptype, table) in zip(results, tables):
                if table is None or ptype != fm.pict_type:
                    continue
                fm.mb_char = table
                fm.mb_type = np.vectorize(lambda c: _CHAR_TO_CODE[c[0]], otypes=[np.int8])(table)
    return results


def ffmpeg_motion_vectors(path: PathLike, *, mb_types: bool = True) -> list[FrameMotion]:
    """FFmpeg's exported motion vectors of every frame of ``path``, in display order.

    One :class:`FrameMotion` per decoded frame (I frames have empty lists).  With
    ``mb_types`` (default) FFmpeg's per-macroblock type table is also captured from
    its ``debug=mb_type`` log (``mb_char``/``mb_type``; left None if that log could
    not be parsed, e.g. rows over 1023 characters for pictures wider than 5440).
    """
    return decode_with_motion(path, mb_types=mb_types, keep_planes=False)


# --------------------------------------------------------------------------
# Expected parser output
# --------------------------------------------------------------------------


def _blocks4(ml: MotionList, partitions: bool) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
    """(row0, col0, rows, cols, mv) in 4x4-block units for each record: the whole
    block for partition-uniform records when ``partitions``, else its top-left 4x4."""
    uni = ml.partition_uniform
    for k in range(len(ml)):
        r0, c0 = int(ml.y[k]) // 4, int(ml.x[k]) // 4
        if partitions and uni[k]:
            yield r0, c0, int(ml.h[k]) // 4, int(ml.w[k]) // 4, ml.mv[k]
        else:
            yield r0, c0, 1, 1, ml.mv[k]


def expected_mv_grid(frame_motion: FrameMotion, list_index: int, coded_w: int, coded_h: int,
                     *, partitions: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """What the parser's ``mb.mv[list_index]`` must contain, as far as FFmpeg says.

    Returns ``(mv int16 [H4, W4, 2], mask bool [H4, W4])``: at every 4x4 block where
    ``mask`` is True the parser's vector (x, y, quarter pels) must equal ``mv``.

    ``mask`` covers, for each exported record of that list:
      * 16x16, 16x8, 8x16 records: every 4x4 block of the partition (with
        ``partitions=False`` only the top-left one, which is literally what
        FFmpeg read);
      * 8x8 records: only the top-left 4x4 block of the 8x8 (sub-8x8 partitions
        are possible and their other vectors are not exported).
    Records from macroblock-level list flags that a sub-block does not use carry
    (0, 0), which is also the contract's value for unused lists.

    Blocks outside every record are False (intra macroblocks, unused lists, the
    unknown 4x4 blocks of 8x8 records); see :func:`unused_list_mask` for where the
    parser must report the list as unused.
    """
    if coded_w % 16 or coded_h % 16:
        raise ValueError(f"coded size {coded_w}x{coded_h} must be multiples of 16")
    h4, w4 = coded_h // 4, coded_w // 4
    mv = np.zeros((h4, w4, 2), np.int16)
    mask = np.zeros((h4, w4), bool)
    for r0, c0, nr, nc, v in _blocks4(frame_motion.lists[list_index], partitions):
        if r0 < 0 or c0 < 0 or r0 + nr > h4 or c0 + nc > w4:
            raise AssertionError(f"exported block at 4x4 ({r0}, {c0}) outside {w4}x{h4}")
        if mask[r0:r0 + nr, c0:c0 + nc].any():
            raise AssertionError(f"overlapping exported blocks at 4x4 ({r0}, {c0})")
        mv[r0:r0 + nr, c0:c0 + nc] = v
        mask[r0:r0 + nr, c0:c0 + nc] = True
    return mv, mask


def exported_block_mask(frame_motion: FrameMotion, list_index: int, coded_w: int,
                        coded_h: int) -> np.ndarray:
    """bool [H4, W4]: 4x4 blocks covered by some exported record (whole w x h area,
    8x8 records included) of that list."""
    h4, w4 = coded_h // 4, coded_w // 4
    cover = np.zeros((h4, w4), bool)
    ml = frame_motion.lists[list_index]
    for k in range(len(ml)):
        r0, c0 = int(ml.y[k]) // 4, int(ml.x[k]) // 4
        cover[r0:r0 + int(ml.h[k]) // 4, c0:c0 + int(ml.w[k]) // 4] = True
    return cover


def unused_list_mask(frame_motion: FrameMotion, list_index: int, coded_w: int,
                     coded_h: int) -> np.ndarray:
    """bool [H4, W4]: 4x4 blocks of macroblocks with no record for that list.

    FFmpeg exports list L for a macroblock iff its mb_type uses list L, so there the
    parser must report ``ref_idx[list_index] == -1`` and ``mv[list_index] == 0``
    (intra / PCM macroblocks, P frames' list 1, B macroblocks predicted from the
    other list only).
    """
    cover = exported_block_mask(frame_motion, list_index, coded_w, coded_h)
    h16, w16 = coded_h // 16, coded_w // 16
    mb_any = cover.reshape(h16, 4, w16, 4).any(axis=(1, 3))
    return np.repeat(np.repeat(~mb_any, 4, axis=0), 4, axis=1)
