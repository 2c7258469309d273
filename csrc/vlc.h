// Table-driven decoding of the variable-length codes of CAVLC (9.2): a two-level lookup table
// (the first 8 bits, then the rest for longer codes) small enough to stay in the L1 cache.
#pragma once

#include <cstdint>
#include <vector>

#include "bit_reader.h"

namespace vccv {

class VlcTable {
 public:
  // Codes (length, value MSB-first) for symbols 0..n-1; length 0 marks a symbol with no code.
  VlcTable(const uint8_t* lengths, const uint16_t* codes, int count, const char* name);
  // Reads one code (from a BitReader or UncheckedBits) and returns its symbol; throws
  // CorruptStream on a bit pattern with no symbol.
  template <class Bits>
  int decode(Bits& r) const {
    const uint32_t bits = r.peek(max_length_);
    uint16_t entry = first_[bits >> second_bits_];
    if ((entry & 31) == 31) entry = second_[(size_t{entry} >> 5 << second_bits_) + (bits & second_mask_)];
    if (entry == 0) throw_invalid();
    r.skip(entry & 31);  // throws if the code runs past the end
    return entry >> 5;
  }

 private:
  static constexpr int kFirstBits = 8;
  int max_length_ = 0;
  int second_bits_ = 0;  // max_length_ - kFirstBits, when positive
  uint32_t second_mask_ = 0;
  [[noreturn]] void throw_invalid() const;
  // Entry: (symbol << 5) | length; 0 = no code. First level: length 31 marks a link whose symbol
  // field is the index of a second-level table of 2^second_bits_ entries (lengths there count
  // from the start of the code).
  std::vector<uint16_t> first_;
  std::vector<uint16_t> second_;
  const char* name_;
};

}  // namespace vccv
