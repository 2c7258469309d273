// The slice header (7.3.3) with ref_pic_list_modification, pred_weight_table and
// dec_ref_pic_marking.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "bit_reader.h"
#include "parameter_sets.h"

namespace vccv {

enum SliceType : uint8_t { kSliceP = 0, kSliceB = 1, kSliceI = 2, kSliceSP = 3, kSliceSI = 4 };

struct RefPicListModification {
  uint32_t modification_of_pic_nums_idc;  // 0, 1: short-term difference; 2: long-term number
  uint32_t value;                         // abs_diff_pic_num_minus1 or long_term_pic_num
};

struct WeightEntry {
  bool luma_present = false, chroma_present = false;
  int32_t luma_weight = 0, luma_offset = 0;
  std::array<int32_t, 2> chroma_weight{}, chroma_offset{};
};

struct PredWeightTable {
  uint32_t luma_log2_weight_denom = 0, chroma_log2_weight_denom = 0;
  std::array<std::vector<WeightEntry>, 2> entries;  // per list, per reference index
};

struct MemoryManagementOperation {
  uint32_t mmco;  // memory_management_control_operation 1..6
  uint32_t difference_of_pic_nums_minus1 = 0, long_term_pic_num = 0, long_term_frame_idx = 0,
           max_long_term_frame_idx_plus1 = 0;
};

struct SliceHeader {
  uint8_t nal_unit_type = 0, nal_ref_idc = 0;
  bool idr = false;
  uint32_t first_mb_in_slice = 0;
  SliceType slice_type = kSliceI;
  uint32_t pps_id = 0;
  uint32_t colour_plane_id = 0;
  uint32_t frame_num = 0;
  bool field_pic = false, bottom_field = false;
  uint32_t idr_pic_id = 0;
  uint32_t pic_order_cnt_lsb = 0;
  int32_t delta_pic_order_cnt_bottom = 0;
  std::array<int32_t, 2> delta_pic_order_cnt{};
  uint32_t redundant_pic_cnt = 0;
  bool direct_spatial_mv_pred = false;
  uint32_t num_ref_idx_active[2] = {0, 0};
  std::array<std::vector<RefPicListModification>, 2> ref_pic_list_modification;
  bool has_pred_weight_table = false;
  PredWeightTable pred_weight_table;
  bool no_output_of_prior_pics = false, long_term_reference = false;
  bool adaptive_ref_pic_marking = false;
  std::vector<MemoryManagementOperation> mmcos;
  uint32_t cabac_init_idc = 0;
  int32_t slice_qp_delta = 0;
  bool sp_for_switch = false;
  int32_t slice_qs_delta = 0;
  uint32_t disable_deblocking_filter_idc = 0;
  int32_t slice_alpha_c0_offset_div2 = 0, slice_beta_offset_div2 = 0;
  uint32_t slice_group_change_cycle = 0;
  size_t slice_data_bit_offset = 0;  // where slice_data() starts in the RBSP

  bool has_mmco5() const;
  bool mbaff(const Sps& sps) const { return sps.mb_adaptive_frame_field && !field_pic; }
};

// Parameter sets by id, null when absent.
struct ParameterSetLookup {
  virtual ~ParameterSetLookup() = default;
  virtual const Pps* pps(uint32_t id) const = 0;
  virtual const Sps* sps(uint32_t id) const = 0;
};

// Reads the header of a slice NAL unit; `r` starts after the NAL unit header.
SliceHeader parse_slice_header(BitReader& r, uint8_t nal_unit_type, uint8_t nal_ref_idc,
                               const ParameterSetLookup& sets);

}  // namespace vccv
