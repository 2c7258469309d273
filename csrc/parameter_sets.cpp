#include "parameter_sets.h"

#include "errors.h"

namespace vccv {

// Table 7-3: Default_4x4_Intra / Default_4x4_Inter, in zig-zag scan order.
const std::array<uint8_t, 16> kDefault4x4Intra = {6, 13, 13, 20, 20, 20, 28, 28, 28, 28, 32, 32, 32, 37, 37, 42};
const std::array<uint8_t, 16> kDefault4x4Inter = {10, 14, 14, 20, 20, 20, 24, 24, 24, 24, 27, 27, 27, 30, 30, 34};
// Table 7-4: Default_8x8_Intra / Default_8x8_Inter, in 8x8 zig-zag scan order.
const std::array<uint8_t, 64> kDefault8x8Intra = {6,  10, 10, 13, 11, 13, 16, 16, 16, 16, 18, 18, 18, 18, 18, 23,
                                                  23, 23, 23, 23, 23, 25, 25, 25, 25, 25, 25, 25, 27, 27, 27, 27,
                                                  27, 27, 27, 27, 29, 29, 29, 29, 29, 29, 29, 31, 31, 31, 31, 31,
                                                  31, 33, 33, 33, 33, 33, 36, 36, 36, 36, 38, 38, 38, 40, 40, 42};
const std::array<uint8_t, 64> kDefault8x8Inter = {9,  13, 13, 15, 13, 15, 17, 17, 17, 17, 19, 19, 19, 19, 19, 21,
                                                  21, 21, 21, 21, 21, 22, 22, 22, 22, 22, 22, 22, 24, 24, 24, 24,
                                                  24, 24, 24, 24, 25, 25, 25, 25, 25, 25, 25, 27, 27, 27, 27, 27,
                                                  27, 28, 28, 28, 28, 28, 30, 30, 30, 30, 32, 32, 32, 33, 33, 35};

namespace {

// 7.3.2.1.1.1 scaling_list()
template <int N>
ScalingList<N> read_scaling_list(BitReader& r) {
  ScalingList<N> list;
  if (!r.flag()) return list;  // *_scaling_list_present_flag
  list.state = ScalingListState::kExplicit;
  int last_scale = 8, next_scale = 8;
  for (int j = 0; j < N; ++j) {
    if (next_scale != 0) {
      const int delta_scale = r.se_range(-128, 127, "delta_scale");
      next_scale = (last_scale + delta_scale + 256) % 256;
      if (j == 0 && next_scale == 0) {
        list.state = ScalingListState::kUseDefault;  // useDefaultScalingMatrixFlag
        return list;
      }
    }
    list.values[static_cast<size_t>(j)] = static_cast<uint8_t>(next_scale == 0 ? last_scale : next_scale);
    last_scale = list.values[static_cast<size_t>(j)];
  }
  return list;
}

void read_scaling_matrices(BitReader& r, ScalingMatrices& m, int count) {
  m.present = true;
  for (int i = 0; i < count; ++i) {
    if (i < 6)
      m.list4x4[static_cast<size_t>(i)] = read_scaling_list<16>(r);
    else
      m.list8x8[static_cast<size_t>(i - 6)] = read_scaling_list<64>(r);
  }
}

void read_hrd_parameters(BitReader& r) {  // E.1.2
  const uint32_t cpb_cnt = r.ue_max(31, "cpb_cnt_minus1") + 1;
  r.skip(8);  // bit_rate_scale, cpb_size_scale
  for (uint32_t i = 0; i < cpb_cnt; ++i) {
    r.ue();     // bit_rate_value_minus1
    r.ue();     // cpb_size_value_minus1
    r.skip(1);  // cbr_flag
  }
  r.skip(20);  // four 5-bit delay/offset lengths
}

Vui read_vui(BitReader& r) {  // E.1.1
  Vui v;
  v.present = true;
  if (r.flag()) {  // aspect_ratio_info_present_flag
    v.aspect_ratio_idc = static_cast<uint8_t>(r.u(8));
    if (v.aspect_ratio_idc == 255) {  // Extended_SAR
      v.sar_width = static_cast<uint16_t>(r.u(16));
      v.sar_height = static_cast<uint16_t>(r.u(16));
    }
  }
  if (r.flag()) r.skip(1);  // overscan_info_present_flag, overscan_appropriate_flag
  if (r.flag()) {           // video_signal_type_present_flag
    r.skip(3);              // video_format
    v.video_full_range = r.flag();
    if (r.flag()) {  // colour_description_present_flag
      v.colour_primaries = static_cast<uint8_t>(r.u(8));
      v.transfer_characteristics = static_cast<uint8_t>(r.u(8));
      v.matrix_coefficients = static_cast<uint8_t>(r.u(8));
    }
  }
  if (r.flag()) {  // chroma_loc_info_present_flag
    r.ue_max(5, "chroma_sample_loc_type_top_field");
    r.ue_max(5, "chroma_sample_loc_type_bottom_field");
  }
  v.timing_info_present = r.flag();
  if (v.timing_info_present) {
    v.num_units_in_tick = r.u(32);
    v.time_scale = r.u(32);
    v.fixed_frame_rate = r.flag();
  }
  const bool nal_hrd = r.flag();
  if (nal_hrd) read_hrd_parameters(r);
  const bool vcl_hrd = r.flag();
  if (vcl_hrd) read_hrd_parameters(r);
  if (nal_hrd || vcl_hrd) r.skip(1);  // low_delay_hrd_flag
  r.skip(1);                          // pic_struct_present_flag
  v.bitstream_restriction = r.flag();
  if (v.bitstream_restriction) {
    r.skip(1);  // motion_vectors_over_pic_boundaries_flag
    r.ue();     // max_bytes_per_pic_denom
    r.ue();     // max_bits_per_mb_denom
    r.ue();     // log2_max_mv_length_horizontal
    r.ue();     // log2_max_mv_length_vertical
    v.max_num_reorder_frames = r.ue_max(16, "max_num_reorder_frames");
    v.max_dec_frame_buffering = r.ue_max(16, "max_dec_frame_buffering");
  }
  return v;
}

bool has_chroma_format_fields(uint8_t profile_idc) {  // 7.3.2.1.1
  switch (profile_idc) {
    case 100:
    case 110:
    case 122:
    case 244:
    case 44:
    case 83:
    case 86:
    case 118:
    case 128:
    case 138:
    case 139:
    case 134:
    case 135:
      return true;
    default:
      return false;
  }
}

}  // namespace

Sps parse_sps(BitReader& r) {
  Sps s;
  s.profile_idc = static_cast<uint8_t>(r.u(8));
  s.constraint_flags = static_cast<uint8_t>(r.u(8));  // 6 flags + reserved_zero_2bits
  s.level_idc = static_cast<uint8_t>(r.u(8));
  s.id = r.ue_max(31, "seq_parameter_set_id");
  if (has_chroma_format_fields(s.profile_idc)) {
    s.chroma_format_idc = r.ue_max(3, "chroma_format_idc");
    if (s.chroma_format_idc == 3) s.separate_colour_plane = r.flag();
    s.bit_depth_luma = r.ue_max(6, "bit_depth_luma_minus8") + 8;
    s.bit_depth_chroma = r.ue_max(6, "bit_depth_chroma_minus8") + 8;
    s.qpprime_y_zero_transform_bypass = r.flag();
    if (r.flag()) read_scaling_matrices(r, s.scaling, s.chroma_format_idc != 3 ? 8 : 12);
  }
  s.log2_max_frame_num = r.ue_max(12, "log2_max_frame_num_minus4") + 4;
  s.pic_order_cnt_type = r.ue_max(2, "pic_order_cnt_type");
  if (s.pic_order_cnt_type == 0) {
    s.log2_max_pic_order_cnt_lsb = r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4") + 4;
  } else if (s.pic_order_cnt_type == 1) {
    s.delta_pic_order_always_zero = r.flag();
    s.offset_for_non_ref_pic = r.se();
    s.offset_for_top_to_bottom_field = r.se();
    const uint32_t cycle = r.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle");
    s.offset_for_ref_frame.resize(cycle);
    for (auto& offset : s.offset_for_ref_frame) offset = r.se();
  }
  s.max_num_ref_frames = r.ue_max(16, "max_num_ref_frames");
  s.gaps_in_frame_num_allowed = r.flag();
  // Level 6.2 allows 139264 macroblocks per frame; 1024 per side keeps any product bounded.
  s.pic_width_in_mbs = r.ue_max(1023, "pic_width_in_mbs_minus1") + 1;
  s.pic_height_in_map_units = r.ue_max(1023, "pic_height_in_map_units_minus1") + 1;
  s.frame_mbs_only = r.flag();
  if (!s.frame_mbs_only) s.mb_adaptive_frame_field = r.flag();
  s.direct_8x8_inference = r.flag();
  if (r.flag()) {  // frame_cropping_flag
    s.crop_left = r.ue_max(8192, "frame_crop_left_offset");
    s.crop_right = r.ue_max(8192, "frame_crop_right_offset");
    s.crop_top = r.ue_max(8192, "frame_crop_top_offset");
    s.crop_bottom = r.ue_max(8192, "frame_crop_bottom_offset");
  }
  if (r.flag()) {  // vui_parameters_present_flag
    // Encoders are known to write truncated or malformed VUI; like other decoders we then
    // drop it rather than the SPS, since nothing in the macroblock layer depends on it.
    try {
      s.vui = read_vui(r);
      r.expect_trailing_bits("SPS");
    } catch (const CorruptStream&) {
      s.vui = Vui{};
    }
  } else {
    r.expect_trailing_bits("SPS");
  }
  if (s.width() == 0 || s.height() == 0) throw CorruptStream("SPS cropping removes the whole picture");
  return s;
}

uint32_t Sps::width() const {
  const uint32_t unit = chroma_array_type() == 0 ? 1 : (chroma_format_idc == 3 ? 1 : 2);  // SubWidthC
  const uint64_t crop = uint64_t{unit} * (crop_left + crop_right);
  return crop >= coded_width() ? 0 : coded_width() - static_cast<uint32_t>(crop);
}

uint32_t Sps::height() const {
  const uint32_t sub_height = chroma_array_type() == 0 ? 1 : (chroma_format_idc == 1 ? 2 : 1);
  const uint32_t unit = sub_height * (frame_mbs_only ? 1 : 2);
  const uint64_t crop = uint64_t{unit} * (crop_top + crop_bottom);
  return crop >= coded_height() ? 0 : coded_height() - static_cast<uint32_t>(crop);
}

std::string Sps::profile_name() const {
  // Names as FFmpeg reports them (constraint_set1 -> constrained, constraint_set3 -> intra).
  const bool set1 = constraint_flags & 0x40, set3 = constraint_flags & 0x10;
  switch (profile_idc) {
    case 66:
      return set1 ? "constrained baseline" : "baseline";
    case 77:
      return "main";
    case 88:
      return "extended";
    case 100:
      return "high";
    case 110:
      return set3 ? "high 10 intra" : "high 10";
    case 122:
      return set3 ? "high 4:2:2 intra" : "high 4:2:2";
    case 244:
      return set3 ? "high 4:4:4 intra" : "high 4:4:4 predictive";
    case 44:
      return "cavlc 4:4:4";
    case 118:
      return "multiview high";
    case 128:
      return "stereo high";
    default:
      return "profile_idc " + std::to_string(profile_idc);
  }
}

std::string Sps::level_name() const {
  const bool set3 = constraint_flags & 0x10;
  if (level_idc == 9 || (level_idc == 11 && set3 && (profile_idc == 66 || profile_idc == 77 || profile_idc == 88)))
    return "1b";
  return std::to_string(level_idc / 10) + "." + std::to_string(level_idc % 10);
}

Pps parse_pps(BitReader& r, const Sps* sps) {
  Pps p;
  p.id = r.ue_max(255, "pic_parameter_set_id");
  p.sps_id = r.ue_max(31, "seq_parameter_set_id");
  p.entropy_coding_mode = r.flag();
  p.bottom_field_pic_order_in_frame_present = r.flag();
  p.num_slice_groups = r.ue_max(7, "num_slice_groups_minus1") + 1;
  if (p.num_slice_groups > 1) {
    // FMO: parsed so the PPS stays readable; slices using it are rejected as unsupported.
    p.slice_group_map_type = r.ue_max(6, "slice_group_map_type");
    if (p.slice_group_map_type == 0) {
      for (uint32_t i = 0; i < p.num_slice_groups; ++i) r.ue();  // run_length_minus1
    } else if (p.slice_group_map_type == 2) {
      for (uint32_t i = 0; i + 1 < p.num_slice_groups; ++i) {
        r.ue();  // top_left
        r.ue();  // bottom_right
      }
    } else if (p.slice_group_map_type >= 3 && p.slice_group_map_type <= 5) {
      r.skip(1);  // slice_group_change_direction_flag
      p.slice_group_change_rate = r.ue_max(139263, "slice_group_change_rate_minus1") + 1;
    } else if (p.slice_group_map_type == 6) {
      const uint32_t units = r.ue_max(139263, "pic_size_in_map_units_minus1") + 1;
      int bits = 0;
      while ((1u << bits) < p.num_slice_groups) ++bits;  // Ceil(Log2(num_slice_groups))
      r.skip(static_cast<size_t>(bits) * units);         // slice_group_id[]
    }
  }
  p.num_ref_idx_l0_default_active = r.ue_max(31, "num_ref_idx_l0_default_active_minus1") + 1;
  p.num_ref_idx_l1_default_active = r.ue_max(31, "num_ref_idx_l1_default_active_minus1") + 1;
  p.weighted_pred = r.flag();
  p.weighted_bipred_idc = r.u(2);
  if (p.weighted_bipred_idc == 3) throw CorruptStream("weighted_bipred_idc = 3 is reserved");
  p.pic_init_qp = 26 + r.se_range(-26 - 48, 25, "pic_init_qp_minus26");
  p.pic_init_qs = 26 + r.se_range(-26, 25, "pic_init_qs_minus26");
  p.chroma_qp_index_offset = r.se_range(-12, 12, "chroma_qp_index_offset");
  p.second_chroma_qp_index_offset = p.chroma_qp_index_offset;
  p.deblocking_filter_control_present = r.flag();
  p.constrained_intra_pred = r.flag();
  p.redundant_pic_cnt_present = r.flag();
  if (r.more_rbsp_data()) {
    p.transform_8x8_mode = r.flag();
    if (r.flag()) {  // pic_scaling_matrix_present_flag
      const bool chroma444 = sps && sps->chroma_format_idc == 3;
      read_scaling_matrices(r, p.scaling, 6 + (p.transform_8x8_mode ? (chroma444 ? 6 : 2) : 0));
    }
    p.second_chroma_qp_index_offset = r.se_range(-12, 12, "second_chroma_qp_index_offset");
  }
  r.expect_trailing_bits("PPS");
  return p;
}

namespace {

// Resolves one set of lists with fall-back rule A, or B when `fallback` (the SPS's result) is given.
void resolve(const ScalingMatrices& m, const ResolvedScaling* fallback, ResolvedScaling& out) {
  for (size_t i = 0; i < 6; ++i) {
    const auto& list = m.list4x4[i];
    if (list.state == ScalingListState::kExplicit) {
      out.w4x4[i] = list.values;
    } else if (list.state == ScalingListState::kUseDefault) {
      out.w4x4[i] = i < 3 ? kDefault4x4Intra : kDefault4x4Inter;
    } else if (i == 0 || i == 3) {  // first intra / first inter list
      out.w4x4[i] = fallback ? fallback->w4x4[i] : (i == 0 ? kDefault4x4Intra : kDefault4x4Inter);
    } else {
      out.w4x4[i] = out.w4x4[i - 1];
    }
  }
  for (size_t i = 0; i < 6; ++i) {  // even i intra, odd i inter
    const auto& list = m.list8x8[i];
    if (list.state == ScalingListState::kExplicit) {
      out.w8x8[i] = list.values;
    } else if (list.state == ScalingListState::kUseDefault) {
      out.w8x8[i] = i % 2 == 0 ? kDefault8x8Intra : kDefault8x8Inter;
    } else if (i < 2) {
      out.w8x8[i] = fallback ? fallback->w8x8[i] : (i == 0 ? kDefault8x8Intra : kDefault8x8Inter);
    } else {
      out.w8x8[i] = out.w8x8[i - 2];
    }
  }
}

}  // namespace

ResolvedScaling resolve_scaling(const Sps& sps, const Pps& pps) {
  ResolvedScaling flat;
  for (auto& w : flat.w4x4) w.fill(16);  // Flat_4x4_16
  for (auto& w : flat.w8x8) w.fill(16);  // Flat_8x8_16
  ResolvedScaling seq = flat;
  if (sps.scaling.present) resolve(sps.scaling, nullptr, seq);
  if (!pps.scaling.present) return seq;
  ResolvedScaling pic = flat;
  resolve(pps.scaling, sps.scaling.present ? &seq : nullptr, pic);
  return pic;
}

}  // namespace vccv
