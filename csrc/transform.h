// Scaling (dequantisation) and inverse transforms of residual blocks (8.5.6-8.5.13), exact
// integer arithmetic as the standard specifies it, for 8-bit 4:2:0 video.
#pragma once

#include <array>
#include <cstdint>

#include "block_levels.h"
#include "parameter_sets.h"

namespace vccv {

// QP'c from QP'y and a chroma_qp_index_offset (8.5.8, Table 8-15), 8-bit video.
int chroma_qp(int qp_y, int offset);

// LevelScale4x4 / LevelScale8x8 (8.5.9) for a picture's weights, in raster order.
struct LevelScales {
  explicit LevelScales(const ResolvedScaling& weights);
  // [list: Intra Y, Cb, Cr, Inter Y, Cb, Cr][qP % 6][raster position]
  std::array<std::array<std::array<int32_t, 16>, 6>, 6> s4;
  // [list: Intra Y, Inter Y, Intra Cb, Inter Cb, Intra Cr, Inter Cr][qP % 6][raster position]
  std::array<std::array<std::array<int32_t, 64>, 6>, 6> s8;
};

// 8.5.12.1 / 8.5.13.1 scaling of a block's nonzero levels (zig-zag scan positions, plus
// `scan_offset` for AC blocks read from position 1) into a raster int16 block the caller zeroed.
// A 4x4 block's scaled levels are never zero: LevelScale4x4 >= 10 (weights >= 1, normAdjust4x4
// >= 10), so |level * LevelScale4x4| >= 10 survives the rounding shift of at most 4 bits. An 8x8
// block's may be (a shift of up to 6 bits): scale_scan8x8 returns whether one is nonzero.
void scale_scan4x4(const BlockLevels& levels, int scan_offset, int qp, const std::array<int32_t, 16>& level_scale,
                   int16_t* out);
bool scale_scan8x8(const BlockLevels& levels, int qp, const std::array<int32_t, 64>& level_scale, int16_t* out);
// 8.5.10: inverse Hadamard and scaling of the Intra16x16 luma DC (4x4, raster order).
void luma_dc_transform(const int32_t* c, int qp, int32_t level_scale_00, int32_t* dc);
// 8.5.11: 2x2 chroma DC (4:2:0), raster order.
void chroma_dc_transform(const int32_t* c, int qp_c, int32_t level_scale_00, int32_t* dc);

// 8.5.12.2 / 8.5.13.2: inverse transform of scaled coefficients d (raster, as CoefficientBlocks
// holds them), writing the residual r = (h + 32) >> 6 into dst with the given row stride.
void inverse_transform4x4(const int16_t* d, int16_t* dst, int stride);
void inverse_transform8x8(const int16_t* d, int16_t* dst, int stride);
// Their portable code, which they use where SSE2 is missing (tested beside them everywhere).
void inverse_transform4x4_portable(const int16_t* d, int16_t* dst, int stride);
void inverse_transform8x8_portable(const int16_t* d, int16_t* dst, int stride);

// Keeps a scaled coefficient within int16, the range conforming streams stay in (8.5.12.1).
inline int16_t saturate16(int64_t v) { return static_cast<int16_t>(v < -32768 ? -32768 : (v > 32767 ? 32767 : v)); }

}  // namespace vccv
