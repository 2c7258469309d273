#include "resample.h"

#include <algorithm>
#include <vector>

namespace vccv {

namespace {

// Round half to even, as torch.round, for |x| < 2^22 (adding 1.5 * 2^23 leaves no fraction bits;
// the default rounding mode rounds ties to even); inlined where std::nearbyint is a libm call.
inline float round_half_even(float x) {
  constexpr float kMagic = 12582912.0f;
  const float shifted = x + kMagic;
  return shifted - kMagic;
}

// a * wa + b * wb, each operation rounded to float32 (as two torch multiplications and an add).
inline float mix(float a, float wa, float b, float wb) {
  const float left = a * wa;
  const float right = b * wb;
  return left + right;
}

// float32 [rows][cols] blend of one integer plane, every tap index shifted right by `shift` (1: a
// 4:2:0 chroma plane read through luma taps).
template <typename T>
void blend_plane(const PlaneView<T>& p, const AxisTaps& rows, const AxisTaps& cols, int shift, float* out) {
  for (size_t o = 0; o < rows.size; ++o) {
    const T* top = p.data + (rows.i0[o] >> shift) * p.stride;
    const T* bottom = p.data + (rows.i1[o] >> shift) * p.stride;
    for (size_t q = 0; q < cols.size; ++q) {
      const int64_t c0 = cols.i0[q] >> shift, c1 = cols.i1[q] >> shift;
      const float t = mix(static_cast<float>(top[c0]), cols.w0[q], static_cast<float>(top[c1]), cols.w1[q]);
      const float b = mix(static_cast<float>(bottom[c0]), cols.w0[q], static_cast<float>(bottom[c1]), cols.w1[q]);
      out[o * cols.size + q] = mix(t, rows.w0[o], b, rows.w1[o]);
    }
  }
}

}  // namespace

void resample_rgb(const uint8_t* rgb, ptrdiff_t row_stride, const AxisTaps& rows, const AxisTaps& cols, uint8_t* out) {
  const size_t plane = rows.size * cols.size;
  for (size_t o = 0; o < rows.size; ++o) {
    const uint8_t* top = rgb + rows.i0[o] * row_stride;
    const uint8_t* bottom = rgb + rows.i1[o] * row_stride;
    for (size_t q = 0; q < cols.size; ++q) {
      const int64_t c0 = 3 * cols.i0[q], c1 = 3 * cols.i1[q];
      for (int ch = 0; ch < 3; ++ch) {
        const float t = mix(static_cast<float>(top[c0 + ch]), cols.w0[q], static_cast<float>(top[c1 + ch]), cols.w1[q]);
        const float b =
            mix(static_cast<float>(bottom[c0 + ch]), cols.w0[q], static_cast<float>(bottom[c1 + ch]), cols.w1[q]);
        const float value = round_half_even(mix(t, rows.w0[o], b, rows.w1[o]));
        out[ch * plane + o * cols.size + q] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, value)));
      }
    }
  }
}

template <typename T>
void resample_residual(const PlaneView<T>& y, const PlaneView<T>& u, const PlaneView<T>& v, const AxisTaps& rows,
                       const AxisTaps& cols, const float matrix[3][3], float* out) {
  const size_t plane = rows.size * cols.size;
  std::vector<float> planes(3 * plane);
  blend_plane(y, rows, cols, 0, planes.data());
  blend_plane(u, rows, cols, 1, planes.data() + plane);
  blend_plane(v, rows, cols, 1, planes.data() + 2 * plane);
  for (int ch = 0; ch < 3; ++ch) {
    float* dst = out + ch * plane;
    bool any = false;
    for (int k = 0; k < 3; ++k) {
      const float w = matrix[ch][k];
      if (w == 0.0f) continue;
      const float* src = planes.data() + k * plane;
      for (size_t i = 0; i < plane; ++i) {
        const float term = src[i] * w;
        dst[i] = any ? dst[i] + term : term;
      }
      any = true;
    }
    if (!any) std::fill(dst, dst + plane, 0.0f);
  }
}

template void resample_residual<int16_t>(const PlaneView<int16_t>&, const PlaneView<int16_t>&,
                                         const PlaneView<int16_t>&, const AxisTaps&, const AxisTaps&, const float[3][3],
                                         float*);
template void resample_residual<int32_t>(const PlaneView<int32_t>&, const PlaneView<int32_t>&,
                                         const PlaneView<int32_t>&, const AxisTaps&, const AxisTaps&, const float[3][3],
                                         float*);

}  // namespace vccv
