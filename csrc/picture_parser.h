// The parser of one picture's slice data, shared by the files that implement it clause by
// clause (FFmpeg's split): slice_data.cpp (7.3.4), macroblock_layer.cpp (7.3.5), mv_prediction.cpp
// (8.4.1.1, 8.4.1.3), direct_prediction.cpp (8.4.1.2), cabac_context.cpp (9.3.3.1.1) and
// residual_syntax.cpp (7.3.5.3). Internal to those files: the public interface is picture.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "bit_reader.h"
#include "cabac.h"
#include "errors.h"
#include "macroblock_types.h"
#include "picture.h"
#include "transform.h"

namespace vccv {

// Luma 4x4 block index (6.4.3, luma4x4BlkIdx) -> position in 4x4-block units within the MB.
inline constexpr int kBlockX[16] = {0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3};
inline constexpr int kBlockY[16] = {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3};

struct Mv {
  int16_t x = 0, y = 0;
  bool operator==(const Mv& o) const { return x == o.x && y == o.y; }
};

// A neighbouring partition as motion vector prediction sees it (8.4.1.3.2).
struct Neighbour {
  bool available = false;
  int ref = -1;
  Mv mv;
};

// What later macroblocks of the picture read about an earlier one (CAVLC nC, CABAC ctxIdxInc).
// Zero-initialised (MbState{}) when its macroblock starts; left uninitialised before that.
struct MbState {
  bool intra, skip, pcm;
  bool i_nxn, i16, direct16;  // I_NxN; Intra16x16; B_Skip or B_Direct_16x16
  bool transform_8x8;
  uint8_t cbp_luma, cbp_chroma, chroma_pred_mode;
  uint8_t total_coeff[16];           // luma, raster 4x4 (y * 4 + x)
  uint8_t total_coeff_chroma[2][4];  // CAVLC: Cb, Cr, raster 2x2
  uint16_t cbf_luma;                 // CABAC coded_block_flag per luma 4x4 (raster bit)
  bool cbf_luma_dc;
  uint8_t cbf_chroma_dc, cbf_chroma_ac;  // bits: plane; plane * 4 + raster 2x2 index
  uint16_t ref_gt0[2];                   // CABAC: explicitly coded ref_idx > 0, per list (raster 4x4 bit)
  uint8_t mvd_abs[2][16][2];             // CABAC: |mvd| per list, raster 4x4 and component, clipped to 255
};

class PictureParser {
 public:
  // Without `coefficients`, residual blocks are entropy-decoded only (parse_picture).
  PictureParser(const Picture& picture, const Stream& stream, bool coefficients);
  ParsedPicture run();

 private:
  // ---- slice data (7.3.4), slice_data.cpp ----
  void parse_slice(int slice_index);
  void begin_mb(int addr);
  void end_mb(int addr, MbClass cls);

  // ---- neighbours (6.4.9, 6.4.11) ----
  const MbState* mb_a() const { return avail_a_ ? cur_ - 1 : nullptr; }
  const MbState* mb_b() const { return avail_b_ ? cur_ - w_ : nullptr; }
  // The macroblock holding a block at (bx, by), in any block unit, relative to the current one:
  // itself, A (bx < 0) or B (by < 0), never both negative; null when not available.
  const MbState* owner(int bx, int by) const { return bx < 0 ? mb_a() : (by < 0 ? mb_b() : cur_); }
  // Index in the [2][H4][W4] arrays of 4x4 block (bx, by) relative to the current MB (-1 for
  // the left or upper neighbour).
  size_t block_index(int list, int bx, int by) const {
    return static_cast<size_t>(static_cast<ptrdiff_t>(list) * list_blocks_ + mb_block_ + by * w4_ + bx);
  }
  const std::array<RefPicList, 2>& slice_lists() const { return *lists_; }

  // ---- macroblock layer (7.3.5), macroblock_layer.cpp ----
  void macroblock_layer(int addr);
  // pcm_alignment_zero_bit and the 384 samples of an I_PCM macroblock (7.3.5).
  void pcm_samples();
  void intra_pred(const MbTypeInfo& t, bool transform_8x8);  // 7.3.5.1, intra part
  // intraMxMPredModeN (8.3.1.1, 8.3.2.1) of the 4x4 block (bx, by) relative to the current MB:
  // inside it (already derived), or in macroblock A (bx = -1) or B (by = -1).
  int8_t intra_mode_neighbour(int bx, int by) const;
  // 7.3.5.1, inter part, for t.num_parts == kParts: a constant, so that the loops over the
  // partitions do not mispredict their ends as partition counts alternate.
  template <int kParts>
  void mb_pred_inter(const MbTypeInfo& t);
  void sub_mb_pred(const MbTypeInfo& t, bool& no_sub_8x8);  // 7.3.5.2
  // ref_idx of the partition at (x, y) in the MB (te(v), or CABAC with 9.3.3.1.1.6).
  uint32_t read_ref_idx(int list, int x, int y);
  // mvd of a w x h partition at (x, y) (se(v), or CABAC with 9.3.3.1.1.7); CABAC also records
  // the absolute values its neighbours' contexts read.
  Mv read_mvd(int list, int x, int y, int w, int h);
  void record_ref(int list, int x, int y, int w, int h, uint32_t ref);

  // ---- motion vector prediction (8.4.1.1, 8.4.1.3), mv_prediction.cpp ----
  // P_Skip and B_Skip macroblocks.
  void skip_macroblock(int addr);
  // Motion of the w4 x h4 4x4 blocks at (bx, by) of the current MB.
  void store_motion(int list, int bx, int by, int w4, int h4, int ref, Mv mv);
  void set_partition(int list, int x, int y, int w, int h, int ref, Mv mv);  // in samples
  void mark_decoded(int x, int y, int w, int h);
  // Partition containing luma sample (x, y), -1 <= x <= 16, -1 <= y < 16, relative to the current
  // MB (6.4.12): available if its MB is available and, inside the current MB, already decoded.
  Neighbour neighbour(int list, int x, int y) const;
  // 8.4.1.3: luma motion vector prediction for a partition at (x, y) of width w within the MB;
  // shape 168 / 816 selects the directional rules of 16x8 / 8x16 partitions.
  Mv predict_mv(int list, int x, int y, int w, int ref, int shape) const;
  // 8.4.1.3.1, the median rule, from the neighbours A, B and C (or D).
  static Mv median_prediction(const Neighbour& a, const Neighbour& b, const Neighbour& c, int ref);
  // Neighbour C of the whole macroblock, or D where C is not available (8.4.1.3.2).
  Neighbour neighbour_c16(int list) const;

  // ---- direct prediction in B slices (8.4.1.2), direct_prediction.cpp ----
  // The co-located 4x4 block's vector and reference (8.4.1.2.1): list 0 if it used it, else
  // list 1; intra blocks give refIdxCol -1.
  struct Colocated {
    Mv mv;
    int ref = -1;
    int list = 0;  // the list of the co-located picture that mv and ref come from
  };
  Colocated colocated(int bx, int by) const;
  // 8.4.1.2.2: reference indices and predicted vectors, once per MB from its neighbours.
  void spatial_setup();
  bool col_zero_flag(const Colocated& col) const;  // colZeroFlag (8.4.1.2.2)
  // A list's spatial direct vector after spatial_setup(), for a block with colZeroFlag `col_zero`.
  Mv spatial_mv(int list, bool col_zero) const;
  // Vectors of the direct 8x8 quadrants in `quadrants` (bit i: quadrant i) of the current MB.
  // With direct_8x8_inference every 4x4 block of a quadrant uses the quadrant's corner block,
  // so the motion is derived once per quadrant and stored for its four blocks.
  void derive_direct(unsigned quadrants);
  // Spatial direct with direct_8x8_inference: the quadrants' motion, stored as one 16x16
  // partition per list where all four quadrants of the macroblock share it.
  void spatial_direct_8x8(unsigned quadrants);
  // Direct motion of the size x size 4x4 blocks at (bx, by) in the MB from its co-located block.
  void direct_block(const Colocated& col, int bx, int by, int size);
  // 8.4.1.2.3: DistScaleFactor of each RefPicList0 entry, once per temporal-direct B slice
  // instead of a division per direct block.
  struct TemporalScale {
    bool scaled = false;  // false: long-term reference or td = 0, the vector is taken as it is
    int factor = 0;
  };
  void prepare_temporal_direct();

  // ---- CABAC ctxIdxInc from neighbouring macroblocks (9.3.3.1.1), cabac_context.cpp ----
  int skip_flag_inc() const;
  int mb_type_inc() const;
  int chroma_pred_mode_inc() const;
  int transform_8x8_inc() const;
  CbpContexts cbp_contexts() const;  // coded_block_pattern (9.3.3.1.1.4)
  // The macroblock holding luma location (x, y) relative to the current one (itself, or its
  // left or upper neighbour: x and y are never both negative) and the raster index of the 4x4
  // block there; null when that macroblock is not available.
  const MbState* block_owner(int x, int y, int& block) const;
  int ref_gt0(int list, int x, int y) const;
  const uint8_t* mvd_abs(int list, int x, int y) const;  // |mvd| x and y of that block
  // coded_block_flag condTermFlagN (9.3.3.1.1.9) for a neighbouring MB n (null: unavailable).
  int cbf_unavailable() const { return cur_->intra ? 1 : 0; }
  // Of the 4x4 block (bx, by) in macroblock A (bx = -1) or B (by = -1); inside the current one,
  // residual() reads its own cbf_luma.
  int cbf_luma_cond(int bx, int by) const;
  int cbf_luma_dc_inc() const;
  int cbf_chroma_dc_inc(int plane) const;
  int cbf_chroma_ac_cond(int plane, int bx, int by) const;

  // ---- residual (7.3.5.3), residual_syntax.cpp ----
  // kCabac: cabac_ is set; a constant, so that the blocks' loops do not test it again and again.
  template <bool kCabac>
  void residual(const MbTypeInfo& t, bool intra, bool transform_8x8, uint32_t cbp_luma, uint32_t cbp_chroma);
  // One block's nonzero levels (scan positions from 0): residual_block_cavlc, or CABAC's
  // coded_block_flag (context from `cbf_inc`) and levels. Returns their number.
  template <bool kCabac>
  int read_block(BlockCat cat, int nc, int cbf_inc, int max_num_coeff, BlockLevels& out);
  // nN for coeff_token (9.2.1): kNotAvailable (64) when the neighbour block is not available.
  int luma_total_coeff(int bx, int by) const;  // block coordinates relative to the current MB
  int chroma_total_coeff(int plane, int bx, int by) const;
  // Scales a block's levels (an AC block, `ac`, has its DC `dc` already scaled by its own
  // transform) into the output; the callers skip blocks with no level and no DC.
  void emit4x4(const BlockLevels& levels, bool ac, int32_t dc, const std::array<int32_t, 16>& ls, int qp, int plane,
               int x, int y);
  void emit8x8(const BlockLevels& levels, int list, int x, int y);

  const Picture& pic_;
  const Stream& stream_;
  const bool coefficients_;  // scale and store the residual's coefficients
  const Sps& sps_;
  const Pps& pps_;
  const int w_, h_, w4_;
  const ptrdiff_t list_blocks_;  // 4x4 blocks per list in the motion arrays
  const LevelScales scales_;
  PictureArray<MbState> mbs_;
  ParsedPicture out_;
  // What run() appends to out_.coefficients' buffer after the 4x4 blocks' coefficients, which
  // emit4x4 writes there directly.
  struct StagedBlocks {
    PictureArray<CoefficientBlocks::Position> positions4, positions8;
    PictureArray<int16_t> coeffs8;  // 64 per block
  } staged_;

  const SliceHeader* sh_ = nullptr;
  BitReader* r_ = nullptr;
  CabacDecoder* cabac_ = nullptr;                     // set while a CABAC slice is parsed
  const std::array<RefPicList, 2>* lists_ = nullptr;  // the current slice's reference lists
  std::shared_ptr<const ParsedPicture> colocated_;    // B slices: RefPicList1[0]
  std::vector<TemporalScale> temporal_scales_;        // temporal-direct B slices: per RefPicList0 entry
  bool spatial_ready_ = false, direct_zero_ = false;  // spatial direct, per MB
  int spatial_ref_[2] = {-1, -1};
  Mv spatial_mvp_[2];
  bool prev_qp_delta_nonzero_ = false;  // of the previous MB in the slice (mb_qp_delta context)
  int slice_ = 0;
  int qp_ = 26;
  int mb_x_ = 0, mb_y_ = 0;
  ptrdiff_t mb_block_ = 0;  // index of the current MB's top-left 4x4 block in a [H4][W4] array
  MbState* cur_ = nullptr;
  uint16_t decoded_ = 0;      // 4x4 blocks of the current MB whose motion is known (raster bits)
  uint16_t written_[2] = {};  // per list, 4x4 blocks of the current MB whose motion is stored
  bool avail_a_ = false, avail_b_ = false, avail_c_ = false, avail_d_ = false;  // neighbour MBs (6.4.9)
};

// Small and called from every clause: defined here so that each file can inline them.

// The raster bits (y * 4 + x) of the w4 x h4 4x4 blocks at (bx, by) of a macroblock.
inline uint16_t block_rect(int bx, int by, int w4, int h4) {
  static constexpr uint16_t kRows[5] = {0, 0x1, 0x11, 0, 0x1111};  // one bit per row, h4 rows
  return static_cast<uint16_t>((((1u << w4) - 1) << bx) * kRows[h4] << (4 * by));
}

inline void PictureParser::store_motion(int list, int bx, int by, int w4, int h4, int ref, Mv mv) {
  if (ref >= static_cast<int>(slice_lists()[static_cast<size_t>(list)].size()))
    throw CorruptStream("ref_idx beyond the reference list");
  const size_t first = block_index(list, bx, by);
  const ptrdiff_t stride = w4_;
  int8_t* refs = &out_.macroblocks.ref_idx[first];
  int16_t* mvs = &out_.macroblocks.mv[2 * first];
  // A row of the partition in one or two stores per array: element stores one by one may alias
  // the parser's members, which the compiler then reloads after each.
  const uint32_t refs4 = static_cast<uint8_t>(ref) * 0x01010101u;
  uint32_t pair;
  std::memcpy(&pair, &mv, sizeof pair);
  const uint64_t pairs = pair * 0x100000001ull;
  for (int y = 0; y < h4; ++y, refs += stride, mvs += 2 * stride) {
    if (w4 == 4) {
      std::memcpy(refs, &refs4, 4);
      std::memcpy(mvs, &pairs, 8);
      std::memcpy(mvs + 4, &pairs, 8);
    } else if (w4 == 2) {
      std::memcpy(refs, &refs4, 2);
      std::memcpy(mvs, &pairs, 8);
    } else {
      refs[0] = static_cast<int8_t>(ref);
      std::memcpy(mvs, &pair, 4);
    }
  }
  written_[list] |= block_rect(bx, by, w4, h4);
}

// Always inlined: a Neighbour returned from a call is put together in memory with narrow stores
// and read back wide, which stalls the load (store forwarding fails). As a call, this function
// took 6.5 % of a CAVLC parse's time, nine tenths of it on that load.
[[gnu::always_inline]] inline Neighbour PictureParser::neighbour(int list, int x, int y) const {
  Neighbour n;
  if (x < 0) {
    if (!(y < 0 ? avail_d_ : avail_a_)) return n;
  } else if (y < 0) {
    if (!(x >= 16 ? avail_c_ : avail_b_)) return n;
  } else {
    const int bit = (y >> 2) * 4 + (x >> 2);
    if (x >= 16 || !((decoded_ >> bit) & 1)) return n;  // right of the MB, or not decoded yet
    n.available = true;
    if (!((written_[list] >> bit) & 1)) return n;  // a decoded partition not using this list
  }
  n.available = true;
  const size_t i = block_index(list, x >> 2, y >> 2);  // x, y >= -1: arithmetic shift floors
  n.ref = out_.macroblocks.ref_idx[i];
  n.mv = {out_.macroblocks.mv[2 * i], out_.macroblocks.mv[2 * i + 1]};
  return n;
}

// Always inlined, like neighbour(): a C (or D) of 16x16 partitions is read for most inter
// macroblocks.
[[gnu::always_inline]] inline Neighbour PictureParser::neighbour_c16(int list) const {  // C, or D (8.4.1.3.2)
  const Neighbour c = neighbour(list, 16, -1);
  return c.available ? c : neighbour(list, -1, -1);
}

inline void PictureParser::set_partition(int list, int x, int y, int w, int h, int ref, Mv mv) {
  store_motion(list, x / 4, y / 4, w / 4, h / 4, ref, mv);
}

inline void PictureParser::mark_decoded(int x, int y, int w, int h) {
  decoded_ |= block_rect(x / 4, y / 4, w / 4, h / 4);
}

}  // namespace vccv
