// CAVLC variable-length-code tables of ITU-T Rec. H.264 | ISO/IEC 14496-10,
// clause 9.2 (coeff_token, total_zeros, run_before) and Table 9-4
// (coded_block_pattern mapping for me(v)).
//
// Conventions for every *Length / *Code pair:
//   - A codeword is Length bits long; Code is that bit string read MSB-first as
//     an unsigned integer (e.g. "0001 01" -> Length 6, Code 5).
//   - Length 0 marks a combination that does not exist (its Code is 0).
//
// Values are the standard's; they were taken from FFmpeg (h264_cavlc.c,
// h264data.h) and checked entry by entry against the JM reference software
// (ldecod vlc.c/vlc.h) and x264 (common/tables.c, encoder/cavlc.c).
// tests/test_cavlc_tables.py checks the codes' structure.
#pragma once

#include <cstdint>

// clang-format off: the tables keep the layout of the standard's.
namespace vccv {

// ---------------------------------------------------------------------------
// coeff_token, Table 9-5. Indexed [table][TrailingOnes][TotalCoeff].
//   table 0: 0 <= nC < 2      table 1: 2 <= nC < 4
//   table 2: 4 <= nC < 8      table 3: nC == -1 (chroma DC, ChromaArrayType 1,
//                                      TotalCoeff <= 4)
// Length 0 where TrailingOnes > TotalCoeff, or TotalCoeff > 4 in table 3.
//
// Tables 0-2 are not complete prefix codes: exactly one codeword is unused in
// each, the all-zero string of 15 / 13 / 10 bits respectively (Kraft sums
// 1 - 2^-15, 1 - 2^-13, 1 - 2^-10). A decoder that sees that prefix has a
// corrupt stream. Table 3 is complete (Kraft sum 1).
//
// 8 <= nC (no array): coeff_token is a 6-bit fixed-length code "xxxxyy".
// Let v be the 6 bits read MSB-first (0..63):
//   - v == 3 ("0000 11")  -> TotalCoeff = 0, TrailingOnes = 0;
//   - otherwise           -> TotalCoeff = (v >> 2) + 1, TrailingOnes = v & 3.
// With TrailingOnes > TotalCoeff invalid, v == 2 ("0000 10") and
// v == 7 ("0001 11") never occur in a conforming stream.
// (nC == -2, chroma DC for 4:2:2, is not provided here.)
// ---------------------------------------------------------------------------
inline constexpr uint8_t kCoeffTokenLength[4][4][17] = {
    {  // table 0: 0 <= nC < 2
        { 1,  6,  8,  9, 10, 11, 13, 13, 13, 14, 14, 15, 15, 16, 16, 16, 16},  // TrailingOnes=0
        { 0,  2,  6,  8,  9, 10, 11, 13, 13, 14, 14, 15, 15, 15, 16, 16, 16},  // TrailingOnes=1
        { 0,  0,  3,  7,  8,  9, 10, 11, 13, 13, 14, 14, 15, 15, 16, 16, 16},  // TrailingOnes=2
        { 0,  0,  0,  5,  6,  7,  8,  9, 10, 11, 13, 14, 14, 15, 15, 16, 16},  // TrailingOnes=3
    },
    {  // table 1: 2 <= nC < 4
        { 2,  6,  6,  7,  8,  8,  9, 11, 11, 12, 12, 12, 13, 13, 13, 14, 14},  // TrailingOnes=0
        { 0,  2,  5,  6,  6,  7,  8,  9, 11, 11, 12, 12, 13, 13, 14, 14, 14},  // TrailingOnes=1
        { 0,  0,  3,  6,  6,  7,  8,  9, 11, 11, 12, 12, 13, 13, 13, 14, 14},  // TrailingOnes=2
        { 0,  0,  0,  4,  4,  5,  6,  6,  7,  9, 11, 11, 12, 13, 13, 13, 14},  // TrailingOnes=3
    },
    {  // table 2: 4 <= nC < 8
        { 4,  6,  6,  6,  7,  7,  7,  7,  8,  8,  9,  9,  9, 10, 10, 10, 10},  // TrailingOnes=0
        { 0,  4,  5,  5,  5,  5,  6,  6,  7,  8,  8,  9,  9,  9, 10, 10, 10},  // TrailingOnes=1
        { 0,  0,  4,  5,  5,  5,  6,  6,  7,  7,  8,  8,  9,  9, 10, 10, 10},  // TrailingOnes=2
        { 0,  0,  0,  4,  4,  4,  4,  4,  5,  6,  7,  8,  8,  9, 10, 10, 10},  // TrailingOnes=3
    },
    {  // table 3: nC == -1 (chroma DC, 4:2:0)
        { 2,  6,  6,  6,  6,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // TrailingOnes=0
        { 0,  1,  6,  7,  8,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // TrailingOnes=1
        { 0,  0,  3,  7,  8,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // TrailingOnes=2
        { 0,  0,  0,  6,  7,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // TrailingOnes=3
    },
};

inline constexpr uint16_t kCoeffTokenCode[4][4][17] = {
    {  // table 0: 0 <= nC < 2
        { 1,  5,  7,  7,  7,  7, 15, 11,  8, 15, 11, 15, 11, 15, 11,  7,  4},  // TrailingOnes=0
        { 0,  1,  4,  6,  6,  6,  6, 14, 10, 14, 10, 14, 10,  1, 14, 10,  6},  // TrailingOnes=1
        { 0,  0,  1,  5,  5,  5,  5,  5, 13,  9, 13,  9, 13,  9, 13,  9,  5},  // TrailingOnes=2
        { 0,  0,  0,  3,  3,  4,  4,  4,  4,  4, 12, 12,  8, 12,  8, 12,  8},  // TrailingOnes=3
    },
    {  // table 1: 2 <= nC < 4
        { 3, 11,  7,  7,  7,  4,  7, 15, 11, 15, 11,  8, 15, 11,  7,  9,  7},  // TrailingOnes=0
        { 0,  2,  7, 10,  6,  6,  6,  6, 14, 10, 14, 10, 14, 10, 11,  8,  6},  // TrailingOnes=1
        { 0,  0,  3,  9,  5,  5,  5,  5, 13,  9, 13,  9, 13,  9,  6, 10,  5},  // TrailingOnes=2
        { 0,  0,  0,  5,  4,  6,  8,  4,  4,  4, 12,  8, 12, 12,  8,  1,  4},  // TrailingOnes=3
    },
    {  // table 2: 4 <= nC < 8
        {15, 15, 11,  8, 15, 11,  9,  8, 15, 11, 15, 11,  8, 13,  9,  5,  1},  // TrailingOnes=0
        { 0, 14, 15, 12, 10,  8, 14, 10, 14, 14, 10, 14, 10,  7, 12,  8,  4},  // TrailingOnes=1
        { 0,  0, 13, 14, 11,  9, 13,  9, 13, 10, 13,  9, 13,  9, 11,  7,  3},  // TrailingOnes=2
        { 0,  0,  0, 12, 11, 10,  9,  8, 13, 12, 12, 12,  8, 12, 10,  6,  2},  // TrailingOnes=3
    },
    {  // table 3: nC == -1 (chroma DC, 4:2:0)
        { 1,  7,  4,  3,  2,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // TrailingOnes=0
        { 0,  1,  6,  3,  3,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // TrailingOnes=1
        { 0,  0,  1,  2,  2,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // TrailingOnes=2
        { 0,  0,  0,  5,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // TrailingOnes=3
    },
};

// ---------------------------------------------------------------------------
// total_zeros for 4x4 blocks (maxNumCoeff 16), Tables 9-7 (TotalCoeff 1..7)
// and 9-8 (TotalCoeff 8..15). Indexed [TotalCoeff - 1][total_zeros];
// Length 0 where total_zeros > 16 - TotalCoeff.
// Every row is a complete prefix code (Kraft sum 1) except TotalCoeff = 1,
// whose all-zero 9-bit string "0000 0000 0" is unused (Kraft sum 1 - 2^-9).
// Blocks with maxNumCoeff 15 (Intra16x16 AC, chroma AC) use these tables too,
// where total_zeros > 15 - TotalCoeff is then out of range.
// ---------------------------------------------------------------------------
inline constexpr uint8_t kTotalZerosLength[15][16] = {
    {1, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 9},  // TotalCoeff=1
    {3, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 6, 6, 6, 6, 0},  // TotalCoeff=2
    {4, 3, 3, 3, 4, 4, 3, 3, 4, 5, 5, 6, 5, 6, 0, 0},  // TotalCoeff=3
    {5, 3, 4, 4, 3, 3, 3, 4, 3, 4, 5, 5, 5, 0, 0, 0},  // TotalCoeff=4
    {4, 4, 4, 3, 3, 3, 3, 3, 4, 5, 4, 5, 0, 0, 0, 0},  // TotalCoeff=5
    {6, 5, 3, 3, 3, 3, 3, 3, 4, 3, 6, 0, 0, 0, 0, 0},  // TotalCoeff=6
    {6, 5, 3, 3, 3, 2, 3, 4, 3, 6, 0, 0, 0, 0, 0, 0},  // TotalCoeff=7
    {6, 4, 5, 3, 2, 2, 3, 3, 6, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=8
    {6, 6, 4, 2, 2, 3, 2, 5, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=9
    {5, 5, 3, 2, 2, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=10
    {4, 4, 3, 3, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=11
    {4, 4, 2, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=12
    {3, 3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=13
    {2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=14
    {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=15
};

inline constexpr uint16_t kTotalZerosCode[15][16] = {
    {1, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 1},  // TotalCoeff=1
    {7, 6, 5, 4, 3, 5, 4, 3, 2, 3, 2, 3, 2, 1, 0, 0},  // TotalCoeff=2
    {5, 7, 6, 5, 4, 3, 4, 3, 2, 3, 2, 1, 1, 0, 0, 0},  // TotalCoeff=3
    {3, 7, 5, 4, 6, 5, 4, 3, 3, 2, 2, 1, 0, 0, 0, 0},  // TotalCoeff=4
    {5, 4, 3, 7, 6, 5, 4, 3, 2, 1, 1, 0, 0, 0, 0, 0},  // TotalCoeff=5
    {1, 1, 7, 6, 5, 4, 3, 2, 1, 1, 0, 0, 0, 0, 0, 0},  // TotalCoeff=6
    {1, 1, 5, 4, 3, 3, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=7
    {1, 1, 1, 3, 3, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=8
    {1, 0, 1, 3, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=9
    {1, 0, 1, 3, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=10
    {0, 1, 1, 2, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=11
    {0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=12
    {0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=13
    {0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=14
    {0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // TotalCoeff=15
};

// ---------------------------------------------------------------------------
// total_zeros for chroma DC 2x2 blocks (ChromaArrayType 1, maxNumCoeff 4),
// Table 9-9(a). Indexed [TotalCoeff - 1][total_zeros]; Length 0 where
// total_zeros > 4 - TotalCoeff. Every row is complete (Kraft sum 1).
// ---------------------------------------------------------------------------
inline constexpr uint8_t kTotalZerosChromaDcLength[3][4] = {
    {1, 2, 3, 3},  // TotalCoeff=1
    {1, 2, 2, 0},  // TotalCoeff=2
    {1, 1, 0, 0},  // TotalCoeff=3
};

inline constexpr uint16_t kTotalZerosChromaDcCode[3][4] = {
    {1, 1, 1, 0},  // TotalCoeff=1
    {1, 1, 0, 0},  // TotalCoeff=2
    {1, 0, 0, 0},  // TotalCoeff=3
};

// ---------------------------------------------------------------------------
// run_before, Table 9-10. Indexed [min(zerosLeft, 7) - 1][run_before];
// Length 0 where run_before > zerosLeft (rows 0..5); row 6 covers every
// zerosLeft > 6 and lists run_before 0..14.
// Rows 0..5 are complete codes (Kraft sum 1); in row 6 the all-zero 11-bit
// string is unused (Kraft sum 1 - 2^-11).
// ---------------------------------------------------------------------------
inline constexpr uint8_t kRunBeforeLength[7][15] = {
    { 1,  1,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // zerosLeft=1
    { 1,  2,  2,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // zerosLeft=2
    { 2,  2,  2,  2,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // zerosLeft=3
    { 2,  2,  2,  3,  3,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // zerosLeft=4
    { 2,  2,  3,  3,  3,  3,  0,  0,  0,  0,  0,  0,  0,  0,  0},  // zerosLeft=5
    { 2,  3,  3,  3,  3,  3,  3,  0,  0,  0,  0,  0,  0,  0,  0},  // zerosLeft=6
    { 3,  3,  3,  3,  3,  3,  3,  4,  5,  6,  7,  8,  9, 10, 11},  // zerosLeft>6
};

inline constexpr uint16_t kRunBeforeCode[7][15] = {
    {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // zerosLeft=1
    {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // zerosLeft=2
    {3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // zerosLeft=3
    {3, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // zerosLeft=4
    {3, 2, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // zerosLeft=5
    {3, 0, 1, 3, 2, 5, 4, 0, 0, 0, 0, 0, 0, 0, 0},  // zerosLeft=6
    {7, 6, 5, 4, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1},  // zerosLeft>6
};

// ---------------------------------------------------------------------------
// coded_block_pattern me(v) mapping, Table 9-4, column for ChromaArrayType
// 1 or 2. Indexed by codeNum (0..47), giving coded_block_pattern (0..47:
// CodedBlockPatternLuma = cbp % 16, CodedBlockPatternChroma = cbp / 16).
// Each table is a permutation of 0..47.
// ---------------------------------------------------------------------------

// Intra_4x4 / Intra_8x8 macroblock prediction mode.
inline constexpr uint8_t kCodedBlockPatternIntra[48] = {
    47, 31, 15,  0, 23, 27, 29, 30,  7, 11, 13, 14, 39, 43, 45, 46,  // codeNum 0..15
    16,  3,  5, 10, 12, 19, 21, 26, 28, 35, 37, 42, 44,  1,  2,  4,  // codeNum 16..31
     8, 17, 18, 20, 24,  6,  9, 22, 25, 32, 33, 34, 36, 40, 38, 41,  // codeNum 32..47
};

// Inter macroblock prediction mode.
inline constexpr uint8_t kCodedBlockPatternInter[48] = {
     0, 16,  1,  2,  4,  8, 32,  3,  5, 10, 12, 15, 47,  7, 11, 13,  // codeNum 0..15
    14,  6,  9, 31, 35, 37, 42, 44, 33, 34, 36, 40, 39, 43, 45, 46,  // codeNum 16..31
    17, 18, 20, 24, 19, 21, 26, 28, 23, 27, 29, 30, 22, 25, 38, 41,  // codeNum 32..47
};

}  // namespace vccv
// clang-format on
