"""A minimal H.264 bitstream writer for header-level test streams: parameter sets and slice
headers with exactly chosen fields, for cases libx264 never emits. CAVLC slice data is the
simplest valid one (P/B: every macroblock skipped; I: I_16x16 with no coefficients), unless the
caller writes its own after `Slice.header()` (intra_stream.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tools.fuzz.corpus import escape_emulation


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> BitWriter:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def flag(self, value: bool | int) -> BitWriter:
        return self.u(1, int(bool(value)))

    def ue(self, value: int) -> BitWriter:
        code = value + 1
        return self.u(code.bit_length() - 1, 0).u(code.bit_length(), code)

    def se(self, value: int) -> BitWriter:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self, trailing: bool = True) -> bytes:
        bits = self.bits + ([1] + [0] * ((7 - len(self.bits)) % 8) if trailing else [])
        bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


def nal(nal_unit_type: int, rbsp: bytes, nal_ref_idc: int = 3) -> bytes:
    """Start code, NAL header and payload with emulation prevention bytes inserted."""
    return b"\0\0\0\1" + bytes([(nal_ref_idc << 5) | nal_unit_type]) + escape_emulation(rbsp)


@dataclass
class Sps:
    id: int = 0
    profile_idc: int = 100
    constraint_flags: int = 0
    level_idc: int = 30
    chroma_format_idc: int = 1
    bit_depth: int = 8
    scaling: list | None = None  # 8 entries: None (absent), "default", or a list of values (scan order)
    log2_max_frame_num: int = 4
    poc_type: int = 0
    log2_max_poc_lsb: int = 6
    delta_pic_order_always_zero: bool = False
    offset_for_non_ref_pic: int = 0
    offset_for_top_to_bottom_field: int = 0
    offset_for_ref_frame: list[int] = field(default_factory=lambda: [2])
    max_num_ref_frames: int = 4
    width_mbs: int = 4
    height_map_units: int = 3
    frame_mbs_only: bool = True
    mbaff: bool = False
    crop: tuple[int, int, int, int] | None = None  # left, right, top, bottom in crop units
    vui_timing: tuple[int, int] | None = None  # num_units_in_tick, time_scale

    def nal(self) -> bytes:
        w = BitWriter().u(8, self.profile_idc).u(8, self.constraint_flags).u(8, self.level_idc).ue(self.id)
        if self.profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
            w.ue(self.chroma_format_idc)
            if self.chroma_format_idc == 3:
                w.flag(0)
            w.ue(self.bit_depth - 8).ue(self.bit_depth - 8).flag(0)
            w.flag(self.scaling is not None)
            if self.scaling is not None:
                write_scaling_lists(w, self.scaling)
        w.ue(self.log2_max_frame_num - 4).ue(self.poc_type)
        if self.poc_type == 0:
            w.ue(self.log2_max_poc_lsb - 4)
        elif self.poc_type == 1:
            w.flag(self.delta_pic_order_always_zero).se(self.offset_for_non_ref_pic)
            w.se(self.offset_for_top_to_bottom_field).ue(len(self.offset_for_ref_frame))
            for offset in self.offset_for_ref_frame:
                w.se(offset)
        w.ue(self.max_num_ref_frames).flag(0).ue(self.width_mbs - 1).ue(self.height_map_units - 1)
        w.flag(self.frame_mbs_only)
        if not self.frame_mbs_only:
            w.flag(self.mbaff)
        w.flag(1).flag(self.crop is not None)
        if self.crop is not None:
            for c in self.crop:
                w.ue(c)
        w.flag(self.vui_timing is not None)
        if self.vui_timing is not None:
            w.flag(0).flag(0).flag(0).flag(0)  # aspect, overscan, video signal, chroma loc
            w.flag(1).u(32, self.vui_timing[0]).u(32, self.vui_timing[1]).flag(1)
            w.flag(0).flag(0).flag(0).flag(0)  # hrd x2, pic_struct, bitstream_restriction
        return nal(7, w.rbsp())


@dataclass
class Pps:
    id: int = 0
    sps_id: int = 0
    cabac: bool = False
    bottom_field_pic_order_in_frame_present: bool = False
    num_slice_groups: int = 1
    num_ref_idx_default: tuple[int, int] = (1, 1)
    weighted_pred: bool = False
    weighted_bipred_idc: int = 0
    deblocking_filter_control_present: bool = True
    constrained_intra_pred: bool = False
    redundant_pic_cnt_present: bool = False
    transform_8x8_mode: bool | None = None  # None: the optional trailing fields are absent
    scaling: list | None = None

    def nal(self) -> bytes:
        w = BitWriter().ue(self.id).ue(self.sps_id).flag(self.cabac)
        w.flag(self.bottom_field_pic_order_in_frame_present).ue(self.num_slice_groups - 1)
        if self.num_slice_groups > 1:
            w.ue(0)  # slice_group_map_type 0: interleaved runs
            for _ in range(self.num_slice_groups):
                w.ue(0)
        w.ue(self.num_ref_idx_default[0] - 1).ue(self.num_ref_idx_default[1] - 1)
        w.flag(self.weighted_pred).u(2, self.weighted_bipred_idc).se(0).se(0).se(0)
        w.flag(self.deblocking_filter_control_present).flag(self.constrained_intra_pred)
        w.flag(self.redundant_pic_cnt_present)
        if self.transform_8x8_mode is not None:
            w.flag(self.transform_8x8_mode).flag(self.scaling is not None)
            if self.scaling is not None:
                write_scaling_lists(w, self.scaling)
            w.se(0)
        return nal(8, w.rbsp())


def write_scaling_lists(w: BitWriter, lists: list) -> None:
    for entry in lists:
        w.flag(entry is not None)
        if entry is None:
            continue
        if entry == "default":
            w.se(-8)  # nextScale 0 at j = 0: useDefaultScalingMatrixFlag
            continue
        last = 8
        for value in entry:
            delta = (value - last + 128) % 256 - 128
            w.se(delta)
            last = value


@dataclass
class Slice:
    sps: Sps
    pps: Pps
    slice_type: int = 2            # 0 P, 1 B, 2 I, 3 SP, 4 SI
    idr: bool = False
    nal_ref_idc: int = 3
    first_mb: int = 0
    frame_num: int = 0
    field_pic: bool = False
    idr_pic_id: int = 0
    poc_lsb: int = 0
    delta_poc: tuple[int, int] = (0, 0)
    mmcos: list[tuple[int, ...]] = field(default_factory=list)  # (op, args...)
    long_term_reference: bool = False  # IDR: mark the picture long-term
    num_ref_idx: tuple[int, int] | None = None  # num_ref_idx_active override
    modifications: tuple[list[tuple[int, int]], list[tuple[int, int]]] = ([], [])  # (idc, value) per list
    qp_delta: int = 0
    mb_count: int | None = None  # macroblocks in this slice; None: to the end of the picture

    def header(self) -> BitWriter:
        """The slice header; slice data bits follow in the same writer (alignment counts)."""
        sps, pps = self.sps, self.pps
        w = BitWriter().ue(self.first_mb).ue(self.slice_type).ue(pps.id)
        w.u(sps.log2_max_frame_num, self.frame_num)
        if not sps.frame_mbs_only:
            w.flag(self.field_pic)
            if self.field_pic:
                w.flag(0)
        if self.idr:
            w.ue(self.idr_pic_id)
        if sps.poc_type == 0:
            w.u(sps.log2_max_poc_lsb, self.poc_lsb)
            if pps.bottom_field_pic_order_in_frame_present and not self.field_pic:
                w.se(0)
        if sps.poc_type == 1 and not sps.delta_pic_order_always_zero:
            w.se(self.delta_poc[0])
            if pps.bottom_field_pic_order_in_frame_present and not self.field_pic:
                w.se(self.delta_poc[1])
        if pps.redundant_pic_cnt_present:
            w.ue(0)
        kind = self.slice_type % 5
        if kind == 1:
            w.flag(1)  # direct_spatial_mv_pred_flag
        if kind in (0, 1, 3):
            w.flag(self.num_ref_idx is not None)  # num_ref_idx_active_override_flag
            if self.num_ref_idx is not None:
                w.ue(self.num_ref_idx[0] - 1)
                if kind == 1:
                    w.ue(self.num_ref_idx[1] - 1)
            for lst in range(2 if kind == 1 else 1):  # ref_pic_list_modification
                ops = self.modifications[lst]
                w.flag(bool(ops))
                for idc, value in ops:
                    w.ue(idc).ue(value)
                if ops:
                    w.ue(3)
        if self.nal_ref_idc:
            if self.idr:
                w.flag(0).flag(self.long_term_reference)
            else:
                w.flag(bool(self.mmcos))
                for op in self.mmcos:
                    w.ue(op[0])
                    for arg in op[1:]:
                        w.ue(arg)
                if self.mmcos:
                    w.ue(0)
        if pps.cabac and kind not in (2, 4):
            w.ue(0)  # cabac_init_idc
        w.se(self.qp_delta)
        if kind in (3, 4):
            if kind == 3:
                w.flag(0)
            w.se(0)
        if pps.deblocking_filter_control_present:
            w.ue(1)  # deblocking off: no offsets follow
        return w

    def nal(self, w: BitWriter | None = None) -> bytes:
        """The slice NAL unit: `w` from header() with slice data written, or the default data."""
        if w is not None:
            return nal(5 if self.idr else 1, w.rbsp(), self.nal_ref_idc)
        sps, pps = self.sps, self.pps
        picture_mbs = sps.width_mbs * sps.height_map_units * (1 if sps.frame_mbs_only else 2)
        count = picture_mbs - self.first_mb if self.mb_count is None else self.mb_count
        kind = self.slice_type % 5
        w = self.header()
        if pps.cabac:
            w.flag(1)  # a token byte: CABAC slice data is not written
        elif kind in (2, 4):
            for _ in range(count):  # I_16x16_0_0_0, intra_chroma_pred_mode 0, mb_qp_delta 0, DC coeff_token "1"
                w.ue(1).ue(0).se(0).u(1, 1)
        else:
            w.ue(count)  # mb_skip_run over the whole slice
        return nal(5 if self.idr else 1, w.rbsp(), self.nal_ref_idc)
