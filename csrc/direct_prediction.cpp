// Direct prediction in B slices (8.4.1.2): spatial (8.4.1.2.2) and temporal (8.4.1.2.3) motion
// of B_Skip, B_Direct_16x16 and B_Direct_8x8 from the co-located picture (8.4.1.2.1).
#include <algorithm>
#include <cstdlib>

#include "errors.h"
#include "picture_parser.h"

namespace vccv {

namespace {

int min_positive(int a, int b) { return a >= 0 && b >= 0 ? std::min(a, b) : std::max(a, b); }

}  // namespace

// Always inlined: a Colocated returned from a call is put together in memory with narrow stores
// and read back wide, which stalls the load (store forwarding fails).
[[gnu::always_inline]] inline PictureParser::Colocated PictureParser::colocated(int bx, int by) const {
  const ParsedPicture& col = *colocated_;
  Colocated c;
  const int8_t col_type = col.macroblocks.mb_type[static_cast<size_t>(mb_y_ * w_ + mb_x_)];
  if (col_type == kMbIntra || col_type == kMbPcm) return c;
  for (int list = 0; list < 2; ++list) {  // the same geometry as the current picture
    const size_t i = block_index(list, bx, by);
    if (col.macroblocks.ref_idx[i] < 0) continue;
    c.ref = col.macroblocks.ref_idx[i];
    c.mv = {col.macroblocks.mv[2 * i], col.macroblocks.mv[2 * i + 1]};
    c.list = list;
    break;
  }
  return c;
}

void PictureParser::spatial_setup() {
  if (spatial_ready_) return;
  spatial_ready_ = true;
  Neighbour a[2], b[2], c[2];
  for (int list = 0; list < 2; ++list) {
    a[list] = neighbour(list, -1, 0);
    b[list] = neighbour(list, 0, -1);
    c[list] = neighbour_c16(list);
    spatial_ref_[list] = min_positive(a[list].ref, min_positive(b[list].ref, c[list].ref));
  }
  direct_zero_ = spatial_ref_[0] < 0 && spatial_ref_[1] < 0;
  if (direct_zero_) spatial_ref_[0] = spatial_ref_[1] = 0;
  for (int list = 0; list < 2; ++list)  // predict_mv of a 16x16 partition, from the same neighbours
    spatial_mvp_[list] = spatial_ref_[list] >= 0 && !direct_zero_
                             ? median_prediction(a[list], b[list], c[list], spatial_ref_[list])
                             : Mv{};
}

void PictureParser::derive_direct(unsigned quadrants) {
  if (sh_->direct_spatial_mv_pred) {
    spatial_setup();
    if (sps_.direct_8x8_inference) return spatial_direct_8x8(quadrants);
  }
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

bool PictureParser::col_zero_flag(const Colocated& col) const {  // 8.4.1.2.2
  return !slice_lists()[1][0].long_term && col.ref == 0 && col.mv.x >= -1 && col.mv.x <= 1 && col.mv.y >= -1 &&
         col.mv.y <= 1;
}

Mv PictureParser::spatial_mv(int list, bool col_zero) const {  // 8.4.1.2.2
  const int ref = spatial_ref_[list];
  return ref >= 0 && !direct_zero_ && !(ref == 0 && col_zero) ? spatial_mvp_[list] : Mv{};
}

void PictureParser::spatial_direct_8x8(unsigned quadrants) {
  // colZeroFlag of each quadrant (bit q), from its corner block: it matters only where a list
  // predicts from reference 0.
  unsigned col_zero = 0;
  if (!direct_zero_ && (spatial_ref_[0] == 0 || spatial_ref_[1] == 0)) {
    for (int q = 0; q < 4; ++q)
      if (((quadrants >> q) & 1) && col_zero_flag(colocated(3 * (q % 2), 3 * (q / 2)))) col_zero |= 1u << q;
  }
  for (int list = 0; list < 2; ++list) {
    const unsigned still = spatial_ref_[list] == 0 ? col_zero & quadrants : 0;  // the flags this list obeys
    if (quadrants == 0xf && (still == 0 || still == 0xf)) {                     // one motion for the whole macroblock
      store_motion(list, 0, 0, 4, 4, spatial_ref_[list], spatial_mv(list, still != 0));
      continue;
    }
    for (int q = 0; q < 4; ++q)
      if ((quadrants >> q) & 1)
        store_motion(list, 2 * (q % 2), 2 * (q / 2), 2, 2, spatial_ref_[list], spatial_mv(list, (still >> q) & 1));
  }
}

void PictureParser::direct_block(const Colocated& col, int bx, int by, int size) {
  if (sh_->direct_spatial_mv_pred) {  // 8.4.1.2.2
    const bool col_zero = col_zero_flag(col);
    for (int list = 0; list < 2; ++list)
      store_motion(list, bx, by, size, size, spatial_ref_[list], spatial_mv(list, col_zero));
    return;
  }
  // 8.4.1.2.3 temporal: list 0 refers to the co-located block's reference picture.
  const RefPicList& list0 = slice_lists()[0];
  int ref0 = 0;
  if (col.ref >= 0) {
    // The picture the co-located block refers to, through the slice of its macroblock there.
    const int32_t picture = colocated_->ref_picture_in(static_cast<size_t>(mb_y_ * w_ + mb_x_), col.list, col.ref);
    ref0 = -1;
    for (size_t i = 0; i < list0.size() && ref0 < 0; ++i)
      if (list0[i].picture == picture) ref0 = static_cast<int>(i);
    if (ref0 < 0) throw CorruptStream("temporal direct: the co-located reference is not in RefPicList0");
  }
  Mv mv0 = col.mv, mv1;
  if (const TemporalScale& t = temporal_scales_[static_cast<size_t>(ref0)]; t.scaled) {
    mv0 = {static_cast<int16_t>((t.factor * col.mv.x + 128) >> 8),
           static_cast<int16_t>((t.factor * col.mv.y + 128) >> 8)};
    mv1 = {static_cast<int16_t>(mv0.x - col.mv.x), static_cast<int16_t>(mv0.y - col.mv.y)};
  }
  store_motion(0, bx, by, size, size, ref0, mv0);
  store_motion(1, bx, by, size, size, 0, mv1);
}

void PictureParser::prepare_temporal_direct() {
  const RefPicList& list0 = slice_lists()[0];
  const RefPicList& list1 = slice_lists()[1];
  const int64_t poc1 = stream_.pictures()[static_cast<size_t>(list1[0].picture)].poc;
  temporal_scales_.assign(list0.size(), TemporalScale{});
  for (size_t i = 0; i < list0.size(); ++i) {
    const RefPicEntry& pic0 = list0[i];
    const int64_t poc0 = pic0.picture >= 0 ? stream_.pictures()[static_cast<size_t>(pic0.picture)].poc : 0;
    const int td = static_cast<int>(std::clamp<int64_t>(poc1 - poc0, -128, 127));
    if (pic0.long_term || td == 0) continue;
    const int tb = static_cast<int>(std::clamp<int64_t>(pic_.poc - poc0, -128, 127));
    const int tx = (16384 + std::abs(td / 2)) / td;
    temporal_scales_[i] = {true, std::clamp((tb * tx + 32) >> 6, -1024, 1023)};  // DistScaleFactor
  }
}

}  // namespace vccv
