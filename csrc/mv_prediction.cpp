// Motion vector prediction (8.4.1.3) from neighbouring partitions (6.4.11.7), and the motion of
// skipped macroblocks (P_Skip, 8.4.1.1; B_Skip through direct prediction).
#include <algorithm>

#include "picture_parser.h"

namespace vccv {

namespace {

int median3(int a, int b, int c) { return std::max(std::min(a, b), std::min(std::max(a, b), c)); }

}  // namespace

Mv PictureParser::predict_mv(int list, int x, int y, int w, int ref, int shape) const {
  // A whole-macroblock partition: its neighbours lie outside the macroblock at fixed places, so
  // neighbour() reduces to the availability of A, B, C and D.
  if (w == 16 && shape == 0)
    return median_prediction(neighbour(list, -1, 0), neighbour(list, 0, -1), neighbour_c16(list), ref);
  const Neighbour a = neighbour(list, x - 1, y);
  const Neighbour b = neighbour(list, x, y - 1);
  Neighbour c = neighbour(list, x + w, y - 1);
  if (!c.available) c = neighbour(list, x - 1, y - 1);  // D replaces an unavailable C
  if (shape == 168) {                                   // 16x8 (8.4.1.3, directional)
    if (y == 0 && b.ref == ref) return b.mv;
    if (y == 8 && a.ref == ref) return a.mv;
  } else if (shape == 816) {  // 8x16
    if (x == 0 && a.ref == ref) return a.mv;
    if (x == 8 && c.ref == ref) return c.mv;
  }
  return median_prediction(a, b, c, ref);
}

Mv PictureParser::median_prediction(const Neighbour& a, const Neighbour& b_in, const Neighbour& c_in, int ref) {
  // By reference: Neighbours passed by value were packed into the argument registers with wide
  // loads of the caller's narrow stores, a store-forwarding stall.
  const bool only_a = !b_in.available && !c_in.available && a.available;  // 8.4.1.3.1
  const Neighbour& b = only_a ? a : b_in;
  const Neighbour& c = only_a ? a : c_in;
  const int matches = (a.ref == ref) + (b.ref == ref) + (c.ref == ref);
  if (matches == 1) return a.ref == ref ? a.mv : (b.ref == ref ? b.mv : c.mv);
  return {static_cast<int16_t>(median3(a.mv.x, b.mv.x, c.mv.x)), static_cast<int16_t>(median3(a.mv.y, b.mv.y, c.mv.y))};
}

void PictureParser::skip_macroblock(int addr) {
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
    mv = median_prediction(a, b, neighbour_c16(0), 0);  // predict_mv of the 16x16 partition
  set_partition(0, 0, 0, 16, 16, 0, mv);
  end_mb(addr, kMbSkip);
}

}  // namespace vccv
