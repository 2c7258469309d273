// Reference picture marking (8.2.5) simulated in decoding order, and the reference picture
// lists of each P/B slice (8.2.4: initialisation and modification), for frame coding.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "parameter_sets.h"
#include "slice_header.h"

namespace vccv {

struct RefPicEntry {
  int32_t picture = -1;  // decoding index; -1: "no reference picture" (or a frame_num gap filler)
  bool long_term = false;
};

using RefPicList = std::vector<RefPicEntry>;

class ReferenceTracker {
 public:
  // Lists for a slice of the picture being decoded (whose POC is `poc`), after modification.
  // `may_miss`: a modification naming no reference inserts "no reference picture" (a stream
  // entered mid-sequence) instead of being an error.
  std::array<RefPicList, 2> lists(const SliceHeader& h, const Sps& sps, int64_t poc, bool may_miss) const;
  // Applies frame_num gap filling before a picture (8.2.5.2).
  void begin_picture(const SliceHeader& h, const Sps& sps);
  // Marks the decoded picture (8.2.5.1): IDR, sliding window or memory_management_control_operation.
  void end_picture(const SliceHeader& h, const Sps& sps, int32_t picture, int64_t poc);

 private:
  struct Ref {
    int32_t picture;
    uint32_t frame_num;
    int64_t poc;
    bool long_term;
    uint32_t long_term_frame_idx;
  };
  void sliding_window(const Sps& sps, uint32_t current_frame_num);
  int64_t pic_num(const Ref& r, uint32_t current_frame_num, const Sps& sps) const;

  std::vector<Ref> refs_;
  int max_long_term_frame_idx_ = -1;  // -1: "no long-term frame indices"
  uint32_t prev_ref_frame_num_ = 0;
  bool have_prev_ref_ = false;
};

}  // namespace vccv
