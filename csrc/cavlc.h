// residual_block_cavlc() (7.3.5.3.2, 9.2): one block's coefficient levels.
#pragma once

#include <cstdint>

#include "bit_reader.h"

namespace vccv {

// Decodes a block into coeff_level[start_idx..end_idx] (scan order; other entries untouched,
// callers zero them) and returns TotalCoeff(coeff_token). nC is -1 for 4:2:0 chroma DC.
int read_residual_block_cavlc(BitReader& r, int nC, int start_idx, int end_idx, int max_num_coeff,
                              int32_t* coeff_level);

// coded_block_pattern from its me(v) codeNum (Table 9-4, ChromaArrayType 1 or 2).
uint32_t read_coded_block_pattern_cavlc(BitReader& r, bool intra);

}  // namespace vccv
