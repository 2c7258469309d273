// Bounds-checked reader of RBSP bits (7.2): u(n), ue(v), se(v), te(v), more_rbsp_data().
// Every read checks the remaining length first and throws CorruptStream past the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace vccv {

// Removes emulation_prevention_three_byte (7.4.1): 00 00 03 xx -> 00 00 xx.
std::vector<uint8_t> remove_emulation_prevention(const uint8_t* data, size_t size);

// The bits of `data` from bit `pos` on, MSB first: one unaligned big-endian load of the 8 bytes
// from pos / 8, which the caller made sure are there. At least the first 57 are the data's.
inline uint64_t bits_at(const uint8_t* data, size_t pos) {
  uint64_t window;
  std::memcpy(&window, data + (pos >> 3), 8);
  return __builtin_bswap64(window) << (pos & 7);
}

// Reads a stretch of syntax whose length has a known bound without checking the end of the data
// at every read: BitReader::unchecked() hands one out only where that bound (and the 8-byte
// look-ahead of its loads) fits before the end, once for the whole stretch. The reads are
// BitReader's, and its position lives in a register instead of memory that other stores may
// alias. BitReader::commit() takes the position back.
class UncheckedBits {
 public:
  UncheckedBits(const uint8_t* data, size_t pos) : data_(data), pos_(pos) {}
  uint32_t peek(int bits) const {  // 1 <= bits <= 32
    return static_cast<uint32_t>(bits_at(data_, pos_) >> (64 - bits));
  }
  void skip(size_t bits) { pos_ += bits; }
  uint32_t u(int bits) {  // 0 <= bits <= 32
    if (bits == 0) return 0;
    const uint32_t value = peek(bits);
    pos_ += static_cast<size_t>(bits);
    return value;
  }
  int count_leading_zeros(int max_zeros) {  // as BitReader's
    const uint32_t next = peek(32);
    const int zeros = next == 0 ? 32 : __builtin_clz(next);
    if (zeros > max_zeros) return -1;
    pos_ += static_cast<size_t>(zeros) + 1;
    return zeros;
  }
  size_t position() const { return pos_; }

 private:
  const uint8_t* data_;
  size_t pos_;
};

class BitReader {
 public:
  BitReader(const uint8_t* data, size_t size);

  uint32_t u(int bits) {  // 0 <= bits <= 32
    if (bits == 0) return 0;
    require(static_cast<size_t>(bits));
    const uint32_t value = peek(bits);
    pos_ += static_cast<size_t>(bits);
    return value;
  }
  bool flag() { return u(1) != 0; }
  uint32_t ue() {          // 9.1, values up to 2^32 - 2
    if (whole_window()) {  // 57 bits or more at hand: no end test
      const uint32_t next = static_cast<uint32_t>(bits_at(data_, pos_) >> 32);
      if (next >= (1u << 16)) return ue_short(next);
    }
    return ue_slow();
  }
  int32_t se() {  // 9.1.1, Table 9-3: k -> (-1)^(k+1) * Ceil(k / 2)
    const uint32_t k = ue();
    // Branch-free: the sign (k's parity) is a coin toss for a vector difference.
    const int64_t magnitude = (static_cast<int64_t>(k) + 1) / 2, negative = (k & 1) - int64_t{1};  // 0 or -1
    return static_cast<int32_t>((magnitude ^ negative) - negative);
  }
  uint32_t te(uint32_t max_value);  // 9.1 with range max_value (> 0)
  // Reads zeros up to a one bit (e.g. level_prefix) and returns their count, or -1 without
  // consuming anything if more than max_zeros (<= 31) zeros follow.
  int count_leading_zeros(int max_zeros) {
    const uint32_t next = peek(32);
    const int zeros = next == 0 ? 32 : __builtin_clz(next);
    if (zeros > max_zeros) return -1;
    skip(static_cast<size_t>(zeros) + 1);  // the zeros and the terminating one
    return zeros;
  }
  void skip(size_t bits) {
    require(bits);
    pos_ += bits;
  }
  // The next `bits` (1..32) bits without consuming them; zeros past the end of the data.
  uint32_t peek(int bits) const {
    const uint64_t window = whole_window() ? bits_at(data_, pos_) : tail_bits();
    return static_cast<uint32_t>(window >> (64 - bits));
  }

  // Reads ue(v) and checks it against an inclusive upper bound; `what` names the element.
  uint32_t ue_max(uint32_t max_value, const char* what) {
    const uint32_t v = ue();
    if (v > max_value) throw_above(what, v, max_value);
    return v;
  }
  int32_t se_range(int32_t lo, int32_t hi, const char* what) {
    const int32_t v = se();
    if (v < lo || v > hi) throw_outside(what, v, lo, hi);
    return v;
  }

  // Whether unchecked() may read `max_bits` from here (its loads reach 8 bytes past what it read).
  bool fits_unchecked(size_t max_bits) const { return (pos_ >> 3) + (max_bits + 7) / 8 + 8 <= size_bytes_; }
  UncheckedBits unchecked() const { return {data_, pos_}; }
  void commit(const UncheckedBits& bits) { pos_ = bits.position(); }

  bool more_rbsp_data() const { return pos_ < stop_bit_; }
  // Advances past data that may run beyond the end (read-ahead); rewind_to() before reading on.
  void skip_unchecked(size_t bits) { pos_ += bits; }
  // Moves the read position back to `bits` (<= the current one), e.g. after read-ahead.
  void rewind_to(size_t bits) {
    if (bits > pos_) throw_past_end();
    pos_ = bits;
  }
  size_t size_bits() const { return size_bits_; }
  const uint8_t* data() const { return data_; }  // the RBSP, size_bits() / 8 bytes
  bool byte_aligned() const { return (pos_ & 7) == 0; }
  size_t position() const { return pos_; }
  size_t bits_left() const { return size_bits_ - pos_; }
  // Bits between the read position and the rbsp_stop_one_bit (negative once it was read).
  long bits_before_stop_bit() const { return static_cast<long>(stop_bit_) - static_cast<long>(pos_); }
  // Checks that only rbsp_trailing_bits (and cabac_zero_words) remain.
  void expect_trailing_bits(const char* what) const;

 private:
  void require(size_t bits) const {
    if (bits > size_bits_ - pos_) throw_past_end();
  }
  [[noreturn]] static void throw_past_end();
  [[noreturn]] void throw_long_exp_golomb() const;
  // ue() of a code with at most 15 leading zeros, `next` holding the 32 bits at the read
  // position: the whole code (2 * zeros + 1 <= 31 bits) is in `next`, and its bits read as a
  // number are codeNum + 1. The caller made sure they are inside the data.
  uint32_t ue_short(uint32_t next) {
    const int length = 2 * __builtin_clz(next) + 1;
    pos_ += static_cast<size_t>(length);
    return (next >> (32 - length)) - 1;
  }
  uint32_t ue_slow();               // ue() near the end of the data, or of a long code
  uint32_t ue_long(uint32_t next);  // ue() of a code with 16 or more leading zeros
  [[noreturn]] static void throw_above(const char* what, uint32_t value, uint32_t max_value);
  [[noreturn]] static void throw_outside(const char* what, int32_t value, int32_t lo, int32_t hi);
  // Whether the 8 bytes from the read position's byte on are inside the data (so pos_ < size_bits_).
  bool whole_window() const { return (pos_ >> 3) + 8 <= size_bytes_; }
  uint64_t tail_bits() const;  // bits_at() near the end of the data: zeros past it

  const uint8_t* data_;
  size_t size_bits_;
  size_t size_bytes_;
  size_t pos_ = 0;
  size_t stop_bit_;  // position of rbsp_stop_one_bit, size_bits_ if the RBSP has none
};

}  // namespace vccv
