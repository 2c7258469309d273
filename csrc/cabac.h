// CABAC (9.3): context initialisation, the arithmetic decoding engine (decision, bypass,
// terminate) and the binarisations of the syntax elements. Context index increments that
// depend on neighbouring macroblocks are computed by the caller, which owns that state.
#pragma once

#include <array>
#include <cstdint>

#include "bit_reader.h"
#include "block_levels.h"
#include "cabac_tables.h"

namespace vccv {

// Residual block categories (ctxBlockCat, Table 9-42) for 4:2:0.
enum BlockCat : int {
  kCatLumaDc = 0,
  kCatLumaAc = 1,
  kCatLuma4x4 = 2,
  kCatChromaDc = 3,
  kCatChromaAc = 4,
  kCatLuma8x8 = 5
};

class CabacDecoder {
 public:
  // 9.3.1.1 and 9.3.1.2: contexts for the slice (cabac_init_idc -1 for I slices), engine
  // started at the reader's current (byte-aligned) position.
  CabacDecoder(BitReader& r, int cabac_init_idc, int slice_qp);
  // Restarts the engine after I_PCM samples (9.3.1.2) found at the reader's position.
  void restart_engine();
  // Puts the reader at the first bit the arithmetic decoder has not consumed (it reads ahead).
  void sync_reader();

  // 9.3.3.2.1. The engine keeps codIOffset in the top of `window_` with `ahead_` further bits
  // below it, so renormalisation is a shift and the reader is touched once every 32 bits.
  // Always inlined: it is most of the parser's time, and a call costs a quarter of its work.
  __attribute__((always_inline)) int decision(int ctx_idx) {
    uint8_t& s = state_[static_cast<size_t>(ctx_idx)];
    const uint32_t lps = kRangeTabLps[s >> 1][(range_ >> 6) & 3];
    range_ -= lps;
    const uint64_t scaled = uint64_t{range_} << ahead_;
    int bin;
    if (window_ >= scaled) {  // LPS
      window_ -= scaled;
      range_ = lps;
      bin = !(s & 1);
      s = kNextStateLps[s];
    } else {
      bin = s & 1;
      s = kNextStateMps[s];
    }
    renormalise();
    return bin;
  }
  int bypass() {  // 9.3.3.2.3
    if (ahead_ == 0) refill();
    --ahead_;  // one more bit joins codIOffset
    const uint64_t scaled = uint64_t{range_} << ahead_;
    if (window_ >= scaled) {
      window_ -= scaled;
      return 1;
    }
    return 0;
  }
  int terminate() {  // 9.3.3.2.2.3
    range_ -= 2;
    if (window_ >= uint64_t{range_} << ahead_) return 1;  // no renormalisation: parsing ends here
    renormalise();
    return 0;
  }

  // Binarisations (9.3.2) with the ctxIdxInc rules of 9.3.3.1; `inc` arguments carry the
  // neighbour-dependent increments of the first bin.
  bool mb_skip_flag(bool b_slice, int inc);
  uint32_t mb_type_i(int inc);  // I slices: mb_type 0..25
  uint32_t mb_type_p();         // P slices: 0..4 inter, 5..30 intra
  uint32_t mb_type_b(int inc);  // B slices: 0..22 inter, 23..48 intra
  uint32_t sub_mb_type_p();
  uint32_t sub_mb_type_b();
  bool transform_size_8x8_flag(int inc);
  bool prev_intra_pred_mode_flag();
  uint32_t rem_intra_pred_mode();
  uint32_t intra_chroma_pred_mode(int inc);
  uint32_t ref_idx(int inc);
  int32_t mvd(int comp, int abs_sum);  // comp 0: x (ctxIdxOffset 40), 1: y (47)
  uint32_t coded_block_pattern_luma_bin(int inc);
  uint32_t coded_block_pattern_chroma_bin(int bin, int inc);
  int32_t mb_qp_delta(bool previous_nonzero);
  bool end_of_slice_flag() { return terminate() != 0; }

  // residual_block_cabac (7.3.5.3.3) after coded_block_flag: the nonzero levels of a coded
  // block (scan positions 0 .. max_num_coeff-1) into `out`; returns their number.
  bool coded_block_flag(BlockCat cat, int inc);
  int residual_levels(BlockCat cat, int max_num_coeff, BlockLevels& out);

 private:
  uint32_t unary_exp_golomb_bypass(int k);  // the Exp-Golomb suffix of UEGk (9.3.2.3)
  void init_engine();
  // RenormD: range back to at least 256 (range is 2..510: clz >= 23).
  __attribute__((always_inline)) void renormalise() {
    const int shift = __builtin_clz(range_) - 23;
    range_ <<= shift;
    if (ahead_ < shift) refill();
    ahead_ -= shift;
  }
  void refill();

  // State transitions (Table 9-45) on (pStateIdx << 1 | valMPS) after an LPS / an MPS.
  static const std::array<uint8_t, 128> kNextStateLps, kNextStateMps;

  BitReader& r_;
  uint32_t range_ = 510;
  uint64_t window_ = 0;  // codIOffset << ahead_ | the next ahead_ bits of the slice data
  int ahead_ = 0;
  std::array<uint8_t, 1024> state_{};  // pStateIdx << 1 | valMPS
};

}  // namespace vccv
