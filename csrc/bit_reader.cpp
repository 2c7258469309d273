#include "bit_reader.h"

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
  uint64_t value = 0;
  size_t byte = pos_ >> 3;
  const int skip = static_cast<int>(pos_ & 7);
  // Gather the (at most 5) bytes covering the field, then drop the bits outside it.
  const int span = (skip + bits + 7) >> 3;
  for (int i = 0; i < span; ++i) value = (value << 8) | data_[byte + static_cast<size_t>(i)];
  value >>= span * 8 - skip - bits;
  pos_ += static_cast<size_t>(bits);
  return static_cast<uint32_t>(value & ((uint64_t{1} << bits) - 1));
}

uint32_t BitReader::peek(int bits) const {
  uint64_t value = 0;
  size_t byte = pos_ >> 3;
  const int skip_bits = static_cast<int>(pos_ & 7);
  const size_t size_bytes = size_bits_ >> 3;
  for (int i = 0; i < 5; ++i) value = (value << 8) | (byte + static_cast<size_t>(i) < size_bytes ? data_[byte + static_cast<size_t>(i)] : 0);
  value >>= 40 - skip_bits - bits;
  return static_cast<uint32_t>(value & ((uint64_t{1} << bits) - 1));
}

void BitReader::skip(size_t bits) {
  require(bits);
  pos_ += bits;
}

uint32_t BitReader::ue() {
  int leading_zeros = 0;
  while (u(1) == 0) {
    if (++leading_zeros > 31) throw CorruptStream("Exp-Golomb code longer than 32 bits");
  }
  if (leading_zeros == 0) return 0;
  return static_cast<uint32_t>((uint64_t{1} << leading_zeros) - 1 + u(leading_zeros));
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
