// residual_block_cavlc() (7.3.5.3.2, 9.2): one block's coefficient levels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bit_reader.h"
#include "block_levels.h"

namespace vccv {

// The longest residual_block_cavlc: coeff_token 16 bits, 3 trailing-one signs, 16 levels of at
// most 26 prefix bits (level_prefix <= 25, checked) and 22 suffix bits, total_zeros 9 bits, 15
// run_before codes of at most 11 bits: 961.
constexpr size_t kMaxCavlcBlockBits = 961;

// read_residual_block_cavlc() from an UncheckedBits (that many bits fit) or, near the end of the
// data, from the BitReader itself.
int read_residual_block_cavlc_unchecked(UncheckedBits& r, int nC, int start_idx, int end_idx, int max_num_coeff,
                                        BlockLevels& out);
int read_residual_block_cavlc_checked(BitReader& r, int nC, int start_idx, int end_idx, int max_num_coeff,
                                      BlockLevels& out);

// Decodes a block's levels (scan positions start_idx..end_idx) into `out` and returns
// TotalCoeff(coeff_token), the number of levels (none is zero). nC is -1 for 4:2:0 chroma DC.
// Inline: the bounds test and the position's hand-over happen in the caller, around one call.
inline int read_residual_block_cavlc(BitReader& r, int nC, int start_idx, int end_idx, int max_num_coeff,
                                     BlockLevels& out) {
  out.count = 0;
  if (!r.fits_unchecked(kMaxCavlcBlockBits))
    return read_residual_block_cavlc_checked(r, nC, start_idx, end_idx, max_num_coeff, out);
  UncheckedBits bits = r.unchecked();
  const int total_coeff = read_residual_block_cavlc_unchecked(bits, nC, start_idx, end_idx, max_num_coeff, out);
  r.commit(bits);
  return total_coeff;
}

// coded_block_pattern from its me(v) codeNum (Table 9-4, ChromaArrayType 1 or 2).
uint32_t read_coded_block_pattern_cavlc(BitReader& r, bool intra);

}  // namespace vccv
