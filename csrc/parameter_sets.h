// Sequence and picture parameter sets (7.3.2.1, 7.3.2.2) with their scaling lists and VUI.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bit_reader.h"

namespace vccv {

// One scaling list as transmitted (in zig-zag/field scan order), before the fall-back rules.
enum class ScalingListState : uint8_t { kNotPresent, kUseDefault, kExplicit };

template <int N>
struct ScalingList {
  ScalingListState state = ScalingListState::kNotPresent;
  std::array<uint8_t, N> values{};  // scan order; valid when state == kExplicit
};

struct ScalingMatrices {
  bool present = false;                    // seq_/pic_scaling_matrix_present_flag
  std::array<ScalingList<16>, 6> list4x4;  // Intra Y, Cb, Cr, Inter Y, Cb, Cr
  std::array<ScalingList<64>, 6> list8x8;  // Intra Y, Inter Y, Intra Cb, Inter Cb, Intra Cr, Inter Cr
};

// The weights in force for a slice after fall-back rules A/B (Table 7-2), in scan order.
struct ResolvedScaling {
  std::array<std::array<uint8_t, 16>, 6> w4x4;
  std::array<std::array<uint8_t, 64>, 6> w8x8;
};

struct Vui {
  bool present = false;
  uint8_t aspect_ratio_idc = 0;
  uint16_t sar_width = 0, sar_height = 0;
  bool video_full_range = false;
  uint8_t colour_primaries = 2, transfer_characteristics = 2, matrix_coefficients = 2;  // 2: unspecified
  bool timing_info_present = false;
  uint32_t num_units_in_tick = 0, time_scale = 0;
  bool fixed_frame_rate = false;
  bool bitstream_restriction = false;
  uint32_t max_num_reorder_frames = 0, max_dec_frame_buffering = 0;
};

struct Sps {
  uint8_t profile_idc = 0;
  uint8_t constraint_flags = 0;  // constraint_set0..5 in bits 7..2, as in the bitstream byte
  uint8_t level_idc = 0;
  uint32_t id = 0;
  uint32_t chroma_format_idc = 1;
  bool separate_colour_plane = false;
  uint32_t bit_depth_luma = 8, bit_depth_chroma = 8;
  bool qpprime_y_zero_transform_bypass = false;
  ScalingMatrices scaling;
  uint32_t log2_max_frame_num = 4;
  uint32_t pic_order_cnt_type = 0;
  uint32_t log2_max_pic_order_cnt_lsb = 4;
  bool delta_pic_order_always_zero = false;
  int32_t offset_for_non_ref_pic = 0;
  int32_t offset_for_top_to_bottom_field = 0;
  std::vector<int32_t> offset_for_ref_frame;  // num_ref_frames_in_poc_cycle entries
  uint32_t max_num_ref_frames = 0;
  bool gaps_in_frame_num_allowed = false;
  uint32_t pic_width_in_mbs = 0, pic_height_in_map_units = 0;
  bool frame_mbs_only = true;
  bool mb_adaptive_frame_field = false;
  bool direct_8x8_inference = false;
  uint32_t crop_left = 0, crop_right = 0, crop_top = 0, crop_bottom = 0;  // in crop units
  Vui vui;

  uint32_t frame_height_in_mbs() const { return (frame_mbs_only ? 1 : 2) * pic_height_in_map_units; }
  uint32_t coded_width() const { return pic_width_in_mbs * 16; }
  uint32_t coded_height() const { return frame_height_in_mbs() * 16; }
  uint32_t width() const;  // after cropping (7.4.2.1.1)
  uint32_t height() const;
  uint32_t chroma_array_type() const { return separate_colour_plane ? 0 : chroma_format_idc; }
  std::string profile_name() const;
  std::string level_name() const;
};

struct Pps {
  uint32_t id = 0;
  uint32_t sps_id = 0;
  bool entropy_coding_mode = false;  // true: CABAC
  bool bottom_field_pic_order_in_frame_present = false;
  uint32_t num_slice_groups = 1;
  uint32_t slice_group_map_type = 0;
  uint32_t slice_group_change_rate = 1;
  uint32_t num_ref_idx_l0_default_active = 1, num_ref_idx_l1_default_active = 1;
  bool weighted_pred = false;
  uint32_t weighted_bipred_idc = 0;
  int32_t pic_init_qp = 26, pic_init_qs = 26;
  int32_t chroma_qp_index_offset = 0, second_chroma_qp_index_offset = 0;
  bool deblocking_filter_control_present = false;
  bool constrained_intra_pred = false;
  bool redundant_pic_cnt_present = false;
  bool transform_8x8_mode = false;
  ScalingMatrices scaling;
};

// `rbsp` starts after the NAL unit header.
Sps parse_sps(BitReader& r);
// `sps` is the SPS the PPS names if already received (for the number of 8x8 lists), or null.
Pps parse_pps(BitReader& r, const Sps* sps);

// Applies fall-back rules A (SPS) and B (PPS) of Table 7-2 and the flat default.
ResolvedScaling resolve_scaling(const Sps& sps, const Pps& pps);

// Table 7-3 and 7-4 default lists, in scan order.
extern const std::array<uint8_t, 16> kDefault4x4Intra, kDefault4x4Inter;
extern const std::array<uint8_t, 64> kDefault8x8Intra, kDefault8x8Inter;

}  // namespace vccv
