// CABAC (9.3): context initialisation, the arithmetic decoding engine (decision, bypass,
// terminate) and the binarisations of the syntax elements. Context index increments that
// depend on neighbouring macroblocks are computed by the caller, which owns that state.
#pragma once

#include <array>
#include <cstdint>

#include "bin_trace.h"
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

// A context variable's state (9.3.1.1): pStateIdx << 1 | valMPS. A type of its own, not uint8_t,
// because a store through a character type may alias anything and would make the compiler
// reload the engine's registers after every state update.
enum class CtxState : uint8_t {};

// The arithmetic decoding engine's registers (9.3.1.2). codIOffset sits in the top of `window`
// with `ahead` further bits below it, so renormalisation is a shift and the reader is touched
// once every 32 bits. Hot loops copy the engine into a local, which the compiler keeps in
// registers; its only call, behind refill(), takes and returns plain values for that reason.
struct ArithmeticEngine {
  uint64_t window = 0;  // codIOffset << ahead | the next `ahead` bits of the slice data
  uint32_t range = 510;
  int ahead = 0;

  // 9.3.3.2.1. Always inlined: it is most of the parser's time, and a call costs a quarter of it.
  __attribute__((always_inline)) int decision(CtxState& slot, BitReader& r) {
    const unsigned s = static_cast<unsigned>(slot);
    const uint32_t lps = kRangeTabLpsByState[s][(range >> 6) & 3];
    range -= lps;
    const uint64_t scaled = uint64_t{range} << ahead;
    int bin;
    if (window >= scaled) {  // LPS
      window -= scaled;
      range = lps;
      bin = static_cast<int>(~s & 1);
      slot = static_cast<CtxState>(kNextStateLps[s]);
    } else {
      bin = static_cast<int>(s & 1);
      slot = static_cast<CtxState>(kNextStateMps[s]);
    }
    renormalise(r);
    VCCV_TRACE_BIN(decision(&slot, bin));
    return bin;
  }
  __attribute__((always_inline)) int bypass(BitReader& r) {  // 9.3.3.2.3
    if (ahead == 0) refill(r);
    --ahead;  // one more bit joins codIOffset
    const uint64_t scaled = uint64_t{range} << ahead;
    if (window >= scaled) {
      window -= scaled;
      VCCV_TRACE_BIN(bypass(1));
      return 1;
    }
    VCCV_TRACE_BIN(bypass(0));
    return 0;
  }
  // A bypass bin that is `magnitude`'s sign (coeff_sign_flag, an mvd's sign): `magnitude` or its
  // negation. Branch-free, because a sign is a coin toss that a branch would mispredict half the time.
  __attribute__((always_inline)) int32_t signed_bypass(int32_t magnitude, BitReader& r) {
    if (ahead == 0) refill(r);
    --ahead;
    const uint64_t scaled = uint64_t{range} << ahead;
    const int32_t negative = -static_cast<int32_t>(window >= scaled);  // all ones for a 1
    window -= scaled & static_cast<uint64_t>(static_cast<int64_t>(negative));
    VCCV_TRACE_BIN(bypass(negative & 1));
    return (magnitude ^ negative) - negative;
  }
  int terminate(BitReader& r) {  // 9.3.3.2.2.3
    range -= 2;
    if (window >= uint64_t{range} << ahead) {  // no renormalisation: parsing ends here
      VCCV_TRACE_BIN(terminate(1));
      return 1;
    }
    renormalise(r);
    VCCV_TRACE_BIN(terminate(0));
    return 0;
  }
  // RenormD: range back to at least 256 (range is 2..510: clz >= 23).
  __attribute__((always_inline)) void renormalise(BitReader& r) {
    const int shift = __builtin_clz(range) - 23;
    range <<= shift;
    if (ahead < shift) refill(r);
    ahead -= shift;
  }
  // The engine started on the 9 bits at `r`'s position (9.3.1.2): codIRange 510, codIOffset those bits.
  static ArithmeticEngine started(BitReader& r);
  // 32 more bits from `r` appended to the window (zeros past the end of the data).
  __attribute__((always_inline)) void refill(BitReader& r) {
    window = refilled_window(window, ahead, r);
    ahead += 32;
  }
  // The call behind refill(): the fields go in and out as scalars in registers. (Passed as one
  // struct, range and ahead travelled packed in one register, loaded as one 8-byte word from where
  // they had been stored as two 4-byte ones, which store forwarding cannot serve.)
  static uint64_t refilled_window(uint64_t window, int ahead, BitReader& r);

  // rangeTabLPS (Table 9-44) indexed by the whole state, so a decision needs no shift.
  static const std::array<std::array<uint8_t, 4>, 128> kRangeTabLpsByState;
  // State transitions (Table 9-45) on the state after an LPS / an MPS.
  static const std::array<uint8_t, 128> kNextStateLps, kNextStateMps;
};

// What coded_block_pattern's ctxIdxInc (9.3.3.1.1.4) takes from macroblocks A and B: condTermFlagA
// of 8x8 blocks 0 and 2 (bits 0 and 2, from A's blocks 1 and 3), condTermFlagB of blocks 0 and 1
// (bits 0 and 1, from B's blocks 2 and 3), and the whole increment of each chroma bin.
struct CbpContexts {
  uint32_t luma_a = 0, luma_b = 0;
  int chroma[2] = {0, 0};
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

  // Single bins on the decoder's engine (9.3.3.2), for one-bin elements and the tests; elements
  // of several bins run on a local copy of the engine instead (see ArithmeticEngine).
  __attribute__((always_inline)) int decision(int ctx_idx) {
    return engine_.decision(state_[static_cast<size_t>(ctx_idx)], r_);
  }
  __attribute__((always_inline)) int bypass() { return engine_.bypass(r_); }
  int terminate() { return engine_.terminate(r_); }

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
  int32_t mvd(int comp, int abs_sum);                  // comp 0: x (ctxIdxOffset 40), 1: y (47)
  uint32_t coded_block_pattern(const CbpContexts& n);  // luma in bits 0-3, chroma in bits 4-5
  int32_t mb_qp_delta(bool previous_nonzero);
  bool end_of_slice_flag() { return terminate() != 0; }

  // residual_block_cabac (7.3.5.3.3): coded_block_flag (inferred 1 for 8x8 blocks) with the
  // increment `cbf_inc`, then the block's nonzero levels into `out`; returns their number.
  int residual_block(BlockCat cat, int cbf_inc, BlockLevels& out);

 private:
  uint32_t unary_exp_golomb_bypass(int k);  // the Exp-Golomb suffix of UEGk (9.3.2.3)
  // The same for a caller holding the engine in the local `e`: the rare suffix runs on the
  // decoder's own copy, so that `e` keeps out of memory.
  uint32_t exp_golomb_bypass(ArithmeticEngine& e, int k) {
    engine_ = e;
    const uint32_t value = unary_exp_golomb_bypass(k);
    e = engine_;
    return value;
  }
  void init_engine();
  template <BlockCat kCat>
  int residual_block(int cbf_inc, BlockLevels& out);

  BitReader& r_;
  ArithmeticEngine engine_;
  std::array<CtxState, 1024> state_{};
};

}  // namespace vccv
