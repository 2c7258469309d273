// CABAC (9.3): context initialisation, the arithmetic decoding engine (decision, bypass,
// terminate) and the binarisations of the syntax elements. Context index increments that
// depend on neighbouring macroblocks are computed by the caller, which owns that state.
#pragma once

#include <array>
#include <cstdint>

#include "bit_reader.h"

namespace vccv {

// Residual block categories (ctxBlockCat, Table 9-42) for 4:2:0.
enum BlockCat : int { kCatLumaDc = 0, kCatLumaAc = 1, kCatLuma4x4 = 2, kCatChromaDc = 3, kCatChromaAc = 4, kCatLuma8x8 = 5 };

class CabacDecoder {
 public:
  // 9.3.1.1 and 9.3.1.2: contexts for the slice (cabac_init_idc -1 for I slices), engine
  // started at the reader's current (byte-aligned) position.
  CabacDecoder(BitReader& r, int cabac_init_idc, int slice_qp);
  // Restarts the engine after I_PCM samples (9.3.1.2).
  void restart_engine();

  int decision(int ctx_idx);  // 9.3.3.2.1
  int bypass();               // 9.3.3.2.3
  int terminate();            // 9.3.3.2.2.3

  // Binarisations (9.3.2) with the ctxIdxInc rules of 9.3.3.1; `inc` arguments carry the
  // neighbour-dependent increments of the first bin.
  bool mb_skip_flag(bool b_slice, int inc);
  uint32_t mb_type_i(int inc);             // I slices: mb_type 0..25
  uint32_t mb_type_p();                    // P slices: 0..4 inter, 5..30 intra
  uint32_t mb_type_b(int inc);             // B slices: 0..22 inter, 23..48 intra
  uint32_t sub_mb_type_p();
  uint32_t sub_mb_type_b();
  bool transform_size_8x8_flag(int inc);
  bool prev_intra_pred_mode_flag();
  uint32_t rem_intra_pred_mode();
  uint32_t intra_chroma_pred_mode(int inc);
  uint32_t ref_idx(int inc);
  int32_t mvd(int comp, int abs_sum);      // comp 0: x (ctxIdxOffset 40), 1: y (47)
  uint32_t coded_block_pattern_luma_bin(int inc);
  uint32_t coded_block_pattern_chroma_bin(int bin, int inc);
  int32_t mb_qp_delta(bool previous_nonzero);
  bool end_of_slice_flag() { return terminate() != 0; }

  // residual_block_cabac (7.3.5.3.3) after coded_block_flag: the levels of a coded block in
  // scan order into coeff_level[0 .. max_num_coeff-1]; returns the number of nonzero levels.
  bool coded_block_flag(BlockCat cat, int inc);
  int residual_levels(BlockCat cat, int max_num_coeff, int32_t* coeff_level);

 private:
  uint32_t unary_exp_golomb_bypass(int k);  // the Exp-Golomb suffix of UEGk (9.3.2.3)
  void init_engine();

  BitReader& r_;
  uint32_t range_ = 510, offset_ = 0;
  std::array<uint8_t, 1024> state_{};  // pStateIdx << 1 | valMPS
};

}  // namespace vccv
