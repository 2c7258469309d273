"""Crafted CAVLC pictures of intra macroblocks with known prediction modes and no residual, to
check intra_oracle.py without the parser.

I_PCM macroblocks of random samples give the texture; every other macroblock (Intra4x4,
Intra8x8, Intra16x16 with random modes among those its available samples allow and a random
chroma mode, or P_Skip in P pictures) codes no coefficient, so FFmpeg's decoded samples there
are the intra prediction itself. Slices start mid-row, and with constrained_intra_pred the
skipped macroblocks of P pictures are unavailable, so every availability rule is exercised.

To code a chosen Intra4x4/Intra8x8 mode as prev_intra_pred_mode_flag / rem_intra_pred_mode the
writer predicts it (8.3.1.1, 8.3.2.1) from each macroblock's mode list in block-index order,
the way the standard states the derivation (luma4x4BlkIdxN / luma8x8BlkIdxN of 6.4.11.4 /
6.4.11.2, Intra4x4PredMode[luma8x8BlkIdxN * 4 + n]), independently of the parser's per-4x4 grid.

Public API: :func:`craft_intra_stream`, :class:`CraftedStream`, :class:`MbTruth`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
from h264_writer import BitWriter, Pps, Slice, Sps

__all__ = ["CraftedPicture", "CraftedStream", "MbTruth", "craft_intra_stream"]

# luma4x4BlkIdx -> (x, y) of the block in 4x4 blocks (6.4.3).
_BLK_X = (0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3)
_BLK_Y = (0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3)
# What each Intra4x4/8x8 mode reads (8.3.1.2.1-9): top, left, top-left corner.
_NEEDS = {0: "t", 1: "l", 2: "", 3: "t", 4: "tlc", 5: "tlc", 6: "tlc", 7: "t", 8: "l"}
_NEEDS_16 = {0: "t", 1: "l", 2: "", 3: "tlc"}       # Intra16x16 (8.3.3)
_NEEDS_CHROMA = {0: "", 1: "l", 2: "t", 3: "tlc"}   # intra_chroma_pred_mode (8.3.4)
_MB_TYPE = {"i4": 0, "i8": 0, "i16": 1, "pcm": 25}  # I-slice mb_type (Table 7-11), +5 in P slices


@dataclass
class MbTruth:
    kind: str                                  # "pcm", "i4", "i8", "i16" or "skip"
    modes: list[int] = field(default_factory=list)  # i4: 16 by luma4x4BlkIdx, i8: 4, i16: 1
    chroma: int = -1


@dataclass
class CraftedPicture:
    slice_type: str                            # "I" or "P"
    first_mbs: list[int]
    mbs: list[MbTruth]                         # raster order
    width_mbs: int
    height_mbs: int

    def macroblocks(self) -> SimpleNamespace:
        """The written modes in the layout of ``codec.Macroblocks`` (mb_type, intra_pred,
        intra_size, intra_chroma_pred)."""
        w, h = self.width_mbs, self.height_mbs
        mb_type = np.zeros((h, w), np.int8)
        size = np.zeros((h, w), np.int8)
        chroma = np.full((h, w), -1, np.int8)
        pred = np.full((4 * h, 4 * w), -1, np.int8)
        for addr, mb in enumerate(self.mbs):
            y, x = divmod(addr, w)
            mb_type[y, x] = {"pcm": 4, "skip": 2}.get(mb.kind, 0)
            if mb.kind in ("pcm", "skip"):
                continue
            size[y, x] = {"i4": 4, "i8": 8, "i16": 16}[mb.kind]
            chroma[y, x] = mb.chroma
            block = pred[4 * y:4 * y + 4, 4 * x:4 * x + 4]
            if mb.kind == "i16":
                block[:] = mb.modes[0]
            elif mb.kind == "i8":
                for b8, m in enumerate(mb.modes):
                    block[2 * (b8 // 2):2 * (b8 // 2) + 2, 2 * (b8 % 2):2 * (b8 % 2) + 2] = m
            else:
                for blk, m in enumerate(mb.modes):
                    block[_BLK_Y[blk], _BLK_X[blk]] = m
        return SimpleNamespace(mb_type=mb_type, intra_pred=pred, intra_size=size, intra_chroma_pred=chroma)


@dataclass
class CraftedStream:
    data: bytes                                # Annex B: SPS, PPS, the pictures' slices
    pictures: list[CraftedPicture]             # decoding order = display order
    constrained_intra_pred: bool


class _PictureWriter:
    def __init__(self, rng: np.random.Generator, w: int, h: int, first_mbs: list[int], p_picture: bool,
                 transform_8x8: bool, constrained: bool, weights: dict[str, float]) -> None:
        self.rng, self.w, self.h = rng, w, h
        self.p_picture, self.transform_8x8, self.constrained = p_picture, transform_8x8, constrained
        self.kinds, self.weights = list(weights), np.array(list(weights.values())) / sum(weights.values())
        bounds = sorted(first_mbs) + [w * h]
        self.slice_of = [next(i for i in range(len(first_mbs)) if a < bounds[i + 1]) for a in range(w * h)]
        self.mbs: list[MbTruth] = []

    # ---- neighbours ----
    def mb(self, addr: int, dx: int, dy: int) -> MbTruth | None:
        """The neighbouring macroblock if available (6.4.9: inside the picture, same slice)."""
        x, y = addr % self.w + dx, addr // self.w + dy
        if not (0 <= x < self.w and 0 <= y < self.h) or self.slice_of[y * self.w + x] != self.slice_of[addr]:
            return None
        return self.mbs[y * self.w + x]

    def usable(self, addr: int, dx: int, dy: int) -> bool:
        """Its samples may be used for intra prediction (constrained_intra_pred: not Inter)."""
        n = self.mb(addr, dx, dy)
        return n is not None and not (self.constrained and n.kind == "skip")

    def allowed(self, needs: dict[int, str], top: bool, left: bool, corner: bool) -> list[int]:
        have = {"t": top, "l": left, "c": corner}
        return [m for m, need in needs.items() if all(have[c] for c in need)]

    def neighbour_mode(self, addr: int, cur: MbTruth, x: int, y: int, size: int, n: int) -> int:
        """intraMxMPredModeN (8.3.1.1 / 8.3.2.1) of the block containing luma sample (x, y),
        x or y = -1, relative to the current macroblock; -1: dcPredModePredictedFlag."""
        dx, dy = (-1 if x < 0 else 0), (-1 if y < 0 else 0)
        nb = cur if (dx, dy) == (0, 0) else self.mb(addr, dx, dy)
        if nb is None or (self.constrained and nb.kind == "skip"):
            return -1
        if nb.kind not in ("i4", "i8"):
            return 2
        xw, yw = x % 16, y % 16
        if nb.kind == "i8":
            return nb.modes[2 * (yw // 8) + xw // 8]
        if size == 4:  # luma4x4BlkIdxN (6.4.13.1)
            return nb.modes[8 * (yw // 8) + 4 * (xw // 8) + 2 * ((yw % 8) // 4) + (xw % 8) // 4]
        return nb.modes[(2 * (yw // 8) + xw // 8) * 4 + n]  # an Intra4x4 neighbour of an 8x8 block

    # ---- macroblocks ----
    def choose_kind(self) -> str:
        kind = str(self.rng.choice(self.kinds, p=self.weights))
        return "i4" if kind == "i8" and not self.transform_8x8 else kind

    def write(self, bw: BitWriter, addr: int, kind: str) -> None:
        """Chooses the modes of macroblock `addr` of the given kind and writes it (P_Skip: only
        records it; the caller counts mb_skip_run)."""
        cur = MbTruth(kind)
        self.mbs.append(cur)
        if kind == "skip":
            return
        bw.ue(_MB_TYPE[kind] + (5 if self.p_picture else 0) +
               (0 if kind != "i16" else self._choose_16(addr, cur)))
        if kind == "pcm":
            while len(bw.bits) % 8:
                bw.u(1, 0)  # pcm_alignment_zero_bit
            for v in self.rng.integers(0, 256, 384).tolist():
                bw.u(8, v)
            return
        if kind in ("i4", "i8"):
            if self.transform_8x8:
                bw.flag(kind == "i8")
            self._nxn_modes(bw, addr, cur, 4 if kind == "i4" else 8)
        top, left, corner = self.usable(addr, 0, -1), self.usable(addr, -1, 0), self.usable(addr, -1, -1)
        cur.chroma = int(self.rng.choice(self.allowed(_NEEDS_CHROMA, top, left, corner)))
        bw.ue(cur.chroma)
        if kind in ("i4", "i8"):
            bw.ue(3)  # coded_block_pattern 0 (Table 9-4, Intra_4x4 / Intra_8x8 codeNum 3)
        else:
            bw.se(0)  # mb_qp_delta
            self._empty_dc_block(bw, addr)

    def _choose_16(self, addr: int, cur: MbTruth) -> int:
        top, left, corner = self.usable(addr, 0, -1), self.usable(addr, -1, 0), self.usable(addr, -1, -1)
        cur.modes = [int(self.rng.choice(self.allowed(_NEEDS_16, top, left, corner)))]
        return cur.modes[0]  # mb_type I_16x16_<mode>_0_0: no coded coefficients but the DC block

    def _nxn_modes(self, bw: BitWriter, addr: int, cur: MbTruth, size: int) -> None:
        for blk in range(16 if size == 4 else 4):
            x, y = (4 * _BLK_X[blk], 4 * _BLK_Y[blk]) if size == 4 else (8 * (blk % 2), 8 * (blk // 2))
            top = y > 0 or self.usable(addr, 0, -1)
            left = x > 0 or self.usable(addr, -1, 0)
            corner = (x > 0 and y > 0) or self.usable(addr, -1 if x == 0 else 0, -1 if y == 0 else 0)
            mode = int(self.rng.choice(self.allowed(_NEEDS, top, left, corner)))
            a = self.neighbour_mode(addr, cur, x - 1, y, size, 1)
            b = self.neighbour_mode(addr, cur, x, y - 1, size, 2)
            predicted = 2 if a < 0 or b < 0 else min(a, b)
            cur.modes.append(mode)
            bw.flag(mode == predicted)
            if mode != predicted:
                bw.u(3, mode if mode < predicted else mode - 1)

    def _empty_dc_block(self, bw: BitWriter, addr: int) -> None:
        """coeff_token of an Intra16x16DCLevel block with no coefficient (9.2.1, Table 9-5)."""
        counts = []
        for dx, dy in ((-1, 0), (0, -1)):  # blocks 5 of A and 10 of B: nN 16 for I_PCM, else 0
            n = self.mb(addr, dx, dy)
            if n is not None:
                counts.append(16 if n.kind == "pcm" else 0)
        nc = (sum(counts) + 1) >> 1 if len(counts) == 2 else (counts[0] if counts else 0)
        if nc < 2:
            bw.u(1, 1)
        elif nc < 4:
            bw.u(2, 3)
        elif nc < 8:
            bw.u(4, 15)
        else:
            bw.u(6, 3)


def craft_intra_stream(seed: int, *, width_mbs: int = 8, height_mbs: int = 6, first_mbs: tuple[int, ...] = (0, 13, 30),
                       transform_8x8: bool = True, constrained_intra_pred: bool = False) -> CraftedStream:
    """An IDR picture and a P picture of random intra macroblocks (see the module docstring)."""
    rng = np.random.default_rng(seed)
    sps = Sps(width_mbs=width_mbs, height_map_units=height_mbs)
    pps = Pps(transform_8x8_mode=transform_8x8, constrained_intra_pred=constrained_intra_pred)
    data, pictures = sps.nal() + pps.nal(), []
    for p_picture in (False, True):
        weights = {"pcm": 3, "i4": 3, "i8": 2, "i16": 3, "skip": 3 if p_picture else 0}
        writer = _PictureWriter(rng, width_mbs, height_mbs, list(first_mbs), p_picture, transform_8x8,
                                constrained_intra_pred, weights)
        bounds = list(first_mbs) + [width_mbs * height_mbs]
        for i, first in enumerate(first_mbs):
            header = Slice(sps, pps, 0 if p_picture else 2, idr=not p_picture, first_mb=first,
                           frame_num=int(p_picture), poc_lsb=2 * int(p_picture))
            bw = header.header()
            skip_run = 0
            for addr in range(first, bounds[i + 1]):
                kind = writer.choose_kind()
                if kind == "skip":
                    skip_run += 1
                elif p_picture:
                    bw.ue(skip_run)  # mb_skip_run
                    skip_run = 0
                writer.write(bw, addr, kind)
            if skip_run:
                bw.ue(skip_run)
            data += header.nal(bw)
        pictures.append(CraftedPicture("P" if p_picture else "I", list(first_mbs), writer.mbs, width_mbs, height_mbs))
    return CraftedStream(data, pictures, constrained_intra_pred)
