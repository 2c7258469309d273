#include "bit_reader.h"

#include <cstring>
#include <string>

#include "errors.h"

namespace vccv {

std::vector<uint8_t> remove_emulation_prevention(const uint8_t* data, size_t size) {
  // A 0x03 is an emulation_prevention_three_byte exactly when the two bytes before it are zero
  // (zeros are never removed, and a removed 0x03 is not zero), so the bytes between candidate
  // 0x03s go over in runs: memchr finds the candidates (about one byte in 256 of slice data), and
  // the pass costs a copy, not a branch per byte (it runs over every slice twice: at open for
  // the header, at parse for the data).
  if (size == 0) return {};
  std::vector<uint8_t> out;
  out.reserve(size);
  size_t from = 0;  // first input byte not copied yet
  for (size_t i = 2; i < size;) {
    const void* found = std::memchr(data + i, 3, size - i);
    if (found == nullptr) break;
    i = static_cast<size_t>(static_cast<const uint8_t*>(found) - data);
    if (data[i - 1] == 0 && data[i - 2] == 0) {
      out.insert(out.end(), data + from, data + i);
      from = i + 1;
      i += 3;  // the next one needs two zeros after this one
    } else {
      ++i;
    }
  }
  out.insert(out.end(), data + from, data + size);
  return out;
}

BitReader::BitReader(const uint8_t* data, size_t size) : data_(data), size_bits_(size * 8), size_bytes_(size) {
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

void BitReader::throw_past_end() { throw CorruptStream("read past the end of a NAL unit"); }

uint64_t BitReader::tail_bits() const {
  if (pos_ >= size_bits_) return 0;
  const size_t byte = pos_ >> 3;
  uint64_t window = 0;
  for (size_t i = 0; i < 8; ++i) window = (window << 8) | (byte + i < size_bytes_ ? data_[byte + i] : 0);
  return window << (pos_ & 7);
}

void BitReader::throw_long_exp_golomb() const {
  throw CorruptStream(bits_left() < 32 ? "read past the end of a NAL unit" : "Exp-Golomb code longer than 32 bits");
}

uint32_t BitReader::ue_slow() {
  const uint32_t next = peek(32);
  if (next < (1u << 16)) return ue_long(next);
  require(static_cast<size_t>(2 * __builtin_clz(next) + 1));
  return ue_short(next);
}

uint32_t BitReader::ue_long(uint32_t next) {
  if (next == 0) throw_long_exp_golomb();
  const int leading_zeros = __builtin_clz(next);
  skip(static_cast<size_t>(leading_zeros) + 1);
  return static_cast<uint32_t>((uint64_t{1} << leading_zeros) - 1 + u(leading_zeros));
}

uint32_t BitReader::te(uint32_t max_value) {
  if (max_value == 0) throw CorruptStream("te(v) with an empty range");
  if (max_value > 1) return ue();
  return u(1) ? 0u : 1u;  // 9.1: a single inverted bit
}

void BitReader::throw_above(const char* what, uint32_t value, uint32_t max_value) {
  throw CorruptStream(std::string(what) + " = " + std::to_string(value) + " exceeds " + std::to_string(max_value));
}

void BitReader::throw_outside(const char* what, int32_t value, int32_t lo, int32_t hi) {
  throw CorruptStream(std::string(what) + " = " + std::to_string(value) + " outside [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "]");
}

void BitReader::expect_trailing_bits(const char* what) const {
  if (pos_ != stop_bit_)
    throw CorruptStream(std::string(what) + ": " + (pos_ < stop_bit_ ? "unexpected data before" : "missing") +
                        " rbsp_trailing_bits");
}

}  // namespace vccv
