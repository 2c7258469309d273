// The nonzero levels of one residual block (7.3.5.3), as the entropy decoders hand them on.
#pragma once

#include <cstdint>

namespace vccv {

// `count` scan positions and their levels. Blocks carry a handful of levels, so
// later stages loop over these instead of all 16 or 64 positions.
struct BlockLevels {
  int count = 0;
  uint8_t scan[64];
  int32_t level[64];
};

}  // namespace vccv
