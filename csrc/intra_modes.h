// Intra prediction modes as the decoding process derives them from the parsed syntax. The
// parser computes no prediction; it reports the modes so that intra pictures can be rebuilt
// (and tested) from its output.
//   8.3.1.1  Intra4x4PredMode[luma4x4BlkIdx]: predIntra4x4PredMode = Min(intraMxMPredModeA,
//            intraMxMPredModeB) of the neighbouring 4x4 blocks (6.4.11.4), or 2 (DC) where
//            dcPredModePredictedFlag is set; then prev_intra4x4_pred_mode_flag selects it, or
//            rem_intra4x4_pred_mode picks one of the other eight.
//   8.3.2.1  Intra8x8PredMode[luma8x8BlkIdx]: the same with the neighbouring 8x8 blocks
//            (6.4.11.2); a neighbour coded Intra4x4 contributes its 4x4 block n = 1 (A) or
//            n = 2 (B) of that 8x8 block, an Intra8x8 one the mode of the 8x8 block holding
//            the 4x4 block an Intra4x4 derivation looks at.
//   8.3.3    Intra16x16PredMode: from mb_type (Table 7-11).
//   8.3.4    intra_chroma_pred_mode as coded (7.4.5.1).
//
// With the modes kept per 4x4 block (an 8x8 block's in all four of its 4x4 blocks), both
// derivations read the block left of and the block above the current block's top-left 4x4:
// for 8x8 blocks those are exactly 4x4 block 1 of the left 8x8 and block 2 of the upper one.
#pragma once

#include <cstdint>

namespace vccv {

// intraMxMPredModeN of a neighbouring block, or kDcPredicted where 8.3.1.1 sets
// dcPredModePredictedFlag (macroblock N unavailable, or Inter with constrained_intra_pred_flag).
constexpr int8_t kDcPredicted = -1;

// `available`: macroblock N is available (6.4.11.4); `inter`: it is coded in Inter prediction
// mode (P/B, skipped included); `nxn`: it is I_NxN (Intra4x4 or Intra8x8), whose mode covering
// the neighbouring 4x4 block is `mode`. Other intra macroblocks (Intra16x16, I_PCM) give 2 (DC).
inline int8_t neighbour_intra_mode(bool available, bool inter, bool nxn, int8_t mode, bool constrained_intra_pred) {
  if (!available || (inter && constrained_intra_pred)) return kDcPredicted;
  return nxn ? mode : 2;
}

// Intra4x4PredMode / Intra8x8PredMode (0..8) from the neighbours' values and the syntax
// elements (`rem` 0..7, read only when `prev_flag` is 0).
int8_t intra_nxn_pred_mode(int8_t mode_a, int8_t mode_b, bool prev_flag, uint32_t rem);

}  // namespace vccv
