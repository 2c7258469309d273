"""`python -m vccv_gpu.codec.fuzz`: a fuzzing campaign against the parser over generated clips.

A small fixed set of seed clips (raw Annex B and MP4/Matroska, CAVLC and CABAC, baseline, main
and high profile, B-frames with spatial and temporal direct prediction, several slices, weighted
prediction, scaling matrices) is encoded once with `vccv_gpu.testing.make_clip` and cached in
`--clips DIR`. Each case mutates one of them (case `n` of seed `s` always makes the same bytes):
bit flips, byte overwrites, insertions and deletions, truncations, slice splicing within and
across clips, mismatched parameter sets (another clip's SPS/PPS swapped in, or SPS, PPS and
slice header fields such as ids, sizes and reference counts rewritten), duplicated, dropped,
reordered and retyped NAL units, and (in containers) broken NAL length fields. Then
`codec.open(data)` and, for every frame, `slice_headers`, `macroblocks`, `residual` and
`coefficients` run; the results' shapes and ranges are checked.

A case may parse or raise `codec.CorruptStream` / `codec.UnsupportedStream`. Anything else is a
failure: another exception, a result outside its documented shape or range, a case that takes
longer than `--timeout` seconds (hang), a worker process that dies (segfault, abort,
sanitizer report) or a sanitizer report on its stderr. Cases run in worker subprocesses that
this process supervises and restarts, so every failure is reported with the case that caused
it; `--case N --seed S --clips DIR` reruns one case, `--save-failures DIR` writes the inputs,
`--replay FILE...` reruns saved inputs.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib
import importlib.util
import io
import json
import os
import random
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

__all__ = ["CLIPS", "MUTATIONS", "Case", "Clip", "load_clips", "main", "make_case", "make_clips", "parse_all", "run"]

# ------------------------------------------------------------------------------------------------
# Seed clips
# ------------------------------------------------------------------------------------------------

_CQM_FILE = "custom.cqm"

# name -> make_clip settings; small (64x48 .. 96x64) and short (6-10 frames) so a case is quick.
CLIPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("high-cavlc-b2.h264", dict(profile="high", entropy="cavlc", bframes=2, frames=8, gop=4, size=(64, 48))),
    ("baseline-cavlc-3slices.h264", dict(profile="baseline", entropy="cavlc", slices=3, frames=6, size=(80, 48),
                                         crf=10)),
    ("high-cabac-b3.h264", dict(profile="high", entropy="cabac", bframes=3, frames=8, gop=8, size=(64, 48))),
    ("main-cabac-temporal.h264", dict(profile="main", entropy="cabac", bframes=2, direct="temporal", refs=3,
                                      frames=8, size=(64, 48), crf=12)),
    ("high-cabac-jvt-2slices-weighted.h264", dict(profile="high", entropy="cabac", transform_8x8=True, cqm="jvt",
                                                  slices=2, bframes=1, weightp=2, frames=8, size=(96, 64))),
    ("high-cavlc-cqm-temporal.h264", dict(profile="high", entropy="cavlc", cqm=_CQM_FILE, bframes=2,
                                          direct="temporal", refs=2, frames=8, size=(64, 64), crf=15)),
    ("main-cavlc-b2-weighted.mp4", dict(profile="main", entropy="cavlc", bframes=2, weightp=2, refs=2, frames=8,
                                        size=(96, 64))),
    ("high-cabac-spatial-2slices.mkv", dict(profile="high", entropy="cabac", bframes=2, direct="spatial",
                                            slices=2, frames=10, gop=5, size=(80, 64))),
    ("baseline-cavlc-2slices.mp4", dict(profile="baseline", entropy="cavlc", slices=2, frames=6, size=(64, 48))),
)


def make_clips(directory: str | os.PathLike) -> list[Path]:
    """Encodes the seed clips into `directory` (kept there: a clip that exists is reused)."""
    from vccv_gpu.testing import make_clip, write_cqm_file

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, settings in CLIPS:
        path = root / name
        if not path.is_file() or path.stat().st_size == 0:
            settings = dict(settings)
            if settings.get("cqm") == _CQM_FILE:
                cqm = root / _CQM_FILE
                if not cqm.is_file():
                    write_cqm_file(cqm.with_suffix(".tmp"), seed=3).replace(cqm)
                settings["cqm"] = cqm
            # Written under a temporary name: a concurrent run never reads half a clip.
            tmp = root / f".{os.getpid()}-{name}"
            make_clip(tmp, **settings).replace(path)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------------
# Clips as NAL units: where each one lies in the file, and the fields of its headers
# ------------------------------------------------------------------------------------------------

SLICE, IDR, SEI, SPS, PPS = 1, 5, 6, 7, 8
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


@dataclass(frozen=True)
class Nal:
    prefix: int  # offset of the start code (Annex B) or of the length field (containers)
    start: int   # offset of the NAL header byte
    end: int

    def type_in(self, data: bytes) -> int:
        return data[self.start] & 0x1F


@dataclass
class Clip:
    name: str
    data: bytes
    annexb: bool
    nals: list[Nal]
    types: list[int]
    avcc: int = -1  # offset of the avcC record (containers), -1 if none
    params: dict[str, int] = field(default_factory=dict)  # SPS/PPS values slice headers depend on

    def nal(self, i: int) -> bytes:
        n = self.nals[i]
        return self.data[n.start:n.end]

    def indices(self, kinds: Iterable[int]) -> list[int]:
        kinds = set(kinds)
        return [i for i, t in enumerate(self.types) if t in kinds]

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix


def _split_annexb(data: bytes) -> list[Nal]:
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", data)]
    nals = []
    for k, s in enumerate(starts):
        prefix = s - 1 if s > 0 and data[s - 1] == 0 else s
        end = len(data)
        if k + 1 < len(starts):
            nxt = starts[k + 1]
            end = nxt - 1 if data[nxt - 1] == 0 else nxt
        if s + 3 < end:
            nals.append(Nal(prefix, s + 3, end))
    return nals


def _container_nals(data: bytes) -> tuple[list[Nal], int]:
    """NAL units of an MP4/Matroska clip, located in the file: the avcC parameter sets (with
    their 16-bit length fields) and the length-prefixed NAL units of every packet."""
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        extradata = bytes(stream.codec_context.extradata or b"")
        packets = [bytes(p) for p in container.demux(stream) if p.size]
    nals: list[Nal] = []
    avcc = data.find(extradata) if extradata[:1] == b"\x01" else -1
    length_size = 4
    if avcc >= 0:
        length_size = (extradata[4] & 3) + 1
        pos = 5
        for count_mask in (0x1F, 0xFF):  # SPS count (low 5 bits), then PPS count
            count = extradata[pos] & count_mask
            pos += 1
            for _ in range(count):
                size = int.from_bytes(extradata[pos:pos + 2], "big")
                nals.append(Nal(avcc + pos, avcc + pos + 2, avcc + pos + 2 + size))
                pos += 2 + size
    offset = 0
    for packet in packets:
        at = data.find(packet, offset)
        if at < 0:
            continue
        offset = at + len(packet)
        pos = 0
        while pos + length_size < len(packet):
            size = int.from_bytes(packet[pos:pos + length_size], "big")
            if size == 0 or pos + length_size + size > len(packet):
                break
            nals.append(Nal(at + pos, at + pos + length_size, at + pos + length_size + size))
            pos += length_size + size
    return nals, avcc


def load_clips(paths: Sequence[str | os.PathLike]) -> list[Clip]:
    clips = []
    for path in paths:
        path = Path(path)
        data = path.read_bytes()
        annexb = path.suffix in (".h264", ".264")
        nals, avcc = (_split_annexb(data), -1) if annexb else _container_nals(data)
        types = [data[n.start] & 0x1F for n in nals]
        clip = Clip(path.name, data, annexb, nals, types, avcc)
        clip.params = _stream_params(clip)
        clips.append(clip)
    return clips


def _unescape(nal: bytes) -> bytes:
    """RBSP of a NAL unit payload: emulation prevention bytes (00 00 03) removed."""
    return re.sub(b"\x00\x00\x03(?=[\x00-\x03])", b"\x00\x00", nal) if b"\x00\x00\x03" in nal else nal


def _escape(rbsp: bytes) -> bytes:
    out = bytearray()
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


class _Fields:
    """Reads an RBSP and records where each syntax element lies: (name, kind, bit, bits, value)."""

    def __init__(self, rbsp: bytes) -> None:
        self.value = int.from_bytes(rbsp, "big")
        self.n = 8 * len(rbsp)
        self.pos = 0
        self.fields: list[tuple[str, str, int, int, int]] = []

    def _bits(self, k: int) -> int:
        if self.pos + k > self.n:
            raise EOFError
        v = (self.value >> (self.n - self.pos - k)) & ((1 << k) - 1)
        self.pos += k
        return v

    def u(self, k: int, name: str) -> int:
        start = self.pos
        v = self._bits(k)
        self.fields.append((name, "u", start, k, v))
        return v

    def ue(self, name: str, kind: str = "ue") -> int:
        start = self.pos
        zeros = 0
        while self._bits(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("exp-Golomb code too long")
        v = (1 << zeros) - 1 + self._bits(zeros)
        if kind == "se":
            v = (v + 1) // 2 if v & 1 else -(v // 2)
        self.fields.append((name, kind, start, self.pos - start, v))
        return v

    def se(self, name: str) -> int:
        return self.ue(name, "se")

    def more_data(self) -> bool:
        """more_rbsp_data(): anything before the stop bit (the last 1 bit)?"""
        if self.value == 0:
            return False
        trailing = (self.value & -self.value).bit_length() - 1
        return self.pos < self.n - trailing - 1


def _scaling_lists(r: _Fields, count: int, prefix: str) -> None:
    for i in range(count):
        if r.u(1, f"{prefix}_scaling_list_present[{i}]"):
            last = next_scale = 8
            for _ in range(16 if i < 6 else 64):
                if next_scale:
                    delta = r.se(f"{prefix}_delta_scale[{i}]")
                    next_scale = (last + delta + 256) % 256
                last = next_scale or last


def sps_fields(nal: bytes) -> _Fields:
    r = _Fields(_unescape(nal[1:]))
    try:
        profile = r.u(8, "profile_idc")
        r.u(8, "constraint_flags")
        r.u(8, "level_idc")
        r.ue("seq_parameter_set_id")
        chroma = 1
        if profile in _HIGH_PROFILES:
            chroma = r.ue("chroma_format_idc")
            if chroma == 3:
                r.u(1, "separate_colour_plane_flag")
            r.ue("bit_depth_luma_minus8")
            r.ue("bit_depth_chroma_minus8")
            r.u(1, "qpprime_y_zero_transform_bypass_flag")
            if r.u(1, "seq_scaling_matrix_present_flag"):
                _scaling_lists(r, 8 if chroma != 3 else 12, "seq")
        r.ue("log2_max_frame_num_minus4")
        poc_type = r.ue("pic_order_cnt_type")
        if poc_type == 0:
            r.ue("log2_max_pic_order_cnt_lsb_minus4")
        elif poc_type == 1:
            r.u(1, "delta_pic_order_always_zero_flag")
            r.se("offset_for_non_ref_pic")
            r.se("offset_for_top_to_bottom_field")
            for _ in range(r.ue("num_ref_frames_in_pic_order_cnt_cycle")):
                r.se("offset_for_ref_frame")
        r.ue("max_num_ref_frames")
        r.u(1, "gaps_in_frame_num_value_allowed_flag")
        r.ue("pic_width_in_mbs_minus1")
        r.ue("pic_height_in_map_units_minus1")
        if not r.u(1, "frame_mbs_only_flag"):
            r.u(1, "mb_adaptive_frame_field_flag")
        r.u(1, "direct_8x8_inference_flag")
        if r.u(1, "frame_cropping_flag"):
            for side in ("left", "right", "top", "bottom"):
                r.ue(f"frame_crop_{side}_offset")
        r.u(1, "vui_parameters_present_flag")
    except (EOFError, ValueError):
        pass
    return r


def pps_fields(nal: bytes, transform_lists: int = 6) -> _Fields:
    r = _Fields(_unescape(nal[1:]))
    try:
        r.ue("pic_parameter_set_id")
        r.ue("seq_parameter_set_id")
        r.u(1, "entropy_coding_mode_flag")
        r.u(1, "bottom_field_pic_order_in_frame_present_flag")
        if r.ue("num_slice_groups_minus1"):
            return r
        r.ue("num_ref_idx_l0_default_active_minus1")
        r.ue("num_ref_idx_l1_default_active_minus1")
        r.u(1, "weighted_pred_flag")
        r.u(2, "weighted_bipred_idc")
        r.se("pic_init_qp_minus26")
        r.se("pic_init_qs_minus26")
        r.se("chroma_qp_index_offset")
        r.u(1, "deblocking_filter_control_present_flag")
        r.u(1, "constrained_intra_pred_flag")
        r.u(1, "redundant_pic_cnt_present_flag")
        if r.more_data():
            t8 = r.u(1, "transform_8x8_mode_flag")
            if r.u(1, "pic_scaling_matrix_present_flag"):
                _scaling_lists(r, 6 + (2 if t8 else 0) * (transform_lists // 6), "pic")
            r.se("second_chroma_qp_index_offset")
    except (EOFError, ValueError):
        pass
    return r


def _values(r: _Fields) -> dict[str, int]:
    return {name: value for name, _, _, _, value in r.fields}


def _stream_params(clip: Clip) -> dict[str, int]:
    params: dict[str, int] = {}
    for i, t in enumerate(clip.types):
        if t == SPS and "log2_max_frame_num_minus4" not in params:
            params.update(_values(sps_fields(clip.nal(i))))
        elif t == PPS and "redundant_pic_cnt_present_flag" not in params:
            params.update(_values(pps_fields(clip.nal(i))))
    return params


def slice_fields(nal: bytes, p: dict[str, int]) -> _Fields:
    """The slice header up to the reference list counts (frame coding, as the seed clips use)."""
    r = _Fields(_unescape(nal[1:64]))
    try:
        r.ue("first_mb_in_slice")
        slice_type = r.ue("slice_type") % 5
        r.ue("pic_parameter_set_id")
        r.u(p.get("log2_max_frame_num_minus4", 0) + 4, "frame_num")
        if nal[0] & 0x1F == IDR:
            r.ue("idr_pic_id")
        poc_type = p.get("pic_order_cnt_type", 0)
        if poc_type == 0:
            r.u(p.get("log2_max_pic_order_cnt_lsb_minus4", 0) + 4, "pic_order_cnt_lsb")
            if p.get("bottom_field_pic_order_in_frame_present_flag"):
                r.se("delta_pic_order_cnt_bottom")
        elif poc_type == 1 and not p.get("delta_pic_order_always_zero_flag"):
            r.se("delta_pic_order_cnt[0]")
        if p.get("redundant_pic_cnt_present_flag"):
            r.ue("redundant_pic_cnt")
        if slice_type == 1:
            r.u(1, "direct_spatial_mv_pred_flag")
        if slice_type in (0, 1, 3) and r.u(1, "num_ref_idx_active_override_flag"):
            r.ue("num_ref_idx_l0_active_minus1")
            if slice_type == 1:
                r.ue("num_ref_idx_l1_active_minus1")
    except (EOFError, ValueError):
        pass
    return r


def _ue_bits(v: int) -> str:
    return format(v + 1, "b").rjust(2 * (v + 1).bit_length() - 1, "0")


def _encode(kind: str, bits: int, v: int) -> str:
    if kind == "u":
        return format(v & ((1 << bits) - 1), f"0{bits}b")
    if kind == "se":
        v = 2 * v - 1 if v > 0 else -2 * v
    return _ue_bits(v)


_UE_VALUES = (0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 33, 51, 52, 63, 64, 127, 255, 256, 1023, 1024, 4095,
              8191, 65535, 1 << 20, (1 << 31) - 1, (1 << 32) - 2)
_SE_VALUES = (0, 1, -1, 2, -2, 12, -12, 25, -26, 26, -27, 51, -52, 127, -128, 1 << 15, -(1 << 15),
              (1 << 31) - 1, -(1 << 31) + 1)


def _rewrite_field(nal: bytes, r: _Fields, rng: random.Random, same_length: bool) -> tuple[bytes, str] | None:
    """Rewrites one recorded field of `nal` (whose RBSP `r` read): same-length values keep every
    later field in place; other values shift the rest of the NAL unit."""
    if not r.fields:
        return None
    name, kind, start, bits, old = r.fields[rng.randrange(len(r.fields))]
    if same_length:
        if kind == "u":
            new = rng.randrange(1 << bits)
        else:
            zeros = bits // 2
            code = rng.randrange((1 << zeros) - 1, (1 << (zeros + 1)) - 1)  # ue codes of this length
            new = code if kind == "ue" else ((code + 1) // 2 if code & 1 else -(code // 2))
        if new == old:
            return None
    else:
        if kind == "u":
            new = old ^ (1 << rng.randrange(bits)) if rng.random() < 0.5 else rng.randrange(1 << bits)
        else:
            choices = _UE_VALUES if kind == "ue" else _SE_VALUES
            new = rng.choice(choices + (old + 1, old - 1 if kind == "se" else max(old - 1, 0), 2 * old + 1))
        if new == old:
            return None
    text = format(r.value, f"0{r.n}b")
    text = text[:start] + _encode(kind, bits, new) + text[start + bits:]
    text += "0" * (-len(text) % 8)
    rbsp = int(text, 2).to_bytes(len(text) // 8, "big")
    return nal[:1] + _escape(rbsp), f"{name} {old} -> {new}"


# ------------------------------------------------------------------------------------------------
# Mutations
# ------------------------------------------------------------------------------------------------

_BYTES = (0x00, 0x01, 0x03, 0x7F, 0x80, 0xFF, 0xFE, 0x40, 0x20, 0x10)
# nal_unit_type values to retype a unit to: slices, SEI, parameter sets, delimiters, filler, data
# partitions, SPS extension, prefix, auxiliary and extension slices, reserved and unspecified
_NAL_TYPES = (1, 5, 6, 7, 8, 9, 10, 11, 12, 0, 2, 3, 4, 13, 14, 19, 20, 21, 24, 31)


class _Work:
    """One case being built: a list of [prefix, NAL unit] (Annex B) or the file bytes with the
    clip's NAL unit regions (containers, mutated in place; length-changing file edits last)."""

    def __init__(self, clip: Clip, corpus: list[Clip], rng: random.Random) -> None:
        self.clip, self.corpus, self.rng = clip, corpus, rng
        if clip.annexb:
            self.units = [[clip.data[n.prefix:n.start], bytearray(clip.nal(i))] for i, n in enumerate(clip.nals)]
        else:
            self.buf = bytearray(clip.data)
        self.file_ops: list[Callable[[bytearray], str]] = []

    # -- NAL units ---------------------------------------------------------------------------
    def count(self) -> int:
        return len(self.units) if self.clip.annexb else len(self.clip.nals)

    def get(self, i: int) -> bytearray:
        if self.clip.annexb:
            return self.units[i][1]
        n = self.clip.nals[i]
        return self.buf[n.start:n.end]

    def set(self, i: int, nal: bytes) -> None:
        """Replaces NAL unit i. In a container the unit keeps its size (the sample tables fix
        it): shorter content is padded with zero bytes, longer content is cut."""
        if self.clip.annexb:
            self.units[i][1] = bytearray(nal)
            return
        n = self.clip.nals[i]
        size = n.end - n.start
        self.buf[n.start:n.end] = bytes(nal[:size]).ljust(size, b"\0")

    def type(self, i: int) -> int:
        nal = self.get(i)
        return nal[0] & 0x1F if nal else -1

    def pick(self, kinds: tuple[int, ...] | None = None) -> int | None:
        candidates = [i for i in range(self.count()) if kinds is None or self.type(i) in kinds]
        return self.rng.choice(candidates) if candidates else None

    def pick_weighted(self) -> int | None:
        """Mostly slices (where most of the bits are), sometimes parameter sets or anything."""
        x = self.rng.random()
        kinds = (SLICE, IDR) if x < 0.7 else (SPS, PPS) if x < 0.85 else None
        i = self.pick(kinds)
        return self.pick() if i is None else i

    def build(self) -> bytes:
        if self.clip.annexb:
            return b"".join(bytes(p) + bytes(n) for p, n in self.units)
        return bytes(self.buf)


def _other_clip(w: _Work) -> Clip:
    return w.rng.choice(w.corpus)


def _other_nal(w: _Work, kinds: tuple[int, ...]) -> bytes | None:
    clip = _other_clip(w)
    idx = clip.indices(kinds)
    return clip.nal(w.rng.choice(idx)) if idx else None


def _m_bitflip(w: _Work) -> str | None:
    i = w.pick_weighted()
    if i is None:
        return None
    nal = w.get(i)
    lo = 0 if w.rng.random() < 0.1 else 1
    if len(nal) <= lo:
        return None
    flips = w.rng.choice((1, 1, 1, 2, 3, 4, 8))
    t = w.type(i)
    where = []
    for _ in range(flips):
        pos = w.rng.randrange(lo, len(nal))
        nal[pos] ^= 1 << w.rng.randrange(8)
        where.append(pos)
    w.set(i, nal)
    return f"bitflip nal {i} (type {t}) bytes {where}"


def _m_byteset(w: _Work) -> str | None:
    i = w.pick_weighted()
    if i is None or len(w.get(i)) < 2:
        return None
    nal = w.get(i)
    where = []
    for _ in range(w.rng.randint(1, 4)):
        pos = w.rng.randrange(1, len(nal))
        nal[pos] = w.rng.choice(_BYTES) if w.rng.random() < 0.5 else w.rng.randrange(256)
        where.append(pos)
    w.set(i, nal)
    return f"byteset nal {i} bytes {where}"


def _m_insert(w: _Work) -> str | None:
    i = w.pick_weighted()
    if i is None:
        return None
    nal = w.get(i)
    pos = w.rng.randint(1, len(nal))
    k = w.rng.choice((1, 1, 2, 4, 8, 16, 32))
    if w.rng.random() < 0.5 and len(nal) > 1:  # repeat a piece of the unit itself
        a = w.rng.randrange(1, len(nal))
        piece = bytes(nal[a:a + k])
    else:
        piece = w.rng.randbytes(k)
    nal[pos:pos] = piece
    w.set(i, nal)
    return f"insert {len(piece)} bytes into nal {i} at {pos}"


def _m_delete(w: _Work) -> str | None:
    i = w.pick_weighted()
    if i is None or len(w.get(i)) < 3:
        return None
    nal = w.get(i)
    pos = w.rng.randrange(1, len(nal) - 1)
    k = min(w.rng.choice((1, 1, 2, 4, 8, 16, 64)), len(nal) - pos)
    del nal[pos:pos + k]
    w.set(i, nal)
    return f"delete {k} bytes from nal {i} at {pos}"


def _m_truncate_nal(w: _Work) -> str | None:
    i = w.pick((SLICE, IDR, SPS, PPS) if w.rng.random() < 0.9 else None)
    if i is None or len(w.get(i)) < 2:
        return None
    nal = w.get(i)
    keep = w.rng.randint(1, len(nal) - 1)
    w.set(i, nal[:keep])
    return f"truncate nal {i} to {keep} of {len(nal)} bytes"


def _m_truncate_stream(w: _Work) -> str | None:
    def cut(buf: bytearray) -> str:
        keep = w.rng.randrange(1, len(buf))
        del buf[keep:]
        return f"truncate stream at byte {keep}"
    w.file_ops.append(cut)
    return "truncate stream"


def _m_splice(w: _Work) -> str | None:
    """The head of one slice with the tail of another (same clip or another one)."""
    i = w.pick((SLICE, IDR))
    other = _other_nal(w, (SLICE, IDR)) if w.rng.random() < 0.5 else None
    if i is None:
        return None
    if other is None:
        j = w.pick((SLICE, IDR))
        other = bytes(w.get(j))
    nal = w.get(i)
    a = w.rng.randint(1, len(nal))
    b = w.rng.randint(1, len(other))
    new = nal[:a] + other[b:]
    if not w.clip.annexb:  # in place: the rest of the old unit stays where the new one is short
        new += nal[len(new):]
    w.set(i, new)
    return f"splice nal {i}[:{a}] + slice[{b}:]"


def _m_transplant(w: _Work) -> str | None:
    """A whole slice from another clip (or another picture) inserted or replacing one."""
    other = _other_nal(w, (SLICE, IDR))
    if other is None or not w.clip.annexb:
        return None
    i = w.pick((SLICE, IDR))
    if i is None:
        return None
    if w.rng.random() < 0.5:
        w.units[i][1] = bytearray(other)
        return f"replace nal {i} with a foreign slice"
    w.units.insert(i + w.rng.randint(0, 1), [b"\0\0\0\1", bytearray(other)])
    return f"insert a foreign slice near nal {i}"


def _m_ps_swap(w: _Work) -> str | None:
    """Parameter sets of another clip: sizes, entropy coding, profiles, matrices that do not fit."""
    other = w.rng.choice([c for c in w.corpus if c.name != w.clip.name] or w.corpus)
    mode = w.rng.choice(("sps", "pps", "both", "insert"))
    if mode == "insert":
        if not w.clip.annexb:
            return None
        i = w.pick((SLICE, IDR))
        if i is None:
            return None
        sets = [other.nal(k) for k in other.indices((SPS, PPS))[:2]]
        for nal in reversed(sets):
            w.units.insert(i, [b"\0\0\0\1", bytearray(nal)])
        return f"insert the SPS/PPS of {other.name} before nal {i}"
    done = []
    for kind in ((SPS,) if mode == "sps" else (PPS,) if mode == "pps" else (SPS, PPS)):
        idx = other.indices((kind,))
        if not idx:
            continue
        replacement = other.nal(idx[0])
        for i in range(w.count()):
            if w.type(i) == kind and w.get(i) != replacement:
                w.set(i, replacement)
                done.append(i)
    return f"{mode} of {other.name} swapped into nals {done}" if done else None


def _m_field(w: _Work, kinds: tuple[int, ...]) -> str | None:
    i = w.pick(kinds)
    if i is None:
        return None
    nal = bytes(w.get(i))
    t = nal[0] & 0x1F
    r = sps_fields(nal) if t == SPS else pps_fields(nal) if t == PPS else slice_fields(nal, w.clip.params)
    same = not w.clip.annexb or w.rng.random() < 0.5
    for _ in range(4):
        out = _rewrite_field(nal, r, w.rng, same)
        if out is not None:
            w.set(i, out[0])
            return f"nal {i} (type {t}) {out[1]}"
    return None


def _m_nal_header(w: _Work) -> str | None:
    i = w.pick()
    if i is None:
        return None
    nal = w.get(i)
    old = nal[0]
    while nal[0] == old:
        x = w.rng.random()
        if x < 0.6:
            nal[0] = (old & 0xE0) | w.rng.choice(_NAL_TYPES)
        elif x < 0.9:
            nal[0] = (old & 0x9F) | (w.rng.randrange(4) << 5)
        else:
            nal[0] = old | 0x80  # forbidden_zero_bit
    w.set(i, nal)
    return f"nal {i} header {old:#04x} -> {nal[0]:#04x}"


def _m_nal_dup(w: _Work) -> str | None:
    if not w.clip.annexb:
        return None
    i = w.pick_weighted()
    if i is None:
        return None
    j = i + 1 if w.rng.random() < 0.5 else w.rng.randint(0, len(w.units))
    w.units.insert(j, [w.units[i][0], bytearray(w.units[i][1])])
    return f"duplicate nal {i} at {j}"


def _m_nal_drop(w: _Work) -> str | None:
    if not w.clip.annexb or len(w.units) < 2:
        return None
    x = w.rng.random()
    i = w.pick((SLICE, IDR) if x < 0.5 else (SPS,) if x < 0.65 else (PPS,) if x < 0.8 else None)
    if i is None:
        return None
    t = w.type(i)
    del w.units[i]
    return f"drop nal {i} (type {t})"


def _m_nal_swap(w: _Work) -> str | None:
    if not w.clip.annexb or len(w.units) < 2:
        return None
    i = w.rng.randrange(len(w.units) - 1)
    j = i + 1 if w.rng.random() < 0.5 else w.rng.choice([k for k in range(len(w.units)) if k != i])
    w.units[i], w.units[j] = w.units[j], w.units[i]
    return f"swap nals {i} and {j}"


def _m_nal_length(w: _Work) -> str | None:
    """Container only: a NAL unit length field (in a packet or the avcC) that lies."""
    if w.clip.annexb:
        return None
    i = w.pick()
    if i is None:
        return None
    n = w.clip.nals[i]
    width = n.start - n.prefix
    size = n.end - n.start
    top = (1 << (8 * width)) - 1
    new = w.rng.choice((0, 1, 2, size - 1, size + 1, size + w.rng.randint(2, 64), size * 2, top, top >> 1,
                        w.rng.randrange(top + 1)))
    new = max(0, min(new, top))
    w.buf[n.prefix:n.start] = new.to_bytes(width, "big")
    return f"nal {i} length field {size} -> {new}"


def _m_avcc(w: _Work) -> str | None:
    """Container only: the avcC record's NAL length size and parameter set counts."""
    if w.clip.annexb or w.clip.avcc < 0:
        return None
    a = w.clip.avcc
    which = w.rng.choice(("length_size", "sps_count", "version", "profile"))
    if which == "length_size":
        w.buf[a + 4] = 0xFC | w.rng.randrange(4)
    elif which == "sps_count":
        w.buf[a + 5] = 0xE0 | w.rng.choice((0, 2, 3, 31))
    elif which == "version":
        w.buf[a] = w.rng.choice((0, 2, 0xFF))
    else:
        w.buf[a + 1] = w.rng.choice((66, 77, 88, 100, 110, 122, 244, 0, 255))
    return f"avcC {which}"


def _file_edit(w: _Work, kind: str) -> str | None:
    """Container only: damage anywhere in the file (boxes, EBML elements, sample data)."""
    if w.clip.annexb:
        return None

    def edit(buf: bytearray) -> str:
        pos = w.rng.randrange(len(buf))
        if kind == "insert":
            k = w.rng.choice((1, 4, 16, 100))
            buf[pos:pos] = w.rng.randbytes(k)
            return f"insert {k} bytes at file offset {pos}"
        if kind == "delete":
            k = w.rng.choice((1, 4, 16, 100))
            del buf[pos:pos + k]
            return f"delete {k} bytes at file offset {pos}"
        buf[pos] ^= 1 << w.rng.randrange(8)
        return f"bitflip at file offset {pos}"
    w.file_ops.append(edit)
    return f"file {kind}"


MUTATIONS: dict[str, tuple[float, Callable[[_Work], str | None]]] = {
    # name: (weight, mutation); each returns what it did, or None where it does not apply
    "bitflip": (6, _m_bitflip),
    "byteset": (2, _m_byteset),
    "insert": (1.5, _m_insert),
    "delete": (1.5, _m_delete),
    "truncate_nal": (1.5, _m_truncate_nal),
    "truncate_stream": (1, _m_truncate_stream),
    "splice": (2, _m_splice),
    "transplant": (1, _m_transplant),
    "ps_swap": (1.5, _m_ps_swap),
    "sps_field": (1.5, lambda w: _m_field(w, (SPS,))),
    "pps_field": (1.5, lambda w: _m_field(w, (PPS,))),
    "slice_header_field": (2, lambda w: _m_field(w, (SLICE, IDR))),
    "nal_header": (1, _m_nal_header),
    "nal_dup": (1, _m_nal_dup),
    "nal_drop": (1, _m_nal_drop),
    "nal_swap": (0.7, _m_nal_swap),
    "nal_length": (1.5, _m_nal_length),
    "avcc": (0.5, _m_avcc),
    "file_bitflip": (0.5, lambda w: _file_edit(w, "bitflip")),
    "file_insert": (0.3, lambda w: _file_edit(w, "insert")),
    "file_delete": (0.3, lambda w: _file_edit(w, "delete")),
}
_NAMES = list(MUTATIONS)
_WEIGHTS = [MUTATIONS[n][0] for n in _NAMES]


@dataclass
class Case:
    number: int
    clip: str
    data: bytes
    suffix: str
    mutations: list[str]    # mutation names, in the order applied
    description: list[str]  # what each did


def make_case(corpus: list[Clip], seed: int, number: int) -> Case:
    """Case `number` of campaign `seed`: a clip and one to four mutations (deterministic)."""
    rng = random.Random(f"vccv-fuzz/{seed}/{number}")
    clip = corpus[rng.randrange(len(corpus))]
    w = _Work(clip, corpus, rng)
    wanted = 1 if rng.random() < 0.6 else rng.randint(2, 4)
    names: list[str] = []
    descriptions: list[str] = []
    file_edits: list[tuple[int, Callable[[bytearray], str]]] = []
    tries = 0
    while len(names) < wanted and tries < 20:
        tries += 1
        name = rng.choices(_NAMES, _WEIGHTS)[0]
        scheduled = len(w.file_ops)
        done = MUTATIONS[name][1](w)
        if done is not None:
            names.append(name)
            descriptions.append(done)
            file_edits += [(len(descriptions) - 1, op) for op in w.file_ops[scheduled:]]
    data = bytearray(w.build())
    for index, op in file_edits:  # length-changing edits of the whole file come last
        if len(data) > 1:
            descriptions[index] = op(data)
    return Case(number, clip.name, bytes(data), clip.suffix if not clip.annexb else ".h264", names, descriptions)


# ------------------------------------------------------------------------------------------------
# The target: everything a user of codec.open can call on a stream
# ------------------------------------------------------------------------------------------------


class InvalidResult(AssertionError):
    """A parse result outside its documented shape or range."""


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise InvalidResult(what)


def _check_frame(stream: Any, mb: Any, res: Any, coeffs: Any) -> None:
    import numpy as np

    h16, w16 = stream.coded_height // 16, stream.coded_width // 16
    for name in ("mb_type", "qp", "cbp"):
        _check(getattr(mb, name).shape == (h16, w16), f"{name} shape {getattr(mb, name).shape} != {(h16, w16)}")
    _check(mb.mv.shape == (2, 4 * h16, 4 * w16, 2), f"mv shape {mb.mv.shape}")
    _check(mb.ref_idx.shape == (2, 4 * h16, 4 * w16), f"ref_idx shape {mb.ref_idx.shape}")
    if mb.mb_type.size:
        _check(0 <= mb.mb_type.min() and mb.mb_type.max() <= 4, "mb_type outside 0..4")
        _check(0 <= mb.qp.min() and mb.qp.max() <= 51, f"qp outside 0..51: {mb.qp.min()}..{mb.qp.max()}")
        _check(-1 <= mb.ref_idx.min() and mb.ref_idx.max() <= 31, "ref_idx outside -1..31")
    ch, cw = stream.coded_height, stream.coded_width
    _check(res.y.shape == (ch, cw) and res.u.shape == (ch // 2, cw // 2) and res.v.shape == (ch // 2, cw // 2),
           f"residual shapes {res.y.shape} {res.u.shape} {res.v.shape} for {cw}x{ch}")
    _check(res.y.dtype == np.int16, "residual dtype")
    for positions, size in ((coeffs.positions4, 4), (coeffs.positions8, 8)):
        if len(positions):
            plane, x, y = positions[:, 0], positions[:, 1], positions[:, 2]
            _check(bool(((plane >= 0) & (plane <= 2)).all()), "coefficient plane outside 0..2")
            width = np.where(plane == 0, cw, cw // 2)
            height = np.where(plane == 0, ch, ch // 2)
            _check(bool(((x >= 0) & (x + size <= width) & (y >= 0) & (y + size <= height)).all()),
                   f"{size}x{size} coefficient block outside its plane")


def parse_all(data: bytes, case: int | None = None) -> tuple[str, int, int]:
    """codec.open, then every frame's headers, macroblocks, residual and coefficients. Returns
    (outcome, frames parsed, frames rejected); outcome is "parsed" when every frame parsed, else
    "corrupt" or "unsupported"."""
    from vccv_gpu import codec

    try:
        stream = codec.open(data)
    except codec.CorruptStream:
        return "corrupt", 0, 0
    except codec.UnsupportedStream:
        return "unsupported", 0, 0
    outcome, good, bad = "parsed", 0, 0
    with stream:
        _check(len(stream.frames) > 0, "a stream without frames opened")
        for frame in stream.frames:
            i = frame.index
            try:
                stream.slice_headers(i)
                stream.scaling_matrices(i)
                _check_frame(stream, stream.macroblocks(i), stream.residual(i), stream.coefficients(i))
                good += 1
            except codec.CorruptStream as e:
                _check(e.decode_index == frame.decode_index, f"frame {i}'s error names another picture: {e}")
                outcome, bad = "corrupt", bad + 1
            except codec.UnsupportedStream:
                outcome = "unsupported" if outcome == "parsed" else outcome
                bad += 1
    return outcome, good, bad


def _load_target(spec: str | None) -> Callable[..., Any]:
    """"module:function" or "path/file.py:function" (a test hook); None: parse_all."""
    if not spec:
        return parse_all
    where, _, name = spec.rpartition(":")
    if where.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(f"_fuzz_target_{abs(hash(where))}", where)
        assert module_spec is not None and module_spec.loader is not None, where
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, name)


# ------------------------------------------------------------------------------------------------
# Worker: runs the cases it is sent, one JSON line per result
# ------------------------------------------------------------------------------------------------


def _asan_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return "asan" in os.environ.get("LD_PRELOAD", "")


def _worker(clips_dir: str | None, seed: int, target_spec: str | None, memory_limit_mb: int) -> int:
    # The protocol gets a private copy of stdout; prints in the target land on stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    warnings.simplefilter("ignore")  # truncation warnings: the outcome says what happened
    try:
        import av
        av.logging.set_level(None)
    except Exception:  # noqa: BLE001 - logging is cosmetic
        pass
    if memory_limit_mb > 0 and not _asan_loaded():  # ASan reserves terabytes of address space
        import resource
        limit = memory_limit_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    target = _load_target(target_spec)
    corpus = load_clips([Path(clips_dir) / name for name, _ in CLIPS]) if clips_dir else []
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        job = json.loads(line)
        number = job["case"]
        names: list[str] = []
        try:
            if "file" in job:
                data = Path(job["file"]).read_bytes()
            else:
                case = make_case(corpus, seed, number)
                data, names = case.data, case.mutations
            os.write(2, b"\n@@fuzz-case %d@@\n" % number)  # the supervisor attributes stderr by these
            result = target(data, number)
            outcome, good, bad = (result, 0, 0) if isinstance(result, str) else result
            reply: dict[str, Any] = {"case": number, "outcome": outcome, "frames": [good, bad], "m": names}
        except BaseException as e:  # noqa: BLE001 - every other exception is what we are looking for
            kind = "invalid-result" if isinstance(e, InvalidResult) else "exception"
            reply = {"case": number, "outcome": "failure", "kind": kind, "m": names,
                     "detail": "".join(traceback.format_exception(e)[-12:])}
        out.write(json.dumps(reply) + "\n")
    return 0


# ------------------------------------------------------------------------------------------------
# Supervisor
# ------------------------------------------------------------------------------------------------

_SANITIZER = re.compile(rb"ERROR: (Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer|runtime error: ")
_SANITIZER_TEXT = re.compile(_SANITIZER.pattern.decode())
_MARKER = re.compile(rb"\n@@fuzz-case (\d+)@@\n")
_PIPELINE = 4  # cases queued per worker ahead of the one running


class _Worker:
    def __init__(self, argv: list[str], env: dict[str, str], log_dir: Path, number: int) -> None:
        self.log_path = log_dir / f"worker{number}.log"
        self.log = open(self.log_path, "w+b")  # noqa: SIM115 - lives as long as the worker
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=env, start_new_session=True)
        self.pending: collections.deque[int] = collections.deque()
        self.buffer = b""
        self.ready = False
        self.since = time.monotonic()
        self.log_seen = 0
        self.unread = b""
        os.set_blocking(self.proc.stdout.fileno(), False)

    def send(self, job: dict[str, Any]) -> bool:
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def stderr_of(self, number: int) -> bytes:
        """What the worker wrote to stderr while running case `number` (and the cases before it
        that were not asked about), now that its result is in."""
        size = os.fstat(self.log.fileno()).st_size
        if size > self.log_seen:
            self.log.seek(self.log_seen)
            self.unread += self.log.read(size - self.log_seen)
            self.log_seen = size
        end = len(self.unread)
        for marker in _MARKER.finditer(self.unread):
            if int(marker.group(1)) > number:  # a later case has started: its output stays
                end = marker.start()
                break
        text, self.unread = self.unread[:end], self.unread[end:]
        return text

    def stderr_tail(self, limit: int) -> str:
        """The end of the worker's stderr, from the start of the last case it began."""
        size = os.fstat(self.log.fileno()).st_size
        self.log.seek(max(0, size - limit))
        text = self.log.read()
        last = None
        for last in _MARKER.finditer(text):
            pass
        return text[last.end() if last else 0:].decode("utf-8", "replace")

    def kill(self) -> int:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        rc = self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.log.close()
        return rc


def _excerpt(text: str, limit: int = 6000) -> str:
    """The sanitizer report in a worker's stderr (from its first line), else the end of it."""
    match = _SANITIZER_TEXT.search(text)
    if match is None:
        return text[-limit:]
    report = text[text.rfind("\n", 0, match.start()) + 1:]
    if len(report) > limit:
        summary = re.search(r"^SUMMARY: .*$", report, re.MULTILINE)
        report = report[:limit] + "\n...\n" + (summary.group(0) if summary else "")
    return report


def signature(failure: dict[str, Any]) -> str:
    """What tells failures apart: the sanitizer's verdict and the first frame in csrc/, or the
    exception and where it was raised, or how the worker ended."""
    text = failure.get("stderr") or ""
    for pattern in (r"(runtime error: [^\n]*)", r"ERROR: \w+Sanitizer: ([\w-]+)"):
        found = re.search(pattern, text)
        if found:
            frame = re.search(r"#\d+ 0x[0-9a-f]+ in (\S+) (\S*csrc/[^\s:]+:\d+)", text)
            where = f" in {frame.group(1)} {Path(frame.group(2)).name}" if frame else ""
            return f"{failure['kind']}: {found.group(1).strip()}{where}"
    detail = (failure.get("detail") or "").strip().splitlines()
    if failure["kind"] in ("exception", "invalid-result") and detail:
        places = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', failure.get("detail") or "")
        where = f" at {Path(places[-1][0]).name}:{places[-1][1]} ({places[-1][2]})" if places else ""
        return f"{failure['kind']}: {detail[-1][:200]}{where}"
    return f"{failure['kind']}: {detail[-1] if detail else ''}"


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with status {rc}"


def _supervise(jobs: Iterator[dict[str, Any]], worker_argv: list[str], n_workers: int, timeout: float,
               on_result: Callable[[dict[str, Any]], None], log_dir: Path, startup_timeout: float = 120.0) -> None:
    """Runs `jobs` on `n_workers` worker processes; calls `on_result` with each result, where a
    dead or hung worker becomes a "failure" result for the case it was running."""
    env = dict(os.environ)
    if "asan" in env.get("LD_PRELOAD", "") and "max_allocation_size_mb" not in env.get("ASAN_OPTIONS", ""):
        # A hostile size must not make the worker take all of the machine's memory.
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS", ""), "max_allocation_size_mb=4096"]))
    selector = selectors.DefaultSelector()
    requeued: collections.deque[dict[str, Any]] = collections.deque()
    in_flight: dict[int, dict[str, Any]] = {}
    spawned = 0
    startup_failures = 0

    def spawn() -> _Worker:
        nonlocal spawned
        spawned += 1
        w = _Worker(worker_argv, env, log_dir, spawned)
        selector.register(w.proc.stdout, selectors.EVENT_READ, w)
        return w

    def retire(w: _Worker, kind: str, detail: str) -> _Worker:
        """Ends worker w; its running case fails with `kind`, the ones queued behind it rerun."""
        nonlocal startup_failures
        selector.unregister(w.proc.stdout)
        if w.proc.poll() is None:
            w.proc.kill()  # a hung worker: its stderr is complete once it is gone
        rc = w.proc.wait()
        tail = _excerpt(w.stderr_tail(1 << 20))
        w.kill()
        if not w.ready:  # died or stuck before its first case: not a case's fault
            startup_failures += 1
            if startup_failures >= 3:
                raise RuntimeError(f"the fuzz worker does not start ({_describe_exit(rc)}):\n{tail}")
        elif w.pending:
            number = w.pending.popleft()
            job = in_flight.pop(number)
            detail = detail or f"worker {_describe_exit(rc)}"
            on_result({"case": number, "outcome": "failure", "kind": kind, "detail": detail, "stderr": tail,
                       "file": job.get("file")})
        requeued.extendleft(reversed([in_flight.pop(n) for n in w.pending]))
        return spawn()

    workers = [spawn() for _ in range(n_workers)]
    finished = False
    try:
        exhausted = False
        while True:
            for w in workers:
                while len(w.pending) < _PIPELINE:
                    if requeued:
                        job = requeued.popleft()
                    elif not exhausted:
                        job = next(jobs, None)
                        if job is None:
                            exhausted = True
                            break
                    else:
                        break
                    in_flight[job["case"]] = job
                    w.pending.append(job["case"])
                    if not w.send(job):
                        break  # the dead worker is found by its closed stdout
            if exhausted and not requeued and not in_flight:
                break
            now = time.monotonic()
            waits = [(w.since + (timeout if w.ready else startup_timeout)) - now for w in workers if w.pending]
            events = selector.select(timeout=max(0.0, min(waits, default=1.0)))
            for key, _ in events:
                w = key.data
                try:
                    chunk = os.read(key.fileobj.fileno(), 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    workers[workers.index(w)] = retire(w, "crash", "")
                    continue
                w.buffer += chunk
                *lines, w.buffer = w.buffer.split(b"\n")
                for line in lines:
                    try:
                        reply = json.loads(line)
                    except ValueError:
                        continue  # not the protocol's (a library writing to the worker's stdout)
                    w.since = time.monotonic()
                    if reply.get("ready"):
                        w.ready, startup_failures = True, 0
                        continue
                    number = reply["case"]
                    if w.pending and w.pending[0] == number:
                        w.pending.popleft()
                    job = in_flight.pop(number, {})
                    reply["file"] = job.get("file")
                    report = w.stderr_of(number)
                    if _SANITIZER.search(report) and reply["outcome"] != "failure":
                        reply.update(outcome="failure", kind="sanitizer", detail="sanitizer report on stderr",
                                     stderr=_excerpt(report.decode("utf-8", "replace")))
                    on_result(reply)
            now = time.monotonic()
            for k, w in enumerate(workers):
                limit = timeout if w.ready else startup_timeout
                if w.pending and now - w.since > limit:
                    what = f"no result after {limit:g} s" + ("" if w.ready else " (worker start)")
                    workers[k] = retire(w, "hang" if w.ready else "crash", what)
        finished = True
    finally:  # also on KeyboardInterrupt: no worker outlives the campaign
        for w in workers:
            if finished:
                try:
                    w.proc.stdin.close()  # the worker ends at the end of its input
                    w.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            w.kill()
        selector.close()


# ------------------------------------------------------------------------------------------------
# Campaign
# ------------------------------------------------------------------------------------------------


def run(*, cases: int = 20000, seed: int = 0, hours: float | None = None, jobs: int | None = None,
        clips: str | os.PathLike | None = None, timeout: float = 10.0, case_numbers: Sequence[int] | None = None,
        replay: Sequence[str | os.PathLike] | None = None, save_failures: str | os.PathLike | None = None,
        target: str | None = None, memory_limit_mb: int = 4096, progress: bool = True,
        confirm: bool = True) -> dict[str, Any]:
    """Runs a campaign and returns its report (see `main`); `target` ("module:function" or
    "file.py:function", called as f(data, case) -> outcome) replaces `parse_all`, for testing
    the harness itself."""
    from tqdm import tqdm

    jobs = max(1, jobs or os.cpu_count() or 1)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vccv-fuzz-") as tmp:
        clips_dir = Path(clips) if clips is not None else Path(tmp) / "clips"
        replay_files = [str(Path(p).resolve()) for p in replay or []]
        corpus: list[Clip] = []
        if not replay_files:
            corpus = load_clips(make_clips(clips_dir))
        clip_time = time.monotonic() - started

        if replay_files:
            numbers: Iterable[int] = range(len(replay_files))
            total: int | None = len(replay_files)
        elif case_numbers is not None:
            numbers, total = list(case_numbers), len(case_numbers)
        elif hours is not None:
            deadline = time.monotonic() + hours * 3600
            numbers, total = _until(deadline), None
        else:
            numbers, total = range(cases), cases

        def job_list(numbers: Iterable[int]) -> Iterator[dict[str, Any]]:
            for n in numbers:
                yield {"case": n, "file": replay_files[n]} if replay_files else {"case": n}

        argv = [sys.executable, "-m", "vccv_gpu.codec.fuzz", "--worker", "--seed", str(seed),
                "--memory-limit", str(memory_limit_mb)]
        if not replay_files:
            argv += ["--clips", str(clips_dir)]
        if target:
            argv += ["--target", target]

        outcomes: collections.Counter[str] = collections.Counter()
        frames = [0, 0]
        by_mutation: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        failures: list[dict[str, Any]] = []
        # A live bar on a terminal; in a log (CI), a plain status line every 30 seconds.
        bar = tqdm(total=total, unit="case", desc="fuzz", disable=not (progress and sys.stderr.isatty()),
                   smoothing=0.05, mininterval=0.5, dynamic_ncols=True)
        log_every, last_log = 30.0, [time.monotonic()]
        shown_live = 20  # failures printed as they happen; all of them are in the summary

        def on_result(reply: dict[str, Any]) -> None:
            outcome = reply["outcome"]
            outcomes[outcome] += 1
            if outcome != "failure":
                frames[0] += reply["frames"][0]
                frames[1] += reply["frames"][1]
            for name in set(reply.get("m") or ()):
                by_mutation[name][outcome] += 1
            if outcome == "failure":
                failure = {k: reply[k] for k in ("case", "kind", "detail", "stderr", "file")
                           if reply.get(k) not in (None, "")}
                failures.append(failure)
                if len(failures) <= shown_live:
                    last = (reply.get("detail") or "").strip().splitlines()
                    bar.write(f"FAILURE case {reply['case']} ({reply['kind']}): {last[-1] if last else ''}"
                              + (" (more failures: see the summary)" if len(failures) == shown_live else ""),
                              file=sys.stderr)
                bar.set_postfix(failures=len(failures), refresh=False)
            bar.update(1)
            now = time.monotonic()
            if progress and bar.disable and now - last_log[0] >= log_every:
                last_log[0] = now
                done = sum(outcomes.values())
                print(f"fuzz: {done}{f'/{total}' if total else ''} cases, {len(failures)} failures, "
                      f"{done / (now - run_started):.0f} cases/s", file=sys.stderr, flush=True)

        run_started = time.monotonic()
        interrupted = False
        try:
            _supervise(job_list(numbers), argv, jobs, timeout, on_result, Path(tmp))
        except KeyboardInterrupt:
            interrupted = True
            confirm = False
        finally:
            bar.close()
        elapsed = time.monotonic() - run_started

        failures.sort(key=lambda f: f["case"])
        groups: dict[str, list[dict[str, Any]]] = {}
        for failure in failures:
            failure["signature"] = signature(failure)
            groups.setdefault(failure["signature"], []).append(failure)

        # The first crash or hang of each kind reruns alone in a fresh worker: is that case the cause?
        if confirm:
            firsts = [group[0] for group in groups.values() if group[0]["kind"] in ("crash", "hang")]
            for failure in firsts[:10]:
                again: list[dict[str, Any]] = []
                _supervise(job_list([failure["case"]]), argv, 1, timeout, again.append, Path(tmp))
                failure["reproduced"] = bool(again) and again[0].get("kind") == failure["kind"]

        for failure in failures:
            if replay_files:
                failure["input"] = failure.pop("file", None) or replay_files[failure["case"]]
                failure["reproduce"] = f"python -m vccv_gpu.codec.fuzz --replay {failure['input']}"
                continue
            failure.pop("file", None)
            case = make_case(corpus, seed, failure["case"])
            failure.update(clip=case.clip, mutations=case.description)
            failure["reproduce"] = (f"python -m vccv_gpu.codec.fuzz --seed {seed} --case {failure['case']}"
                                    + (f" --clips {clips}" if clips is not None else ""))
            if save_failures is not None:
                out = Path(save_failures)
                out.mkdir(parents=True, exist_ok=True)
                path = out / f"seed{seed}-case{failure['case']}-{failure['kind']}{case.suffix}"
                path.write_bytes(case.data)
                failure["input"] = str(path)
                path.with_suffix(".txt").write_text(json.dumps(failure, indent=2) + "\n")

        done = sum(outcomes.values())
        return {
            "seed": seed,
            "cases": done,
            "parsed": outcomes["parsed"],
            "corrupt": outcomes["corrupt"],
            "unsupported": outcomes["unsupported"],
            "failed": outcomes["failure"],
            "frames_parsed": frames[0],
            "frames_rejected": frames[1],
            "failures": failures,
            "distinct_failures": [{"signature": sig, "count": len(group), "cases": [f["case"] for f in group[:50]]}
                                  for sig, group in groups.items()],
            "mutations": {name: dict(c) for name, c in sorted(by_mutation.items())},
            # The cases of a seed are the same wherever the seed clips are the same bytes.
            "clips": ([{"name": c.name, "bytes": len(c.data), "sha256": hashlib.sha256(c.data).hexdigest()[:16]}
                       for c in corpus] if not replay_files else replay_files),
            "jobs": jobs,
            "timeout_s": timeout,
            "clip_setup_s": round(clip_time, 2),
            "elapsed_s": round(elapsed, 2),
            "cases_per_s": round(done / elapsed, 1) if elapsed > 0 else None,
            "sanitizer": "asan" in os.environ.get("LD_PRELOAD", ""),
            "interrupted": interrupted,
        }


def _until(deadline: float) -> Iterator[int]:
    n = 0
    while time.monotonic() < deadline:
        yield n
        n += 1


def format_summary(report: dict[str, Any]) -> str:
    lines = [
        f"fuzz: {report['cases']} cases (seed {report['seed']}) in {report['elapsed_s']:.1f} s, "
        f"{report['cases_per_s']} cases/s on {report['jobs']} jobs"
        + (" (sanitizer build)" if report["sanitizer"] else "")
        + (" (interrupted)" if report["interrupted"] else ""),
        (f"  parsed {report['parsed']}, corrupt {report['corrupt']}, unsupported {report['unsupported']}, "
         f"failures {report['failed']}; frames parsed {report['frames_parsed']}, "
         f"rejected {report['frames_rejected']}"),
    ]
    shown = {f["case"]: f for f in report["failures"]}
    for group in report["distinct_failures"]:
        f = shown[group["cases"][0]]
        more = group["cases"][1:10]
        lines.append(f"  FAILURE x{group['count']}: {group['signature']}")
        lines.append(f"    first: case {f['case']}"
                     + (f" (reproduced alone: {'yes' if f['reproduced'] else 'no'})" if "reproduced" in f else "")
                     + (f"; also cases {', '.join(map(str, more))}{' ...' if group['count'] > 10 else ''}"
                        if more else ""))
        if f.get("mutations"):
            lines.append(f"    {f['clip']}: {'; '.join(f['mutations'])}")
        for key in ("input", "reproduce"):
            if f.get(key):
                lines.append(f"    {key}: {f[key]}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vccv_gpu.codec.fuzz",
        description="Fuzz the H.264 parser: mutate generated seed clips (bit flips, insertions, deletions, "
                    "truncations, spliced slices, mismatched or rewritten SPS/PPS, duplicated, dropped and "
                    "reordered NAL units, broken NAL lengths) and check that every case parses or raises "
                    "CorruptStream/UnsupportedStream, without other exceptions, hangs or crashes. Cases run "
                    "in supervised worker processes. Exit status 1 if any case failed.")
    parser.add_argument("--cases", type=int, default=20000, help="number of cases (default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed: the same seed makes the same cases")
    parser.add_argument("--hours", type=float, help="run for this long instead of a fixed number of cases")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: the number of CPUs)")
    parser.add_argument("--clips", metavar="DIR",
                        help="where the seed clips are made once and reused (default: a temporary directory)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="seconds a case may take before it counts as a hang (default 10)")
    parser.add_argument("--case", type=int, action="append", metavar="N", dest="case_numbers",
                        help="run only case N of the seed (repeatable): reproduces a reported failure")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="run saved inputs instead of mutations")
    parser.add_argument("--report", metavar="FILE", help="write a JSON summary here")
    parser.add_argument("--save-failures", metavar="DIR", help="write each failing input (and a .txt note) here")
    parser.add_argument("--memory-limit", type=int, default=4096, metavar="MB",
                        help="address space limit of a worker without sanitizers (default 4096; 0: none)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)  # test hook: module:function or file.py:function
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args.clips, args.seed, args.target, args.memory_limit)
    if args.cases < 0 or args.jobs < 1 or args.timeout <= 0:
        parser.error("--cases must be >= 0, --jobs >= 1 and --timeout > 0")

    report = run(cases=args.cases, seed=args.seed, hours=args.hours, jobs=args.jobs, clips=args.clips,
                 timeout=args.timeout, case_numbers=args.case_numbers, replay=args.replay,
                 save_failures=args.save_failures, target=args.target, memory_limit_mb=args.memory_limit,
                 progress=not args.no_progress)
    print(format_summary(report), flush=True)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
