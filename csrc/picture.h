// Entropy decoding of one picture's slice data (7.3.4, 7.3.5) into per-macroblock information,
// motion vectors and dequantised residual coefficients; no pixel is reconstructed.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "recycled_memory.h"
#include "stream.h"

namespace vccv {

// mb_type as reported to users (the parser contract, docs/DESIGN.md and codec.Macroblocks).
enum MbClass : int8_t { kMbIntra = 0, kMbInter = 1, kMbSkip = 2, kMbDirect = 3, kMbPcm = 4 };

// A picture's array of trivial values whose resize() leaves new elements uninitialised: the
// parser writes every element once, macroblock by macroblock, so zero-filling first is wasted
// work (and std::vector value-initialises). The memory is recycled (recycled_memory.h): the next
// picture's arrays reuse this one's pages.
template <typename T>
class PictureArray {
  static_assert(std::is_trivial<T>::value, "elements are left uninitialised");

 public:
  void resize(size_t n) {
    reserve(n);
    size_ = n;
  }
  void reserve(size_t n) {
    if (n <= capacity_) return;
    Storage grown(static_cast<T*>(acquire_buffer(n * sizeof(T))), Release{n * sizeof(T)});
    std::copy(data_.get(), data_.get() + size_, grown.get());
    data_ = std::move(grown);
    capacity_ = n;
  }
  // Inline on the hot path; the rare growth is a call.
  void push_back(const T& value) {
    if (size_ == capacity_) reserve(std::max<size_t>(2 * capacity_, 16));
    data_.get()[size_++] = value;
  }
  void assign(size_t n, T value) {
    resize(n);
    std::fill_n(data_.get(), n, value);
  }
  size_t size() const { return size_; }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T& operator[](size_t i) { return data_.get()[i]; }
  const T& operator[](size_t i) const { return data_.get()[i]; }
  const T* begin() const { return data_.get(); }
  const T* end() const { return data_.get() + size_; }

 private:
  struct Release {
    size_t bytes = 0;
    void operator()(T* p) const noexcept { release_buffer(p, bytes); }
  };
  using Storage = std::unique_ptr<T, Release>;
  Storage data_;
  size_t size_ = 0, capacity_ = 0;
};

struct MacroblockGrid {
  int width_mbs = 0, height_mbs = 0;
  PictureArray<int8_t> mb_type, qp;  // [height_mbs][width_mbs]
  PictureArray<int8_t> cbp;          // coded_block_pattern: luma bits 0-3, chroma (0-2) << 4
  PictureArray<int16_t> mv;          // [2][4 * height_mbs][4 * width_mbs][2], quarter pels
  PictureArray<int8_t> ref_idx;      // [2][4 * height_mbs][4 * width_mbs], -1 where unused
  // Intra prediction (intra_modes.h): the Intra4x4 / Intra8x8 / Intra16x16 luma mode covering
  // each 4x4 block [4 * height_mbs][4 * width_mbs]; per macroblock the luma block size (4, 8,
  // 16; 0 when not intra or I_PCM) and intra_chroma_pred_mode; -1 where not predicted intra.
  PictureArray<int8_t> intra_pred, intra_size, intra_chroma_pred;
};

// Dequantised coefficients (raster order) of every transform block with a nonzero one: the
// input of the inverse transform, so reconstruction can run anywhere (CPU here, GPU later). One
// int16 buffer, the layout codec.Coefficients views without a copy: the coefficients of the 4x4
// blocks [n4][16] and of the 8x8 blocks [n8][64], then the blocks' positions (plane 0 Y / 1 Cb /
// 2 Cr, then x, y of the top-left sample in that plane), [n4][3] and [n8][3]. The 4x4 blocks come
// first because the parser writes them in place as it goes (they are most of the buffer); the
// rest is appended when the picture is done.
struct CoefficientBlocks {
  struct Position {
    uint16_t plane, x, y;
  };
  PictureArray<int16_t> data;
  size_t n4 = 0, n8 = 0;

  Position position4(size_t block) const { return position(block); }
  Position position8(size_t block) const { return position(n4 + block); }
  const int16_t* coeffs4(size_t block) const { return data.data() + 16 * block; }
  const int16_t* coeffs8(size_t block) const { return data.data() + 16 * n4 + 64 * block; }

 private:
  Position position(size_t k) const {
    const int16_t* p = data.data() + 16 * n4 + 64 * n8 + 3 * k;
    return {static_cast<uint16_t>(p[0]), static_cast<uint16_t>(p[1]), static_cast<uint16_t>(p[2])};
  }
};

struct ParsedPicture {
  MacroblockGrid macroblocks;
  CoefficientBlocks coefficients;  // empty when parsed for motion only (has_coefficients false)
  bool has_coefficients = true;
  PictureArray<int32_t> mb_slice;  // index of each macroblock's slice [height_mbs][width_mbs]
  // Per slice and list, the decoding index of the picture each ref_idx names (-1: missing).
  std::vector<std::array<std::vector<int32_t>, 2>> slice_ref_pictures;
  PictureArray<uint8_t> luma_total_coeff;  // TotalCoeff per luma 4x4 block [4 * height_mbs][4 * width_mbs]

  // Decoding index of the picture that ref_idx `ref` (>= 0) of `list` names in macroblock `mb`'s slice.
  int32_t ref_picture_in(size_t mb, int list, int ref) const {
    return slice_ref_pictures[static_cast<size_t>(mb_slice[mb])][static_cast<size_t>(list)][static_cast<size_t>(ref)];
  }
  // Decoding index of the picture the 4x4 block `block` ([H4][W4] raster) of `list` refers to;
  // -1 where that list is unused.
  int32_t ref_picture(int list, size_t block) const {
    const int8_t ref = macroblocks.ref_idx[static_cast<size_t>(list) * luma_blocks() + block];
    if (ref < 0) return -1;
    const size_t w4 = static_cast<size_t>(4 * macroblocks.width_mbs);
    return ref_picture_in((block / w4 / 4) * static_cast<size_t>(macroblocks.width_mbs) + block % w4 / 4, list, ref);
  }
  size_t luma_blocks() const { return 16 * static_cast<size_t>(macroblocks.width_mbs * macroblocks.height_mbs); }
};

// Parses every slice of `picture` (one of `stream`'s, which provides the co-located picture of
// B slices); throws CorruptStream (or UnsupportedStream) on bad data, including slices whose
// data does not end at their rbsp_trailing_bits. Without `coefficients` the residual is
// entropy-decoded (every bit is read and checked) but not scaled or stored: motion only.
ParsedPicture parse_picture(const Picture& picture, const Stream& stream, bool coefficients = true);

// The residual planes (8.5.12.2, 8.5.13.2): y [coded_height][coded_width], u/v at half size.
void render_residual(const CoefficientBlocks& blocks, int coded_width, int coded_height, int16_t* y, int16_t* u,
                     int16_t* v);

}  // namespace vccv
