#include "bit_reader.h"

#include <cstring>
#include <string>

#include "errors.h"

namespace vccv {

std::vector<uint8_t> remove_emulation_prevention(const uint8_t* data, size_t size) {
  std::vector<uint8_t> out;
  out.reserve(size);
  int zeros = 0;
  for (size_t i = 0; i < size; ++i) {
    const uint8_t b = data[i];
    if (zeros >= 2 && b == 3) {  // emulation_prevention_three_byte
      zeros = 0;
      continue;
    }
    out.push_back(b);
    zeros = b == 0 ? zeros + 1 : 0;
  }
  return out;
}

BitReader::BitReader(const uint8_t* data, size_t size) : data_(data), size_bits_(size * 8) {
  // The stop bit is the last 1 bit; trailing zero bytes are cabac_zero_words or padding.
  size_t last = size;
  while (last > 0 && data[last - 1] == 0) --last;
  if (last == 0) {
    stop_bit_ = size_bits_;
    return;
  }
  const uint8_t b = data[last - 1];
  int trailing = 0;
  while (((b >> trailing) & 1) == 0) ++trailing;
  stop_bit_ = last * 8 - 1 - static_cast<size_t>(trailing);
}

void BitReader::require(size_t bits) const {
  if (bits > size_bits_ - pos_) throw CorruptStream("read past the end of a NAL unit");
}

uint32_t BitReader::u(int bits) {
  if (bits == 0) return 0;
  require(static_cast<size_t>(bits));
  const uint32_t value = peek(bits);
  pos_ += static_cast<size_t>(bits);
  return value;
}

uint32_t BitReader::peek(int bits) const {
  if (bits == 0) return 0;
  const size_t byte = pos_ >> 3;
  const size_t size_bytes = size_bits_ >> 3;
  uint64_t window;
  if (byte + 8 <= size_bytes) {  // fast path: one unaligned big-endian load
    std::memcpy(&window, data_ + byte, 8);
    window = __builtin_bswap64(window);
  } else {  // near the end: zeros past the data
    window = 0;
    for (size_t i = 0; i < 8; ++i) window = (window << 8) | (byte + i < size_bytes ? data_[byte + i] : 0);
  }
  // 64 - 7 >= 32 bits remain after dropping the bits already consumed in the first byte.
  return static_cast<uint32_t>((window << (pos_ & 7)) >> (64 - bits));
}

void BitReader::skip(size_t bits) {
  require(bits);
  pos_ += bits;
}

uint32_t BitReader::ue() {
  const uint32_t next = peek(32);
  if (next == 0) throw CorruptStream(bits_left() < 32 ? "read past the end of a NAL unit"
                                                      : "Exp-Golomb code longer than 32 bits");
  const int leading_zeros = __builtin_clz(next);
  skip(static_cast<size_t>(leading_zeros) + 1);
  if (leading_zeros == 0) return 0;
  return static_cast<uint32_t>((uint64_t{1} << leading_zeros) - 1 + u(leading_zeros));
}

int BitReader::count_leading_zeros(int max_zeros) {
  const uint32_t next = peek(32);
  const int zeros = next == 0 ? 32 : __builtin_clz(next);
  if (zeros > max_zeros) return -1;
  skip(static_cast<size_t>(zeros) + 1);  // the zeros and the terminating one
  return zeros;
}

int32_t BitReader::se() {
  const uint32_t k = ue();
  // Table 9-3: k -> (-1)^(k+1) * Ceil(k / 2)
  const int64_t magnitude = (static_cast<int64_t>(k) + 1) / 2;
  return static_cast<int32_t>((k & 1) ? magnitude : -magnitude);
}

uint32_t BitReader::te(uint32_t max_value) {
  if (max_value == 0) throw CorruptStream("te(v) with an empty range");
  if (max_value > 1) return ue();
  return u(1) ? 0u : 1u;  // 9.1: a single inverted bit
}

uint32_t BitReader::ue_max(uint32_t max_value, const char* what) {
  const uint32_t v = ue();
  if (v > max_value)
    throw CorruptStream(std::string(what) + " = " + std::to_string(v) + " exceeds " +
                        std::to_string(max_value));
  return v;
}

int32_t BitReader::se_range(int32_t lo, int32_t hi, const char* what) {
  const int32_t v = se();
  if (v < lo || v > hi)
    throw CorruptStream(std::string(what) + " = " + std::to_string(v) + " outside [" +
                        std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

void BitReader::expect_trailing_bits(const char* what) const {
  if (pos_ != stop_bit_)
    throw CorruptStream(std::string(what) + ": " +
                        (pos_ < stop_bit_ ? "unexpected data before" : "missing") +
                        " rbsp_trailing_bits");
}

}  // namespace vccv
