// Residual data (7.3.5.3): the blocks a coded_block_pattern announces, each read by CAVLC
// (with nC from its neighbours, 9.2.1) or CABAC, and their levels scaled (8.5.6-8.5.9) into the
// picture's coefficient blocks.
#include <algorithm>
#include <cstring>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cavlc.h"
#include "picture_parser.h"
#include "scan_tables.h"

namespace vccv {

namespace {

// TotalCoeff of a neighbouring block that is not available (9.2.1), as FFmpeg encodes it: above
// any sum of two TotalCoeffs, and zero in the low five bits.
constexpr int kNotAvailable = 64;

// nC from nA and nB (9.2.1; kNotAvailable where not available): their rounded mean when both are
// available, else the one that is, else 0; with that encoding, one sum and one compare.
int predict_nc(int na, int nb) {
  const int sum = na + nb;
  return (sum < kNotAvailable ? (sum + 1) >> 1 : sum) & 31;
}

// CAVLC: TotalCoeff of the n x n blocks of a macroblock's component, row-major in a grid of
// (n + 1) x (n + 1) with those of the blocks to its left (column 0) and above (row 0), so that nA
// and nB are two loads with no branch on the block's place in the macroblock (9.2.1). Blocks are
// numbered as their syntax orders them: luma4x4BlkIdx (6.4.3) for luma, raster for chroma.
template <int N>
struct TotalCoeffGrid {
  static constexpr int kStride = N + 1;
  // Grid index of each block, of its left neighbour and of its upper neighbour.
  struct Places {
    uint8_t self[N * N], left[N * N], top[N * N];
  };
  static constexpr Places kPlaces = [] {
    Places p{};
    for (int blk = 0; blk < N * N; ++blk) {
      const int bx = N == 4 ? kBlockX[blk] : blk % N, by = N == 4 ? kBlockY[blk] : blk / N;
      p.self[blk] = static_cast<uint8_t>((by + 1) * kStride + bx + 1);
      p.left[blk] = static_cast<uint8_t>(p.self[blk] - 1);
      p.top[blk] = static_cast<uint8_t>(p.self[blk] - kStride);
    }
    return p;
  }();
  uint8_t totals[kStride * kStride] = {};
  // Row 0 and column 0 from `total_of(bx, by)`, TotalCoeff of a neighbouring block (bx or by -1).
  template <class TotalOf>
  void load_edges(TotalOf total_of) {
    for (int k = 0; k < N; ++k) {
      totals[(k + 1) * kStride] = static_cast<uint8_t>(total_of(-1, k));
      totals[k + 1] = static_cast<uint8_t>(total_of(k, -1));
    }
  }
  int nc(int blk) const { return predict_nc(totals[kPlaces.left[blk]], totals[kPlaces.top[blk]]); }
  void set(int blk, int total) { totals[kPlaces.self[blk]] = static_cast<uint8_t>(total); }
  // The blocks' TotalCoeffs, raster order (y * N + x), to the macroblock's state: one copy per
  // row after the blocks instead of a store per block.
  void store(uint8_t* raster) const {
    for (int y = 0; y < N; ++y) std::memcpy(raster + y * N, totals + (y + 1) * kStride + 1, N);
  }
};

// A DC block's levels in raster order of its transform (zig-zag for the 4x4 luma DC, 8.5.6;
// the 2x2 chroma DC's scan is raster).
void scatter_dc(const BlockLevels& b, const uint8_t* to_raster, int32_t* c) {
  for (int k = 0; k < b.count; ++k) c[to_raster[b.scan[k]]] = b.level[k];
}

// Zeroes 8 * sizeof...(I) coefficients with as many 16-byte stores, written out: GCC turns a loop
// of them, or std::fill_n, into a `rep stos` for an 8x8 block, whose start-up costs more.
template <size_t... I>
[[gnu::always_inline]] inline void zero_block(int16_t* block, std::index_sequence<I...>) {
#if defined(__SSE2__)
  (_mm_storeu_si128(reinterpret_cast<__m128i*>(block + 8 * I), _mm_setzero_si128()), ...);
#else
  std::fill_n(block, 8 * sizeof...(I), int16_t{0});
#endif
}

// Zeroed room for block number `index` of `Size` coefficients: 4x4 blocks in the output buffer
// (grown here where the room the constructor gave it is short), 8x8 blocks staged for run() to
// append (with room for every block a picture can code: the growth only guards that bound).
template <size_t Size>
[[gnu::always_inline]] inline int16_t* next_block(PictureArray<int16_t>& coeffs, size_t index) {
  const size_t end = (index + 1) * Size;
  if (end > coeffs.size()) coeffs.resize(std::max(2 * coeffs.size(), end));
  int16_t* block = coeffs.data() + index * Size;
  zero_block(block, std::make_index_sequence<Size / 8>{});
  return block;
}

}  // namespace

int PictureParser::luma_total_coeff(int bx, int by) const {  // block coordinates relative to the current MB
  const MbState* n = owner(bx, by);
  return n ? n->total_coeff[(by & 3) * 4 + (bx & 3)] : kNotAvailable;
}

int PictureParser::chroma_total_coeff(int plane, int bx, int by) const {
  const MbState* n = owner(bx, by);
  return n ? n->total_coeff_chroma[plane][(by & 1) * 2 + (bx & 1)] : kNotAvailable;
}

template <bool kCabac>
int PictureParser::read_block(BlockCat cat, int nc, int cbf_inc, int max_num_coeff, BlockLevels& out) {
  if constexpr (!kCabac) {  // CAVLC blocks hold at most 16 levels (an 8x8 block comes as four 4x4)
    const int size = std::min(max_num_coeff, 16);
    const int end = cat == kCatLumaAc || cat == kCatChromaAc ? 14 : size - 1;
    return read_residual_block_cavlc(*r_, nc, 0, end, size, out);
  } else {
    return cabac_->residual_block(cat, cbf_inc, out);
  }
}

template <bool kCabac>
void PictureParser::residual(const MbTypeInfo& t, bool intra, bool transform_8x8, uint32_t cbp_luma,
                             uint32_t cbp_chroma) {
  const bool i16 = t.kind == MbKind::kIntra16x16;
  const auto& ls_y = scales_.s4[static_cast<size_t>(intra ? 0 : 3)][static_cast<size_t>(qp_ % 6)];
  BlockLevels levels;
  int32_t dc[16] = {};
  if (i16) {
    const int nc = kCabac ? 0 : predict_nc(luma_total_coeff(-1, 0), luma_total_coeff(0, -1));
    const bool dc_coded = read_block<kCabac>(kCatLumaDc, nc, kCabac ? cbf_luma_dc_inc() : 0, 16, levels) > 0;
    if constexpr (kCabac) cur_->cbf_luma_dc = dc_coded;
    if (coefficients_) {
      int32_t c[16] = {};
      scatter_dc(levels, kZigzag4x4.data(), c);
      luma_dc_transform(c, qp_, ls_y[0], dc);  // dc[] is spatial: row = block y, column = block x
    }
  }
  // What luma blocks on the macroblock's left and top edges need from the neighbouring
  // macroblocks, read once instead of per block: CABAC, condTermFlagA of the left edge's blocks
  // (bit = row) and condTermFlagB of the top edge's (bit = column); CAVLC, the TotalCoeff of the
  // blocks left of and above them (nA, nB).
  uint32_t cbf_left = 0, cbf_top = 0;
  TotalCoeffGrid<4> luma_totals;  // CAVLC
  if (kCabac && cbp_luma != 0 && !transform_8x8) {
    for (int k = 0; k < 4; ++k) {
      cbf_left |= static_cast<uint32_t>(cbf_luma_cond(-1, k)) << k;
      cbf_top |= static_cast<uint32_t>(cbf_luma_cond(k, -1)) << k;
    }
  } else if (!kCabac && cbp_luma != 0) {
    luma_totals.load_edges([this](int bx, int by) { return luma_total_coeff(bx, by); });
  }
  for (int i8 = 0; i8 < 4; ++i8) {
    const bool coded = (cbp_luma >> i8) & 1;
    if (transform_8x8) {
      if (!coded) continue;  // total_coeff and coded_block_flags stay 0
      if constexpr (kCabac) {
        const int count = read_block<kCabac>(kCatLuma8x8, 0, 0, 64, levels);
        // The block's coefficient count goes to its top-left 4x4 (CAVLC splits it over four).
        cur_->total_coeff[kBlockY[i8 * 4] * 4 + kBlockX[i8 * 4]] = static_cast<uint8_t>(count);
        // The 8x8 block's coded_block_flag, inferred 1, for its four 4x4 blocks (raster bits).
        cur_->cbf_luma |= static_cast<uint16_t>(0x33u << ((i8 & 1) * 2 + (i8 >> 1) * 8));
      } else {
        levels.count = 0;
        BlockLevels sub;
        for (int i4 = 0; i4 < 4; ++i4) {  // 8x8 from four interleaved 4x4 scans
          const int blk = i8 * 4 + i4;
          luma_totals.set(blk, read_block<kCabac>(kCatLuma4x4, luma_totals.nc(blk), 0, 16, sub));
          for (int k = 0; k < sub.count; ++k) {
            levels.scan[levels.count] = static_cast<uint8_t>(4 * sub.scan[k] + i4);
            levels.level[levels.count++] = sub.level[k];
          }
        }
      }
      if (coefficients_) emit8x8(levels, intra ? 0 : 1, (i8 % 2) * 8, (i8 / 2) * 8);
      continue;
    }
    // An uncoded 8x8 quadrant keeps the zero TotalCoeff and coded_block_flags its MbState
    // started with; only an Intra16x16 DC may still give its blocks coefficients.
    if (!coded && !(i16 && coefficients_)) continue;
    for (int i4 = 0; i4 < 4; ++i4) {
      const int blk = i8 * 4 + i4, bx = kBlockX[blk], by = kBlockY[blk];
      int total = 0;
      levels.count = 0;
      if (coded) {
        const uint32_t cbf = cur_->cbf_luma;
        const int nc = kCabac ? 0 : luma_totals.nc(blk);
        const int inc = kCabac ? static_cast<int>((bx > 0 ? cbf >> (by * 4 + bx - 1) : cbf_left >> by) & 1) +
                                     2 * static_cast<int>((by > 0 ? cbf >> (by * 4 + bx - 4) : cbf_top >> bx) & 1)
                               : 0;
        total = i16 ? read_block<kCabac>(kCatLumaAc, nc, inc, 15, levels)
                    : read_block<kCabac>(kCatLuma4x4, nc, inc, 16, levels);
        if constexpr (kCabac) {
          if (total > 0) {
            cur_->cbf_luma |= static_cast<uint16_t>(1u << (by * 4 + bx));
            cur_->total_coeff[by * 4 + bx] = static_cast<uint8_t>(total);
          }
        } else {
          luma_totals.set(blk, total);  // a zero where the grid has one already: no branch
        }
      }
      if (!coefficients_ || (total == 0 && !(i16 && dc[by * 4 + bx] != 0))) continue;
      emit4x4(levels, i16, i16 ? dc[by * 4 + bx] : 0, ls_y, qp_, 0, 4 * bx, 4 * by);
    }
  }
  if (!kCabac && cbp_luma != 0) luma_totals.store(cur_->total_coeff);
  // Chroma (4:2:0): DC 2x2 per component, then 4 AC blocks per component (cbp_chroma 2).
  // Uncoded blocks keep the zero TotalCoeff and coded_block_flags of their MbState.
  if (cbp_chroma == 0) return;
  int32_t chroma_dc[2][4] = {};
  int qpc[2] = {};
  const std::array<int32_t, 16>* ls_c[2] = {};
  static constexpr uint8_t kRaster2x2[4] = {0, 1, 2, 3};
  for (int plane = 0; plane < 2; ++plane) {
    const bool dc_coded = read_block<kCabac>(kCatChromaDc, -1, kCabac ? cbf_chroma_dc_inc(plane) : 0, 4, levels) > 0;
    if (kCabac && dc_coded) cur_->cbf_chroma_dc |= static_cast<uint8_t>(1u << plane);
    if (!coefficients_) continue;
    qpc[plane] = chroma_qp(qp_, plane == 0 ? pps_.chroma_qp_index_offset : pps_.second_chroma_qp_index_offset);
    int32_t c[4] = {};
    scatter_dc(levels, kRaster2x2, c);
    ls_c[plane] = &scales_.s4[static_cast<size_t>((intra ? 1 : 4) + plane)][static_cast<size_t>(qpc[plane] % 6)];
    chroma_dc_transform(c, qpc[plane], (*ls_c[plane])[0], chroma_dc[plane]);
  }
  if (!(cbp_chroma & 2) && !coefficients_) return;
  for (int plane = 0; plane < 2; ++plane) {
    TotalCoeffGrid<2> chroma_totals;  // CAVLC
    if (!kCabac && (cbp_chroma & 2))
      chroma_totals.load_edges([this, plane](int bx, int by) { return chroma_total_coeff(plane, bx, by); });
    for (int blk = 0; blk < 4; ++blk) {
      const int bx = blk % 2, by = blk / 2;
      int total = 0;
      levels.count = 0;
      if (cbp_chroma & 2) {
        const int nc = kCabac ? 0 : chroma_totals.nc(blk);
        const int inc = kCabac ? cbf_chroma_ac_cond(plane, bx - 1, by) + 2 * cbf_chroma_ac_cond(plane, bx, by - 1) : 0;
        total = read_block<kCabac>(kCatChromaAc, nc, inc, 15, levels);
        if constexpr (kCabac) {
          if (total > 0) cur_->cbf_chroma_ac |= static_cast<uint8_t>(1u << (plane * 4 + blk));
        } else {
          chroma_totals.set(blk, total);
        }
      }
      if (!coefficients_ || (total == 0 && chroma_dc[plane][blk] == 0)) continue;
      emit4x4(levels, true, chroma_dc[plane][blk], *ls_c[plane], qpc[plane], 1 + plane, 4 * bx, 4 * by);
    }
    if (!kCabac && (cbp_chroma & 2)) chroma_totals.store(cur_->total_coeff_chroma[plane]);
  }
}

// Inlined into residual(): as a call, saving and restoring registers and passing its eight
// arguments cost about a quarter of its instructions.
[[gnu::always_inline]] inline void PictureParser::emit4x4(const BlockLevels& levels, bool ac, int32_t dc,
                                                          const std::array<int32_t, 16>& ls, int qp, int plane, int x,
                                                          int y) {
  int16_t* block = next_block<16>(out_.coefficients.data, staged_.positions4.size());
  scale_scan4x4(levels, ac ? 1 : 0, qp, ls, block);
  if (ac) block[0] = saturate16(dc);
  const int mb_size = plane == 0 ? 16 : 8;
  staged_.positions4.push_back({static_cast<uint16_t>(plane), static_cast<uint16_t>(mb_x_ * mb_size + x),
                                static_cast<uint16_t>(mb_y_ * mb_size + y)});
}

void PictureParser::emit8x8(const BlockLevels& levels, int list, int x, int y) {
  int16_t* block = next_block<64>(staged_.coeffs8, staged_.positions8.size());
  if (!scale_scan8x8(levels, qp_, scales_.s8[static_cast<size_t>(list)][static_cast<size_t>(qp_ % 6)], block)) return;
  staged_.positions8.push_back({0, static_cast<uint16_t>(mb_x_ * 16 + x), static_cast<uint16_t>(mb_y_ * 16 + y)});
}

template void PictureParser::residual<false>(const MbTypeInfo&, bool, bool, uint32_t, uint32_t);
template void PictureParser::residual<true>(const MbTypeInfo&, bool, bool, uint32_t, uint32_t);

}  // namespace vccv
