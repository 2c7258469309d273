#include "poc.h"

#include <algorithm>

#include "errors.h"

namespace vccv {

int64_t PocDecoder::next(const SliceHeader& h, const Sps& sps) {
  int64_t top = 0, bottom = 0;
  const bool reference = h.nal_ref_idc != 0;
  const bool mmco5 = h.has_mmco5();

  // 8.2.1.2/8.2.1.3: FrameNumOffset; mmco5 resets the offset and the inferred frame_num.
  const int64_t max_frame_num = int64_t{1} << sps.log2_max_frame_num;
  const int64_t prev_offset = prev_had_mmco5_ ? 0 : prev_frame_num_offset_;
  const uint32_t prev_frame_num = prev_had_mmco5_ ? 0 : prev_frame_num_;
  int64_t frame_num_offset = 0;
  if (!h.idr) frame_num_offset = prev_offset + (prev_frame_num > h.frame_num ? max_frame_num : 0);

  if (sps.pic_order_cnt_type == 0) {  // 8.2.1.1
    if (h.idr) prev_ref_msb_ = prev_ref_lsb_ = 0;
    const int64_t max_lsb = int64_t{1} << sps.log2_max_pic_order_cnt_lsb;
    const int64_t lsb = h.pic_order_cnt_lsb;
    int64_t msb = prev_ref_msb_;
    if (lsb < prev_ref_lsb_ && prev_ref_lsb_ - lsb >= max_lsb / 2)
      msb += max_lsb;
    else if (lsb > prev_ref_lsb_ && lsb - prev_ref_lsb_ > max_lsb / 2)
      msb -= max_lsb;
    top = msb + lsb;
    bottom = top + h.delta_pic_order_cnt_bottom;
    if (reference) {
      // After mmco5 the picture's top field count becomes top - min(top, bottom) (8.2.1).
      prev_ref_msb_ = mmco5 ? 0 : msb;
      prev_ref_lsb_ = mmco5 ? top - std::min(top, bottom) : lsb;
    }
  } else if (sps.pic_order_cnt_type == 1) {  // 8.2.1.2
    const auto cycle = static_cast<int64_t>(sps.offset_for_ref_frame.size());
    int64_t abs_frame_num = cycle != 0 ? frame_num_offset + h.frame_num : 0;
    if (!reference && abs_frame_num > 0) --abs_frame_num;
    int64_t expected = 0;
    if (abs_frame_num > 0) {
      int64_t delta_per_cycle = 0;
      for (const int32_t offset : sps.offset_for_ref_frame) delta_per_cycle += offset;
      const int64_t cycle_count = (abs_frame_num - 1) / cycle;
      const int64_t in_cycle = (abs_frame_num - 1) % cycle;
      // Corrupt offsets can make the product exceed 64 bits: reject instead of overflowing.
      if (__builtin_mul_overflow(cycle_count, delta_per_cycle, &expected))
        throw CorruptStream("picture order count overflows (offset_for_ref_frame)");
      for (int64_t i = 0; i <= in_cycle; ++i) expected += sps.offset_for_ref_frame[static_cast<size_t>(i)];
    }
    if (!reference) expected += sps.offset_for_non_ref_pic;
    top = expected + h.delta_pic_order_cnt[0];
    bottom = top + sps.offset_for_top_to_bottom_field + h.delta_pic_order_cnt[1];
  } else {  // 8.2.1.3
    int64_t temp = 0;
    if (!h.idr) temp = 2 * (frame_num_offset + h.frame_num) - (reference ? 0 : 1);
    top = bottom = temp;
  }

  prev_frame_num_offset_ = frame_num_offset;
  prev_frame_num_ = h.frame_num;
  prev_had_mmco5_ = mmco5;
  const int64_t poc = std::min(top, bottom);
  return mmco5 ? 0 : poc;  // mmco5: tempPicOrderCnt is subtracted from both fields
}

}  // namespace vccv
