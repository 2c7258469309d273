#include "slice_header.h"

#include <string>

#include "errors.h"
#include "nal.h"

namespace vccv {

namespace {

void read_ref_pic_list_modification(BitReader& r, SliceHeader& h) {  // 7.3.3.1
  const int lists = h.slice_type == kSliceB ? 2 : (h.slice_type == kSliceI || h.slice_type == kSliceSI ? 0 : 1);
  for (int list = 0; list < lists; ++list) {
    if (!r.flag()) continue;  // ref_pic_list_modification_flag_lX
    auto& ops = h.ref_pic_list_modification[static_cast<size_t>(list)];
    while (true) {
      const uint32_t idc = r.ue_max(3, "modification_of_pic_nums_idc");
      if (idc == 3) break;
      // Each entry places one picture; more entries than list slots cannot be meaningful.
      if (ops.size() >= h.num_ref_idx_active[list])
        throw CorruptStream("more ref_pic_list_modification entries than reference indices");
      ops.push_back({idc, r.ue()});
    }
  }
}

void read_pred_weight_table(BitReader& r, SliceHeader& h, const Sps& sps) {  // 7.3.3.2
  auto& t = h.pred_weight_table;
  const bool chroma = sps.chroma_array_type() != 0;
  t.luma_log2_weight_denom = r.ue_max(7, "luma_log2_weight_denom");
  if (chroma) t.chroma_log2_weight_denom = r.ue_max(7, "chroma_log2_weight_denom");
  const int lists = h.slice_type == kSliceB ? 2 : 1;
  for (int list = 0; list < lists; ++list) {
    auto& entries = t.entries[static_cast<size_t>(list)];
    entries.resize(h.num_ref_idx_active[list]);
    for (auto& e : entries) {
      e.luma_present = r.flag();
      if (e.luma_present) {
        e.luma_weight = r.se_range(-128, 127, "luma_weight");
        e.luma_offset = r.se_range(-128, 127, "luma_offset");
      }
      if (!chroma) continue;
      e.chroma_present = r.flag();
      if (e.chroma_present) {
        for (size_t j = 0; j < 2; ++j) {
          e.chroma_weight[j] = r.se_range(-128, 127, "chroma_weight");
          e.chroma_offset[j] = r.se_range(-128, 127, "chroma_offset");
        }
      }
    }
  }
}

void read_dec_ref_pic_marking(BitReader& r, SliceHeader& h) {  // 7.3.3.3
  if (h.idr) {
    h.no_output_of_prior_pics = r.flag();
    h.long_term_reference = r.flag();
    return;
  }
  h.adaptive_ref_pic_marking = r.flag();
  if (!h.adaptive_ref_pic_marking) return;
  while (true) {
    MemoryManagementOperation op{r.ue_max(6, "memory_management_control_operation")};
    if (op.mmco == 0) break;
    // A DPB holds at most 16 frames; a few operations per frame is the meaningful maximum.
    if (h.mmcos.size() >= 66) throw CorruptStream("too many memory_management_control_operations");
    if (op.mmco == 1 || op.mmco == 3) op.difference_of_pic_nums_minus1 = r.ue();
    if (op.mmco == 2) op.long_term_pic_num = r.ue();
    if (op.mmco == 3 || op.mmco == 6) op.long_term_frame_idx = r.ue_max(15, "long_term_frame_idx");
    if (op.mmco == 4) op.max_long_term_frame_idx_plus1 = r.ue_max(16, "max_long_term_frame_idx_plus1");
    h.mmcos.push_back(op);
  }
}

int ceil_log2(uint64_t v) {
  int bits = 0;
  while ((uint64_t{1} << bits) < v) ++bits;
  return bits;
}

}  // namespace

bool SliceHeader::has_mmco5() const {
  for (const auto& op : mmcos)
    if (op.mmco == 5) return true;
  return false;
}

SliceHeader parse_slice_header(BitReader& r, uint8_t nal_unit_type, uint8_t nal_ref_idc,
                               const ParameterSetLookup& sets) {
  SliceHeader h;
  h.nal_unit_type = nal_unit_type;
  h.nal_ref_idc = nal_ref_idc;
  h.idr = nal_unit_type == kNalIdrSlice;
  h.first_mb_in_slice = r.ue_max(139263, "first_mb_in_slice");
  const uint32_t raw_type = r.ue_max(9, "slice_type");
  h.slice_type = static_cast<SliceType>(raw_type % 5);
  h.pps_id = r.ue_max(255, "pic_parameter_set_id");
  const Pps* pps = sets.pps(h.pps_id);
  if (!pps) throw CorruptStream("slice refers to missing PPS " + std::to_string(h.pps_id));
  const Sps* sps = sets.sps(pps->sps_id);
  if (!sps)
    throw CorruptStream("PPS " + std::to_string(h.pps_id) + " refers to missing SPS " + std::to_string(pps->sps_id));
  if (h.idr && h.slice_type != kSliceI && h.slice_type != kSliceSI)
    throw CorruptStream("IDR picture with a P or B slice");
  if (sps->separate_colour_plane) h.colour_plane_id = r.ue_max(2, "colour_plane_id");
  h.frame_num = r.u(static_cast<int>(sps->log2_max_frame_num));
  if (!sps->frame_mbs_only) {
    h.field_pic = r.flag();
    if (h.field_pic) h.bottom_field = r.flag();
  }
  if (h.first_mb_in_slice >= sps->pic_width_in_mbs * sps->frame_height_in_mbs())
    throw CorruptStream("first_mb_in_slice " + std::to_string(h.first_mb_in_slice) + " lies outside the picture");
  if (h.idr) h.idr_pic_id = r.ue_max(65535, "idr_pic_id");
  if (sps->pic_order_cnt_type == 0) {
    h.pic_order_cnt_lsb = r.u(static_cast<int>(sps->log2_max_pic_order_cnt_lsb));
    if (pps->bottom_field_pic_order_in_frame_present && !h.field_pic) h.delta_pic_order_cnt_bottom = r.se();
  }
  if (sps->pic_order_cnt_type == 1 && !sps->delta_pic_order_always_zero) {
    h.delta_pic_order_cnt[0] = r.se();
    if (pps->bottom_field_pic_order_in_frame_present && !h.field_pic) h.delta_pic_order_cnt[1] = r.se();
  }
  if (pps->redundant_pic_cnt_present) h.redundant_pic_cnt = r.ue_max(127, "redundant_pic_cnt");
  if (h.slice_type == kSliceB) h.direct_spatial_mv_pred = r.flag();
  h.num_ref_idx_active[0] = pps->num_ref_idx_l0_default_active;
  h.num_ref_idx_active[1] = pps->num_ref_idx_l1_default_active;
  const bool inter = h.slice_type == kSliceP || h.slice_type == kSliceSP || h.slice_type == kSliceB;
  if (inter && r.flag()) {  // num_ref_idx_active_override_flag
    const uint32_t max_minus1 = h.field_pic ? 31 : 15;
    h.num_ref_idx_active[0] = r.ue_max(max_minus1, "num_ref_idx_l0_active_minus1") + 1;
    if (h.slice_type == kSliceB) h.num_ref_idx_active[1] = r.ue_max(max_minus1, "num_ref_idx_l1_active_minus1") + 1;
  }
  if (!inter) h.num_ref_idx_active[0] = 0;
  if (h.slice_type != kSliceB) h.num_ref_idx_active[1] = 0;
  if (!h.field_pic && (h.num_ref_idx_active[0] > 16 || h.num_ref_idx_active[1] > 16))
    throw CorruptStream("a frame slice uses more than 16 reference indices");
  read_ref_pic_list_modification(r, h);
  h.has_pred_weight_table = (pps->weighted_pred && (h.slice_type == kSliceP || h.slice_type == kSliceSP)) ||
                            (pps->weighted_bipred_idc == 1 && h.slice_type == kSliceB);
  if (h.has_pred_weight_table) read_pred_weight_table(r, h, *sps);
  if (nal_ref_idc != 0) read_dec_ref_pic_marking(r, h);
  if (pps->entropy_coding_mode && h.slice_type != kSliceI && h.slice_type != kSliceSI)
    h.cabac_init_idc = r.ue_max(2, "cabac_init_idc");
  const int qp_bd_offset = 6 * static_cast<int>(sps->bit_depth_luma - 8);
  h.slice_qp_delta = r.se_range(-qp_bd_offset - pps->pic_init_qp, 51 - pps->pic_init_qp, "slice_qp_delta");
  if (h.slice_type == kSliceSP || h.slice_type == kSliceSI) {
    if (h.slice_type == kSliceSP) h.sp_for_switch = r.flag();
    h.slice_qs_delta = r.se_range(-pps->pic_init_qs, 51 - pps->pic_init_qs, "slice_qs_delta");
  }
  if (pps->deblocking_filter_control_present) {
    h.disable_deblocking_filter_idc = r.ue_max(2, "disable_deblocking_filter_idc");
    if (h.disable_deblocking_filter_idc != 1) {
      h.slice_alpha_c0_offset_div2 = r.se_range(-6, 6, "slice_alpha_c0_offset_div2");
      h.slice_beta_offset_div2 = r.se_range(-6, 6, "slice_beta_offset_div2");
    }
  }
  if (pps->num_slice_groups > 1 && pps->slice_group_map_type >= 3 && pps->slice_group_map_type <= 5) {
    const uint64_t units = uint64_t{sps->pic_width_in_mbs} * sps->pic_height_in_map_units;
    h.slice_group_change_cycle = r.u(ceil_log2(units / pps->slice_group_change_rate + 1));
  }
  h.slice_data_bit_offset = r.position();
  return h;
}

}  // namespace vccv
