// Picture order count (8.2.1) for frame pictures, all three pic_order_cnt_types.
#pragma once

#include <cstdint>

#include "parameter_sets.h"
#include "slice_header.h"

namespace vccv {

class PocDecoder {
 public:
  // PicOrderCnt of the next picture in decoding order, given its first slice's header; after
  // memory_management_control_operation 5 this is the value relative to the new period (8.2.1).
  int64_t next(const SliceHeader& h, const Sps& sps);

 private:
  // Type 0 (8.2.1.1): the previous reference picture's msb/lsb.
  int64_t prev_ref_msb_ = 0, prev_ref_lsb_ = 0;
  // Types 1 and 2 (8.2.1.2/3): the previous picture's FrameNumOffset and frame_num.
  int64_t prev_frame_num_offset_ = 0;
  uint32_t prev_frame_num_ = 0;
  bool prev_had_mmco5_ = false;
};

}  // namespace vccv
