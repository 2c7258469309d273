// Slice data (7.3.4): the macroblocks of each slice of a picture in order, skipped or coded,
// and the checks that a slice ends where its data ends.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "errors.h"
#include "picture_parser.h"

namespace vccv {

PictureParser::PictureParser(const Picture& picture, const Stream& stream, bool coefficients)
    : pic_(picture),
      stream_(stream),
      coefficients_(coefficients),
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
  out_.has_coefficients = coefficients;
  if (!coefficients) return;
  // The output buffer, where the 4x4 blocks are written, starts with the room the stream's last
  // picture of this type needed (at least 8 KB, so that a stream's first pictures do not regrow
  // from a few blocks), up to the bound for any mix of blocks (384 coefficients and 24 positions
  // of 3 per macroblock), and grows where that is short.
  const size_t room = std::max<size_t>(stream.coefficient_room(picture.type), 4096);
  out_.coefficients.data.resize(std::min(room, (384 + 24 * 3) * mbs));
  // The staged parts have room for every block a picture can code (16 luma and 8 chroma 4x4
  // blocks, or 4 8x8, per macroblock), uninitialised and recycled from earlier pictures: nothing
  // regrows.
  staged_.positions4.reserve(24 * mbs);
  staged_.positions8.reserve(4 * mbs);
  staged_.coeffs8.resize(4 * 64 * mbs);
}

ParsedPicture PictureParser::run() {
  for (size_t i = 0; i < pic_.slices.size(); ++i) parse_slice(static_cast<int>(i));
  for (int a = 0; a < w_ * h_; ++a)
    if (out_.mb_slice[static_cast<size_t>(a)] < 0)
      throw CorruptStream("macroblock " + std::to_string(a) + " is in no slice (missing or cut slices)");
  if (coefficients_) {  // after the 4x4 blocks' coefficients: the 8x8 blocks', then the positions
    CoefficientBlocks& c = out_.coefficients;
    c.n4 = staged_.positions4.size();
    c.n8 = staged_.positions8.size();
    static_assert(sizeof(CoefficientBlocks::Position) == 3 * sizeof(int16_t), "plane, x, y without padding");
    c.data.resize(16 * c.n4 + 64 * c.n8 + 3 * (c.n4 + c.n8));  // grows (a copy) only where the room was short
    int16_t* to = std::copy_n(staged_.coeffs8.data(), 64 * c.n8, c.data.data() + 16 * c.n4);
    for (const auto* positions : {&staged_.positions4, &staged_.positions8}) {
      std::memcpy(to, positions->data(), positions->size() * sizeof(CoefficientBlocks::Position));
      to += 3 * positions->size();
    }
    stream_.note_coefficients(pic_.type, c.data.size());
  }
  return std::move(out_);
}

void PictureParser::parse_slice(int slice_index) {
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
    // Only its motion is read, but in this parse's mode: its own frame is usually asked for next
    // in the same way (display order puts B pictures before their anchor).
    colocated_ = stream_.parsed_picture(static_cast<uint32_t>(list1[0].picture), coefficients_);
    if (!sh_->direct_spatial_mv_pred) prepare_temporal_direct();
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

void PictureParser::begin_mb(int addr) {
  if (addr - 1 == mb_y_ * w_ + mb_x_) {  // the next macroblock (as nearly always): a step, not a division
    if (++mb_x_ == w_) {
      mb_x_ = 0;
      ++mb_y_;
    }
  } else {
    mb_x_ = addr % w_;
    mb_y_ = addr / w_;
  }
  cur_ = &mbs_[static_cast<size_t>(addr)];
  mb_block_ = static_cast<ptrdiff_t>(4 * mb_y_) * w4_ + 4 * mb_x_;
  if (out_.mb_slice[static_cast<size_t>(addr)] >= 0)
    throw CorruptStream("macroblock " + std::to_string(addr) + " is coded twice");
  // *cur_ = MbState{}, in two pieces: GCC zeroes the whole 108 bytes with `rep stosq`, whose
  // start-up costs more than the seven vector stores these two become.
  static_assert(std::is_trivial<MbState>::value && sizeof(MbState) > 64, "zeroed as bytes");
  auto* state = reinterpret_cast<unsigned char*>(cur_);
  std::memset(state, 0, 64);
  std::memset(state + 64, 0, sizeof(MbState) - 64);
  MacroblockGrid& g = out_.macroblocks;
  g.cbp[static_cast<size_t>(addr)] = 0;
  g.intra_size[static_cast<size_t>(addr)] = 0;
  g.intra_chroma_pred[static_cast<size_t>(addr)] = -1;
  decoded_ = 0;
  written_[0] = written_[1] = 0;
  // 6.4.9: a neighbour inside the picture and in this slice (macroblocks of later slices, and
  // those not coded yet, hold another slice number or -1).
  const int32_t* slices = &out_.mb_slice[static_cast<size_t>(addr)];
  const int slice = slice_;
  const bool left = mb_x_ > 0, right = mb_x_ + 1 < w_, up = mb_y_ > 0;
  avail_a_ = left && slices[-1] == slice;
  avail_b_ = up && slices[-w_] == slice;
  avail_c_ = up && right && slices[1 - w_] == slice;
  avail_d_ = up && left && slices[-1 - w_] == slice;
  spatial_ready_ = false;
}

void PictureParser::end_mb(int addr, MbClass cls) {
  // What the macroblock left unsaid: lists (or partitions) it does not use have ref_idx -1 and
  // zero vectors; inter macroblocks have no intra modes. Rows are addressed from pointers set
  // once: the stores below may alias the parser's members, which would be reloaded for each.
  MacroblockGrid& g = out_.macroblocks;
  const size_t stride = static_cast<size_t>(w4_);
  const size_t base = block_index(0, 0, 0);
  for (int list = 0; list < 2; ++list) {
    const unsigned written = written_[list];
    if (written == 0xffff) continue;
    const size_t first = base + static_cast<size_t>(list * list_blocks_);
    int8_t* refs = &g.ref_idx[first];
    int16_t* mvs = &g.mv[2 * first];
    if (written == 0) {  // intra, or P (list 1)
      for (size_t row = 0; row < 4; ++row) {
        std::memset(mvs + 2 * row * stride, 0, 8 * sizeof(int16_t));
        std::memset(refs + row * stride, -1, 4);
      }
      continue;
    }
    for (unsigned b = 0; b < 16; ++b) {
      if ((written >> b) & 1) continue;
      const size_t i = (b / 4) * stride + b % 4;
      refs[i] = -1;
      mvs[2 * i] = mvs[2 * i + 1] = 0;
    }
  }
  if (cls != kMbIntra) {
    int8_t* modes = &g.intra_pred[base];
    for (size_t row = 0; row < 4; ++row) std::memset(modes + row * stride, -1, 4);
  }
  out_.mb_slice[static_cast<size_t>(addr)] = slice_;
  uint8_t* totals = &out_.luma_total_coeff[base];
  for (size_t row = 0; row < 4; ++row) std::memcpy(totals + row * stride, &cur_->total_coeff[4 * row], 4);
  g.mb_type[static_cast<size_t>(addr)] = cls;
  g.qp[static_cast<size_t>(addr)] = static_cast<int8_t>(qp_);
}

ParsedPicture parse_picture(const Picture& picture, const Stream& stream, bool coefficients) {
  return PictureParser(picture, stream, coefficients).run();
}

}  // namespace vccv
