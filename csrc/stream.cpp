#include "stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <string>
#include <tuple>
#include <utility>

#include "bit_reader.h"
#include "errors.h"
#include "picture.h"
#include "sei.h"

namespace vccv {

namespace {

// Level 6.2's MaxFS: bounds every per-picture allocation later issues make.
constexpr uint64_t kMaxMacroblocks = 139264;

std::vector<uint8_t> rbsp_of(const NalSpan& nal, const NalHeader& header) {
  return remove_emulation_prevention(nal.data + header.header_bytes, nal.size - header.header_bytes);
}

// FNV-1a over a NAL unit's size and its first and last 64 bytes: notices a source file that
// changed after it was parsed, without hashing all of its data.
uint64_t fingerprint(const uint8_t* data, size_t size) {
  uint64_t h = 1469598103934665603ull ^ size;
  auto mix = [&](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  const size_t n = std::min<size_t>(size, 64);
  mix(data, n);
  mix(data + size - n, n);
  return h;
}

// Reads exactly `size` bytes at `offset` (false if the file is shorter or unreadable).
bool read_at(int fd, int64_t offset, uint8_t* out, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + static_cast<int64_t>(done)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

int slice_type_rank(SliceType t) {  // I < P < B, for a picture's overall type
  switch (t) {
    case kSliceB:
      return 2;
    case kSliceP:
    case kSliceSP:
      return 1;
    default:
      return 0;
  }
}

}  // namespace

void Stream::add_extradata(const uint8_t* data, size_t size) {
  if (size == 0) return;
  packet_offset_ = -1;  // parameter sets only; nothing here is read back from the file
  std::optional<int64_t> no_pts;
  if (data[0] == 1) {
    const AvcConfig config = parse_avcc(data, size);
    length_size_ = config.length_size;
    for (const auto& nal : config.parameter_sets) add_nal(nal, no_pts);
  } else {
    for (const auto& nal : split_annexb(data, size)) add_nal(nal, no_pts);
  }
}

Stream::~Stream() {
  if (source_fd_ >= 0) ::close(source_fd_);
}

void Stream::set_source_file(const std::string& path) {
  if (source_fd_ >= 0) ::close(source_fd_);
  source_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // -1: slice data stays in memory
}

NalLocation Stream::locate(const NalSpan& nal, const NalHeader& header) const {
  NalLocation location;
  if (packet_offset_ >= 0 && nal.size <= UINT32_MAX) {
    location.offset = packet_offset_ + (nal.data - packet_data_);
    location.size = static_cast<uint32_t>(nal.size);
    location.header_bytes = static_cast<uint32_t>(header.header_bytes);
    location.check = fingerprint(nal.data, nal.size);
  }
  return location;
}

std::shared_ptr<const std::vector<uint8_t>> Stream::slice_rbsp(const Slice& slice) const {
  if (slice.rbsp) return slice.rbsp;
  const NalLocation& at = slice.location;
  std::vector<uint8_t> nal(at.size);
  if (!read_at(source_fd_, at.offset, nal.data(), nal.size()) || fingerprint(nal.data(), nal.size()) != at.check)
    throw CorruptStream("the file changed since it was opened (slice data at byte " + std::to_string(at.offset) +
                        " differs)");
  return std::make_shared<const std::vector<uint8_t>>(
      remove_emulation_prevention(nal.data() + at.header_bytes, nal.size() - at.header_bytes));
}

size_t Stream::rbsp_bytes() const {
  size_t total = 0;
  for (const Picture& pic : pictures_)
    for (const Slice& slice : pic.slices)
      if (slice.rbsp) total += slice.rbsp->size();
  return total;
}

void Stream::add_packet(const uint8_t* data, size_t size, std::optional<int64_t> pts, bool last, int64_t file_offset,
                        bool presented) {
  if (finished_) throw std::logic_error("add_packet after finish");
  packet_presented_ = presented;
  // Slices are read back from the file only where the file holds exactly these bytes.
  packet_data_ = data;
  packet_offset_ = -1;
  if (source_fd_ >= 0 && file_offset >= 0 && size > 0) {
    std::vector<uint8_t> stored(size);
    if (read_at(source_fd_, file_offset, stored.data(), size) && std::memcmp(stored.data(), data, size) == 0)
      packet_offset_ = file_offset;
  }
  // A container sample is one access unit (ISO/IEC 14496-15, 5.3.2); a raw stream is one packet.
  au_boundary_ = true;
  bool cut = false;
  std::vector<NalSpan> nals =
      length_size_ > 0 ? split_length_prefixed(data, size, length_size_, cut) : split_annexb(data, size);
  try {
    if (cut && !last) throw CorruptStream("a NAL unit length runs past the end of its packet");
    for (size_t i = 0; i < nals.size(); ++i) {
      const bool final_unit = last && i + 1 == nals.size();
      if (!final_unit) {
        add_nal(nals[i], pts);
        continue;
      }
      // The input's final NAL unit: failing there (or being cut) means the file is truncated.
      try {
        if (cut) throw CorruptStream("cut");
        add_nal(nals[i], pts);
      } catch (const CorruptStream&) {
        truncated_ = true;
        const NalHeader header = parse_nal_header(nals[i]);
        if (current_ && is_vcl(header.nal_unit_type)) {
          // A slice continuing the open picture (first_mb_in_slice > 0) leaves it incomplete.
          const std::vector<uint8_t> rbsp = rbsp_of(nals[i], header);
          BitReader r(rbsp.data(), rbsp.size());
          bool continues = false;
          try {
            continues = r.ue() > 0;
          } catch (const CorruptStream&) {
          }
          if (continues) current_.reset();
        }
      }
    }
  } catch (const CorruptStream& e) {
    // Most errors are met in a picture's first slice: name the picture it would begin.
    const size_t picture = pictures_.size() + (current_ ? 1 : 0);
    throw CorruptStream("picture " + std::to_string(picture) + " (decoding order): " + e.what());
  }
}

void Stream::add_nal(const NalSpan& nal, std::optional<int64_t>& pts) {
  const NalHeader header = parse_nal_header(nal);
  switch (header.nal_unit_type) {
    case kNalSlice:
    case kNalIdrSlice:
    case kNalSlicePartitionA:  // rejected in add_slice once its header proves it real
      add_slice(header, rbsp_of(nal, header), pts, locate(nal, header));
      return;
    case kNalSlicePartitionB:
    case kNalSlicePartitionC:
      return;  // meaningless without partition A
    case kNalSps: {
      const std::vector<uint8_t> rbsp = rbsp_of(nal, header);
      BitReader r(rbsp.data(), rbsp.size());
      auto sps = std::make_shared<const Sps>(parse_sps(r));
      sps_[sps->id] = sps;
      break;
    }
    case kNalPps: {
      const std::vector<uint8_t> rbsp = rbsp_of(nal, header);
      BitReader r(rbsp.data(), rbsp.size());
      // The PPS syntax needs its SPS's chroma_format_idc; peek at the ids without consuming.
      BitReader peek(rbsp.data(), rbsp.size());
      peek.ue();  // pic_parameter_set_id
      const uint32_t sps_id = peek.ue_max(31, "seq_parameter_set_id");
      auto pps = std::make_shared<const Pps>(parse_pps(r, sps(sps_id)));
      pps_[pps->id] = pps;
      break;
    }
    case kNalSei: {
      const std::vector<uint8_t> rbsp = rbsp_of(nal, header);
      BitReader r(rbsp.data(), rbsp.size());
      if (auto count = find_recovery_point(r)) pending_recovery_frame_cnt_ = count;
      break;
    }
    case kNalAccessUnitDelimiter:
    case kNalEndOfSequence:
    case kNalEndOfStream:
    case kNalSpsExtension:
    case kNalPrefix:
    case kNalSubsetSps:
    case kNalDepthParameterSet:
    case 17:
    case 18:  // 7.4.1.2.3: these can only start (or end) an access unit
      break;
    case kNalSliceExtension:
    case kNalSliceExtensionDepth:
      ++extension_slices_;  // SVC/MVC/3D enhancement layers: only the base layer is decoded
      return;
    default:
      return;  // filler data, auxiliary slices, reserved types: ignored
  }
  au_boundary_ = true;
}

void Stream::check_supported(const SliceHeader& h, const Sps& sps, const Pps& pps) const {
  static const char* const kChroma[] = {"4:0:0 (monochrome)", "4:2:0", "4:2:2", "4:4:4"};
  if (sps.chroma_format_idc != 1)
    throw UnsupportedStream(std::string("chroma format ") + kChroma[sps.chroma_format_idc] +
                            " (only 4:2:0 is supported)");
  if (sps.bit_depth_luma != 8 || sps.bit_depth_chroma != 8)
    throw UnsupportedStream("bit depth " + std::to_string(sps.bit_depth_luma) + "/" +
                            std::to_string(sps.bit_depth_chroma) + " (only 8-bit is supported)");
  if (h.field_pic) throw UnsupportedStream("interlaced field coding (field_pic_flag = 1)");
  if (h.mbaff(sps)) throw UnsupportedStream("interlaced MBAFF coding (mb_adaptive_frame_field_flag = 1)");
  if (pps.num_slice_groups > 1)
    throw UnsupportedStream("FMO: " + std::to_string(pps.num_slice_groups) + " slice groups");
  if (h.slice_type == kSliceSP || h.slice_type == kSliceSI) throw UnsupportedStream("SP/SI slices (Extended profile)");
  if (uint64_t{sps.pic_width_in_mbs} * sps.frame_height_in_mbs() > kMaxMacroblocks)
    throw UnsupportedStream("frame of " + std::to_string(sps.coded_width()) + "x" + std::to_string(sps.coded_height()) +
                            " exceeds level 6.2");
  if (!pictures_.empty() || current_) {
    const Sps& first = pictures_.empty() ? *current_->sps : *pictures_.front().sps;
    if (first.width() != sps.width() || first.height() != sps.height())
      throw UnsupportedStream("resolution changes mid-stream from " + std::to_string(first.width()) + "x" +
                              std::to_string(first.height()) + " to " + std::to_string(sps.width()) + "x" +
                              std::to_string(sps.height()));
  }
}

bool Stream::starts_new_picture(const SliceHeader& h) const {
  if (!current_ || au_boundary_) return true;
  // A second slice at macroblock 0: consecutive pictures can share every field 7.4.1.2.4
  // compares (all-intra IDR pictures with the same idr_pic_id), so decoders start a picture
  // there too. A first slice elsewhere keeps arbitrary slice order detectable.
  if (h.first_mb_in_slice == 0 && current_->slices.front().header.first_mb_in_slice == 0) return true;
  // 7.4.1.2.4: the first VCL NAL unit of a new primary coded picture.
  const SliceHeader& p = current_->slices.back().header;
  if (h.frame_num != p.frame_num || h.pps_id != p.pps_id || h.field_pic != p.field_pic ||
      h.bottom_field != p.bottom_field || (h.nal_ref_idc == 0) != (p.nal_ref_idc == 0) || h.idr != p.idr ||
      (h.idr && h.idr_pic_id != p.idr_pic_id))
    return true;
  const uint32_t poc_type = current_->sps->pic_order_cnt_type;
  if (poc_type == 0)
    return h.pic_order_cnt_lsb != p.pic_order_cnt_lsb || h.delta_pic_order_cnt_bottom != p.delta_pic_order_cnt_bottom;
  if (poc_type == 1) return h.delta_pic_order_cnt != p.delta_pic_order_cnt;
  return false;
}

void Stream::add_slice(const NalHeader& header, std::vector<uint8_t> rbsp, std::optional<int64_t>& pts,
                       const NalLocation& location) {
  BitReader r(rbsp.data(), rbsp.size());
  if (pictures_.empty() && !current_) {
    // A stream cut from a broadcast starts mid-sequence: skip slices until parameter sets arrive.
    BitReader peek(rbsp.data(), rbsp.size());
    peek.ue();
    peek.ue();
    const Pps* p = pps(peek.ue_max(255, "pic_parameter_set_id"));
    if (!p || !sps(p->sps_id)) {
      ++skipped_leading_slices_;
      return;
    }
  }
  SliceHeader h = parse_slice_header(r, header.nal_unit_type, header.nal_ref_idc, *this);
  auto pps_ptr = pps_[h.pps_id];
  auto sps_ptr = sps_[pps_ptr->sps_id];
  check_supported(h, *sps_ptr, *pps_ptr);
  if (header.nal_unit_type == kNalSlicePartitionA)
    throw UnsupportedStream("data partitioning (Extended profile) is not supported");
  if (h.redundant_pic_cnt > 0) return;  // primary slices are always present: ignore redundant ones

  if (starts_new_picture(h)) {
    close_picture();
    Picture pic;
    pic.decode_index = static_cast<uint32_t>(pictures_.size());
    pic.pts = pts;
    pts.reset();  // a packet's timestamp belongs to the first picture it starts
    pic.presented = packet_presented_;
    pic.idr = h.idr;
    pic.sps = sps_ptr;
    pic.pps = pps_ptr;
    pic.poc = poc_.next(h, *sps_ptr);
    references_.begin_picture(h, *sps_ptr);
    if ((h.idr || h.has_mmco5()) && pic.decode_index > 0) ++period_;
    pic.period = period_;
    pic.key = h.idr || pending_recovery_frame_cnt_ == 0u;
    if (pending_recovery_frame_cnt_)
      recovery_frame_num_ = (h.frame_num + *pending_recovery_frame_cnt_) % (1u << sps_ptr->log2_max_frame_num);
    pending_recovery_frame_cnt_.reset();
    // Where a decoder entering the stream has every reference it needs: an IDR picture, the
    // frame a recovery point names (D.2.8), or (close_picture) an I picture.
    pic.recovered = h.idr || (recovery_frame_num_ == h.frame_num && h.nal_ref_idc != 0);
    if (pic.recovered) recovery_frame_num_.reset();
    current_ = std::move(pic);
  } else {
    const SliceHeader& previous = current_->slices.back().header;
    if (h.first_mb_in_slice <= previous.first_mb_in_slice) {
      if (sps_ptr->profile_idc == 66 || sps_ptr->profile_idc == 88)
        throw UnsupportedStream("arbitrary slice order (ASO)");
      throw CorruptStream("slice starting at macroblock " + std::to_string(h.first_mb_in_slice) +
                          " follows one starting at " + std::to_string(previous.first_mb_in_slice));
    }
  }
  Picture& pic = *current_;
  if (slice_type_rank(h.slice_type) > slice_type_rank(pic.type) || pic.slices.empty()) pic.type = h.slice_type;
  pic.nal_ref_idc = std::max(pic.nal_ref_idc, h.nal_ref_idc);
  // Before the stream's first random access point, and in the pictures shown before it, a
  // reference can be missing (the stream was cut there): such entries name no picture.
  const bool may_miss = !random_access_ || (pic.period == random_access_->period && pic.poc < random_access_->poc);
  auto lists = references_.lists(h, *sps_ptr, pic.poc, may_miss);
  // A slice found in the source file is read back from there when parsed: only headers stay.
  auto kept = location.offset >= 0 ? nullptr : std::make_shared<const std::vector<uint8_t>>(std::move(rbsp));
  pic.slices.push_back({std::move(h), std::move(kept), std::move(lists), location});
  au_boundary_ = false;
}

void Stream::close_picture() {
  if (!current_) return;
  Picture& pic = *current_;
  if (pic.slices.empty()) {  // its first slice failed after the picture was opened
    current_.reset();
    return;
  }
  references_.end_picture(pic.slices.front().header, *pic.sps, static_cast<int32_t>(pic.decode_index), pic.poc);
  // Only I pictures are random access points; a recovery point on a P picture is not.
  if (!pic.idr && pic.type != kSliceI) pic.key = false;
  // An I picture is a random access point even unmarked (a stream cut before it).
  pic.recovered = pic.recovered || pic.type == kSliceI;
  if (!random_access_ && pic.recovered) random_access_ = RandomAccess{pic.decode_index, pic.period, pic.poc};
  pictures_.push_back(std::move(pic));
  current_.reset();
}

bool Stream::listed(uint32_t decode_index) const {
  if (!random_access_ || decode_index < random_access_->decode_index) return false;
  const Picture& pic = pictures_[decode_index];
  if (!pic.presented) return false;
  return !(pic.period == random_access_->period && pic.poc < random_access_->poc);
}

void Stream::finish() {
  if (finished_) return;
  close_picture();
  finished_ = true;
  if (pictures_.empty() && extension_slices_ > 0)
    throw UnsupportedStream("SVC/MVC enhancement layers only: " + std::to_string(extension_slices_) +
                            " extension slices and no base-layer picture");
  if (pictures_.empty())
    throw CorruptStream("the stream contains no decodable picture" +
                        (skipped_leading_slices_
                             ? " (" + std::to_string(skipped_leading_slices_) + " slices came without their SPS/PPS)"
                             : std::string()));
  if (!random_access_)
    throw CorruptStream("none of the stream's " + std::to_string(pictures_.size()) +
                        " pictures can be decoded: it has no IDR picture, I picture or recovery point, so every "
                        "picture predicts from pictures before the start of the data");
  // The first random access point is a key frame of this stream, marked or not.
  Picture& entry = pictures_[random_access_->decode_index];
  entry.key = entry.key || entry.type == kSliceI;
  // A cut inside the last picture's slice data shows only when that data is parsed: the
  // picture is then incomplete, so it is dropped and the stream reported truncated.
  const auto last = static_cast<uint32_t>(pictures_.size() - 1);
  if (listed(last)) {
    try {
      parsed_picture(last, false);  // every bit entropy-decoded; cached for the first request
    } catch (const CorruptStream&) {
      pictures_.pop_back();
      truncated_ = true;
      if (last == random_access_->decode_index) throw CorruptStream("the stream's only decodable picture is cut short");
    }
  }
  for (uint32_t i = 0; i < pictures_.size(); ++i)
    if (listed(i)) display_order_.push_back(i);
  if (display_order_.empty())
    throw CorruptStream("the container presents none of the stream's " + std::to_string(pictures_.size()) +
                        " pictures (its edit list leaves them all out)");
  std::stable_sort(display_order_.begin(), display_order_.end(), [&](uint32_t a, uint32_t b) {
    const Picture& pa = pictures_[a];
    const Picture& pb = pictures_[b];
    return std::tie(pa.period, pa.poc) < std::tie(pb.period, pb.poc);
  });
}

void Stream::remember(uint32_t decode_index, const std::shared_ptr<const ParsedPicture>& parsed) const {
  cache_.remove_if([decode_index](const auto& entry) { return entry.first == decode_index; });
  cache_.emplace_front(decode_index, parsed);
  if (cache_.size() > kCacheSize) cache_.pop_back();
  for (auto it = held_.begin(); it != held_.end();) it = it->second.expired() ? held_.erase(it) : std::next(it);
  held_[decode_index] = parsed;
}

std::shared_ptr<const ParsedPicture> Stream::parsed_picture(uint32_t decode_index, bool coefficients) const {
  if (decode_index >= pictures_.size()) throw CorruptStream("reference to a picture that is not in the stream");
  auto enough = [coefficients](const ParsedPicture& p) { return p.has_coefficients || !coefficients; };
  std::promise<std::shared_ptr<const ParsedPicture>> promise;
  std::shared_future<std::shared_ptr<const ParsedPicture>> pending;
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    for (auto it = cache_.begin(); it != cache_.end(); ++it)
      if (it->first == decode_index && enough(*it->second)) {
        cache_.splice(cache_.begin(), cache_, it);
        return it->second;
      }
    const auto held = held_.find(decode_index);
    if (held != held_.end()) {
      if (auto parsed = held->second.lock(); parsed && enough(*parsed)) {
        remember(decode_index, parsed);
        return parsed;
      }
    }
    // Being parsed by another thread (a B picture's co-located picture, typically): wait for
    // that result instead of parsing it twice. Co-located pictures come earlier in decoding
    // order, so waits cannot form a cycle.
    const auto in_flight = in_flight_.find(decode_index);
    if (in_flight != in_flight_.end()) {
      pending = in_flight->second;
    } else {
      in_flight_.emplace(decode_index, promise.get_future().share());
    }
  }
  if (pending.valid()) {
    auto parsed = pending.get();  // rethrows the other thread's error
    // A motion-only parse where coefficients are wanted: parse again (rare: a co-located
    // picture asked for its coefficients while another thread parses it for its motion).
    return enough(*parsed) ? parsed : parsed_picture(decode_index, coefficients);
  }
  // Parsed without the lock: a B picture's parse asks for its co-located picture.
  try {
    auto parsed = std::make_shared<const ParsedPicture>(parse_picture(pictures_[decode_index], *this, coefficients));
    {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      remember(decode_index, parsed);
      in_flight_.erase(decode_index);
    }
    promise.set_value(parsed);
    return parsed;
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      in_flight_.erase(decode_index);
    }
    promise.set_exception(std::current_exception());
    throw;
  }
}

}  // namespace vccv
