#include "transform.h"

#include <algorithm>

#include "scan_tables.h"

namespace vccv {

namespace {

// Table 8-15: QPc as a function of qPI >= 30.
constexpr int kChromaQpAbove30[22] = {29, 30, 31, 32, 32, 33, 34, 34, 35, 35, 36,
                                      36, 37, 37, 37, 38, 38, 38, 39, 39, 39, 39};

// normAdjust4x4 (8-315): v[m][class], class 0: (i%2, j%2) == (0, 0), 1: (1, 1), 2: otherwise.
constexpr int kNormAdjust4x4[6][3] = {{10, 16, 13}, {11, 18, 14}, {13, 20, 16},
                                      {14, 23, 18}, {16, 25, 20}, {18, 29, 23}};
// normAdjust8x8 (8-318): v[m][class] with the six position classes of the standard.
constexpr int kNormAdjust8x8[6][6] = {{20, 18, 32, 19, 25, 24}, {22, 19, 35, 21, 28, 26}, {26, 23, 42, 24, 33, 31},
                                      {28, 25, 45, 26, 35, 33}, {32, 28, 51, 30, 40, 38}, {36, 32, 58, 34, 46, 43}};

int class4x4(int i, int j) {
  if (i % 2 == 0 && j % 2 == 0) return 0;
  if (i % 2 == 1 && j % 2 == 1) return 1;
  return 2;
}

int class8x8(int i, int j) {
  if (i % 4 == 0 && j % 4 == 0) return 0;
  if (i % 2 == 1 && j % 2 == 1) return 1;
  if (i % 4 == 2 && j % 4 == 2) return 2;
  if ((i % 4 == 0 && j % 2 == 1) || (i % 2 == 1 && j % 4 == 0)) return 3;
  if ((i % 4 == 0 && j % 4 == 2) || (i % 4 == 2 && j % 4 == 0)) return 4;
  return 5;
}

int64_t shift(int64_t v, int s) { return s >= 0 ? v * (int64_t{1} << s) : v >> -s; }

}  // namespace

int chroma_qp(int qp_y, int offset) {
  int qpi = qp_y + offset;
  qpi = qpi < 0 ? 0 : (qpi > 51 ? 51 : qpi);  // Clip3(-QpBdOffsetC, 51, ...) with QpBdOffsetC = 0
  return qpi < 30 ? qpi : kChromaQpAbove30[qpi - 30];
}

LevelScales::LevelScales(const ResolvedScaling& w) {
  // The weights are in scan order; LevelScale is indexed by raster position (i row, j column).
  for (size_t list = 0; list < 6; ++list) {
    for (int m = 0; m < 6; ++m) {
      for (size_t k = 0; k < 16; ++k) {
        const int pos = kZigzag4x4[k];
        s4[list][static_cast<size_t>(m)][static_cast<size_t>(pos)] =
            w.w4x4[list][k] * kNormAdjust4x4[m][class4x4(pos / 4, pos % 4)];
      }
      for (size_t k = 0; k < 64; ++k) {
        const int pos = kZigzag8x8[k];
        s8[list][static_cast<size_t>(m)][static_cast<size_t>(pos)] =
            w.w8x8[list][k] * kNormAdjust8x8[m][class8x8(pos / 8, pos % 8)];
      }
    }
  }
}

bool scale_scan4x4(const BlockLevels& levels, int scan_offset, int qp, const std::array<int32_t, 16>& ls,
                   int16_t* out) {
  const int q6 = qp / 6;
  bool nonzero = false;
  for (int k = 0; k < levels.count; ++k) {
    const int pos = kZigzag4x4[static_cast<size_t>(levels.scan[k] + scan_offset)];
    const int64_t v = int64_t{levels.level[k]} * ls[static_cast<size_t>(pos)];
    out[pos] = saturate16(qp >= 24 ? shift(v, q6 - 4) : (v + (int64_t{1} << (3 - q6))) >> (4 - q6));
    nonzero |= out[pos] != 0;
  }
  return nonzero;
}

bool scale_scan8x8(const BlockLevels& levels, int qp, const std::array<int32_t, 64>& ls, int16_t* out) {
  const int q6 = qp / 6;
  bool nonzero = false;
  for (int k = 0; k < levels.count; ++k) {
    const int pos = kZigzag8x8[levels.scan[k]];
    const int64_t v = int64_t{levels.level[k]} * ls[static_cast<size_t>(pos)];
    out[pos] = saturate16(qp >= 36 ? shift(v, q6 - 6) : (v + (int64_t{1} << (5 - q6))) >> (6 - q6));
    nonzero |= out[pos] != 0;
  }
  return nonzero;
}

void luma_dc_transform(const int32_t* c, int qp, int32_t ls00, int32_t* dc) {
  // f = H c H with H the 4x4 Hadamard matrix of (8-320).
  int64_t t[16], f[16];
  for (int i = 0; i < 4; ++i) {  // rows
    const int64_t a = c[i * 4 + 0], b = c[i * 4 + 1], e = c[i * 4 + 2], g = c[i * 4 + 3];
    t[i * 4 + 0] = a + b + e + g;
    t[i * 4 + 1] = a + b - e - g;
    t[i * 4 + 2] = a - b - e + g;
    t[i * 4 + 3] = a - b + e - g;
  }
  for (int j = 0; j < 4; ++j) {  // columns
    const int64_t a = t[j], b = t[4 + j], e = t[8 + j], g = t[12 + j];
    f[j] = a + b + e + g;
    f[4 + j] = a + b - e - g;
    f[8 + j] = a - b - e + g;
    f[12 + j] = a - b + e - g;
  }
  const int q6 = qp / 6;
  for (int k = 0; k < 16; ++k) {
    const int64_t v = f[k] * ls00;
    dc[k] = saturate16(qp >= 36 ? shift(v, q6 - 6) : (v + (int64_t{1} << (5 - q6))) >> (6 - q6));
  }
}

void chroma_dc_transform(const int32_t* c, int qp_c, int32_t ls00, int32_t* dc) {
  const int64_t f[4] = {int64_t{c[0]} + c[1] + c[2] + c[3], int64_t{c[0]} - c[1] + c[2] - c[3],
                        int64_t{c[0]} + c[1] - c[2] - c[3], int64_t{c[0]} - c[1] - c[2] + c[3]};
  for (int k = 0; k < 4; ++k) dc[k] = saturate16((f[k] * ls00 * (int64_t{1} << (qp_c / 6))) >> 5);  // (8-330)
}

void inverse_transform4x4(const int32_t* d, int16_t* dst, int stride) {
  int32_t g[16];
  for (int i = 0; i < 4; ++i) {  // rows (8-338 .. 8-345)
    const int32_t* r = d + i * 4;
    const int32_t e0 = r[0] + r[2], e1 = r[0] - r[2], e2 = (r[1] >> 1) - r[3], e3 = r[1] + (r[3] >> 1);
    g[i * 4 + 0] = e0 + e3;
    g[i * 4 + 1] = e1 + e2;
    g[i * 4 + 2] = e1 - e2;
    g[i * 4 + 3] = e0 - e3;
  }
  for (int j = 0; j < 4; ++j) {  // columns
    const int32_t f0 = g[j], f1 = g[4 + j], f2 = g[8 + j], f3 = g[12 + j];
    const int32_t e0 = f0 + f2, e1 = f0 - f2, e2 = (f1 >> 1) - f3, e3 = f1 + (f3 >> 1);
    const int32_t h[4] = {e0 + e3, e1 + e2, e1 - e2, e0 - e3};
    for (int i = 0; i < 4; ++i) dst[i * stride + j] = static_cast<int16_t>((h[i] + 32) >> 6);
  }
}

namespace {

// One dimension of the 8x8 inverse transform (8-349 .. 8-372), in place on x[0..7].
void butterfly8(int32_t* x) {
  const int32_t e0 = x[0] + x[4];
  const int32_t e1 = -x[3] + x[5] - x[7] - (x[7] >> 1);
  const int32_t e2 = x[0] - x[4];
  const int32_t e3 = x[1] + x[7] - x[3] - (x[3] >> 1);
  const int32_t e4 = (x[2] >> 1) - x[6];
  const int32_t e5 = -x[1] + x[7] + x[5] + (x[5] >> 1);
  const int32_t e6 = x[2] + (x[6] >> 1);
  const int32_t e7 = x[3] + x[5] + x[1] + (x[1] >> 1);
  const int32_t f0 = e0 + e6, f1 = e1 + (e7 >> 2), f2 = e2 + e4, f3 = e3 + (e5 >> 2);
  const int32_t f4 = e2 - e4, f5 = (e3 >> 2) - e5, f6 = e0 - e6, f7 = e7 - (e1 >> 2);
  x[0] = f0 + f7;
  x[1] = f2 + f5;
  x[2] = f4 + f3;
  x[3] = f6 + f1;
  x[4] = f6 - f1;
  x[5] = f4 - f3;
  x[6] = f2 - f5;
  x[7] = f0 - f7;
}

}  // namespace

void inverse_transform8x8(const int32_t* d, int16_t* dst, int stride) {
  int32_t g[64];
  for (int i = 0; i < 64; ++i) g[i] = d[i];
  for (int i = 0; i < 8; ++i) butterfly8(g + i * 8);  // rows
  for (int j = 0; j < 8; ++j) {                       // columns
    int32_t col[8];
    for (int i = 0; i < 8; ++i) col[i] = g[i * 8 + j];
    butterfly8(col);
    for (int i = 0; i < 8; ++i) dst[i * stride + j] = static_cast<int16_t>((col[i] + 32) >> 6);
  }
}

}  // namespace vccv
