#include "intra_modes.h"

#include <algorithm>

namespace vccv {

int8_t intra_nxn_pred_mode(int8_t mode_a, int8_t mode_b, bool prev_flag, uint32_t rem) {
  // 8.3.1.1 (8-42) / 8.3.2.1: DC when either neighbour sets dcPredModePredictedFlag.
  const int8_t predicted = mode_a == kDcPredicted || mode_b == kDcPredicted ? int8_t{2} : std::min(mode_a, mode_b);
  if (prev_flag) return predicted;
  const int r = static_cast<int>(rem);  // the eight modes other than the predicted one
  return static_cast<int8_t>(r < predicted ? r : r + 1);
}

}  // namespace vccv
