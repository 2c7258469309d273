#include "transform.h"

#include <algorithm>
#include <cstring>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

constexpr int class4x4(int i, int j) {
  if (i % 2 == 0 && j % 2 == 0) return 0;
  if (i % 2 == 1 && j % 2 == 1) return 1;
  return 2;
}

constexpr int class8x8(int i, int j) {
  if (i % 4 == 0 && j % 4 == 0) return 0;
  if (i % 2 == 1 && j % 2 == 1) return 1;
  if (i % 4 == 2 && j % 4 == 2) return 2;
  if ((i % 4 == 0 && j % 2 == 1) || (i % 2 == 1 && j % 4 == 0)) return 3;
  if ((i % 4 == 0 && j % 4 == 2) || (i % 4 == 2 && j % 4 == 0)) return 4;
  return 5;
}

// normAdjust of each scan position k, [m][k], at its raster position zigzag[k]: LevelScales are
// built for every picture, so the position classes are worked out once, at compile time.
template <int N, size_t Classes>
constexpr auto norm_adjust_by_scan(const int (&by_class)[6][Classes], const std::array<uint8_t, N * N>& zigzag,
                                   int (*class_of)(int, int)) {
  std::array<std::array<int32_t, N * N>, 6> t{};
  for (size_t m = 0; m < 6; ++m)
    for (size_t k = 0; k < N * N; ++k) t[m][k] = by_class[m][class_of(zigzag[k] / N, zigzag[k] % N)];
  return t;
}
constexpr auto kNormAdjust4x4ByScan = norm_adjust_by_scan<4>(kNormAdjust4x4, kZigzag4x4, class4x4);
constexpr auto kNormAdjust8x8ByScan = norm_adjust_by_scan<8>(kNormAdjust8x8, kZigzag8x8, class8x8);

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
    for (size_t m = 0; m < 6; ++m) {
      for (size_t k = 0; k < 16; ++k) s4[list][m][kZigzag4x4[k]] = w.w4x4[list][k] * kNormAdjust4x4ByScan[m][k];
      for (size_t k = 0; k < 64; ++k) s8[list][m][kZigzag8x8[k]] = w.w8x8[list][k] * kNormAdjust8x8ByScan[m][k];
    }
  }
}

void scale_scan4x4(const BlockLevels& levels, int scan_offset, int qp, const std::array<int32_t, 16>& ls,
                   int16_t* out) {
  const int q6 = qp / 6;
  for (int k = 0; k < levels.count; ++k) {
    const int pos = kZigzag4x4[static_cast<size_t>(levels.scan[k] + scan_offset)];
    const int64_t v = int64_t{levels.level[k]} * ls[static_cast<size_t>(pos)];
    out[pos] = saturate16(qp >= 24 ? shift(v, q6 - 4) : (v + (int64_t{1} << (3 - q6))) >> (4 - q6));
  }
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

namespace {

// Each pass of an inverse transform runs its N independent 1-D transforms at once, one per lane:
// x[k][lane] -> y[k][lane], a loop the compiler turns into vector instructions. The rows pass
// (first, as the standard orders them: its rounding shifts make the order matter) sees the
// block transposed, so each row is a lane; the columns pass sees it as it is.

// 8.5.12.2 (8-338 .. 8-345): one dimension of the 4x4 inverse transform.
void butterfly4(const int32_t (&x)[4][4], int32_t (&y)[4][4]) {
  for (int l = 0; l < 4; ++l) {
    const int32_t e0 = x[0][l] + x[2][l], e1 = x[0][l] - x[2][l];
    const int32_t e2 = (x[1][l] >> 1) - x[3][l], e3 = x[1][l] + (x[3][l] >> 1);
    y[0][l] = e0 + e3;
    y[1][l] = e1 + e2;
    y[2][l] = e1 - e2;
    y[3][l] = e0 - e3;
  }
}

// 8.5.13.2 (8-349 .. 8-372): one dimension of the 8x8 inverse transform.
void butterfly8(const int32_t (&x)[8][8], int32_t (&y)[8][8]) {
  for (int l = 0; l < 8; ++l) {
    const int32_t e0 = x[0][l] + x[4][l];
    const int32_t e1 = -x[3][l] + x[5][l] - x[7][l] - (x[7][l] >> 1);
    const int32_t e2 = x[0][l] - x[4][l];
    const int32_t e3 = x[1][l] + x[7][l] - x[3][l] - (x[3][l] >> 1);
    const int32_t e4 = (x[2][l] >> 1) - x[6][l];
    const int32_t e5 = -x[1][l] + x[7][l] + x[5][l] + (x[5][l] >> 1);
    const int32_t e6 = x[2][l] + (x[6][l] >> 1);
    const int32_t e7 = x[3][l] + x[5][l] + x[1][l] + (x[1][l] >> 1);
    const int32_t f0 = e0 + e6, f1 = e1 + (e7 >> 2), f2 = e2 + e4, f3 = e3 + (e5 >> 2);
    const int32_t f4 = e2 - e4, f5 = (e3 >> 2) - e5, f6 = e0 - e6, f7 = e7 - (e1 >> 2);
    y[0][l] = f0 + f7;
    y[1][l] = f2 + f5;
    y[2][l] = f4 + f3;
    y[3][l] = f6 + f1;
    y[4][l] = f6 - f1;
    y[5][l] = f4 - f3;
    y[6][l] = f2 - f5;
    y[7][l] = f0 - f7;
  }
}

// d (raster) -> rows pass -> columns pass -> r = (h + 32) >> 6 into dst.
template <int N, void (*Butterfly)(const int32_t (&)[N][N], int32_t (&)[N][N])>
void inverse_transform(const int16_t* d, int16_t* dst, int stride) {
  int32_t x[N][N], y[N][N];
  for (int i = 0; i < N; ++i)
    for (int k = 0; k < N; ++k) x[k][i] = d[i * N + k];  // row i is lane i
  Butterfly(x, y);                                       // y[k][i]: rows-pass output g[i][k]
  for (int i = 0; i < N; ++i)
    for (int k = 0; k < N; ++k) x[i][k] = y[k][i];  // column k is lane k
  Butterfly(x, y);                                  // y[i][k]: h[i][k]
  for (int i = 0; i < N; ++i)
    for (int k = 0; k < N; ++k) dst[i * stride + k] = static_cast<int16_t>((y[i][k] + 32) >> 6);
}

}  // namespace

#if defined(__SSE2__)
namespace {

// The 4x4 int32 matrix in a, b, c, e (one row each) transposed in place.
void transpose4(__m128i& a, __m128i& b, __m128i& c, __m128i& e) {
  const __m128i ab_low = _mm_unpacklo_epi32(a, b), ce_low = _mm_unpacklo_epi32(c, e);
  const __m128i ab_high = _mm_unpackhi_epi32(a, b), ce_high = _mm_unpackhi_epi32(c, e);
  a = _mm_unpacklo_epi64(ab_low, ce_low);
  b = _mm_unpackhi_epi64(ab_low, ce_low);
  c = _mm_unpacklo_epi64(ab_high, ce_high);
  e = _mm_unpackhi_epi64(ab_high, ce_high);
}

// butterfly4 on the four lanes of registers: x0..x3 in, y0..y3 out in their place.
void butterfly4_sse2(__m128i& x0, __m128i& x1, __m128i& x2, __m128i& x3) {
  const __m128i e0 = _mm_add_epi32(x0, x2), e1 = _mm_sub_epi32(x0, x2);
  const __m128i e2 = _mm_sub_epi32(_mm_srai_epi32(x1, 1), x3), e3 = _mm_add_epi32(x1, _mm_srai_epi32(x3, 1));
  x0 = _mm_add_epi32(e0, e3);
  x1 = _mm_add_epi32(e1, e2);
  x2 = _mm_sub_epi32(e1, e2);
  x3 = _mm_sub_epi32(e0, e3);
}

// (h + 32) >> 6 of two rows (or halves of one), each kept to its low 16 bits as static_cast<int16_t> does, packed.
__m128i round_rows(__m128i h0, __m128i h1) {
  const __m128i bias = _mm_set1_epi32(32);
  const auto low16 = [&](__m128i h) {
    return _mm_srai_epi32(_mm_slli_epi32(_mm_srai_epi32(_mm_add_epi32(h, bias), 6), 16), 16);
  };
  return _mm_packs_epi32(low16(h0), low16(h1));  // no saturation: the values fit
}

}  // namespace

// The transform the portable code describes, in SSE2 (every x86-64 has it): a block is one
// register per row, and the scalar compilation of the loops above cost about 240 instructions a
// block, the largest part of rendering residual planes.
void inverse_transform4x4(const int16_t* d, int16_t* dst, int stride) {
  const __m128i rows01 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d));
  const __m128i rows23 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + 8));
  // Sign-extended to 32 bits: each value paired with itself, then shifted down.
  __m128i x0 = _mm_srai_epi32(_mm_unpacklo_epi16(rows01, rows01), 16);
  __m128i x1 = _mm_srai_epi32(_mm_unpackhi_epi16(rows01, rows01), 16);
  __m128i x2 = _mm_srai_epi32(_mm_unpacklo_epi16(rows23, rows23), 16);
  __m128i x3 = _mm_srai_epi32(_mm_unpackhi_epi16(rows23, rows23), 16);
  transpose4(x0, x1, x2, x3);       // register k: coefficient k of every row (a row per lane)
  butterfly4_sse2(x0, x1, x2, x3);  // rows pass: register k holds g[i][k] for rows i
  transpose4(x0, x1, x2, x3);       // register i: row i of g (a column per lane)
  butterfly4_sse2(x0, x1, x2, x3);  // columns pass: register i holds h[i][k]
  const __m128i r01 = round_rows(x0, x1), r23 = round_rows(x2, x3);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), r01);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + stride), _mm_unpackhi_epi64(r01, r01));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + 2 * stride), r23);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + 3 * stride), _mm_unpackhi_epi64(r23, r23));
}
#else
void inverse_transform4x4(const int16_t* d, int16_t* dst, int stride) { inverse_transform4x4_portable(d, dst, stride); }
#endif

void inverse_transform4x4_portable(const int16_t* d, int16_t* dst, int stride) {
  inverse_transform<4, butterfly4>(d, dst, stride);
}

namespace {

// Many 8x8 blocks carry only their DC (56 % of them in the benchmark's x264 720p clip), which both
// passes copy to every sample: r = (d00 + 32) >> 6 throughout, for the cost of a test. (4x4 blocks
// gain nothing from this: their transform costs about what the test's mispredictions do.)
bool dc_only_8x8(const int16_t* d, int16_t* dst, int stride) {
  int16_t ac[64];
  std::memcpy(ac, d, sizeof(ac));
  ac[0] = 0;
  uint64_t words[16], any = 0;  // four coefficients at a time
  std::memcpy(words, ac, sizeof(words));
  for (const uint64_t w : words) any |= w;
  if (any != 0) return false;
  const auto r = static_cast<int16_t>((int32_t{d[0]} + 32) >> 6);
  for (int i = 0; i < 8; ++i) std::fill_n(dst + i * stride, 8, r);
  return true;
}

}  // namespace

#if defined(__SSE2__)
namespace {

// butterfly8 on the four lanes of registers x[0..7], in place.
void butterfly8_sse2(__m128i (&x)[8]) {
  const auto add = [](__m128i a, __m128i b) { return _mm_add_epi32(a, b); };
  const auto sub = [](__m128i a, __m128i b) { return _mm_sub_epi32(a, b); };
  const auto half = [](__m128i a) { return _mm_srai_epi32(a, 1); };
  const auto quarter = [](__m128i a) { return _mm_srai_epi32(a, 2); };
  const __m128i e0 = add(x[0], x[4]);
  const __m128i e1 = sub(sub(sub(x[5], x[3]), x[7]), half(x[7]));
  const __m128i e2 = sub(x[0], x[4]);
  const __m128i e3 = sub(sub(add(x[1], x[7]), x[3]), half(x[3]));
  const __m128i e4 = sub(half(x[2]), x[6]);
  const __m128i e5 = add(add(sub(x[7], x[1]), x[5]), half(x[5]));
  const __m128i e6 = add(x[2], half(x[6]));
  const __m128i e7 = add(add(add(x[3], x[5]), x[1]), half(x[1]));
  const __m128i f0 = add(e0, e6), f1 = add(e1, quarter(e7)), f2 = add(e2, e4), f3 = add(e3, quarter(e5));
  const __m128i f4 = sub(e2, e4), f5 = sub(quarter(e3), e5), f6 = sub(e0, e6), f7 = sub(e7, quarter(e1));
  x[0] = add(f0, f7);
  x[1] = add(f2, f5);
  x[2] = add(f4, f3);
  x[3] = add(f6, f1);
  x[4] = sub(f6, f1);
  x[5] = sub(f4, f3);
  x[6] = sub(f2, f5);
  x[7] = sub(f0, f7);
}

// The 8x8 int32 matrix whose row i is (left[i], right[i]) (columns 0-3, 4-7) transposed: after it,
// left[k] and right[k] hold column k's rows 0-3 and 4-7. Four 4x4 transposes, then the two
// off-diagonal quarters trade places.
void transpose8(__m128i (&left)[8], __m128i (&right)[8]) {
  transpose4(left[0], left[1], left[2], left[3]);
  transpose4(right[0], right[1], right[2], right[3]);
  transpose4(left[4], left[5], left[6], left[7]);
  transpose4(right[4], right[5], right[6], right[7]);
  for (int k = 0; k < 4; ++k) std::swap(right[k], left[4 + k]);
}

}  // namespace

// As the 4x4: two registers per row (columns 0-3 and 4-7).
void inverse_transform8x8(const int16_t* d, int16_t* dst, int stride) {
  if (dc_only_8x8(d, dst, stride)) return;
  __m128i left[8], right[8];
  for (int i = 0; i < 8; ++i) {
    const __m128i row = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + 8 * i));
    left[i] = _mm_srai_epi32(_mm_unpacklo_epi16(row, row), 16);
    right[i] = _mm_srai_epi32(_mm_unpackhi_epi16(row, row), 16);
  }
  transpose8(left, right);  // index k: coefficient k of every row (rows 0-3 left, 4-7 right)
  butterfly8_sse2(left);    // rows pass
  butterfly8_sse2(right);
  transpose8(left, right);  // index i: row i of g (columns 0-3 left, 4-7 right)
  butterfly8_sse2(left);    // columns pass
  butterfly8_sse2(right);
  for (int i = 0; i < 8; ++i)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i * stride), round_rows(left[i], right[i]));
}
#else
void inverse_transform8x8(const int16_t* d, int16_t* dst, int stride) { inverse_transform8x8_portable(d, dst, stride); }
#endif

void inverse_transform8x8_portable(const int16_t* d, int16_t* dst, int stride) {
  if (dc_only_8x8(d, dst, stride)) return;
  inverse_transform<8, butterfly8>(d, dst, stride);
}

}  // namespace vccv
