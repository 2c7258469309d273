// residual_block_cavlc() (7.3.5.3.2, 9.2): one block's coefficient levels.
#pragma once

#include <cstdint>

#include "bit_reader.h"
#include "block_levels.h"

namespace vccv {

// Decodes a block's levels (scan positions start_idx..end_idx) into `out` and returns
// TotalCoeff(coeff_token), the number of levels (none is zero). nC is -1 for 4:2:0 chroma DC.
int read_residual_block_cavlc(BitReader& r, int nC, int start_idx, int end_idx, int max_num_coeff, BlockLevels& out);

// coded_block_pattern from its me(v) codeNum (Table 9-4, ChromaArrayType 1 or 2).
uint32_t read_coded_block_pattern_cavlc(BitReader& r, bool intra);

}  // namespace vccv
