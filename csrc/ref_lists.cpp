#include "ref_lists.h"

#include <algorithm>
#include <string>

#include "errors.h"

namespace vccv {

int64_t ReferenceTracker::pic_num(const Ref& r, uint32_t current_frame_num, const Sps& sps) const {
  // 8.2.4.1: FrameNumWrap; for frames PicNum = FrameNumWrap.
  const int64_t max_frame_num = int64_t{1} << sps.log2_max_frame_num;
  return r.frame_num > current_frame_num ? int64_t{r.frame_num} - max_frame_num : int64_t{r.frame_num};
}

std::array<RefPicList, 2> ReferenceTracker::lists(const SliceHeader& h, const Sps& sps, int64_t poc,
                                                  bool may_miss) const {
  std::array<RefPicList, 2> out;
  if (h.slice_type == kSliceI || h.slice_type == kSliceSI) return out;
  std::vector<const Ref*> short_term, long_term;
  for (const Ref& r : refs_) (r.long_term ? long_term : short_term).push_back(&r);
  std::sort(long_term.begin(), long_term.end(),
            [](const Ref* a, const Ref* b) { return a->long_term_frame_idx < b->long_term_frame_idx; });
  auto append = [](RefPicList& list, const std::vector<const Ref*>& refs) {
    for (const Ref* r : refs) list.push_back({r->picture, r->long_term});
  };
  if (h.slice_type != kSliceB) {  // 8.2.4.2.1: PicNum descending, then LongTermPicNum ascending
    std::sort(short_term.begin(), short_term.end(), [&](const Ref* a, const Ref* b) {
      return pic_num(*a, h.frame_num, sps) > pic_num(*b, h.frame_num, sps);
    });
    append(out[0], short_term);
    append(out[0], long_term);
  } else {  // 8.2.4.2.3: by POC around the current picture
    std::vector<const Ref*> before, after;
    for (const Ref* r : short_term) (r->poc < poc ? before : after).push_back(r);
    std::sort(before.begin(), before.end(), [](const Ref* a, const Ref* b) { return a->poc > b->poc; });
    std::sort(after.begin(), after.end(), [](const Ref* a, const Ref* b) { return a->poc < b->poc; });
    append(out[0], before);
    append(out[0], after);
    append(out[0], long_term);
    append(out[1], after);
    append(out[1], before);
    append(out[1], long_term);
    if (out[1].size() > 1 &&
        std::equal(out[0].begin(), out[0].end(), out[1].begin(), out[1].end(),
                   [](const RefPicEntry& a, const RefPicEntry& b) { return a.picture == b.picture; }))
      std::swap(out[1][0], out[1][1]);
  }
  // 8.2.4.3: modification, then the list has exactly num_ref_idx_active entries.
  const int64_t max_pic_num = int64_t{1} << sps.log2_max_frame_num;
  const int64_t curr_pic_num = h.frame_num;
  for (int list = 0; list < 2; ++list) {
    RefPicList& l = out[static_cast<size_t>(list)];
    const size_t active = h.num_ref_idx_active[list];
    l.resize(std::max(l.size(), active));
    int64_t pred = curr_pic_num;
    size_t index = 0;
    for (const auto& op : h.ref_pic_list_modification[static_cast<size_t>(list)]) {
      RefPicEntry entry;
      bool found = false;
      if (op.modification_of_pic_nums_idc < 2) {
        const int64_t diff = int64_t{op.value} + 1;
        if (diff > max_pic_num) throw CorruptStream("abs_diff_pic_num_minus1 exceeds MaxPicNum");
        int64_t no_wrap = op.modification_of_pic_nums_idc == 0 ? pred - diff : pred + diff;
        if (no_wrap < 0) no_wrap += max_pic_num;
        if (no_wrap >= max_pic_num) no_wrap -= max_pic_num;
        pred = no_wrap;
        const int64_t target = no_wrap > curr_pic_num ? no_wrap - max_pic_num : no_wrap;
        for (const Ref& r : refs_)
          if (!r.long_term && pic_num(r, h.frame_num, sps) == target) {
            entry = {r.picture, false};
            found = true;
          }
      } else {
        for (const Ref& r : refs_)
          if (r.long_term && r.long_term_frame_idx == op.value) {
            entry = {r.picture, true};
            found = true;
          }
      }
      if (!found && !may_miss) throw CorruptStream("ref_pic_list_modification names a picture that is not a reference");
      // Insert at `index`, then drop the later duplicate of the same picture (8-37/8-38).
      l.insert(l.begin() + static_cast<long>(index), entry);
      ++index;
      size_t keep = index;
      for (size_t k = index; k < l.size(); ++k)
        if (!(l[k].picture == entry.picture && l[k].long_term == entry.long_term && entry.picture >= 0))
          l[keep++] = l[k];
      l.resize(keep);
    }
    l.resize(active);
  }
  return out;
}

void ReferenceTracker::sliding_window(const Sps& sps, uint32_t current_frame_num) {  // 8.2.5.3
  size_t short_count = 0;
  for (const Ref& r : refs_) short_count += !r.long_term;
  const size_t max_frames = std::max<uint32_t>(sps.max_num_ref_frames, 1);
  while (refs_.size() >= max_frames && short_count > 0) {
    auto oldest = refs_.end();
    for (auto it = refs_.begin(); it != refs_.end(); ++it)
      if (!it->long_term &&
          (oldest == refs_.end() || pic_num(*it, current_frame_num, sps) < pic_num(*oldest, current_frame_num, sps)))
        oldest = it;
    refs_.erase(oldest);
    --short_count;
  }
}

void ReferenceTracker::begin_picture(const SliceHeader& h, const Sps& sps) {
  if (h.idr || !have_prev_ref_) return;
  const uint32_t max_frame_num = 1u << sps.log2_max_frame_num;
  const uint32_t expected = (prev_ref_frame_num_ + 1) % max_frame_num;
  if (h.frame_num == prev_ref_frame_num_ || h.frame_num == expected) return;
  if (!sps.gaps_in_frame_num_allowed) return;  // a lost picture: decoders conceal; lists use what is there
  // 8.2.5.2: "non-existing" frames fill the gap through the sliding window.
  for (uint32_t n = expected; n != h.frame_num; n = (n + 1) % max_frame_num) {
    sliding_window(sps, n);
    refs_.push_back({-1, n, 0, false, 0});
    prev_ref_frame_num_ = n;
  }
}

void ReferenceTracker::end_picture(const SliceHeader& h, const Sps& sps, int32_t picture, int64_t poc) {
  if (h.nal_ref_idc == 0) return;
  bool current_long_term = false;
  uint32_t current_long_idx = 0;
  if (h.idr) {
    refs_.clear();
    if (h.long_term_reference) {
      current_long_term = true;
      max_long_term_frame_idx_ = 0;
    } else {
      max_long_term_frame_idx_ = -1;
    }
  } else if (h.adaptive_ref_pic_marking) {
    const int64_t curr_pic_num = h.frame_num;
    auto erase_if = [&](auto pred) { refs_.erase(std::remove_if(refs_.begin(), refs_.end(), pred), refs_.end()); };
    for (const auto& op : h.mmcos) {
      switch (op.mmco) {
        case 1: {
          const int64_t target = curr_pic_num - (int64_t{op.difference_of_pic_nums_minus1} + 1);
          erase_if([&](const Ref& r) { return !r.long_term && pic_num(r, h.frame_num, sps) == target; });
          break;
        }
        case 2:
          erase_if([&](const Ref& r) { return r.long_term && r.long_term_frame_idx == op.long_term_pic_num; });
          break;
        case 3: {
          const int64_t target = curr_pic_num - (int64_t{op.difference_of_pic_nums_minus1} + 1);
          erase_if([&](const Ref& r) { return r.long_term && r.long_term_frame_idx == op.long_term_frame_idx; });
          for (Ref& r : refs_)
            if (!r.long_term && pic_num(r, h.frame_num, sps) == target) {
              r.long_term = true;
              r.long_term_frame_idx = op.long_term_frame_idx;
            }
          break;
        }
        case 4:
          max_long_term_frame_idx_ = static_cast<int>(op.max_long_term_frame_idx_plus1) - 1;
          erase_if([&](const Ref& r) {
            return r.long_term && static_cast<int>(r.long_term_frame_idx) > max_long_term_frame_idx_;
          });
          break;
        case 5:
          refs_.clear();
          max_long_term_frame_idx_ = -1;
          break;
        case 6:
          erase_if([&](const Ref& r) { return r.long_term && r.long_term_frame_idx == op.long_term_frame_idx; });
          current_long_term = true;
          current_long_idx = op.long_term_frame_idx;
          break;
        default:
          break;
      }
    }
  } else {
    sliding_window(sps, h.frame_num);
  }
  const uint32_t frame_num = h.has_mmco5() ? 0 : h.frame_num;  // mmco5: frame_num is inferred 0
  refs_.push_back({picture, frame_num, poc, current_long_term, current_long_idx});
  if (refs_.size() > 16 + 1) throw CorruptStream("more than 16 reference frames are marked");
  prev_ref_frame_num_ = frame_num;
  have_prev_ref_ = true;
}

}  // namespace vccv
