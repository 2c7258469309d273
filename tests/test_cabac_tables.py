"""CABAC tables of csrc/cabac_tables.h (H.264 clause 9.3).

Reads the header as text (no build needed), parses each array's brace
initializer and each `inline constexpr int` constant, and checks shapes, value
ranges, the structure of the tables (shared columns, undefined entries, the
4:4:4 Cb/Cr copies of the luma contexts, monotonic engine tables) and spot
values confirmed in independent sources (libav/FFmpeg, x264, JM).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from c_tables import c_arrays, c_int_constants, flatten, shape_of

HEADER = Path(__file__).resolve().parents[1] / "csrc" / "cabac_tables.h"

EXPECTED = {  # name: (element type, shape)
    "kCabacInitI": ("int8_t", (1024, 2)),
    "kCabacInitPB": ("int8_t", (3, 1024, 2)),
    "kRangeTabLps": ("uint8_t", (64, 4)),
    "kTransIdxLps": ("uint8_t", (64,)),
    "kTransIdxMps": ("uint8_t", (64,)),
    "kSignificantCoeffFlagOffset8x8Frame": ("uint8_t", (64,)),
    "kSignificantCoeffFlagOffset8x8Field": ("uint8_t", (64,)),
    "kLastSignificantCoeffFlagOffset8x8": ("uint8_t", (64,)),
    "kCtxBlockCatOffset": ("uint8_t", (4, 14)),
}

def _shape(value) -> tuple[int, ...]:
    return shape_of(value)


def _flat(value) -> list[int]:
    return flatten(value)


@cache
def _raw_text() -> str:
    return HEADER.read_text(encoding="utf-8")


def _arrays() -> dict[str, tuple[str, tuple[int, ...], list]]:
    return c_arrays(HEADER.name)


def _consts() -> dict[str, int]:
    return c_int_constants(HEADER.name)


def arr(name: str) -> list:
    return _arrays()[name][2]


@cache
def init_tables() -> dict[str, list[tuple[int, int]]]:
    """'I', 0, 1, 2 -> list of 1024 (m, n)."""
    out: dict = {"I": [tuple(p) for p in arr("kCabacInitI")]}
    for idc, table in enumerate(arr("kCabacInitPB")):
        out[idc] = [tuple(p) for p in table]
    return out


# ---------------------------------------------------------------------------
# Header hygiene and shapes
# ---------------------------------------------------------------------------


def test_header_basics():
    text = _raw_text()
    assert "#pragma once" in text
    assert "#include <cstdint>" in text
    assert re.search(r"namespace\s+vccv\s*\{", text)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_array_declared_type_and_shape(name):
    ctype, shape, value = _arrays()[name]
    want_type, want_shape = EXPECTED[name]
    assert ctype == want_type
    assert shape == want_shape, "declared dimensions"
    assert _shape(value) == want_shape, "initializer is complete (no implicit zeros)"
    lo, hi = (-128, 127) if ctype == "int8_t" else (0, 255)
    assert all(lo <= v <= hi for v in _flat(value))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_array_has_spec_table_comment(name):
    text = _raw_text()
    idx = re.search(r"inline\s+constexpr\s+\w+\s+" + name + r"\b", text).start()
    preceding = text[max(0, idx - 1500) : idx]
    assert re.search(r"Tables? 9-\d+", preceding), f"no spec table named above {name}"


# ---------------------------------------------------------------------------
# Context initialisation (m, n), Tables 9-12 .. 9-33
# ---------------------------------------------------------------------------

# Exact extremes of the defined entries (placeholders excluded), the same in
# libav, x264 and JM.
EXTREMES = {  # table: (min m, max m, min n, max n)
    "I": (-31, 49, -35, 127),
    0: (-46, 65, -45, 127),
    1: (-78, 102, -94, 127),
    2: (-50, 81, -67, 127),
}

I_UNDEFINED = set(range(11, 60)) | {276}
PB_UNDEFINED = {276}
# cabac_init_idc 1 really has m = n = 0 here (last_significant_coeff_flag,
# frame, and its Cb/Cr copies); confirmed in libav, x264 and JM.
PB1_REAL_ZEROS = {179, 193, 585, 599, 629, 643}


def _defined(table) -> list[int]:
    undefined = I_UNDEFINED if table == "I" else PB_UNDEFINED
    return [k for k in range(1024) if k not in undefined]


@pytest.mark.parametrize("table", ["I", 0, 1, 2])
def test_init_value_extremes(table):
    vals = init_tables()[table]
    ms = [vals[k][0] for k in _defined(table)]
    ns = [vals[k][1] for k in _defined(table)]
    assert (min(ms), max(ms), min(ns), max(ns)) == EXTREMES[table]


def test_init_overall_extremes():
    tables = init_tables()
    allv = [tables[t][k] for t in ("I", 0, 1, 2) for k in _defined(t)]
    assert min(m for m, _ in allv) == -78
    assert max(m for m, _ in allv) == 102
    assert min(n for _, n in allv) == -94
    assert max(n for _, n in allv) == 127


@pytest.mark.parametrize("table", ["I", 0, 1, 2])
def test_undefined_entries_are_zero_and_only_they(table):
    vals = init_tables()[table]
    undefined = I_UNDEFINED if table == "I" else PB_UNDEFINED
    zeros = {k for k, v in enumerate(vals) if v == (0, 0)}
    expected = undefined | (PB1_REAL_ZEROS if table == 1 else set())
    assert zeros == expected


@pytest.mark.parametrize("idc", [0, 1, 2])
def test_single_column_tables_shared_by_all_slice_types(idc):
    # Tables 9-12 (ctxIdx 0..10) and 9-17 (60..69) have one column for all slice types.
    t = init_tables()
    for k in list(range(0, 11)) + list(range(60, 70)):
        assert t[idc][k] == t["I"][k], k


# 4:4:4 (ChromaArrayType 3) Cb and Cr contexts start from the luma values:
# (first ctxIdx of the copy, first ctxIdx of the luma original, count).
CHROMA444_COPIES = [
    (460, 85, 12), (472, 85, 12),  # coded_block_flag cat 6-8 / 10-12 <- cat 0-2
    (1016, 1012, 4), (1020, 1012, 4),  # coded_block_flag cat 9 / 13 <- cat 5
    (484, 105, 44), (528, 105, 44),  # significant, frame, cat 6-8 / 10-12
    (660, 402, 15), (718, 402, 15),  # significant, frame, cat 9 / 13
    (572, 166, 44), (616, 166, 44),  # last, frame
    (690, 417, 9), (748, 417, 9),
    (776, 277, 44), (820, 277, 44),  # significant, field
    (675, 436, 15), (733, 436, 15),
    (864, 338, 44), (908, 338, 44),  # last, field
    (699, 451, 9), (757, 451, 9),
    (952, 227, 30), (982, 227, 30),  # coeff_abs_level_minus1
    (708, 426, 10), (766, 426, 10),
]


@pytest.mark.parametrize("table", ["I", 0, 1, 2])
def test_chroma444_contexts_copy_luma(table):
    vals = init_tables()[table]
    for dst, src, count in CHROMA444_COPIES:
        assert vals[dst : dst + count] == vals[src : src + count], (dst, src)


# Spot values, each confirmed in libav (FFmpeg lineage), x264 and JM.
SPOT_INIT = {
    ("I", 0): [(20, -15), (2, 54), (3, 74), (20, -15), (2, 54), (3, 74),
               (-28, 127), (-23, 104), (-6, 53), (-1, 54), (7, 51)],
    ("I", 60): [(0, 41), (0, 63), (0, 63), (0, 63), (-9, 83), (4, 86), (0, 97),
                (-7, 72), (13, 41), (3, 62)],
    ("I", 85): [(-17, 123), (-12, 115), (-16, 122), (-11, 115)],
    ("I", 399): [(31, 21), (31, 31), (25, 50)],
    ("I", 1012): [(-3, 70), (-8, 93), (-10, 90), (-30, 127)],
    (0, 11): [(23, 33), (23, 2), (21, 0)],
    (1, 11): [(22, 25), (34, 0), (16, 0)],
    (2, 11): [(29, 16), (25, 0), (14, 0)],
    (0, 24): [(18, 64), (9, 43), (29, 0)],
    (0, 227): [(-6, 76)],
    (0, 275): [(-8, 85)],
    (0, 399): [(12, 40), (11, 51), (14, 59)],
    (1, 399): [(25, 32), (21, 49), (21, 54)],
    (2, 399): [(21, 33), (19, 50), (17, 61)],
    (1, 116): [(-78, 127)],
    (1, 178): [(102, -94), (0, 0)],
    (2, 459): [(20, 64)],
    (2, 1023): [(-30, 127)],
}


@pytest.mark.parametrize("key", sorted(SPOT_INIT, key=str))
def test_init_spot_values(key):
    table, start = key
    want = SPOT_INIT[key]
    assert init_tables()[table][start : start + len(want)] == want


# ---------------------------------------------------------------------------
# Arithmetic decoding engine, Tables 9-44 and 9-45
# ---------------------------------------------------------------------------


def test_range_tab_lps_monotonic():
    r = arr("kRangeTabLps")
    for q in range(4):
        col = [r[p][q] for p in range(64)]
        assert all(a >= b for a, b in zip(col, col[1:])), f"column {q} not non-increasing"
    for p in range(63):
        assert r[p][0] < r[p][1] < r[p][2] < r[p][3], f"row {p} not increasing"
    assert r[63] == [2, 2, 2, 2]  # non-adapting state of ctxIdx 276
    assert all(6 <= v <= 240 for p in range(63) for v in r[p])


def test_range_tab_lps_spot_values():
    r = arr("kRangeTabLps")
    assert r[0] == [128, 176, 208, 240]
    assert r[1] == [128, 167, 197, 227]
    assert r[3] == [123, 150, 178, 205]
    assert r[31] == [29, 35, 41, 48]
    assert r[32] == [27, 33, 39, 45]
    assert r[60] == [6, 8, 9, 11]
    assert r[62] == [6, 7, 8, 9]
    assert r[63] == [2, 2, 2, 2]


def test_trans_idx_mps():
    mps = arr("kTransIdxMps")
    assert all(mps[i] == i + 1 for i in range(62))
    assert mps[62] == 62
    assert mps[63] == 63


def test_trans_idx_lps():
    lps = arr("kTransIdxLps")
    assert lps[0] == 0
    assert lps[63] == 63
    assert all(lps[i] < i for i in range(1, 63))
    assert all(a <= b for a, b in zip(lps[:63], lps[1:63]))
    assert lps[:12] == [0, 0, 1, 2, 2, 4, 4, 5, 6, 7, 8, 9]
    assert lps[50:63] == [34, 34, 35, 35, 35, 36, 36, 36, 37, 37, 37, 38, 38]


# ---------------------------------------------------------------------------
# Table 9-43: 8x8 ctxIdxInc for significant / last_significant_coeff_flag
# ---------------------------------------------------------------------------


def test_sig_8x8_frame():
    s = arr("kSignificantCoeffFlagOffset8x8Frame")
    assert s[63] == 0  # padding
    assert set(s[:63]) == set(range(15))
    assert s[:16] == [0, 1, 2, 3, 4, 5, 5, 4, 4, 3, 3, 4, 4, 4, 5, 5]
    assert s[48:63] == [12, 13, 11, 6, 9, 14, 10, 9, 11, 12, 13, 11, 14, 10, 12]


def test_sig_8x8_field():
    s = arr("kSignificantCoeffFlagOffset8x8Field")
    assert s[63] == 0  # padding
    assert set(s[:63]) == set(range(15))
    assert s[:16] == [0, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 7, 7, 8, 4, 5]
    assert s[58:63] == [14, 14, 14, 14, 14]


def test_last_8x8():
    last = arr("kLastSignificantCoeffFlagOffset8x8")
    assert last[63] == 0  # padding
    body = last[:63]
    assert all(a <= b for a, b in zip(body, body[1:]))
    assert body[0] == 0 and body[1] == 1 and body[15] == 1 and body[16] == 2
    assert body.count(2) == 16 and body.count(3) == 8 and body.count(4) == 8
    assert body[48:] == [5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8, 8]


# ---------------------------------------------------------------------------
# Table 9-34 (ctxIdxOffset) and Table 9-40 (ctxBlockCatOffset)
# ---------------------------------------------------------------------------

CTX_OFFSETS = {  # Table 9-34, frame coding
    "kCtxOffsetMbTypeSiPrefix": 0,
    "kCtxOffsetMbTypeSiSuffix": 3,
    "kCtxOffsetMbTypeI": 3,
    "kCtxOffsetMbSkipFlagP": 11,
    "kCtxOffsetMbTypePPrefix": 14,
    "kCtxOffsetMbTypePSuffix": 17,
    "kCtxOffsetSubMbTypeP": 21,
    "kCtxOffsetMbSkipFlagB": 24,
    "kCtxOffsetMbTypeBPrefix": 27,
    "kCtxOffsetMbTypeBSuffix": 32,
    "kCtxOffsetSubMbTypeB": 36,
    "kCtxOffsetMvdX": 40,
    "kCtxOffsetMvdY": 47,
    "kCtxOffsetRefIdx": 54,
    "kCtxOffsetMbQpDelta": 60,
    "kCtxOffsetIntraChromaPredMode": 64,
    "kCtxOffsetPrevIntraPredModeFlag": 68,
    "kCtxOffsetRemIntraPredMode": 69,
    "kCtxOffsetMbFieldDecodingFlag": 70,
    "kCtxOffsetCodedBlockPatternLuma": 73,
    "kCtxOffsetCodedBlockPatternChroma": 77,
    "kCtxOffsetCodedBlockFlag": 85,
    "kCtxOffsetCodedBlockFlagCat5": 1012,
    "kCtxOffsetCodedBlockFlagCb": 460,
    "kCtxOffsetCodedBlockFlagCr": 472,
    "kCtxOffsetSignificantCoeffFlag": 105,
    "kCtxOffsetSignificantCoeffFlagCat5": 402,
    "kCtxOffsetSignificantCoeffFlagCb": 484,
    "kCtxOffsetSignificantCoeffFlagCat9": 660,
    "kCtxOffsetSignificantCoeffFlagCr": 528,
    "kCtxOffsetSignificantCoeffFlagCat13": 718,
    "kCtxOffsetLastSignificantCoeffFlag": 166,
    "kCtxOffsetLastSignificantCoeffFlagCat5": 417,
    "kCtxOffsetLastSignificantCoeffFlagCb": 572,
    "kCtxOffsetLastSignificantCoeffFlagCat9": 690,
    "kCtxOffsetLastSignificantCoeffFlagCr": 616,
    "kCtxOffsetLastSignificantCoeffFlagCat13": 748,
    "kCtxOffsetCoeffAbsLevelMinus1": 227,
    "kCtxOffsetCoeffAbsLevelMinus1Cat5": 426,
    "kCtxOffsetCoeffAbsLevelMinus1Cb": 952,
    "kCtxOffsetCoeffAbsLevelMinus1Cat9": 708,
    "kCtxOffsetCoeffAbsLevelMinus1Cr": 982,
    "kCtxOffsetCoeffAbsLevelMinus1Cat13": 766,
    "kCtxOffsetEndOfSliceFlag": 276,
    "kCtxOffsetTransformSize8x8Flag": 399,
}


def test_ctx_offset_constants():
    consts = {k: v for k, v in _consts().items() if k.startswith("kCtxOffset")}
    assert consts == CTX_OFFSETS


CAT_OFFSET = [
    [0, 4, 8, 12, 16, 0, 0, 4, 8, 4, 0, 4, 8, 8],  # coded_block_flag
    [0, 15, 29, 44, 47, 0, 0, 15, 29, 0, 0, 15, 29, 0],  # significant_coeff_flag
    [0, 15, 29, 44, 47, 0, 0, 15, 29, 0, 0, 15, 29, 0],  # last_significant_coeff_flag
    [0, 10, 20, 30, 39, 0, 0, 10, 20, 0, 0, 10, 20, 0],  # coeff_abs_level_minus1
]


def test_ctx_block_cat_offset():
    assert arr("kCtxBlockCatOffset") == CAT_OFFSET
    c = _consts()
    assert [c["kCtxBlockCatOffsetCodedBlockFlag"], c["kCtxBlockCatOffsetSignificantCoeffFlag"],
            c["kCtxBlockCatOffsetLastSignificantCoeffFlag"],
            c["kCtxBlockCatOffsetCoeffAbsLevelMinus1"]] == [0, 1, 2, 3]


def _comment_ranges() -> list[tuple[str, int, int, int]]:
    """Rows of the Table 9-34 comment block: (element, offset, first, last)."""
    rows = []
    for m in re.finditer(r"^//\s+(\S.*?)\s+(\d+)\s+(\d+)(?:\.\.(\d+))?\s*$", _raw_text(), re.M):
        first = int(m.group(3))
        last = int(m.group(4)) if m.group(4) else first
        rows.append((m.group(1), int(m.group(2)), first, last))
    return rows


def test_table_9_34_comment_block():
    rows = _comment_ranges()
    assert len(rows) >= 45
    for name, offset, first, last in rows:
        assert offset == first, name
        assert set(CTX_OFFSETS.values()) >= {offset}, name
    # Frame-coding ranges plus the field-coding ones tile ctxIdx 0..1023.
    field = [(277, 337), (436, 450), (776, 819), (675, 689), (820, 863), (733, 747),
             (338, 398), (451, 459), (864, 907), (699, 707), (908, 951), (757, 765)]
    covered = set()
    for _, _, first, last in rows:
        covered |= set(range(first, last + 1))
    for first, last in field:
        assert not covered & set(range(first, last + 1))
        covered |= set(range(first, last + 1))
    assert covered == set(range(1024))


def test_residual_ranges_consistent_with_cat_offsets():
    c = _consts()
    # Last context of each residual group = offset + cat offset of the last cat
    # + its number of contexts - 1 (Table 9-34 ranges).
    assert c["kCtxOffsetCodedBlockFlag"] + CAT_OFFSET[0][4] + 3 == 104
    assert c["kCtxOffsetCodedBlockFlagCat5"] + CAT_OFFSET[0][13] + 3 == 1023
    assert c["kCtxOffsetCodedBlockFlagCb"] + CAT_OFFSET[0][8] + 3 == 471
    assert c["kCtxOffsetCodedBlockFlagCr"] + CAT_OFFSET[0][12] + 3 == 483
    assert c["kCtxOffsetSignificantCoeffFlag"] + CAT_OFFSET[1][4] + 13 == 165
    assert c["kCtxOffsetLastSignificantCoeffFlag"] + CAT_OFFSET[2][4] + 13 == 226
    assert c["kCtxOffsetSignificantCoeffFlagCb"] + CAT_OFFSET[1][8] + 14 == 527
    assert c["kCtxOffsetSignificantCoeffFlagCr"] + CAT_OFFSET[1][12] + 14 == 571
    assert c["kCtxOffsetCoeffAbsLevelMinus1"] + CAT_OFFSET[3][4] + 9 == 275
    assert c["kCtxOffsetCoeffAbsLevelMinus1Cb"] + CAT_OFFSET[3][8] + 9 == 981
    assert c["kCtxOffsetCoeffAbsLevelMinus1Cr"] + CAT_OFFSET[3][12] + 9 == 1011
    # 8x8 blocks: ctxIdxInc from Table 9-43 (0..14 significant, 0..8 last), 0..9 levels
    assert c["kCtxOffsetSignificantCoeffFlagCat5"] + 14 == 416
    assert c["kCtxOffsetLastSignificantCoeffFlagCat5"] + 8 == 425
    assert c["kCtxOffsetCoeffAbsLevelMinus1Cat5"] + 9 == 435
