// Coefficient scan orders for frame macroblocks: scan position -> raster index in the block.
#pragma once

#include <array>
#include <cstdint>

// clang-format off: the tables keep the layout of the standard's.
namespace vccv {

// Table 8-13 (zig-zag scan for 4x4 blocks, frame coding), as raster indices 4*y + x.
inline constexpr std::array<uint8_t, 16> kZigzag4x4 = {0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15};

// Table 8-14 (zig-zag scan for 8x8 blocks, frame coding), as raster indices 8*y + x.
inline constexpr std::array<uint8_t, 64> kZigzag8x8 = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
    41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
    30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

}  // namespace vccv
// clang-format on
