#include "cabac.h"

#include "cabac_tables.h"
#include "errors.h"

namespace vccv {

namespace {

// ctxIdxOffset per syntax element, frame coding (Table 9-34, in cabac_tables.h).
constexpr int kMbSkipP = kCtxOffsetMbSkipFlagP, kMbSkipB = kCtxOffsetMbSkipFlagB, kMbTypeI = kCtxOffsetMbTypeI,
              kMbTypePPrefix = kCtxOffsetMbTypePPrefix, kMbTypePSuffix = kCtxOffsetMbTypePSuffix,
              kMbTypeBPrefix = kCtxOffsetMbTypeBPrefix, kMbTypeBSuffix = kCtxOffsetMbTypeBSuffix,
              kSubMbTypeP = kCtxOffsetSubMbTypeP, kSubMbTypeB = kCtxOffsetSubMbTypeB, kMvdX = kCtxOffsetMvdX,
              kMvdY = kCtxOffsetMvdY, kRefIdx = kCtxOffsetRefIdx, kMbQpDelta = kCtxOffsetMbQpDelta,
              kIntraChroma = kCtxOffsetIntraChromaPredMode, kPrevIntra = kCtxOffsetPrevIntraPredModeFlag,
              kRemIntra = kCtxOffsetRemIntraPredMode, kCbpLuma = kCtxOffsetCodedBlockPatternLuma,
              kCbpChroma = kCtxOffsetCodedBlockPatternChroma, kCodedBlockFlag = kCtxOffsetCodedBlockFlag,
              kSignificant = kCtxOffsetSignificantCoeffFlag, kLast = kCtxOffsetLastSignificantCoeffFlag,
              kAbsLevel = kCtxOffsetCoeffAbsLevelMinus1, kTransform8x8 = kCtxOffsetTransformSize8x8Flag,
              kSignificant8x8 = kCtxOffsetSignificantCoeffFlagCat5, kLast8x8 = kCtxOffsetLastSignificantCoeffFlagCat5,
              kAbsLevel8x8 = kCtxOffsetCoeffAbsLevelMinus1Cat5;

}  // namespace

CabacDecoder::CabacDecoder(BitReader& r, int cabac_init_idc, int slice_qp) : r_(r) {
  const int qp = slice_qp < 0 ? 0 : (slice_qp > 51 ? 51 : slice_qp);
  for (size_t i = 0; i < state_.size(); ++i) {
    const int8_t* mn = cabac_init_idc < 0 ? kCabacInitI[i] : kCabacInitPB[cabac_init_idc][i];
    int pre = ((mn[0] * qp) >> 4) + mn[1];  // 9.3.1.1 (arithmetic shift: floor)
    pre = pre < 1 ? 1 : (pre > 126 ? 126 : pre);
    state_[i] = static_cast<CtxState>(pre <= 63 ? (63 - pre) << 1 : ((pre - 64) << 1) | 1);
  }
  init_engine();
}

namespace {

std::array<uint8_t, 128> next_states(bool lps) {
  std::array<uint8_t, 128> t{};
  for (int s = 0; s < 128; ++s) {
    const int p = s >> 1, mps = s & 1;
    t[static_cast<size_t>(s)] =
        static_cast<uint8_t>(lps ? (kTransIdxLps[p] << 1) | (p == 0 ? !mps : mps) : (kTransIdxMps[p] << 1) | mps);
  }
  return t;
}

std::array<std::array<uint8_t, 4>, 128> range_tab_lps_by_state() {
  std::array<std::array<uint8_t, 4>, 128> t{};
  for (size_t s = 0; s < 128; ++s)
    for (size_t q = 0; q < 4; ++q) t[s][q] = kRangeTabLps[s >> 1][q];
  return t;
}

}  // namespace

const std::array<uint8_t, 128> ArithmeticEngine::kNextStateLps = next_states(true);
const std::array<uint8_t, 128> ArithmeticEngine::kNextStateMps = next_states(false);
const std::array<std::array<uint8_t, 4>, 128> ArithmeticEngine::kRangeTabLpsByState = range_tab_lps_by_state();

uint64_t ArithmeticEngine::refilled_window(uint64_t window, int ahead, BitReader& r) {
  // Reading beyond the data is an error only once the decoder has consumed those bits, which
  // this bound detects in time.
  const size_t consumed = r.position() - static_cast<size_t>(ahead);
  if (consumed > r.size_bits()) throw CorruptStream("read past the end of a NAL unit");
  window = (window << 32) | r.peek(32);
  r.skip_unchecked(32);
  return window;
}

ArithmeticEngine ArithmeticEngine::started(BitReader& r) {
  const uint32_t offset = r.u(9);
  if (offset >= 510) throw CorruptStream("CABAC codIOffset starts at 510 or 511");
  return ArithmeticEngine{offset, 510, 0};
}

void CabacDecoder::init_engine() {
  VCCV_TRACE_BIN(start(r_, state_.data()));
  engine_ = ArithmeticEngine::started(r_);
}

void CabacDecoder::sync_reader() {
  const size_t consumed = r_.position() - static_cast<size_t>(engine_.ahead);
  if (consumed > r_.size_bits()) throw CorruptStream("read past the end of a NAL unit");
  r_.rewind_to(consumed);
  engine_.window >>= engine_.ahead;
  engine_.ahead = 0;
}

void CabacDecoder::restart_engine() { init_engine(); }

bool CabacDecoder::mb_skip_flag(bool b_slice, int inc) { return decision((b_slice ? kMbSkipB : kMbSkipP) + inc); }

namespace {

// The I-slice mb_type binarisation (Table 9-36) after its first bin was 1: I_PCM or I_16x16.
template <typename Decision>
uint32_t intra16x16_or_pcm(CabacDecoder& d, Decision bin, int luma_ctx, int chroma1_ctx, int chroma2_ctx, int pred1_ctx,
                           int pred2_ctx) {
  if (d.terminate()) return 25;  // I_PCM
  const uint32_t luma = bin(luma_ctx);
  uint32_t chroma = bin(chroma1_ctx);
  if (chroma) chroma += bin(chroma2_ctx);
  uint32_t pred = bin(pred1_ctx) << 1;
  pred |= bin(pred2_ctx);
  return 1 + pred + 4 * chroma + 12 * luma;
}

}  // namespace

uint32_t CabacDecoder::mb_type_i(int inc) {
  if (!decision(kMbTypeI + inc)) return 0;  // I_NxN
  auto bin = [this](int ctx) { return static_cast<uint32_t>(decision(ctx)); };
  // Table 9-39, ctxIdxOffset 3: bins 2.. use 3+3, 3+4, 3+5 (second chroma bin), 3+6, 3+7.
  return intra16x16_or_pcm(*this, bin, kMbTypeI + 3, kMbTypeI + 4, kMbTypeI + 5, kMbTypeI + 6, kMbTypeI + 7);
}

uint32_t CabacDecoder::mb_type_p() {
  if (decision(kMbTypePPrefix + 0)) {  // prefix "1": intra, suffix as in I slices (offset 17)
    auto bin = [this](int ctx) { return static_cast<uint32_t>(decision(ctx)); };
    if (!decision(kMbTypePSuffix)) return 5;  // I_NxN
    return 5 + intra16x16_or_pcm(*this, bin, kMbTypePSuffix + 1, kMbTypePSuffix + 2, kMbTypePSuffix + 2,
                                 kMbTypePSuffix + 3, kMbTypePSuffix + 3);
  }
  if (!decision(kMbTypePPrefix + 1)) return decision(kMbTypePPrefix + 2) ? 3 : 0;  // P_8x8 "001" / P_L0_16x16 "000"
  return decision(kMbTypePPrefix + 3) ? 1 : 2;  // P_L0_L0_16x8 "011" / P_L0_L0_8x16 "010"
}

uint32_t CabacDecoder::mb_type_b(int inc) {
  if (!decision(kMbTypeBPrefix + inc)) return 0;  // B_Direct_16x16
  if (!decision(kMbTypeBPrefix + 3)) return 1 + static_cast<uint32_t>(decision(kMbTypeBPrefix + 5));
  uint32_t bits = static_cast<uint32_t>(decision(kMbTypeBPrefix + 4)) << 3;
  bits |= static_cast<uint32_t>(decision(kMbTypeBPrefix + 5)) << 2;
  bits |= static_cast<uint32_t>(decision(kMbTypeBPrefix + 5)) << 1;
  bits |= static_cast<uint32_t>(decision(kMbTypeBPrefix + 5));
  if (bits < 8) return bits + 3;  // B_Bi_16x16 .. B_L1_L0_16x8 (Table 9-37)
  if (bits == 13) {               // intra prefix "111101", suffix with ctxIdxOffset 32
    auto bin = [this](int ctx) { return static_cast<uint32_t>(decision(ctx)); };
    if (!decision(kMbTypeBSuffix)) return 23;
    return 23 + intra16x16_or_pcm(*this, bin, kMbTypeBSuffix + 1, kMbTypeBSuffix + 2, kMbTypeBSuffix + 2,
                                  kMbTypeBSuffix + 3, kMbTypeBSuffix + 3);
  }
  if (bits == 14) return 11;  // B_L1_L0_8x16
  if (bits == 15) return 22;  // B_8x8
  bits = (bits << 1) | static_cast<uint32_t>(decision(kMbTypeBPrefix + 5));
  return bits - 4;  // B_L0_Bi_16x8 .. B_Bi_Bi_8x16
}

uint32_t CabacDecoder::sub_mb_type_p() {  // Table 9-38: "1", "00", "011", "010"
  if (decision(kSubMbTypeP)) return 0;
  if (!decision(kSubMbTypeP + 1)) return 1;
  return decision(kSubMbTypeP + 2) ? 2 : 3;
}

uint32_t CabacDecoder::sub_mb_type_b() {                                                        // Table 9-38
  if (!decision(kSubMbTypeB)) return 0;                                                         // B_Direct_8x8
  if (!decision(kSubMbTypeB + 1)) return 1 + static_cast<uint32_t>(decision(kSubMbTypeB + 3));  // B_L0/L1_8x8
  uint32_t type = 3;
  if (decision(kSubMbTypeB + 2)) {
    if (decision(kSubMbTypeB + 3)) return 11 + static_cast<uint32_t>(decision(kSubMbTypeB + 3));  // B_L1/Bi_4x4
    type += 4;
  }
  type += 2 * static_cast<uint32_t>(decision(kSubMbTypeB + 3));
  type += static_cast<uint32_t>(decision(kSubMbTypeB + 3));
  return type;
}

bool CabacDecoder::transform_size_8x8_flag(int inc) { return decision(kTransform8x8 + inc); }

bool CabacDecoder::prev_intra_pred_mode_flag() { return decision(kPrevIntra); }

uint32_t CabacDecoder::rem_intra_pred_mode() {  // FL, cMax 7: least significant bit first
  uint32_t v = static_cast<uint32_t>(decision(kRemIntra));
  v |= static_cast<uint32_t>(decision(kRemIntra)) << 1;
  v |= static_cast<uint32_t>(decision(kRemIntra)) << 2;
  return v;
}

uint32_t CabacDecoder::intra_chroma_pred_mode(int inc) {  // TU, cMax 3
  if (!decision(kIntraChroma + inc)) return 0;
  if (!decision(kIntraChroma + 3)) return 1;
  return decision(kIntraChroma + 3) ? 3 : 2;
}

uint32_t CabacDecoder::ref_idx(int inc) {  // U: bin 0 inc from neighbours, bin 1: 4, then 5
  uint32_t v = 0;
  if (!decision(kRefIdx + inc)) return 0;
  ++v;
  int ctx = kRefIdx + 4;
  while (decision(ctx)) {
    if (++v > 31) throw CorruptStream("ref_idx beyond 31");
    ctx = kRefIdx + 5;
  }
  return v;
}

uint32_t CabacDecoder::unary_exp_golomb_bypass(int k) {  // 9.3.2.3, the suffix
  uint32_t value = 0;
  while (bypass()) {
    value += 1u << k;
    if (++k > 24) throw CorruptStream("Exp-Golomb suffix too long");
  }
  while (k-- > 0) value += static_cast<uint32_t>(bypass()) << k;
  return value;
}

int32_t CabacDecoder::mvd(int comp, int abs_sum) {  // UEG3, signed, uCoff 9
  CtxState* const ctx = state_.data() + (comp == 0 ? kMvdX : kMvdY);
  const int inc0 = abs_sum < 3 ? 0 : (abs_sum > 32 ? 2 : 1);
  ArithmeticEngine e = engine_;  // in registers for the element (see ArithmeticEngine)
  if (!e.decision(ctx[inc0], r_)) {
    engine_ = e;
    return 0;
  }
  int32_t prefix = 1;
  static const int kInc[9] = {0, 3, 4, 5, 6, 6, 6, 6, 6};
  while (prefix < 9 && e.decision(ctx[kInc[prefix]], r_)) ++prefix;
  int32_t value = prefix;
  if (prefix >= 9) value += static_cast<int32_t>(exp_golomb_bypass(e, 3));
  value = e.signed_bypass(value, r_);
  engine_ = e;
  return value;
}

uint32_t CabacDecoder::coded_block_pattern(const CbpContexts& n) {  // FL prefix, 4 bins; TU suffix, cMax 2 (9.3.2.6)
  ArithmeticEngine e = engine_;  // in registers for the element (see ArithmeticEngine)
  CtxState* const ctx = state_.data();
  uint32_t luma = 0;
  for (int b8 = 0; b8 < 4; ++b8) {
    // condTermFlagN inside the macroblock: the 8x8 block to the left / above came out uncoded.
    const uint32_t a = (b8 & 1) ? ~(luma >> (b8 - 1)) & 1 : (n.luma_a >> b8) & 1;
    const uint32_t b = (b8 & 2) ? ~(luma >> (b8 - 2)) & 1 : (n.luma_b >> b8) & 1;
    luma |= static_cast<uint32_t>(e.decision(ctx[kCbpLuma + a + 2 * b], r_)) << b8;
  }
  uint32_t chroma = static_cast<uint32_t>(e.decision(ctx[kCbpChroma + n.chroma[0]], r_));
  if (chroma) chroma += static_cast<uint32_t>(e.decision(ctx[kCbpChroma + 4 + n.chroma[1]], r_));
  engine_ = e;
  return luma | chroma << 4;
}

int32_t CabacDecoder::mb_qp_delta(bool previous_nonzero) {  // U of the mapped value (Table 9-3)
  if (!decision(kMbQpDelta + (previous_nonzero ? 1 : 0))) return 0;
  uint32_t k = 1;
  int ctx = kMbQpDelta + 2;
  while (decision(ctx)) {
    if (++k > 52) throw CorruptStream("mb_qp_delta out of range");
    ctx = kMbQpDelta + 3;
  }
  return (k & 1) ? static_cast<int32_t>((k + 1) / 2) : -static_cast<int32_t>(k / 2);
}

namespace {

// ctxIdxInc of coeff_abs_level_minus1 (9.3.3.1.3) as a walk over eight nodes instead of two counters
// and their comparisons per level: node n < 4 stands for numDecodAbsLevelGt1 = 0 and
// numDecodAbsLevelEq1 = Min(n, 3), n >= 4 for numDecodAbsLevelGt1 = Min(n - 3, 4).
struct LevelNodes {
  // First bin: ((numDecodAbsLevelGt1 != 0) ? 0 : Min(4, 1 + numDecodAbsLevelEq1)).
  uint8_t first_inc[8] = {1, 2, 3, 4, 0, 0, 0, 0};
  // Later bins: 5 + Min(4 - (ctxBlockCat == 3), numDecodAbsLevelGt1).
  uint8_t greater_inc[8] = {5, 5, 5, 5, 6, 7, 8, 9};
  uint8_t greater_inc_chroma_dc[8] = {5, 5, 5, 5, 6, 7, 8, 8};
  uint8_t after_one[8] = {1, 2, 3, 3, 4, 5, 6, 7};      // a level of 1 was decoded
  uint8_t after_greater[8] = {4, 4, 4, 4, 5, 6, 7, 7};  // a level above 1 was decoded
};
constexpr LevelNodes kLevelNodes{};

// What residual_block_cabac needs of a 4:2:0 frame block category, fixed at compile time.
template <BlockCat kCat>
struct CatContexts {
  static constexpr bool k8x8 = kCat == kCatLuma8x8;
  static constexpr int max_num_coeff =
      k8x8 ? 64 : (kCat == kCatChromaDc ? 4 : (kCat == kCatLuma4x4 || kCat == kCatLumaDc ? 16 : 15));
  static constexpr int cbf = kCodedBlockFlag + kCtxBlockCatOffset[kCtxBlockCatOffsetCodedBlockFlag][kCat];
  static constexpr int sig =
      k8x8 ? kSignificant8x8 : kSignificant + kCtxBlockCatOffset[kCtxBlockCatOffsetSignificantCoeffFlag][kCat];
  static constexpr int last =
      k8x8 ? kLast8x8 : kLast + kCtxBlockCatOffset[kCtxBlockCatOffsetLastSignificantCoeffFlag][kCat];
  static constexpr int abs =
      k8x8 ? kAbsLevel8x8 : kAbsLevel + kCtxBlockCatOffset[kCtxBlockCatOffsetCoeffAbsLevelMinus1][kCat];
  // ctxIdxInc of significant_coeff_flag / last_significant_coeff_flag at scan position i
  // (9.3.3.1.3): the position itself, Min(i / NumC8x8, 2) for 4:2:0 chroma DC, tables for 8x8.
  static int sig_inc(int i) {
    if constexpr (k8x8) return kSignificantCoeffFlagOffset8x8Frame[i];
    if constexpr (kCat == kCatChromaDc) return i < 2 ? i : 2;
    return i;
  }
  static int last_inc(int i) {
    if constexpr (k8x8) return kLastSignificantCoeffFlagOffset8x8[i];
    return sig_inc(i);
  }
};

}  // namespace

template <BlockCat kCat>
int CabacDecoder::residual_block(int cbf_inc, BlockLevels& out) {
  using C = CatContexts<kCat>;
  ArithmeticEngine e = engine_;  // in registers for the block (see ArithmeticEngine)
  CtxState* const ctx = state_.data();
  out.count = 0;
  if constexpr (!C::k8x8) {  // an 8x8 block's coded_block_flag is inferred 1 (4:2:0)
    if (!e.decision(ctx[C::cbf + cbf_inc], r_)) {
      engine_ = e;
      return 0;
    }
  }
  uint8_t* scan = out.scan;
  int count = 0;
  int i = 0;
  for (; i < C::max_num_coeff - 1; ++i) {
    if (!e.decision(ctx[C::sig + C::sig_inc(i)], r_)) continue;
    scan[count++] = static_cast<uint8_t>(i);
    if (e.decision(ctx[C::last + C::last_inc(i)], r_)) break;
  }
  if (i == C::max_num_coeff - 1) scan[count++] = static_cast<uint8_t>(i);  // significant by inference
  // coeff_abs_level_minus1 (prefix TU with cMax 14 and context increments, suffix EG0 bypass)
  // and coeff_sign_flag, from the last significant position back to the first.
  int node = 0;  // see kLevelNodes
  for (int k = count - 1; k >= 0; --k) {
    int32_t abs_minus1 = 0;
    if (e.decision(ctx[C::abs + kLevelNodes.first_inc[node]], r_)) {
      CtxState& greater = ctx[C::abs + (kCat == kCatChromaDc ? kLevelNodes.greater_inc_chroma_dc[node]
                                                             : kLevelNodes.greater_inc[node])];
      node = kLevelNodes.after_greater[node];
      abs_minus1 = 1;
      while (abs_minus1 < 14 && e.decision(greater, r_)) ++abs_minus1;
      if (abs_minus1 >= 14) abs_minus1 += static_cast<int32_t>(exp_golomb_bypass(e, 0));
    } else {
      node = kLevelNodes.after_one[node];
    }
    out.level[k] = e.signed_bypass(abs_minus1 + 1, r_);
  }
  engine_ = e;
  out.count = count;
  return count;
}

int CabacDecoder::residual_block(BlockCat cat, int cbf_inc, BlockLevels& out) {
  switch (cat) {
    case kCatLumaDc:
      return residual_block<kCatLumaDc>(cbf_inc, out);
    case kCatLumaAc:
      return residual_block<kCatLumaAc>(cbf_inc, out);
    case kCatLuma4x4:
      return residual_block<kCatLuma4x4>(cbf_inc, out);
    case kCatChromaDc:
      return residual_block<kCatChromaDc>(cbf_inc, out);
    case kCatChromaAc:
      return residual_block<kCatChromaAc>(cbf_inc, out);
    case kCatLuma8x8:
      break;
  }
  return residual_block<kCatLuma8x8>(cbf_inc, out);
}

}  // namespace vccv
