// Access-unit assembly: routes NAL units to the parameter set, SEI and slice header parsers,
// groups slices into pictures (7.4.1.2.4), and orders pictures for display by POC.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "nal.h"
#include "parameter_sets.h"
#include "poc.h"
#include "ref_lists.h"
#include "slice_header.h"

namespace vccv {

struct ParsedPicture;

// Where a slice NAL unit lies in the source file, to read it back at parse time instead of
// keeping it in memory; `check` fingerprints its bytes (a file changed since is an error).
struct NalLocation {
  int64_t offset = -1;  // -1: the slice data is kept in memory
  uint32_t size = 0;
  uint32_t header_bytes = 0;
  uint64_t check = 0;
};

struct Slice {
  SliceHeader header;
  std::shared_ptr<const std::vector<uint8_t>> rbsp;  // after the NAL header, EP bytes removed; null
                                                     // when read back from the file (location)
  std::array<RefPicList, 2> ref_lists;               // RefPicList0/1 after modification
  NalLocation location;
};

struct Picture {
  uint32_t decode_index = 0;
  std::optional<int64_t> pts;
  SliceType type = kSliceI;  // the most general slice type: B > P > I
  bool idr = false;
  bool key = false;        // IDR, or an I picture at a recovery point SEI with recovery_frame_cnt 0
  bool recovered = false;  // decoding entered here yields correct pictures from here on (below)
  bool presented = true;   // false where the container's edit list leaves it out
  uint8_t nal_ref_idc = 0;
  int64_t poc = 0;
  uint32_t period = 0;  // increases at each IDR and mmco5: POC restarts there
  std::shared_ptr<const Sps> sps;
  std::shared_ptr<const Pps> pps;
  std::vector<Slice> slices;
};

class Stream : public ParameterSetLookup {
 public:
  // Container extradata: an avcC record (sets the AVCC length size) or Annex B parameter sets.
  void add_extradata(const uint8_t* data, size_t size);
  // One packet (or a whole raw file) of Annex B / length-prefixed data; `pts` goes to the
  // picture whose first slice it carries. `last` marks the end of the input: a NAL unit that
  // fails there is treated as truncation (the incomplete picture is dropped) instead of an error.
  // `file_offset`: where the packet's bytes lie in the source file given to set_source_file
  // (checked byte for byte); its slices are then read back from there when parsed.
  // `presented` false: the container's edit list leaves the picture out of the presentation
  // (decoded as a reference, not shown), so it is not listed.
  void add_packet(const uint8_t* data, size_t size, std::optional<int64_t> pts, bool last, int64_t file_offset = -1,
                  bool presented = true);
  // The file the packets come from: slice data found there is not kept in memory.
  void set_source_file(const std::string& path);
  ~Stream() override;
  // Ends the input: closes the last picture (dropping it if its slice data proves it cut short)
  // and computes display order.
  void finish();

  bool truncated() const { return truncated_; }
  // Decoding index of the stream's first random access point. Pictures before it, and pictures
  // after it shown before it (open-GOP leading pictures), reference pictures the stream does not
  // hold; they are kept for the references they provide but not listed in display order (as
  // FFmpeg drops them); nor are pictures an edit list leaves out (add_packet's `presented`).
  uint32_t first_listed() const { return random_access_ ? random_access_->decode_index : 0; }
  // Slices before the first usable SPS/PPS (a stream cut mid-sequence), skipped.
  uint32_t skipped_leading_slices() const { return skipped_leading_slices_; }
  const std::vector<Picture>& pictures() const { return pictures_; }  // decoding order
  // The listed pictures (see first_listed) in display order.
  const std::vector<uint32_t>& display_order() const { return display_order_; }

  // The entropy-decoded picture (picture.h), from a small cache or from a caller still holding
  // it: B pictures read their co-located picture's motion, so parsing one may parse another.
  // Thread-safe; a picture another thread is parsing is waited for, not parsed twice.
  // `coefficients` false accepts a picture parsed for motion only (`parse_picture`); true needs
  // its coefficients.
  std::shared_ptr<const ParsedPicture> parsed_picture(uint32_t decode_index, bool coefficients = true) const;
  // Room (int16 values) for the coefficient buffer of a picture of type `type`, for the parser
  // that writes its 4x4 blocks there in place: 3/2 of what the stream's last picture of that type
  // needed (0 before it), where the bound for any picture is about six times a typical one's.
  size_t coefficient_room(SliceType type) const { return coefficient_room_[type].load(std::memory_order_relaxed); }
  void note_coefficients(SliceType type, size_t values) const {
    coefficient_room_[type].store(values + values / 2, std::memory_order_relaxed);
  }
  // A slice's RBSP: kept in memory, or read back from the source file.
  std::shared_ptr<const std::vector<uint8_t>> slice_rbsp(const Slice& slice) const;
  // Bytes of slice data held in memory (file-backed slices hold none).
  size_t rbsp_bytes() const;

  const Pps* pps(uint32_t id) const override { return id < pps_.size() ? pps_[id].get() : nullptr; }
  const Sps* sps(uint32_t id) const override { return id < sps_.size() ? sps_[id].get() : nullptr; }

 private:
  void add_nal(const NalSpan& nal, std::optional<int64_t>& pts);
  void add_slice(const NalHeader& header, std::vector<uint8_t> rbsp, std::optional<int64_t>& pts,
                 const NalLocation& location);
  NalLocation locate(const NalSpan& nal, const NalHeader& header) const;
  bool starts_new_picture(const SliceHeader& h) const;
  void close_picture();
  bool listed(uint32_t decode_index) const;
  // Puts a parsed picture at the front of the cache and among the held ones (cache_mutex_ held).
  void remember(uint32_t decode_index, const std::shared_ptr<const ParsedPicture>& parsed) const;
  void check_supported(const SliceHeader& h, const Sps& sps, const Pps& pps) const;

  int length_size_ = 0;                   // 0: Annex B
  int source_fd_ = -1;                    // set_source_file's descriptor
  const uint8_t* packet_data_ = nullptr;  // the packet being added, and its offset in the file (-1: none)
  int64_t packet_offset_ = -1;
  bool packet_presented_ = true;
  std::array<std::shared_ptr<const Sps>, 32> sps_;
  std::array<std::shared_ptr<const Pps>, 256> pps_;
  std::optional<Picture> current_;
  bool au_boundary_ = true;  // a NAL unit that can only precede a new access unit was seen
  std::optional<uint32_t> pending_recovery_frame_cnt_;
  std::optional<uint32_t> recovery_frame_num_;  // D.2.8: the frame_num at which output is correct
  struct RandomAccess {
    uint32_t decode_index, period;
    int64_t poc;
  };
  std::optional<RandomAccess> random_access_;  // the stream's first recovered picture
  PocDecoder poc_;
  ReferenceTracker references_;
  uint32_t period_ = 0;
  bool truncated_ = false;
  uint32_t skipped_leading_slices_ = 0;
  uint32_t extension_slices_ = 0;  // nal_unit_type 20/21 (enhancement layers), skipped
  bool finished_ = false;
  std::vector<Picture> pictures_;
  std::vector<uint32_t> display_order_;
  static constexpr size_t kCacheSize = 8;
  mutable std::mutex cache_mutex_;
  mutable std::list<std::pair<uint32_t, std::shared_ptr<const ParsedPicture>>> cache_;  // most recent first
  // Every parsed picture a caller still holds, also after the cache let it go: a thread pool
  // parsing far ahead (extract_motion on many cores) holds anchor pictures until their turn,
  // and their B pictures must find them there instead of parsing them again.
  mutable std::map<uint32_t, std::weak_ptr<const ParsedPicture>> held_;
  mutable std::map<uint32_t, std::shared_future<std::shared_ptr<const ParsedPicture>>> in_flight_;  // being parsed
  mutable std::array<std::atomic<size_t>, 5> coefficient_room_{};  // by SliceType, a hint (relaxed)
};

}  // namespace vccv
