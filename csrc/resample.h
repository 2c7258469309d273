// Bilinear resampling of decoded RGB frames and residual planes to the model's input size, on
// the CPU. The arithmetic is, operation by operation, that of vccv_gpu/codec/resample.py (torch
// gathers and elementwise float32 products), so both give the same bits; this file is compiled
// with -ffp-contract=off so that no multiply-add is fused.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vccv {

// Bilinear taps of one axis: out[o] = in[i0[o]] * w0[o] + in[i1[o]] * w1[o].
struct AxisTaps {
  const int64_t* i0;
  const int64_t* i1;
  const float* w0;
  const float* w1;
  size_t size;
};

// A read-only 2-D plane with a row stride in elements.
template <typename T>
struct PlaneView {
  const T* data;
  ptrdiff_t stride;
  int64_t height, width;
};

// RGB uint8 [3][rows.size][cols.size] (planar) from an interleaved RGB image (rows of
// width * 3 samples, `row_stride` bytes apart): blended in float32 (row taps across the column
// blends), rounded half to even and clamped to 0..255.
void resample_rgb(const uint8_t* rgb, ptrdiff_t row_stride, const AxisTaps& rows, const AxisTaps& cols, uint8_t* out);

// float32 RGB residual [3][rows.size][cols.size] from integer Y/U/V residual planes: each plane
// blended (chroma through taps i / 2), then rgb[c] = sum over k of plane[k] * matrix[c][k],
// skipping zero weights, added in order k = 0, 1, 2.
// T: int16_t (one frame's residual, as the parser renders it) or int32_t (a sum of frames).
template <typename T>
void resample_residual(const PlaneView<T>& y, const PlaneView<T>& u, const PlaneView<T>& v, const AxisTaps& rows,
                       const AxisTaps& cols, const float matrix[3][3], float* out);

}  // namespace vccv
