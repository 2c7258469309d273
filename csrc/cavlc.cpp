#include "cavlc.h"

#include <array>
#include <cstring>
#include <string>
#include <utility>

#include "cavlc_tables.h"
#include "errors.h"
#include "vlc.h"

namespace vccv {

namespace {

// One table per row of [row][symbol] arrays of code lengths and values, `count` symbols a row.
template <size_t... Row>
std::array<VlcTable, sizeof...(Row)> vlc_rows(const uint8_t* lengths, const uint16_t* codes, int count,
                                              const char* name, std::index_sequence<Row...>) {
  return {
      VlcTable(lengths + Row * static_cast<size_t>(count), codes + Row * static_cast<size_t>(count), count, name)...};
}

// coeff_token's symbols, [TrailingOnes][TotalCoeff] in the tables, decoded as TrailingOnes << 5 |
// TotalCoeff: two bit fields instead of a division by 17.
constexpr auto kCoeffTokenValues = [] {
  std::array<uint16_t, 68> v{};
  for (int s = 0; s < 68; ++s) v[static_cast<size_t>(s)] = static_cast<uint16_t>((s / 17) << 5 | s % 17);
  return v;
}();

// Arrays of tables, not vectors: a table's address is then the array's plus an offset, with no
// pointer to load first.
struct CavlcTables {
  std::array<VlcTable, 4> coeff_token = {
      VlcTable(&kCoeffTokenLength[0][0][0], &kCoeffTokenCode[0][0][0], 68, "coeff_token", kCoeffTokenValues.data()),
      VlcTable(&kCoeffTokenLength[1][0][0], &kCoeffTokenCode[1][0][0], 68, "coeff_token", kCoeffTokenValues.data()),
      VlcTable(&kCoeffTokenLength[2][0][0], &kCoeffTokenCode[2][0][0], 68, "coeff_token", kCoeffTokenValues.data()),
      VlcTable(&kCoeffTokenLength[3][0][0], &kCoeffTokenCode[3][0][0], 68, "chroma DC coeff_token",
               kCoeffTokenValues.data())};
  std::array<VlcTable, 15> total_zeros =
      vlc_rows(&kTotalZerosLength[0][0], &kTotalZerosCode[0][0], 16, "total_zeros", std::make_index_sequence<15>{});
  std::array<VlcTable, 3> total_zeros_chroma_dc =
      vlc_rows(&kTotalZerosChromaDcLength[0][0], &kTotalZerosChromaDcCode[0][0], 4, "total_zeros",
               std::make_index_sequence<3>{});
  std::array<VlcTable, 7> run_before =
      vlc_rows(&kRunBeforeLength[0][0], &kRunBeforeCode[0][0], 15, "run_before", std::make_index_sequence<7>{});
};

// Built when the module loads: no guard to test on every block.
const CavlcTables kTables;

// From a BitReader (near the end of the data) or UncheckedBits (elsewhere).
template <class Bits>
int read_block(Bits& r, int nC, int start_idx, int end_idx, int max_num_coeff, BlockLevels& out) {
  const CavlcTables& t = kTables;
  int total_coeff = 0, trailing_ones = 0;
  if (nC >= 8) {  // 6-bit fixed-length coeff_token (Table 9-5, 8 <= nC)
    const uint32_t v = r.u(6);
    if (v != 3) {
      total_coeff = static_cast<int>(v >> 2) + 1;
      trailing_ones = static_cast<int>(v & 3);
      if (trailing_ones > total_coeff) throw CorruptStream("invalid coeff_token code");
    }
  } else {
    // Table 9-5's column for nC = -1 (chroma DC; no other nC is negative), 0..1, 2..3, 4..7.
    static constexpr uint8_t kTableOfNc[9] = {3, 0, 0, 1, 1, 2, 2, 2, 2};
    const int token = t.coeff_token[kTableOfNc[nC + 1]].decode(r);
    trailing_ones = token >> 5;
    total_coeff = token & 31;
  }
  if (total_coeff == 0) return 0;
  if (total_coeff > end_idx - start_idx + 1)
    throw CorruptStream("coeff_token: " + std::to_string(total_coeff) + " coefficients in a block of " +
                        std::to_string(end_idx - start_idx + 1));

  // The levels go straight to `out`, read next a level at a time. (Gathered in a local array and
  // copied over 16 bytes at a time, they were loads spanning several smaller stores, which store
  // forwarding cannot serve.)
  int32_t* const level = out.level;
  // trailing_ones_sign_flag of each, the first one in bit 2, as the first three levels (the
  // levels past trailing_ones come next and overwrite the rest): one copy from a table.
  static constexpr auto kTrailingOnes = [] {
    std::array<std::array<int32_t, 4>, 8> levels{};
    for (size_t signs = 0; signs < 8; ++signs)
      for (size_t i = 0; i < 3; ++i) levels[signs][i] = (signs >> (2 - i)) & 1 ? -1 : 1;
    return levels;
  }();
  const uint32_t signs = r.peek(3) & (0x38u >> trailing_ones) & 7;  // no branch on trailing_ones = 0
  r.skip(static_cast<size_t>(trailing_ones));
  std::memcpy(level, kTrailingOnes[signs].data(), sizeof(kTrailingOnes[0]));
  int suffix_length = total_coeff > 10 && trailing_ones < 3 ? 1 : 0;
  for (int i = trailing_ones; i < total_coeff; ++i) {
    // level_prefix and level_suffix (9.2.2.1) from one look at the next 32 bits: below 14, the
    // prefix is followed by suffixLength (<= 6) bits, all among them.
    const uint32_t next = r.peek(32);
    const int short_prefix = next == 0 ? 32 : __builtin_clz(next);
    int32_t level_code;
    if (short_prefix < 14) {
      const uint32_t after_prefix = next << (short_prefix + 1);
      level_code =
          (short_prefix << suffix_length) + static_cast<int32_t>(uint64_t{after_prefix} >> (32 - suffix_length));
      r.skip(static_cast<size_t>(short_prefix + 1 + suffix_length));
    } else {
      // High profiles allow prefixes beyond 15; 25 bounds levelCode well inside int32.
      const int level_prefix = r.count_leading_zeros(25);
      if (level_prefix < 0) throw CorruptStream("level_prefix too long");
      level_code = (level_prefix < 15 ? level_prefix : 15) << suffix_length;
      int suffix_size = suffix_length;
      if (level_prefix == 14 && suffix_length == 0) suffix_size = 4;
      if (level_prefix >= 15) suffix_size = level_prefix - 3;
      if (suffix_size > 0) level_code += static_cast<int32_t>(r.u(suffix_size));
      if (level_prefix >= 15 && suffix_length == 0) level_code += 15;
      if (level_prefix >= 16) level_code += (1 << (level_prefix - 3)) - 4096;
    }
    if (i == trailing_ones && trailing_ones < 3) level_code += 2;
    // levelVal: (levelCode + 2) >> 1 when levelCode is even, (-levelCode - 1) >> 1 when odd. The
    // parity is the sign, a coin toss, so it is applied branch-free.
    const int32_t magnitude = (level_code >> 1) + 1, negative = -(level_code & 1);
    level[i] = (magnitude ^ negative) - negative;
    if (suffix_length == 0) suffix_length = 1;
    if (magnitude > (3 << (suffix_length - 1)) && suffix_length < 6) ++suffix_length;
  }

  int zeros_left = 0;
  if (total_coeff < end_idx - start_idx + 1) {
    // The table picked by address, not by a branch: chroma DC blocks come between luma blocks.
    // (A chroma DC block has total_coeff < 4, inside its three tables.)
    const VlcTable* tables = max_num_coeff == 4 ? t.total_zeros_chroma_dc.data() : t.total_zeros.data();
    zeros_left = tables[total_coeff - 1].decode(r);
    if (zeros_left > end_idx - start_idx + 1 - total_coeff) throw CorruptStream("total_zeros exceeds the block");
  }
  // Coefficients are sent highest frequency first; place them walking down the scan. A
  // run_before follows each but the last while zeros are left.
  int position = start_idx + total_coeff - 1 + zeros_left;
  out.count = total_coeff;
  int i = 0;
  for (; zeros_left > 0 && i < total_coeff - 1; ++i) {
    out.scan[i] = static_cast<uint8_t>(position);
    const int run = t.run_before[static_cast<size_t>((zeros_left < 7 ? zeros_left : 7) - 1)].decode(r);
    if (run > zeros_left) throw CorruptStream("run_before exceeds zerosLeft");
    zeros_left -= run;
    position -= 1 + run;
  }
  // The rest sit one after another: 16 bytes of a descending count copied at once (past
  // total_coeff they are never read), instead of a loop whose end would mispredict.
  static constexpr auto kDescending = [] {
    std::array<uint8_t, 48> d{};
    for (size_t k = 0; k < 32; ++k) d[k] = static_cast<uint8_t>(31 - k);
    return d;
  }();
  std::memcpy(out.scan + i, kDescending.data() + (31 - position), 16);
  return total_coeff;
}

}  // namespace

// Calls of their own: residual() stays small.
[[gnu::noinline]] int read_residual_block_cavlc_unchecked(UncheckedBits& r, int nC, int start_idx, int end_idx,
                                                          int max_num_coeff, BlockLevels& out) {
  return read_block(r, nC, start_idx, end_idx, max_num_coeff, out);
}

[[gnu::noinline]] int read_residual_block_cavlc_checked(BitReader& r, int nC, int start_idx, int end_idx,
                                                        int max_num_coeff, BlockLevels& out) {
  return read_block(r, nC, start_idx, end_idx, max_num_coeff, out);
}

uint32_t read_coded_block_pattern_cavlc(BitReader& r, bool intra) {
  const uint32_t code_num = r.ue_max(47, "coded_block_pattern codeNum");
  return intra ? kCodedBlockPatternIntra[code_num] : kCodedBlockPatternInter[code_num];
}

}  // namespace vccv
