"""CAVLC tables of csrc/cavlc_tables.h (H.264 9.2, Tables 9-4, 9-5, 9-7..9-10).

Reads the header as text (no build needed), parses each array's brace
initializer and checks the codes' structure: impossible entries, prefix-freeness,
exact Kraft sums (with the unused codewords named), CBP permutations, and spot
values confirmed in independent sources.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
from c_tables import c_arrays, shape_of

HEADER = Path(__file__).resolve().parents[1] / "csrc" / "cavlc_tables.h"

EXPECTED = {  # name: (element type, shape)
    "kCoeffTokenLength": ("uint8_t", (4, 4, 17)),
    "kCoeffTokenCode": ("uint16_t", (4, 4, 17)),
    "kTotalZerosLength": ("uint8_t", (15, 16)),
    "kTotalZerosCode": ("uint16_t", (15, 16)),
    "kTotalZerosChromaDcLength": ("uint8_t", (3, 4)),
    "kTotalZerosChromaDcCode": ("uint16_t", (3, 4)),
    "kRunBeforeLength": ("uint8_t", (7, 15)),
    "kRunBeforeCode": ("uint16_t", (7, 15)),
    "kCodedBlockPatternIntra": ("uint8_t", (48,)),
    "kCodedBlockPatternInter": ("uint8_t", (48,)),
}

def _shape(value) -> tuple[int, ...]:
    return shape_of(value)


def arrays() -> dict[str, tuple[str, tuple[int, ...], list]]:
    return c_arrays(HEADER.name)


def arr(name: str) -> list:
    return arrays()[name][2]


def bits(length: int, code: int) -> str:
    return format(code, f"0{length}b")


def codewords(lengths, codes) -> list[str]:
    return [bits(n, c) for n, c in zip(lengths, codes) if n]


def is_prefix_free(words: list[str]) -> bool:
    s = sorted(words)
    return len(set(s)) == len(s) and all(not b.startswith(a) for a, b in zip(s, s[1:]))


def kraft(words: list[str]) -> Fraction:
    return sum((Fraction(1, 2 ** len(w)) for w in words), Fraction(0))


def unused(words: list[str]) -> list[str]:
    """Minimal bit strings that are neither a codeword nor a prefix of / prefixed by one."""
    out: list[str] = []

    def walk(prefix: str, group: list[str]) -> None:
        if not group:
            out.append(prefix)
        elif group != [prefix]:
            assert prefix not in group, "not prefix-free"
            for b in "01":
                walk(prefix + b, [w for w in group if w.startswith(prefix + b)])

    walk("", words)
    return out


def coeff_token_words(table: int) -> list[str]:
    lengths, codes = arr("kCoeffTokenLength")[table], arr("kCoeffTokenCode")[table]
    return codewords(
        [lengths[t1][tc] for t1 in range(4) for tc in range(17)],
        [codes[t1][tc] for t1 in range(4) for tc in range(17)],
    )


# ---------------------------------------------------------------------------
# declarations


def test_header_declares_exactly_the_expected_arrays():
    found = {name: (ctype, shape) for name, (ctype, shape, _) in arrays().items()}
    assert found == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_initializer_matches_declared_shape(name):
    _, shape, value = arrays()[name]
    assert _shape(value) == shape  # fully braced, no elision, no ragged rows


def test_header_boilerplate():
    text = HEADER.read_text()
    assert "#pragma once" in text
    assert "#include <cstdint>" in text
    assert re.search(r"namespace\s+vccv\s*\{", text)


@pytest.mark.parametrize(
    "length_name, code_name",
    [
        ("kCoeffTokenLength", "kCoeffTokenCode"),
        ("kTotalZerosLength", "kTotalZerosCode"),
        ("kTotalZerosChromaDcLength", "kTotalZerosChromaDcCode"),
        ("kRunBeforeLength", "kRunBeforeCode"),
    ],
)
def test_codes_fit_their_lengths(length_name, code_name):
    def flat(v):
        return [x for s in v for x in flat(s)] if isinstance(v, list) else [v]

    for n, c in zip(flat(arr(length_name)), flat(arr(code_name))):
        assert 0 <= n <= 16
        assert 0 <= c < (1 << n) if n else c == 0


# ---------------------------------------------------------------------------
# coeff_token, Table 9-5


@pytest.mark.parametrize("table", range(4))
def test_coeff_token_impossible_entries_are_zero(table):
    lengths = arr("kCoeffTokenLength")[table]
    max_total = 4 if table == 3 else 16
    for t1 in range(4):
        for tc in range(17):
            possible = t1 <= tc and tc <= max_total
            assert (lengths[t1][tc] != 0) == possible, (t1, tc)


@pytest.mark.parametrize("table", range(4))
def test_coeff_token_is_prefix_free(table):
    words = coeff_token_words(table)
    assert len(words) == (14 if table == 3 else 62)
    assert is_prefix_free(words)


@pytest.mark.parametrize(
    "table, missing",
    [
        (0, "0" * 15),  # 0 <= nC < 2
        (1, "0" * 13),  # 2 <= nC < 4
        (2, "0" * 10),  # 4 <= nC < 8
        (3, None),  # nC == -1: complete
    ],
)
def test_coeff_token_kraft_sum(table, missing):
    words = coeff_token_words(table)
    if missing is None:
        assert kraft(words) == 1
        assert unused(words) == []
    else:
        assert kraft(words) == 1 - Fraction(1, 2 ** len(missing))
        assert unused(words) == [missing]


# ---------------------------------------------------------------------------
# total_zeros, Tables 9-7, 9-8 (4x4) and 9-9(a) (chroma DC 2x2)


@pytest.mark.parametrize("total_coeff", range(1, 16))
def test_total_zeros_4x4_row(total_coeff):
    lengths = arr("kTotalZerosLength")[total_coeff - 1]
    codes = arr("kTotalZerosCode")[total_coeff - 1]
    for tz in range(16):
        assert (lengths[tz] != 0) == (tz <= 16 - total_coeff), tz
    words = codewords(lengths, codes)
    assert is_prefix_free(words)
    if total_coeff == 1:
        assert kraft(words) == 1 - Fraction(1, 2**9)
        assert unused(words) == ["0" * 9]
    else:
        assert kraft(words) == 1
        assert unused(words) == []


@pytest.mark.parametrize("total_coeff", range(1, 4))
def test_total_zeros_chroma_dc_row(total_coeff):
    lengths = arr("kTotalZerosChromaDcLength")[total_coeff - 1]
    codes = arr("kTotalZerosChromaDcCode")[total_coeff - 1]
    for tz in range(4):
        assert (lengths[tz] != 0) == (tz <= 4 - total_coeff), tz
    words = codewords(lengths, codes)
    assert is_prefix_free(words)
    assert kraft(words) == 1


# ---------------------------------------------------------------------------
# run_before, Table 9-10


@pytest.mark.parametrize("row", range(7))
def test_run_before_column(row):
    lengths, codes = arr("kRunBeforeLength")[row], arr("kRunBeforeCode")[row]
    max_run = row + 1 if row < 6 else 14
    for run in range(15):
        assert (lengths[run] != 0) == (run <= max_run), run
    words = codewords(lengths, codes)
    assert is_prefix_free(words)
    if row < 6:
        assert kraft(words) == 1
    else:
        assert kraft(words) == 1 - Fraction(1, 2**11)
        assert unused(words) == ["0" * 11]


# ---------------------------------------------------------------------------
# coded_block_pattern, Table 9-4 (ChromaArrayType 1 or 2)


@pytest.mark.parametrize("name", ["kCodedBlockPatternIntra", "kCodedBlockPatternInter"])
def test_cbp_table_is_a_permutation(name):
    assert sorted(arr(name)) == list(range(48))


# ---------------------------------------------------------------------------
# spot values (each confirmed in the JM reference software and x264, and
# where noted in a worked CAVLC example following the standard's tables)

COEFF_TOKEN_SPOTS = [
    # (table, TrailingOnes, TotalCoeff, bit string)
    (0, 0, 0, "1"),
    (0, 1, 1, "01"),
    (0, 2, 2, "001"),
    (0, 0, 1, "000101"),
    (0, 3, 3, "00011"),
    (0, 3, 5, "0000100"),  # worked example: TotalCoeff 5, TrailingOnes 3, nC 0
    (0, 1, 13, "000000000000001"),
    (0, 0, 16, "0000000000000100"),
    (1, 0, 0, "11"),
    (1, 1, 1, "10"),
    (1, 3, 16, "00000000000100"),
    (2, 0, 0, "1111"),
    (2, 3, 16, "0000000010"),
    (3, 0, 0, "01"),
    (3, 1, 1, "1"),
    (3, 2, 2, "001"),
    (3, 3, 4, "0000000"),
]


@pytest.mark.parametrize("table, t1, tc, expected", COEFF_TOKEN_SPOTS)
def test_coeff_token_spot_values(table, t1, tc, expected):
    n = arr("kCoeffTokenLength")[table][t1][tc]
    assert bits(n, arr("kCoeffTokenCode")[table][t1][tc]) == expected


@pytest.mark.parametrize(
    "total_coeff, total_zeros, expected",
    [
        (1, 0, "1"),
        (1, 1, "011"),
        (1, 15, "000000001"),
        (5, 3, "111"),  # worked example: TotalCoeff 5, total_zeros 3
        (15, 0, "0"),
        (15, 1, "1"),
    ],
)
def test_total_zeros_spot_values(total_coeff, total_zeros, expected):
    n = arr("kTotalZerosLength")[total_coeff - 1][total_zeros]
    assert bits(n, arr("kTotalZerosCode")[total_coeff - 1][total_zeros]) == expected


def test_run_before_zeros_left_6_row():
    # The one run_before column whose codes are not in descending order.
    lengths, codes = arr("kRunBeforeLength")[5], arr("kRunBeforeCode")[5]
    assert codewords(lengths, codes) == ["11", "000", "001", "011", "010", "101", "100"]


def test_total_zeros_chroma_dc_spot_values():
    lengths, codes = arr("kTotalZerosChromaDcLength")[0], arr("kTotalZerosChromaDcCode")[0]
    assert codewords(lengths, codes) == ["1", "01", "001", "000"]


@pytest.mark.parametrize(
    "zeros_left, run_before, expected",
    [
        (1, 0, "1"),
        (2, 0, "1"),
        (3, 1, "10"),  # worked example: zerosLeft 3, run_before 1
        (6, 1, "000"),
        (7, 0, "111"),
        (7, 14, "00000000001"),
    ],
)
def test_run_before_spot_values(zeros_left, run_before, expected):
    row = min(zeros_left, 7) - 1
    n = arr("kRunBeforeLength")[row][run_before]
    assert bits(n, arr("kRunBeforeCode")[row][run_before]) == expected


@pytest.mark.parametrize(
    "name, code_num, cbp",
    [
        ("kCodedBlockPatternIntra", 0, 47),
        ("kCodedBlockPatternIntra", 1, 31),
        ("kCodedBlockPatternIntra", 3, 0),
        ("kCodedBlockPatternIntra", 47, 41),
        ("kCodedBlockPatternInter", 0, 0),
        ("kCodedBlockPatternInter", 1, 16),
        ("kCodedBlockPatternInter", 12, 47),
        ("kCodedBlockPatternInter", 47, 41),
    ],
)
def test_cbp_spot_values(name, code_num, cbp):
    assert arr(name)[code_num] == cbp
