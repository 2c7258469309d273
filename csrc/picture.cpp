#include "picture.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <string>

#include "bit_reader.h"
#include "cabac.h"
#include "cavlc.h"
#include "errors.h"
#include "intra_modes.h"
#include "macroblock_types.h"
#include "scan_tables.h"
#include "transform.h"

namespace vccv {

namespace {

// Luma 4x4 block index (6.4.3, luma4x4BlkIdx) -> position in 4x4-block units within the MB.
constexpr int kBlockX[16] = {0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3};
constexpr int kBlockY[16] = {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3};

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

int median3(int a, int b, int c) { return std::max(std::min(a, b), std::min(std::max(a, b), c)); }

// What later macroblocks of the picture read about an earlier one (CAVLC nC, CABAC ctxIdxInc).
// Zero-initialised (MbState{}) when its macroblock starts; left uninitialised before that.
struct MbState {
  bool intra, skip, pcm;
  bool i_nxn, i16, direct16;  // I_NxN; Intra16x16; B_Skip or B_Direct_16x16
  bool transform_8x8;
  uint8_t cbp_luma, cbp_chroma, chroma_pred_mode;
  uint8_t total_coeff[16];           // luma, raster 4x4 (y * 4 + x)
  uint8_t total_coeff_chroma[2][4];  // Cb, Cr, raster 2x2
  uint16_t cbf_luma;                 // CABAC coded_block_flag per luma 4x4 (raster bit)
  bool cbf_luma_dc;
  uint8_t cbf_chroma_dc, cbf_chroma_ac;  // bits: plane; plane * 4 + raster 2x2 index
  uint16_t ref_gt0[2];                   // CABAC: explicitly coded ref_idx > 0, per list (raster 4x4 bit)
  uint8_t mvd_abs[2][16][2];             // CABAC: |mvd| per list, raster 4x4 and component, clipped to 255
};

class PictureParser {
 public:
  PictureParser(const Picture& picture, const Stream& stream)
      : pic_(picture),
        stream_(stream),
        sps_(*picture.sps),
        pps_(*picture.pps),
        w_(static_cast<int>(sps_.pic_width_in_mbs)),
        h_(static_cast<int>(sps_.frame_height_in_mbs())),
        w4_(4 * w_),
        list_blocks_(16 * static_cast<ptrdiff_t>(w_) * h_),
        scales_(resolve_scaling(sps_, pps_)) {
    MacroblockGrid& g = out_.macroblocks;
    g.width_mbs = w_;
    g.height_mbs = h_;
    // Every macroblock writes all of its entries (begin_mb, end_mb), so nothing is zeroed here;
    // a picture with a macroblock in no slice is refused (run).
    const size_t mbs = static_cast<size_t>(w_ * h_);
    mbs_.resize(mbs);
    g.mb_type.resize(mbs);
    g.qp.resize(mbs);
    g.cbp.resize(mbs);
    g.mv.resize(2 * 16 * mbs * 2);
    g.ref_idx.resize(2 * 16 * mbs);
    g.intra_pred.resize(16 * mbs);
    g.intra_size.resize(mbs);
    g.intra_chroma_pred.resize(mbs);
    out_.mb_slice.assign(mbs, -1);
    out_.luma_total_coeff.resize(16 * mbs);
    // Typical pictures code a few blocks per macroblock: reserve once instead of regrowing.
    out_.coefficients.positions4.reserve(static_cast<size_t>(8 * w_ * h_));
    out_.coefficients.coeffs4.resize(static_cast<size_t>(8 * 16 * w_ * h_));  // uninitialised: untouched pages cost nothing
  }

  ParsedPicture run() {
    for (size_t i = 0; i < pic_.slices.size(); ++i) parse_slice(static_cast<int>(i));
    for (int a = 0; a < w_ * h_; ++a)
      if (out_.mb_slice[static_cast<size_t>(a)] < 0)
        throw CorruptStream("macroblock " + std::to_string(a) + " is in no slice (missing or cut slices)");
    CoefficientBlocks& c = out_.coefficients;
    c.coeffs4.resize(16 * c.positions4.size());
    c.coeffs8.resize(64 * c.positions8.size());
    return std::move(out_);
  }

 private:
  // ---- slice data (7.3.4) ----
  void parse_slice(int slice_index) {
    const Slice& slice = pic_.slices[static_cast<size_t>(slice_index)];
    sh_ = &slice.header;
    const auto rbsp = stream_.slice_rbsp(slice);  // kept alive while r_ reads it
    BitReader r(rbsp->data(), rbsp->size());
    r.skip(sh_->slice_data_bit_offset);
    r_ = &r;
    slice_ = slice_index;
    qp_ = pps_.pic_init_qp + sh_->slice_qp_delta;
    prev_qp_delta_nonzero_ = false;
    lists_ = &slice.ref_lists;
    auto& pictures = out_.slice_ref_pictures.emplace_back();
    for (size_t list = 0; list < 2; ++list)
      for (const RefPicEntry& e : slice.ref_lists[list]) pictures[list].push_back(e.picture);
    colocated_.reset();
    if (sh_->slice_type == kSliceB) {  // 8.4.1.2.1: the co-located picture is RefPicList1[0]
      const RefPicList& list1 = slice.ref_lists[1];
      if (list1.empty() || list1[0].picture < 0) throw CorruptStream("B slice without RefPicList1[0]");
      colocated_ = stream_.parsed_picture(static_cast<uint32_t>(list1[0].picture));
    }
    const bool intra_slice = sh_->slice_type == kSliceI;
    int addr = static_cast<int>(sh_->first_mb_in_slice);
    if (pps_.entropy_coding_mode) {
      // cabac_alignment_one_bit: 1 by 7.3.4, but some encoders pad with zeros and decoders
      // (FFmpeg included) skip the padding without looking at it.
      while (!r.byte_aligned()) r.flag();
      CabacDecoder cabac(r, intra_slice ? -1 : static_cast<int>(sh_->cabac_init_idc), qp_);
      cabac_ = &cabac;
      while (true) {  // 7.3.4 with entropy_coding_mode_flag = 1
        if (addr >= w_ * h_) throw CorruptStream("slice data continues past the last macroblock");
        begin_mb(addr);
        if (!intra_slice && cabac.mb_skip_flag(sh_->slice_type == kSliceB, skip_flag_inc()))
          skip_macroblock(addr);
        else
          macroblock_layer(addr);
        ++addr;
        if (cabac.end_of_slice_flag()) break;
      }
      cabac.sync_reader();
      cabac_ = nullptr;
      // The arithmetic codeword ends within a byte or so of the stop bit: encoders flush a few
      // more bits than the decoder reads (9.3.4.5), so the end is checked within that slack.
      const long gap = r.bits_before_stop_bit();
      if (gap < -1 || gap > 16)
        throw CorruptStream("CABAC slice data ends " + std::to_string(gap) + " bits from its rbsp_stop_one_bit");
      return;
    } else {
      bool more = true;
      while (more) {  // 7.3.4 with entropy_coding_mode_flag = 0
        if (!intra_slice) {
          const uint32_t skip_run = r.ue();
          if (skip_run > static_cast<uint32_t>(w_ * h_ - addr))
            throw CorruptStream("mb_skip_run " + std::to_string(skip_run) + " runs past the picture");
          for (uint32_t i = 0; i < skip_run; ++i) {
            begin_mb(addr);
            skip_macroblock(addr++);
          }
          if (skip_run > 0 && !r.more_rbsp_data()) break;
        }
        if (addr >= w_ * h_) throw CorruptStream("slice data continues past the last macroblock");
        begin_mb(addr);
        macroblock_layer(addr++);
        more = r.more_rbsp_data();
      }
    }
    // The slice must end exactly at its rbsp_trailing_bits: a desynchronised parse does not.
    r.expect_trailing_bits("slice data");
  }

  // ---- neighbours (6.4.11) ----
  bool mb_available(int mb_x, int mb_y) const {
    if (mb_x < 0 || mb_y < 0 || mb_x >= w_ || mb_y >= h_) return false;
    return out_.mb_slice[static_cast<size_t>(mb_y * w_ + mb_x)] == slice_;
  }

  // nN for coeff_token (9.2.1): -1 when the neighbour block is not available.
  int luma_total_coeff(int bx, int by) const {  // block coordinates relative to the current MB
    int mb_x = mb_x_, mb_y = mb_y_;
    if (bx < 0) { --mb_x; bx += 4; }
    if (by < 0) { --mb_y; by += 4; }
    if (mb_x == mb_x_ && mb_y == mb_y_) return cur_->total_coeff[by * 4 + bx];
    if (!mb_available(mb_x, mb_y)) return -1;
    return mbs_[static_cast<size_t>(mb_y * w_ + mb_x)].total_coeff[by * 4 + bx];
  }

  int chroma_total_coeff(int plane, int bx, int by) const {
    int mb_x = mb_x_, mb_y = mb_y_;
    if (bx < 0) { --mb_x; bx += 2; }
    if (by < 0) { --mb_y; by += 2; }
    if (mb_x == mb_x_ && mb_y == mb_y_) return cur_->total_coeff_chroma[plane][by * 2 + bx];
    if (!mb_available(mb_x, mb_y)) return -1;
    return mbs_[static_cast<size_t>(mb_y * w_ + mb_x)].total_coeff_chroma[plane][by * 2 + bx];
  }

  static int predict_nc(int na, int nb) {
    if (na >= 0 && nb >= 0) return (na + nb + 1) >> 1;
    if (na >= 0) return na;
    if (nb >= 0) return nb;
    return 0;
  }

  // ---- motion field ----
  // Index in the [2][H4][W4] arrays of 4x4 block (bx, by) relative to the current MB (-1 for
  // the left or upper neighbour).
  size_t block_index(int list, int bx, int by) const {
    return static_cast<size_t>(static_cast<ptrdiff_t>(list) * list_blocks_ + mb_block_ + by * w4_ + bx);
  }
  // Motion of the w4 x h4 4x4 blocks at (bx, by) of the current MB.
  void store_motion(int list, int bx, int by, int w4, int h4, int ref, Mv mv) {
    if (ref >= static_cast<int>(slice_lists()[static_cast<size_t>(list)].size()))
      throw CorruptStream("ref_idx beyond the reference list");
    for (int y = by; y < by + h4; ++y)
      for (int x = bx; x < bx + w4; ++x) {
        const size_t i = block_index(list, x, y);
        out_.macroblocks.ref_idx[i] = static_cast<int8_t>(ref);
        out_.macroblocks.mv[2 * i] = mv.x;
        out_.macroblocks.mv[2 * i + 1] = mv.y;
      }
  }

  // Partition containing luma sample (x, y), -1 <= x <= 16, -1 <= y < 16, relative to the current
  // MB (6.4.12): available if its MB is available and, inside the current MB, already decoded.
  Neighbour neighbour(int list, int x, int y) const {
    Neighbour n;
    if (x < 0) {
      if (!(y < 0 ? avail_d_ : avail_a_)) return n;
    } else if (y < 0) {
      if (!(x >= 16 ? avail_c_ : avail_b_)) return n;
    } else if (x >= 16 || !decoded_[(y >> 2) * 4 + (x >> 2)]) {
      return n;  // right of the current MB, or a partition of it not decoded yet
    }
    n.available = true;
    const size_t i = block_index(list, x >> 2, y >> 2);  // x, y >= -1: arithmetic shift floors
    n.ref = out_.macroblocks.ref_idx[i];
    n.mv = {out_.macroblocks.mv[2 * i], out_.macroblocks.mv[2 * i + 1]};
    return n;
  }

  // 8.4.1.3: luma motion vector prediction for a partition at (x, y) of width w within the MB;
// shape 168 / 816 selects the directional rules of 16x8 / 8x16 partitions.
  Mv predict_mv(int list, int x, int y, int w, int ref, int shape) const {
    Neighbour a = neighbour(list, x - 1, y);
    Neighbour b = neighbour(list, x, y - 1);
    Neighbour c = neighbour(list, x + w, y - 1);
    if (!c.available) c = neighbour(list, x - 1, y - 1);  // D replaces an unavailable C
    if (shape == 168) {  // 16x8 (8.4.1.3, directional)
      if (y == 0 && b.ref == ref) return b.mv;
      if (y == 8 && a.ref == ref) return a.mv;
    } else if (shape == 816) {  // 8x16
      if (x == 0 && a.ref == ref) return a.mv;
      if (x == 8 && c.ref == ref) return c.mv;
    }
    if (!b.available && !c.available && a.available) b = c = a;  // 8.4.1.3.1
    const int matches = (a.ref == ref) + (b.ref == ref) + (c.ref == ref);
    if (matches == 1) return a.ref == ref ? a.mv : (b.ref == ref ? b.mv : c.mv);
    return {static_cast<int16_t>(median3(a.mv.x, b.mv.x, c.mv.x)),
            static_cast<int16_t>(median3(a.mv.y, b.mv.y, c.mv.y))};
  }

  void set_partition(int list, int x, int y, int w, int h, int ref, Mv mv) {
    store_motion(list, x / 4, y / 4, w / 4, h / 4, ref, mv);
  }
  void mark_decoded(int x, int y, int w, int h) {
    for (int by = y / 4; by < (y + h) / 4; ++by)
      for (int bx = x / 4; bx < (x + w) / 4; ++bx) decoded_[by * 4 + bx] = true;
  }

  // ---- direct prediction in B slices (8.4.1.2) ----
  const std::array<RefPicList, 2>& slice_lists() const { return *lists_; }

  // The co-located 4x4 block's vector and reference (8.4.1.2.1): list 0 if it used it, else
  // list 1; intra blocks give refIdxCol -1.
  struct Colocated {
    Mv mv;
    int ref = -1;
    int32_t picture = -1;
  };
  Colocated colocated(int bx, int by) const {
    const ParsedPicture& col = *colocated_;
    Colocated c;
    const int8_t col_type = col.macroblocks.mb_type[static_cast<size_t>(mb_y_ * w_ + mb_x_)];
    if (col_type == kMbIntra || col_type == kMbPcm) return c;
    for (int list = 0; list < 2; ++list) {  // the same geometry as the current picture
      const size_t i = block_index(list, bx, by);
      if (col.macroblocks.ref_idx[i] < 0) continue;
      c.ref = col.macroblocks.ref_idx[i];
      c.mv = {col.macroblocks.mv[2 * i], col.macroblocks.mv[2 * i + 1]};
      c.picture = col.ref_picture(list, block_index(0, bx, by));
      break;
    }
    return c;
  }

  static int min_positive(int a, int b) { return a >= 0 && b >= 0 ? std::min(a, b) : std::max(a, b); }

  // 8.4.1.2.2: reference indices and predicted vectors, once per MB from its neighbours.
  void spatial_setup() {
    if (spatial_ready_) return;
    spatial_ready_ = true;
    for (int list = 0; list < 2; ++list) {
      const Neighbour a = neighbour(list, -1, 0), b = neighbour(list, 0, -1);
      Neighbour c = neighbour(list, 16, -1);
      if (!c.available) c = neighbour(list, -1, -1);
      spatial_ref_[list] = min_positive(a.ref, min_positive(b.ref, c.ref));
    }
    direct_zero_ = spatial_ref_[0] < 0 && spatial_ref_[1] < 0;
    if (direct_zero_) spatial_ref_[0] = spatial_ref_[1] = 0;
    for (int list = 0; list < 2; ++list)
      spatial_mvp_[list] = spatial_ref_[list] >= 0 && !direct_zero_ ? predict_mv(list, 0, 0, 16, spatial_ref_[list], 0) : Mv{};
  }

  // Vectors of the direct 8x8 quadrants in `quadrants` (bit i: quadrant i) of the current MB.
  // With direct_8x8_inference every 4x4 block of a quadrant uses the quadrant's corner block,
  // so the motion is derived once per quadrant and stored for its four blocks.
  void derive_direct(unsigned quadrants) {
    if (sh_->direct_spatial_mv_pred) spatial_setup();
    for (int q = 0; q < 4; ++q) {
      if (!((quadrants >> q) & 1)) continue;
      const int qx = 2 * (q % 2), qy = 2 * (q / 2);
      if (sps_.direct_8x8_inference) {
        direct_block(colocated(3 * (q % 2), 3 * (q / 2)), qx, qy, 2);
      } else {
        for (int k = 0; k < 4; ++k) direct_block(colocated(qx + k % 2, qy + k / 2), qx + k % 2, qy + k / 2, 1);
      }
    }
  }

  // Direct motion of the size x size 4x4 blocks at (bx, by) in the MB from its co-located block.
  void direct_block(const Colocated& col, int bx, int by, int size) {
    if (sh_->direct_spatial_mv_pred) {  // 8.4.1.2.2
      const bool col_zero = !slice_lists()[1][0].long_term && col.ref == 0 && col.mv.x >= -1 && col.mv.x <= 1 &&
                            col.mv.y >= -1 && col.mv.y <= 1;
      for (int list = 0; list < 2; ++list) {
        const int ref = spatial_ref_[list];
        Mv mv;
        if (ref >= 0 && !direct_zero_ && !(ref == 0 && col_zero)) mv = spatial_mvp_[list];
        store_motion(list, bx, by, size, size, ref, mv);
      }
      return;
    }
    // 8.4.1.2.3 temporal: list 0 refers to the co-located block's reference picture.
    const RefPicList& list0 = slice_lists()[0];
    const RefPicList& list1 = slice_lists()[1];
    int ref0 = 0;
    if (col.ref >= 0) {
      ref0 = -1;
      for (size_t i = 0; i < list0.size() && ref0 < 0; ++i)
        if (list0[i].picture == col.picture) ref0 = static_cast<int>(i);
      if (ref0 < 0) throw CorruptStream("temporal direct: the co-located reference is not in RefPicList0");
    }
    const RefPicEntry& pic0 = list0[static_cast<size_t>(ref0)];
    Mv mv0 = col.mv, mv1;
    const int64_t poc0 = pic0.picture >= 0 ? stream_.pictures()[static_cast<size_t>(pic0.picture)].poc : 0;
    const int64_t poc1 = stream_.pictures()[static_cast<size_t>(list1[0].picture)].poc;
    const int td = static_cast<int>(std::clamp<int64_t>(poc1 - poc0, -128, 127));
    if (!pic0.long_term && td != 0) {
      const int tb = static_cast<int>(std::clamp<int64_t>(pic_.poc - poc0, -128, 127));
      const int tx = (16384 + std::abs(td / 2)) / td;
      const int scale = std::clamp((tb * tx + 32) >> 6, -1024, 1023);  // DistScaleFactor
      mv0 = {static_cast<int16_t>((scale * col.mv.x + 128) >> 8), static_cast<int16_t>((scale * col.mv.y + 128) >> 8)};
      mv1 = {static_cast<int16_t>(mv0.x - col.mv.x), static_cast<int16_t>(mv0.y - col.mv.y)};
    }
    store_motion(0, bx, by, size, size, ref0, mv0);
    store_motion(1, bx, by, size, size, 0, mv1);
  }

  // ---- macroblocks ----
  void begin_mb(int addr) {
    mb_x_ = addr % w_;
    mb_y_ = addr / w_;
    cur_ = &mbs_[static_cast<size_t>(addr)];
    mb_block_ = static_cast<ptrdiff_t>(4 * mb_y_) * w4_ + 4 * mb_x_;
    if (out_.mb_slice[static_cast<size_t>(addr)] >= 0)
      throw CorruptStream("macroblock " + std::to_string(addr) + " is coded twice");
    *cur_ = MbState{};
    // What a macroblock leaves unsaid: lists it does not use, intra modes of inter macroblocks.
    MacroblockGrid& g = out_.macroblocks;
    for (int row = 0; row < 4; ++row) {
      for (int list = 0; list < 2; ++list) {
        std::fill_n(&g.mv[2 * block_index(list, 0, row)], 8, int16_t{0});
        std::fill_n(&g.ref_idx[block_index(list, 0, row)], 4, int8_t{-1});
      }
      std::fill_n(&g.intra_pred[block_index(0, 0, row)], 4, int8_t{-1});
    }
    g.cbp[static_cast<size_t>(addr)] = 0;
    g.intra_size[static_cast<size_t>(addr)] = 0;
    g.intra_chroma_pred[static_cast<size_t>(addr)] = -1;
    std::fill(std::begin(decoded_), std::end(decoded_), false);
    avail_a_ = mb_available(mb_x_ - 1, mb_y_);
    avail_b_ = mb_available(mb_x_, mb_y_ - 1);
    avail_c_ = mb_available(mb_x_ + 1, mb_y_ - 1);
    avail_d_ = mb_available(mb_x_ - 1, mb_y_ - 1);
    spatial_ready_ = false;
  }
  void end_mb(int addr, MbClass cls) {
    out_.mb_slice[static_cast<size_t>(addr)] = slice_;
    for (int row = 0; row < 4; ++row)
      std::memcpy(&out_.luma_total_coeff[block_index(0, 0, row)], &cur_->total_coeff[4 * row], 4);
    out_.macroblocks.mb_type[static_cast<size_t>(addr)] = cls;
    out_.macroblocks.qp[static_cast<size_t>(addr)] = static_cast<int8_t>(qp_);
  }

  void skip_macroblock(int addr) {
    cur_->skip = true;
    prev_qp_delta_nonzero_ = false;
    if (sh_->slice_type == kSliceB) {  // B_Skip: direct prediction of the whole MB
      cur_->direct16 = true;
      derive_direct(0xf);
      end_mb(addr, kMbDirect);
      return;
    }
    // P_Skip (8.4.1.1): zero vector if A or B is unavailable or has ref 0 with a zero vector.
    const Neighbour a = neighbour(0, -1, 0), b = neighbour(0, 0, -1);
    Mv mv;
    if (a.available && b.available && !(a.ref == 0 && a.mv == Mv{}) && !(b.ref == 0 && b.mv == Mv{}))
      mv = predict_mv(0, 0, 0, 16, 0, 0);
    set_partition(0, 0, 0, 16, 16, 0, mv);
    end_mb(addr, kMbSkip);
  }

  // ref_idx of the partition at (x, y) in the MB (te(v), or CABAC with 9.3.3.1.1.6).
  uint32_t read_ref_idx(int list, int x, int y) {
    const uint32_t active = sh_->num_ref_idx_active[list];
    if (active <= 1) return 0;
    uint32_t v;
    if (cabac_) {
      const int inc = ref_gt0(list, x - 1, y) + 2 * ref_gt0(list, x, y - 1);
      v = cabac_->ref_idx(inc);
    } else {
      v = r_->te(active - 1);
    }
    if (v >= active) throw CorruptStream("ref_idx " + std::to_string(v) + " exceeds the reference list");
    return v;
  }

  // mvd of a w x h partition at (x, y) (se(v), or CABAC with 9.3.3.1.1.7); CABAC also records
  // the absolute values its neighbours' contexts read.
  Mv read_mvd(int list, int x, int y, int w, int h) {
    if (!cabac_) {
      const int32_t mx = r_->se_range(-32768, 32767, "mvd x");  // 7.4.5.1 value range
      const int32_t my = r_->se_range(-32768, 32767, "mvd y");
      return {static_cast<int16_t>(mx), static_cast<int16_t>(my)};
    }
    int32_t comp[2];
    for (int c = 0; c < 2; ++c) {
      const int sum = mvd_abs(list, x - 1, y, c) + mvd_abs(list, x, y - 1, c);
      comp[c] = cabac_->mvd(c, sum);
      if (comp[c] < -32768 || comp[c] > 32767) throw CorruptStream("mvd outside its value range");
    }
    const uint8_t abs_x = static_cast<uint8_t>(std::min(std::abs(comp[0]), 255));
    const uint8_t abs_y = static_cast<uint8_t>(std::min(std::abs(comp[1]), 255));
    for (int by = y / 4; by < (y + h) / 4; ++by)
      for (int bx = x / 4; bx < (x + w) / 4; ++bx) {
        cur_->mvd_abs[list][by * 4 + bx][0] = abs_x;
        cur_->mvd_abs[list][by * 4 + bx][1] = abs_y;
      }
    return {static_cast<int16_t>(comp[0]), static_cast<int16_t>(comp[1])};
  }

  void record_ref(int list, int x, int y, int w, int h, uint32_t ref) {
    if (!cabac_ || ref == 0) return;
    for (int by = y / 4; by < (y + h) / 4; ++by)
      for (int bx = x / 4; bx < (x + w) / 4; ++bx) cur_->ref_gt0[list] |= static_cast<uint16_t>(1u << (by * 4 + bx));
  }

  // The macroblock holding luma location (x, y) relative to the current one (itself, or its
  // left or upper neighbour: x and y are never both negative) and the raster index of the 4x4
  // block there; null when that macroblock is not available.
  const MbState* block_owner(int x, int y, int& block) const {
    block = ((y & 15) >> 2) * 4 + ((x & 15) >> 2);
    return x < 0 ? mb_a() : (y < 0 ? mb_b() : cur_);
  }
  int ref_gt0(int list, int x, int y) const {
    int block;
    const MbState* n = block_owner(x, y, block);
    return n ? (n->ref_gt0[list] >> block) & 1 : 0;
  }
  int mvd_abs(int list, int x, int y, int c) const {
    int block;
    const MbState* n = block_owner(x, y, block);
    return n ? n->mvd_abs[list][block][c] : 0;
  }

  // ---- CABAC ctxIdxInc from neighbouring macroblocks (9.3.3.1.1) ----
  const MbState* mb_a() const { return avail_a_ ? cur_ - 1 : nullptr; }
  const MbState* mb_b() const { return avail_b_ ? cur_ - w_ : nullptr; }
  int skip_flag_inc() const {
    return (mb_a() && !mb_a()->skip) + (mb_b() && !mb_b()->skip);
  }
  int mb_type_inc() const {
    if (sh_->slice_type == kSliceI) return (mb_a() && !mb_a()->i_nxn) + (mb_b() && !mb_b()->i_nxn);
    return (mb_a() && !mb_a()->direct16) + (mb_b() && !mb_b()->direct16);
  }
  int chroma_pred_mode_inc() const {
    auto cond = [](const MbState* n) { return n && n->intra && !n->pcm && n->chroma_pred_mode != 0; };
    return cond(mb_a()) + cond(mb_b());
  }
  int transform_8x8_inc() const {
    return (mb_a() && mb_a()->transform_8x8) + (mb_b() && mb_b()->transform_8x8);
  }
  // coded_block_pattern luma bin of 8x8 block b8 (9.3.3.1.1.4); `so_far` holds earlier bins.
  int cbp_luma_inc(int b8, uint32_t so_far) const {
    auto cond = [&](const MbState* n, int b8n, bool inside) -> int {
      if (inside) return ((so_far >> b8n) & 1) == 0;
      if (!n || n->pcm) return 0;
      return n->skip || ((n->cbp_luma >> b8n) & 1) == 0;
    };
    const int a = b8 % 2 == 1 ? cond(nullptr, b8 - 1, true) : cond(mb_a(), b8 + 1, false);
    const int b = b8 / 2 == 1 ? cond(nullptr, b8 - 2, true) : cond(mb_b(), b8 + 2, false);
    return a + 2 * b;
  }
  int cbp_chroma_inc(int bin) const {
    auto cond = [bin](const MbState* n) {
      return n && (n->pcm || (!n->skip && (bin == 0 ? n->cbp_chroma != 0 : n->cbp_chroma == 2)));
    };
    return cond(mb_a()) + 2 * cond(mb_b());
  }

  // coded_block_flag condTermFlagN (9.3.3.1.1.9) for a neighbouring MB n (null: unavailable).
  int cbf_unavailable() const { return cur_->intra ? 1 : 0; }
  int cbf_luma_cond(int bx, int by) const {  // 4x4 block coordinates relative to the current MB
    if (bx >= 0 && by >= 0) return (cur_->cbf_luma >> (by * 4 + bx)) & 1;
    const MbState* n = bx < 0 ? mb_a() : mb_b();
    bx &= 3;
    by &= 3;
    if (!n) return cbf_unavailable();
    if (n->pcm) return 1;
    if (n->skip || !((n->cbp_luma >> ((by / 2) * 2 + bx / 2)) & 1)) return 0;
    if (n->transform_8x8) return 1;  // the 8x8 block's flag, inferred 1 for 4:2:0
    return (n->cbf_luma >> (by * 4 + bx)) & 1;
  }
  int cbf_luma_dc_inc() const {
    auto cond = [this](const MbState* n) {
      if (!n) return cbf_unavailable();
      if (n->pcm) return 1;
      return n->i16 && n->cbf_luma_dc ? 1 : 0;
    };
    return cond(mb_a()) + 2 * cond(mb_b());
  }
  int cbf_chroma_dc_inc(int plane) const {
    auto cond = [this, plane](const MbState* n) {
      if (!n) return cbf_unavailable();
      if (n->pcm) return 1;
      if (n->skip || n->cbp_chroma == 0) return 0;
      return (n->cbf_chroma_dc >> plane) & 1;
    };
    return cond(mb_a()) + 2 * cond(mb_b());
  }
  int cbf_chroma_ac_cond(int plane, int bx, int by) const {
    if (bx >= 0 && by >= 0) return (cur_->cbf_chroma_ac >> (plane * 4 + by * 2 + bx)) & 1;
    const MbState* n = bx < 0 ? mb_a() : mb_b();
    bx &= 1;
    by &= 1;
    if (!n) return cbf_unavailable();
    if (n->pcm) return 1;
    if (n->skip || n->cbp_chroma != 2) return 0;
    return (n->cbf_chroma_ac >> (plane * 4 + by * 2 + bx)) & 1;
  }

  static Mv add(Mv a, Mv b) {
    // Vector arithmetic wraps to 16 bits (8.4.1: mvLX = (mvpLX + mvdLX + 2^16) % 2^16).
    return {static_cast<int16_t>(static_cast<uint16_t>(a.x + b.x)), static_cast<int16_t>(static_cast<uint16_t>(a.y + b.y))};
  }

  void macroblock_layer(int addr) {
    BitReader& r = *r_;
    const SliceType st = sh_->slice_type;
    uint32_t raw_type;
    if (cabac_) {
      raw_type = st == kSliceI ? cabac_->mb_type_i(mb_type_inc())
                               : (st == kSliceP ? cabac_->mb_type_p() : cabac_->mb_type_b(mb_type_inc()));
    } else {
      raw_type = r.ue_max(st == kSliceI ? 25 : (st == kSliceP ? 30 : 48), "mb_type");
    }
    const MbTypeInfo t = st == kSliceI ? intra_mb_type(raw_type) : (st == kSliceP ? p_mb_type(raw_type) : b_mb_type(raw_type));
    const bool intra = t.kind == MbKind::kIntra4x4 || t.kind == MbKind::kIntra16x16 || t.kind == MbKind::kPcm;
    cur_->intra = intra;
    cur_->i_nxn = t.kind == MbKind::kIntra4x4;
    cur_->i16 = t.kind == MbKind::kIntra16x16;
    cur_->direct16 = t.kind == MbKind::kDirect16x16;

    if (t.kind == MbKind::kPcm) {
      pcm_samples();
      cur_->pcm = true;
      std::fill(std::begin(cur_->total_coeff), std::end(cur_->total_coeff), 16);
      for (auto& plane : cur_->total_coeff_chroma) std::fill(std::begin(plane), std::end(plane), 16);
      out_.macroblocks.cbp[static_cast<size_t>(addr)] = 0x2f;  // every sample is coded
      prev_qp_delta_nonzero_ = false;
      end_mb(addr, kMbPcm);
      return;
    }

    bool transform_8x8 = false;
    bool no_sub_8x8 = true;  // noSubMbPartSizeLessThan8x8Flag
    if (t.kind == MbKind::kInter && t.num_parts == 4) {
      sub_mb_pred(t, no_sub_8x8);
    } else {
      if (t.kind == MbKind::kIntra4x4 && pps_.transform_8x8_mode)
        transform_8x8 = cabac_ ? cabac_->transform_size_8x8_flag(transform_8x8_inc()) : r.flag();
      cur_->transform_8x8 = transform_8x8;
      if (intra) {
        intra_pred(t, transform_8x8);
      } else if (t.kind == MbKind::kInter) {
        mb_pred_inter(t);
      } else {
        derive_direct(0xf);  // B_Direct_16x16
      }
    }

    uint32_t cbp_luma = t.cbp_luma, cbp_chroma = t.cbp_chroma;
    if (t.kind != MbKind::kIntra16x16) {
      if (cabac_) {  // FL luma prefix (4 bins), TU chroma suffix (9.3.2.6)
        cbp_luma = 0;
        for (int b8 = 0; b8 < 4; ++b8) cbp_luma |= cabac_->coded_block_pattern_luma_bin(cbp_luma_inc(b8, cbp_luma)) << b8;
        cbp_chroma = cabac_->coded_block_pattern_chroma_bin(0, cbp_chroma_inc(0));
        if (cbp_chroma) cbp_chroma += cabac_->coded_block_pattern_chroma_bin(1, cbp_chroma_inc(1));
      } else {
        const uint32_t cbp = read_coded_block_pattern_cavlc(r, t.kind == MbKind::kIntra4x4);
        cbp_luma = cbp & 15;
        cbp_chroma = cbp >> 4;
      }
      if (cbp_luma > 0 && pps_.transform_8x8_mode && t.kind != MbKind::kIntra4x4 && no_sub_8x8 &&
          (t.kind != MbKind::kDirect16x16 || sps_.direct_8x8_inference)) {
        transform_8x8 = cabac_ ? cabac_->transform_size_8x8_flag(transform_8x8_inc()) : r.flag();
        cur_->transform_8x8 = transform_8x8;
      }
    }
    cur_->cbp_luma = static_cast<uint8_t>(cbp_luma);
    cur_->cbp_chroma = static_cast<uint8_t>(cbp_chroma);
    out_.macroblocks.cbp[static_cast<size_t>(addr)] = static_cast<int8_t>(cbp_luma | (cbp_chroma << 4));
    bool qp_delta_nonzero = false;
    if (cbp_luma > 0 || cbp_chroma > 0 || t.kind == MbKind::kIntra16x16) {
      const int32_t delta = cabac_ ? cabac_->mb_qp_delta(prev_qp_delta_nonzero_) : r.se();
      if (delta < -26 || delta > 25) throw CorruptStream("mb_qp_delta " + std::to_string(delta) + " outside [-26, 25]");
      qp_delta_nonzero = delta != 0;
      qp_ = (qp_ + delta + 52) % 52;  // 7.4.5, 8-bit: QpBdOffsetY = 0
      residual(t, intra, transform_8x8, cbp_luma, cbp_chroma);
    }
    prev_qp_delta_nonzero_ = qp_delta_nonzero;
    end_mb(addr, intra ? kMbIntra : (t.kind == MbKind::kDirect16x16 ? kMbDirect : kMbInter));
  }

  // pcm_alignment_zero_bit and the 384 samples of an I_PCM macroblock (7.3.5).
  void pcm_samples() {
    BitReader& r = *r_;
    if (cabac_) cabac_->sync_reader();
    // After CABAC's terminate bin the encoder's flush may leave a few bits before the
    // alignment: the samples start at the next byte boundary (as decoders locate them).
    while (!r.byte_aligned())
      if (r.u(1) != 0 && !cabac_) throw CorruptStream("pcm_alignment_zero_bit is not zero");
    r.skip(384 * 8);  // 256 luma + 2 x 64 chroma samples, 8 bits each
    if (cabac_) cabac_->restart_engine();
  }

  void intra_pred(const MbTypeInfo& t, bool transform_8x8) {  // 7.3.5.1, intra part
    BitReader& r = *r_;
    MacroblockGrid& g = out_.macroblocks;
    const size_t addr = static_cast<size_t>(mb_y_ * w_ + mb_x_);
    if (t.kind == MbKind::kIntra4x4) {
      const int count = transform_8x8 ? 4 : 16, size = transform_8x8 ? 2 : 1;  // in 4x4 blocks
      for (int i = 0; i < count; ++i) {  // prev_intra_pred_mode_flag, rem_intra_pred_mode
        bool prev;
        uint32_t rem = 0;
        if (cabac_) {
          prev = cabac_->prev_intra_pred_mode_flag();
          if (!prev) rem = cabac_->rem_intra_pred_mode();
        } else {
          prev = r.flag();
          if (!prev) rem = r.u(3);
        }
        const int bx = transform_8x8 ? 2 * (i % 2) : kBlockX[i], by = transform_8x8 ? 2 * (i / 2) : kBlockY[i];
        const int8_t mode = intra_nxn_pred_mode(intra_mode_neighbour(bx - 1, by), intra_mode_neighbour(bx, by - 1), prev, rem);
        for (int y = by; y < by + size; ++y)
          for (int x = bx; x < bx + size; ++x) g.intra_pred[block_index(0, x, y)] = mode;
      }
      g.intra_size[addr] = static_cast<int8_t>(transform_8x8 ? 8 : 4);
    } else {
      for (int y = 0; y < 4; ++y)
        std::memset(&g.intra_pred[block_index(0, 0, y)], t.intra16x16_pred_mode, 4);
      g.intra_size[addr] = 16;
    }
    cur_->chroma_pred_mode = static_cast<uint8_t>(
        cabac_ ? cabac_->intra_chroma_pred_mode(chroma_pred_mode_inc()) : r.ue_max(3, "intra_chroma_pred_mode"));
    g.intra_chroma_pred[addr] = static_cast<int8_t>(cur_->chroma_pred_mode);
    mark_decoded(0, 0, 16, 16);  // intra: ref_idx -1 and zero vectors (already stored)
  }

  // intraMxMPredModeN (8.3.1.1, 8.3.2.1) of the 4x4 block (bx, by) relative to the current MB:
  // inside it (already derived), or in macroblock A (bx = -1) or B (by = -1).
  int8_t intra_mode_neighbour(int bx, int by) const {
    const MbState* n = bx >= 0 && by >= 0 ? cur_ : (bx < 0 ? mb_a() : mb_b());  // null when not available
    if (!n) return kDcPredicted;
    const int8_t mode = out_.macroblocks.intra_pred[block_index(0, bx, by)];
    return n == cur_ ? mode : neighbour_intra_mode(true, !n->intra, n->i_nxn, mode, pps_.constrained_intra_pred);
  }

  void mb_pred_inter(const MbTypeInfo& t) {  // 7.3.5.1, inter part
    int ref[2][2] = {{-1, -1}, {-1, -1}};
    Mv mvd[2][2];
    const int pw = t.part_width, ph = t.part_height;
    auto origin = [&](int p, int& x, int& y) {
      x = pw == 8 ? 8 * p : 0;
      y = ph == 8 ? 8 * p : 0;
    };
    for (int list = 0; list < 2; ++list)
      for (int p = 0; p < t.num_parts; ++p)
        if (t.pred[p] & (1 << list)) {
          int x, y;
          origin(p, x, y);
          ref[list][p] = static_cast<int>(read_ref_idx(list, x, y));
          record_ref(list, x, y, pw, ph, static_cast<uint32_t>(ref[list][p]));
        }
    for (int list = 0; list < 2; ++list)
      for (int p = 0; p < t.num_parts; ++p)
        if (t.pred[p] & (1 << list)) {
          int x, y;
          origin(p, x, y);
          mvd[list][p] = read_mvd(list, x, y, pw, ph);
        }
    const int shape = t.num_parts == 1 ? 0 : (t.part_height == 8 ? 168 : 816);
    for (int p = 0; p < t.num_parts; ++p) {
      const int x = t.part_width == 8 ? 8 * p : 0, y = t.part_height == 8 ? 8 * p : 0;
      for (int list = 0; list < 2; ++list) {
        if (!(t.pred[p] & (1 << list))) continue;
        const Mv mvp = predict_mv(list, x, y, t.part_width, ref[list][p], shape);
        set_partition(list, x, y, t.part_width, t.part_height, ref[list][p], add(mvp, mvd[list][p]));
      }
      mark_decoded(x, y, t.part_width, t.part_height);
    }
  }

  void sub_mb_pred(const MbTypeInfo& t, bool& no_sub_8x8) {  // 7.3.5.2
    BitReader& r = *r_;
    const bool b_slice = sh_->slice_type == kSliceB;
    SubMbTypeInfo sub[4];
    for (auto& s : sub) {
      if (cabac_)
        s = b_slice ? b_sub_mb_type(cabac_->sub_mb_type_b()) : p_sub_mb_type(cabac_->sub_mb_type_p());
      else
        s = b_slice ? b_sub_mb_type(r.ue_max(12, "sub_mb_type")) : p_sub_mb_type(r.ue_max(3, "sub_mb_type"));
    }
    auto sub_origin = [&](int i, int j, int& x, int& y) {
      const int pw = sub[i].part_width, ph = sub[i].part_height;
      x = 8 * (i % 2) + (pw == 8 ? 0 : 4 * (j % 2));
      y = 8 * (i / 2) + (ph == 8 ? 0 : 4 * (pw == 8 ? j : j / 2));
    };
    int ref[2][4] = {{-1, -1, -1, -1}, {-1, -1, -1, -1}};
    for (int list = 0; list < 2; ++list)
      for (int i = 0; i < 4; ++i)
        if (sub[i].pred != kPredDirect && (sub[i].pred & (1 << list))) {
          ref[list][i] = t.ref0 ? 0 : static_cast<int>(read_ref_idx(list, 8 * (i % 2), 8 * (i / 2)));
          record_ref(list, 8 * (i % 2), 8 * (i / 2), 8, 8, static_cast<uint32_t>(ref[list][i]));
        }
    Mv mvd[2][4][4];
    for (int list = 0; list < 2; ++list)
      for (int i = 0; i < 4; ++i)
        if (sub[i].pred != kPredDirect && (sub[i].pred & (1 << list)))
          for (int j = 0; j < sub[i].num_parts; ++j) {
            int x, y;
            sub_origin(i, j, x, y);
            mvd[list][i][j] = read_mvd(list, x, y, sub[i].part_width, sub[i].part_height);
          }
    for (int i = 0; i < 4; ++i) {
      if (sub[i].pred == kPredDirect) {
        if (!sps_.direct_8x8_inference) no_sub_8x8 = false;
      } else if (sub[i].num_parts > 1) {
        no_sub_8x8 = false;
      }
    }
    for (int i = 0; i < 4; ++i) {
      const int x0 = 8 * (i % 2), y0 = 8 * (i / 2);
      if (sub[i].pred == kPredDirect) {
        derive_direct(1u << i);
        mark_decoded(x0, y0, 8, 8);
        continue;
      }
      const int pw = sub[i].part_width, ph = sub[i].part_height;
      for (int j = 0; j < sub[i].num_parts; ++j) {
        int x, y;
        sub_origin(i, j, x, y);
        for (int list = 0; list < 2; ++list) {
          if (!(sub[i].pred & (1 << list))) continue;
          const Mv mvp = predict_mv(list, x, y, pw, ref[list][i], 0);
          set_partition(list, x, y, pw, ph, ref[list][i], add(mvp, mvd[list][i][j]));
        }
        mark_decoded(x, y, pw, ph);
      }
    }
  }

  // ---- residual (7.3.5.3) ----
  // One block's nonzero levels (scan positions from 0): residual_block_cavlc, or CABAC's
  // coded_block_flag (context from `cbf_inc`) and levels. Returns their number.
  int read_block(BlockCat cat, int nc, int cbf_inc, int max_num_coeff, BlockLevels& out) {
    if (!cabac_) {  // CAVLC blocks hold at most 16 levels (an 8x8 block comes as four 4x4)
      int32_t dense[16] = {};
      const int size = std::min(max_num_coeff, 16);
      const int end = cat == kCatLumaAc || cat == kCatChromaAc ? 14 : size - 1;
      const int total = read_residual_block_cavlc(*r_, nc, 0, end, size, dense);
      out.count = 0;
      for (int k = 0; k < size; ++k)
        if (dense[k] != 0) {
          out.scan[out.count] = static_cast<uint8_t>(k);
          out.level[out.count++] = dense[k];
        }
      return total;
    }
    out.count = 0;
    if (cat != kCatLuma8x8 && !cabac_->coded_block_flag(cat, cbf_inc)) return 0;
    return cabac_->residual_levels(cat, max_num_coeff, out);
  }

  // A DC block's levels in raster order of its transform (zig-zag for the 4x4 luma DC, 8.5.6;
  // the 2x2 chroma DC's scan is raster).
  static void scatter_dc(const BlockLevels& b, const uint8_t* to_raster, int32_t* c) {
    for (int k = 0; k < b.count; ++k) c[to_raster[b.scan[k]]] = b.level[k];
  }

  void residual(const MbTypeInfo& t, bool intra, bool transform_8x8, uint32_t cbp_luma, uint32_t cbp_chroma) {
    const bool i16 = t.kind == MbKind::kIntra16x16;
    const auto& ls_y = scales_.s4[static_cast<size_t>(intra ? 0 : 3)][static_cast<size_t>(qp_ % 6)];
    BlockLevels levels;
    int32_t dc[16] = {};
    if (i16) {
      const int nc = cabac_ ? 0 : predict_nc(luma_total_coeff(-1, 0), luma_total_coeff(0, -1));
      cur_->cbf_luma_dc = read_block(kCatLumaDc, nc, cabac_ ? cbf_luma_dc_inc() : 0, 16, levels) > 0;
      int32_t c[16] = {};
      scatter_dc(levels, kZigzag4x4.data(), c);
      luma_dc_transform(c, qp_, ls_y[0], dc);  // dc[] is spatial: row = block y, column = block x
    }
    for (int i8 = 0; i8 < 4; ++i8) {
      const bool coded = (cbp_luma >> i8) & 1;
      if (transform_8x8) {
        if (!coded) continue;  // total_coeff and coded_block_flags stay 0
        if (cabac_) {
          const int count = read_block(kCatLuma8x8, 0, 0, 64, levels);
          // The block's coefficient count goes to its top-left 4x4 (CAVLC splits it over four).
          cur_->total_coeff[kBlockY[i8 * 4] * 4 + kBlockX[i8 * 4]] = static_cast<uint8_t>(count);
          for (int i4 = 0; i4 < 4; ++i4) {  // the 8x8 block's coded_block_flag, inferred 1
            const int blk = i8 * 4 + i4;
            cur_->cbf_luma |= static_cast<uint16_t>(1u << (kBlockY[blk] * 4 + kBlockX[blk]));
          }
        } else {
          levels.count = 0;
          BlockLevels sub;
          for (int i4 = 0; i4 < 4; ++i4) {  // 8x8 from four interleaved 4x4 scans
            const int blk = i8 * 4 + i4, bx = kBlockX[blk], by = kBlockY[blk];
            const int nc = predict_nc(luma_total_coeff(bx - 1, by), luma_total_coeff(bx, by - 1));
            cur_->total_coeff[by * 4 + bx] = static_cast<uint8_t>(read_block(kCatLuma4x4, nc, 0, 16, sub));
            for (int k = 0; k < sub.count; ++k) {
              levels.scan[levels.count] = static_cast<uint8_t>(4 * sub.scan[k] + i4);
              levels.level[levels.count++] = sub.level[k];
            }
          }
        }
        emit8x8(levels, intra ? 0 : 1, (i8 % 2) * 8, (i8 / 2) * 8);
        continue;
      }
      for (int i4 = 0; i4 < 4; ++i4) {
        const int blk = i8 * 4 + i4, bx = kBlockX[blk], by = kBlockY[blk];
        int total = 0;
        levels.count = 0;
        if (coded) {
          const int nc = cabac_ ? 0 : predict_nc(luma_total_coeff(bx - 1, by), luma_total_coeff(bx, by - 1));
          const int inc = cabac_ ? cbf_luma_cond(bx - 1, by) + 2 * cbf_luma_cond(bx, by - 1) : 0;
          total = i16 ? read_block(kCatLumaAc, nc, inc, 15, levels) : read_block(kCatLuma4x4, nc, inc, 16, levels);
          if (total > 0) cur_->cbf_luma |= static_cast<uint16_t>(1u << (by * 4 + bx));
        }
        cur_->total_coeff[by * 4 + bx] = static_cast<uint8_t>(total);
        if (total == 0 && !(i16 && dc[by * 4 + bx] != 0)) continue;
        emit4x4(levels, i16, i16 ? dc[by * 4 + bx] : 0, ls_y, qp_, 0, 4 * bx, 4 * by);
      }
    }
    // Chroma (4:2:0): DC 2x2 per component, then 4 AC blocks per component.
    int32_t chroma_dc[2][4] = {};
    int qpc[2];
    static constexpr uint8_t kRaster2x2[4] = {0, 1, 2, 3};
    for (int plane = 0; plane < 2; ++plane) {
      qpc[plane] = chroma_qp(qp_, plane == 0 ? pps_.chroma_qp_index_offset : pps_.second_chroma_qp_index_offset);
      if (!(cbp_chroma & 3)) continue;
      if (read_block(kCatChromaDc, -1, cabac_ ? cbf_chroma_dc_inc(plane) : 0, 4, levels) > 0)
        cur_->cbf_chroma_dc |= static_cast<uint8_t>(1u << plane);
      int32_t c[4] = {};
      scatter_dc(levels, kRaster2x2, c);
      const auto& ls = scales_.s4[static_cast<size_t>((intra ? 1 : 4) + plane)][static_cast<size_t>(qpc[plane] % 6)];
      chroma_dc_transform(c, qpc[plane], ls[0], chroma_dc[plane]);
    }
    for (int plane = 0; plane < 2; ++plane) {
      const auto& ls = scales_.s4[static_cast<size_t>((intra ? 1 : 4) + plane)][static_cast<size_t>(qpc[plane] % 6)];
      for (int blk = 0; blk < 4; ++blk) {
        const int bx = blk % 2, by = blk / 2;
        int total = 0;
        levels.count = 0;
        if (cbp_chroma & 2) {
          const int nc =
              cabac_ ? 0 : predict_nc(chroma_total_coeff(plane, bx - 1, by), chroma_total_coeff(plane, bx, by - 1));
          const int inc =
              cabac_ ? cbf_chroma_ac_cond(plane, bx - 1, by) + 2 * cbf_chroma_ac_cond(plane, bx, by - 1) : 0;
          total = read_block(kCatChromaAc, nc, inc, 15, levels);
          if (total > 0) cur_->cbf_chroma_ac |= static_cast<uint8_t>(1u << (plane * 4 + blk));
        }
        cur_->total_coeff_chroma[plane][blk] = static_cast<uint8_t>(total);
        if (total == 0 && chroma_dc[plane][blk] == 0) continue;
        emit4x4(levels, true, chroma_dc[plane][blk], ls, qpc[plane], 1 + plane, 4 * bx, 4 * by);
      }
    }
  }

  // Scales a block's levels (an AC block, `ac`, has its DC `dc` already scaled by its own
  // transform) into the output if any coefficient survives.
  void emit4x4(const BlockLevels& levels, bool ac, int32_t dc, const std::array<int32_t, 16>& ls, int qp, int plane,
               int x, int y) {
    int16_t* block = next_block(out_.coefficients.coeffs4, out_.coefficients.positions4.size(), 16);
    bool nonzero = scale_scan4x4(levels, ac ? 1 : 0, qp, ls, block);
    if (ac) {
      block[0] = saturate16(dc);
      nonzero |= dc != 0;
    }
    if (!nonzero) return;
    const int mb_size = plane == 0 ? 16 : 8;
    out_.coefficients.positions4.push_back({static_cast<uint16_t>(plane), static_cast<uint16_t>(mb_x_ * mb_size + x),
                                            static_cast<uint16_t>(mb_y_ * mb_size + y)});
  }

  // Zeroed room for block number `index` of `size` coefficients. The array grows in large steps
  // (new room uninitialised) and is cut to the blocks kept at the end (run).
  static int16_t* next_block(PictureArray<int16_t>& coeffs, size_t index, size_t size) {
    const size_t end = (index + 1) * size;
    if (end > coeffs.size()) coeffs.resize(std::max(2 * coeffs.size(), end));
    int16_t* block = coeffs.data() + index * size;
    std::fill_n(block, size, int16_t{0});
    return block;
  }

  void emit8x8(const BlockLevels& levels, int list, int x, int y) {
    int16_t* block = next_block(out_.coefficients.coeffs8, out_.coefficients.positions8.size(), 64);
    if (!scale_scan8x8(levels, qp_, scales_.s8[static_cast<size_t>(list)][static_cast<size_t>(qp_ % 6)], block)) return;
    out_.coefficients.positions8.push_back({0, static_cast<uint16_t>(mb_x_ * 16 + x), static_cast<uint16_t>(mb_y_ * 16 + y)});
  }

  const Picture& pic_;
  const Stream& stream_;
  const Sps& sps_;
  const Pps& pps_;
  const int w_, h_, w4_;
  const ptrdiff_t list_blocks_;  // 4x4 blocks per list in the motion arrays
  const LevelScales scales_;
  PictureArray<MbState> mbs_;
  ParsedPicture out_;

  const SliceHeader* sh_ = nullptr;
  BitReader* r_ = nullptr;
  CabacDecoder* cabac_ = nullptr;  // set while a CABAC slice is parsed
  const std::array<RefPicList, 2>* lists_ = nullptr;  // the current slice's reference lists
  std::shared_ptr<const ParsedPicture> colocated_;     // B slices: RefPicList1[0]
  bool spatial_ready_ = false, direct_zero_ = false;   // spatial direct, per MB
  int spatial_ref_[2] = {-1, -1};
  Mv spatial_mvp_[2];
  bool prev_qp_delta_nonzero_ = false;  // of the previous MB in the slice (mb_qp_delta context)
  int slice_ = 0;
  int qp_ = 26;
  int mb_x_ = 0, mb_y_ = 0;
  ptrdiff_t mb_block_ = 0;  // index of the current MB's top-left 4x4 block in a [H4][W4] array
  MbState* cur_ = nullptr;
  bool decoded_[16] = {};  // 4x4 blocks of the current MB whose motion is known
  bool avail_a_ = false, avail_b_ = false, avail_c_ = false, avail_d_ = false;  // neighbour MBs (6.4.9)
};

}  // namespace

ParsedPicture parse_picture(const Picture& picture, const Stream& stream) {
  return PictureParser(picture, stream).run();
}

void render_residual(const CoefficientBlocks& blocks, int coded_width, int coded_height, int16_t* y, int16_t* u,
                     int16_t* v) {
  std::memset(y, 0, sizeof(int16_t) * static_cast<size_t>(coded_width * coded_height));
  std::memset(u, 0, sizeof(int16_t) * static_cast<size_t>(coded_width * coded_height / 4));
  std::memset(v, 0, sizeof(int16_t) * static_cast<size_t>(coded_width * coded_height / 4));
  int16_t* planes[3] = {y, u, v};
  for (size_t b = 0; b < blocks.positions4.size(); ++b) {
    const auto& p = blocks.positions4[b];
    const int stride = p.plane == 0 ? coded_width : coded_width / 2;
    int32_t d[16];
    for (int k = 0; k < 16; ++k) d[k] = blocks.coeffs4[16 * b + static_cast<size_t>(k)];
    inverse_transform4x4(d, planes[p.plane] + static_cast<size_t>(p.y) * static_cast<size_t>(stride) + p.x, stride);
  }
  for (size_t b = 0; b < blocks.positions8.size(); ++b) {
    const auto& p = blocks.positions8[b];
    int32_t d[64];
    for (int k = 0; k < 64; ++k) d[k] = blocks.coeffs8[64 * b + static_cast<size_t>(k)];
    inverse_transform8x8(d, y + static_cast<size_t>(p.y) * static_cast<size_t>(coded_width) + p.x, coded_width);
  }
}

}  // namespace vccv
