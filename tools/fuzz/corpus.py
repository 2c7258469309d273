"""The fuzz campaign's seed clips and their NAL units, with the header fields mutations rewrite."""

from __future__ import annotations

import io
import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    from tools.clips import make_clip, write_cqm_file

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


def escape_emulation(rbsp: bytes) -> bytes:
    """The NAL payload of an RBSP: emulation_prevention_three_byte inserted (7.4.1)."""
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
    return nal[:1] + escape_emulation(rbsp), f"{name} {old} -> {new}"
