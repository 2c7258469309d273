// mb_type and sub_mb_type semantics (Tables 7-11, 7-13, 7-14, 7-17, 7-18) for frame macroblocks.
#pragma once

#include <cstdint>

namespace vccv {

// Prediction list usage of a partition: bit 0 list 0, bit 1 list 1.
enum PredFlags : uint8_t { kPredNone = 0, kPredL0 = 1, kPredL1 = 2, kPredBi = 3, kPredDirect = 4 };

enum class MbKind : uint8_t { kIntra4x4, kIntra16x16, kPcm, kInter, kDirect16x16 };

struct MbTypeInfo {
  MbKind kind;
  uint8_t num_parts = 1;  // 1, 2 or 4 (4: 8x8 with sub_mb_type)
  uint8_t part_width = 16, part_height = 16;
  PredFlags pred[2] = {kPredNone, kPredNone};  // per partition (inter, 1 or 2 partitions)
  bool ref0 = false;                           // P_8x8ref0: no ref_idx, all zero
  // Intra 16x16 only
  uint8_t intra16x16_pred_mode = 0, cbp_chroma = 0, cbp_luma = 0;
};

struct SubMbTypeInfo {
  uint8_t num_parts;
  uint8_t part_width, part_height;
  PredFlags pred;  // kPredDirect for B_Direct_8x8
};

// I slices: mb_type 0..25 (Table 7-11). Other slices map their intra mb_types here.
inline MbTypeInfo intra_mb_type(uint32_t mb_type) {
  MbTypeInfo t{MbKind::kIntra4x4};
  if (mb_type == 0) return t;  // I_NxN (4x4 or 8x8, by transform_size_8x8_flag)
  if (mb_type == 25) {
    t.kind = MbKind::kPcm;
    return t;
  }
  t.kind = MbKind::kIntra16x16;
  t.intra16x16_pred_mode = static_cast<uint8_t>((mb_type - 1) % 4);
  t.cbp_chroma = static_cast<uint8_t>(((mb_type - 1) / 4) % 3);
  t.cbp_luma = mb_type >= 13 ? 15 : 0;
  return t;
}

// P and SP slices: mb_type 0..4 inter (Table 7-13), 5..30 intra.
inline MbTypeInfo p_mb_type(uint32_t mb_type) {
  if (mb_type >= 5) return intra_mb_type(mb_type - 5);
  MbTypeInfo t{MbKind::kInter};
  t.pred[0] = t.pred[1] = kPredL0;
  switch (mb_type) {
    case 0:
      break;  // P_L0_16x16
    case 1:
      t.num_parts = 2;
      t.part_height = 8;
      break;  // P_L0_L0_16x8
    case 2:
      t.num_parts = 2;
      t.part_width = 8;
      break;  // P_L0_L0_8x16
    default:
      t.num_parts = 4;
      t.part_width = t.part_height = 8;
      t.ref0 = mb_type == 4;
      break;  // P_8x8(ref0)
  }
  return t;
}

// B slices: mb_type 0..22 inter (Table 7-14), 23..48 intra.
inline MbTypeInfo b_mb_type(uint32_t mb_type) {
  if (mb_type >= 23) return intra_mb_type(mb_type - 23);
  MbTypeInfo t{MbKind::kInter};
  if (mb_type == 0) {
    t.kind = MbKind::kDirect16x16;
    t.pred[0] = kPredDirect;
    return t;
  }
  if (mb_type <= 3) {  // B_L0_16x16, B_L1_16x16, B_Bi_16x16
    t.pred[0] = static_cast<PredFlags>(mb_type);
    return t;
  }
  if (mb_type == 22) {  // B_8x8
    t.num_parts = 4;
    t.part_width = t.part_height = 8;
    return t;
  }
  // 4..21: pairs (L0,L0) (L1,L1) (L0,L1) (L1,L0) (L0,Bi) (L1,Bi) (Bi,L0) (Bi,L1) (Bi,Bi), 16x8 then 8x16
  static const PredFlags kPairs[9][2] = {{kPredL0, kPredL0}, {kPredL1, kPredL1}, {kPredL0, kPredL1},
                                         {kPredL1, kPredL0}, {kPredL0, kPredBi}, {kPredL1, kPredBi},
                                         {kPredBi, kPredL0}, {kPredBi, kPredL1}, {kPredBi, kPredBi}};
  const uint32_t k = (mb_type - 4) / 2;
  t.num_parts = 2;
  if ((mb_type - 4) % 2 == 0)
    t.part_height = 8;
  else
    t.part_width = 8;
  t.pred[0] = kPairs[k][0];
  t.pred[1] = kPairs[k][1];
  return t;
}

// Table 7-17: P sub_mb_type 0..3.
inline SubMbTypeInfo p_sub_mb_type(uint32_t t) {
  static const SubMbTypeInfo kTypes[4] = {
      {1, 8, 8, kPredL0}, {2, 8, 4, kPredL0}, {2, 4, 8, kPredL0}, {4, 4, 4, kPredL0}};
  return kTypes[t];
}

// Table 7-18: B sub_mb_type 0..12.
inline SubMbTypeInfo b_sub_mb_type(uint32_t t) {
  static const SubMbTypeInfo kTypes[13] = {
      {4, 4, 4, kPredDirect}, {1, 8, 8, kPredL0}, {1, 8, 8, kPredL1}, {1, 8, 8, kPredBi}, {2, 8, 4, kPredL0},
      {2, 4, 8, kPredL0},     {2, 8, 4, kPredL1}, {2, 4, 8, kPredL1}, {2, 8, 4, kPredBi}, {2, 4, 8, kPredBi},
      {4, 4, 4, kPredL0},     {4, 4, 4, kPredL1}, {4, 4, 4, kPredBi}};
  return kTypes[t];
}

}  // namespace vccv
