// The macroblock layer (7.3.5): mb_type, intra modes (7.3.5.1), sub-macroblock types
// (7.3.5.2), reference indices and vector differences, coded_block_pattern and mb_qp_delta.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cavlc.h"
#include "errors.h"
#include "intra_modes.h"
#include "picture_parser.h"

namespace vccv {

namespace {

Mv add(Mv a, Mv b) {
  // Vector arithmetic wraps to 16 bits (8.4.1: mvLX = (mvpLX + mvdLX + 2^16) % 2^16).
  return {static_cast<int16_t>(static_cast<uint16_t>(a.x + b.x)),
          static_cast<int16_t>(static_cast<uint16_t>(a.y + b.y))};
}

}  // namespace

uint32_t PictureParser::read_ref_idx(int list, int x, int y) {
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

Mv PictureParser::read_mvd(int list, int x, int y, int w, int h) {
  if (!cabac_) {
    const int32_t mx = r_->se_range(-32768, 32767, "mvd x");  // 7.4.5.1 value range
    const int32_t my = r_->se_range(-32768, 32767, "mvd y");
    return {static_cast<int16_t>(mx), static_cast<int16_t>(my)};
  }
  int32_t comp[2];
  const uint8_t *left = mvd_abs(list, x - 1, y), *up = mvd_abs(list, x, y - 1);
  for (int c = 0; c < 2; ++c) {
    const int sum = left[c] + up[c];
    comp[c] = cabac_->mvd(c, sum);
    if (comp[c] < -32768 || comp[c] > 32767) throw CorruptStream("mvd outside its value range");
  }
  const uint8_t abs_x = static_cast<uint8_t>(std::min(std::abs(comp[0]), 255));
  const uint8_t abs_y = static_cast<uint8_t>(std::min(std::abs(comp[1]), 255));
  // The partition's rows of (|x|, |y|) pairs, one store each: byte stores one by one through
  // cur_ may alias the parser's members, which the compiler then reloads after every byte.
  const uint8_t row[8] = {abs_x, abs_y, abs_x, abs_y, abs_x, abs_y, abs_x, abs_y};
  uint8_t (*pairs)[2] = cur_->mvd_abs[list];
  for (int by = y / 4; by < (y + h) / 4; ++by) {
    uint8_t* to = pairs[by * 4 + x / 4];
    if (w == 16)
      std::memcpy(to, row, 8);
    else if (w == 8)
      std::memcpy(to, row, 4);
    else
      std::memcpy(to, row, 2);
  }
  return {static_cast<int16_t>(comp[0]), static_cast<int16_t>(comp[1])};
}

void PictureParser::record_ref(int list, int x, int y, int w, int h, uint32_t ref) {
  if (!cabac_ || ref == 0) return;
  cur_->ref_gt0[list] |= block_rect(x / 4, y / 4, w / 4, h / 4);
}

void PictureParser::macroblock_layer(int addr) {
  BitReader& r = *r_;
  const SliceType st = sh_->slice_type;
  uint32_t raw_type;
  if (cabac_) {
    raw_type = st == kSliceI ? cabac_->mb_type_i(mb_type_inc())
                             : (st == kSliceP ? cabac_->mb_type_p() : cabac_->mb_type_b(mb_type_inc()));
  } else {
    raw_type = r.ue_max(st == kSliceI ? 25 : (st == kSliceP ? 30 : 48), "mb_type");
  }
  const MbTypeInfo t =
      st == kSliceI ? intra_mb_type(raw_type) : (st == kSliceP ? p_mb_type(raw_type) : b_mb_type(raw_type));
  const bool intra = t.kind == MbKind::kIntra4x4 || t.kind == MbKind::kIntra16x16 || t.kind == MbKind::kPcm;
  cur_->intra = intra;
  cur_->i_nxn = t.kind == MbKind::kIntra4x4;
  cur_->i16 = t.kind == MbKind::kIntra16x16;
  cur_->direct16 = t.kind == MbKind::kDirect16x16;

  if (t.kind == MbKind::kPcm) {
    pcm_samples();
    cur_->pcm = true;
    // Every block counts as coded for the neighbours' contexts (9.3.3.1.1.4, 9.3.3.1.1.9: I_PCM
    // gives condTermFlagN 1 where a coded block does), so those read the bits without testing pcm.
    cur_->cbp_luma = 15;
    cur_->cbp_chroma = 2;
    cur_->cbf_luma = 0xffff;
    cur_->cbf_luma_dc = true;
    cur_->cbf_chroma_dc = 3;
    cur_->cbf_chroma_ac = 0xff;
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
      if (t.num_parts == 1)
        mb_pred_inter<1>(t);
      else
        mb_pred_inter<2>(t);
    } else {
      derive_direct(0xf);  // B_Direct_16x16
    }
  }

  uint32_t cbp_luma = t.cbp_luma, cbp_chroma = t.cbp_chroma;
  if (t.kind != MbKind::kIntra16x16) {
    if (cabac_) {  // FL luma prefix (4 bins), TU chroma suffix (9.3.2.6)
      const uint32_t cbp = cabac_->coded_block_pattern(cbp_contexts());
      cbp_luma = cbp & 15;
      cbp_chroma = cbp >> 4;
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
    if (cabac_)
      residual<true>(t, intra, transform_8x8, cbp_luma, cbp_chroma);
    else
      residual<false>(t, intra, transform_8x8, cbp_luma, cbp_chroma);
  }
  prev_qp_delta_nonzero_ = qp_delta_nonzero;
  end_mb(addr, intra ? kMbIntra : (t.kind == MbKind::kDirect16x16 ? kMbDirect : kMbInter));
}

void PictureParser::pcm_samples() {
  BitReader& r = *r_;
  if (cabac_) cabac_->sync_reader();
  // After CABAC's terminate bin the encoder's flush may leave a few bits before the
  // alignment: the samples start at the next byte boundary (as decoders locate them).
  while (!r.byte_aligned())
    if (r.u(1) != 0 && !cabac_) throw CorruptStream("pcm_alignment_zero_bit is not zero");
  r.skip(384 * 8);  // 256 luma + 2 x 64 chroma samples, 8 bits each
  if (cabac_) cabac_->restart_engine();
}

void PictureParser::intra_pred(const MbTypeInfo& t, bool transform_8x8) {  // 7.3.5.1, intra part
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
      const int8_t mode =
          intra_nxn_pred_mode(intra_mode_neighbour(bx - 1, by), intra_mode_neighbour(bx, by - 1), prev, rem);
      for (int y = by; y < by + size; ++y)
        for (int x = bx; x < bx + size; ++x) g.intra_pred[block_index(0, x, y)] = mode;
    }
    g.intra_size[addr] = static_cast<int8_t>(transform_8x8 ? 8 : 4);
  } else {
    for (int y = 0; y < 4; ++y) std::memset(&g.intra_pred[block_index(0, 0, y)], t.intra16x16_pred_mode, 4);
    g.intra_size[addr] = 16;
  }
  cur_->chroma_pred_mode = static_cast<uint8_t>(cabac_ ? cabac_->intra_chroma_pred_mode(chroma_pred_mode_inc())
                                                       : r.ue_max(3, "intra_chroma_pred_mode"));
  g.intra_chroma_pred[addr] = static_cast<int8_t>(cur_->chroma_pred_mode);
  mark_decoded(0, 0, 16, 16);  // intra: ref_idx -1 and zero vectors (already stored)
}

int8_t PictureParser::intra_mode_neighbour(int bx, int by) const {
  const MbState* n = owner(bx, by);
  if (!n) return kDcPredicted;
  const int8_t mode = out_.macroblocks.intra_pred[block_index(0, bx, by)];
  return n == cur_ ? mode : neighbour_intra_mode(true, !n->intra, n->i_nxn, mode, pps_.constrained_intra_pred);
}

template <int kParts>
void PictureParser::mb_pred_inter(const MbTypeInfo& t) {  // 7.3.5.1, inter part
  int ref[2][2] = {{-1, -1}, {-1, -1}};
  Mv mvd[2][2];
  const int pw = t.part_width, ph = t.part_height;
  auto origin = [&](int p, int& x, int& y) {
    x = pw == 8 ? 8 * p : 0;
    y = ph == 8 ? 8 * p : 0;
  };
  for (int list = 0; list < 2; ++list)
    for (int p = 0; p < kParts; ++p)
      if (t.pred[p] & (1 << list)) {
        int x, y;
        origin(p, x, y);
        ref[list][p] = static_cast<int>(read_ref_idx(list, x, y));
        record_ref(list, x, y, pw, ph, static_cast<uint32_t>(ref[list][p]));
      }
  for (int list = 0; list < 2; ++list)
    for (int p = 0; p < kParts; ++p)
      if (t.pred[p] & (1 << list)) {
        int x, y;
        origin(p, x, y);
        mvd[list][p] = read_mvd(list, x, y, pw, ph);
      }
  const int shape = kParts == 1 ? 0 : (ph == 8 ? 168 : 816);
  for (int p = 0; p < kParts; ++p) {
    int x, y;
    origin(p, x, y);
    for (int list = 0; list < 2; ++list) {
      if (!(t.pred[p] & (1 << list))) continue;
      const Mv mvp = predict_mv(list, x, y, pw, ref[list][p], shape);
      set_partition(list, x, y, pw, ph, ref[list][p], add(mvp, mvd[list][p]));
    }
    mark_decoded(x, y, pw, ph);
  }
}

void PictureParser::sub_mb_pred(const MbTypeInfo& t, bool& no_sub_8x8) {  // 7.3.5.2
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

}  // namespace vccv
