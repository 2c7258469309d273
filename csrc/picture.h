// Entropy decoding of one picture's slice data (7.3.4, 7.3.5) into per-macroblock information,
// motion vectors and dequantised residual coefficients; no pixel is reconstructed.
#pragma once

#include <cstdint>
#include <vector>

#include "stream.h"

namespace vccv {

// mb_type as reported to users (DESIGN.md parser contract).
enum MbClass : int8_t { kMbIntra = 0, kMbInter = 1, kMbSkip = 2, kMbDirect = 3, kMbPcm = 4 };

struct MacroblockGrid {
  int width_mbs = 0, height_mbs = 0;
  std::vector<int8_t> mb_type, qp;  // [height_mbs][width_mbs]
  std::vector<int8_t> cbp;          // coded_block_pattern: luma bits 0-3, chroma (0-2) << 4
  std::vector<int16_t> mv;          // [2][4 * height_mbs][4 * width_mbs][2], quarter pels
  std::vector<int8_t> ref_idx;      // [2][4 * height_mbs][4 * width_mbs], -1 where unused
  // Intra prediction (intra_modes.h): the Intra4x4 / Intra8x8 / Intra16x16 luma mode covering
  // each 4x4 block [4 * height_mbs][4 * width_mbs]; per macroblock the luma block size (4, 8,
  // 16; 0 when not intra or I_PCM) and intra_chroma_pred_mode; -1 where not predicted intra.
  std::vector<int8_t> intra_pred, intra_size, intra_chroma_pred;
};

// Dequantised coefficients (raster order) of every transform block with a nonzero one: the
// input of the inverse transform, so reconstruction can run anywhere (CPU here, GPU later).
struct CoefficientBlocks {
  struct Position {
    uint16_t plane, x, y;  // plane 0 Y, 1 Cb, 2 Cr; top-left sample in that plane
  };
  std::vector<Position> positions4, positions8;
  std::vector<int16_t> coeffs4, coeffs8;  // 16 / 64 per block
};

struct ParsedPicture {
  MacroblockGrid macroblocks;
  CoefficientBlocks coefficients;
  std::vector<int32_t> ref_picture;  // decoding index each 4x4 block's ref_idx names [2][H4][W4], -1
  std::vector<uint8_t> luma_total_coeff;  // TotalCoeff per luma 4x4 block [4 * height_mbs][4 * width_mbs]
};

// Parses every slice of `picture` (one of `stream`'s, which provides the co-located picture of
// B slices); throws CorruptStream (or UnsupportedStream) on bad data, including slices whose
// data does not end at their rbsp_trailing_bits.
ParsedPicture parse_picture(const Picture& picture, const Stream& stream);

// The residual planes (8.5.12.2, 8.5.13.2): y [coded_height][coded_width], u/v at half size.
void render_residual(const CoefficientBlocks& blocks, int coded_width, int coded_height, int16_t* y,
                     int16_t* u, int16_t* v);

}  // namespace vccv
