// Table-driven decoding of the variable-length codes of CAVLC (9.2): a two-level lookup table
// (the first 8 bits, then the rest for longer codes) small enough to stay in the L1 cache.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "bit_reader.h"

namespace vccv {

class VlcTable {
 public:
  // Codes (length, value MSB-first) for symbols 0..n-1; length 0 marks a symbol with no code.
  // decode() returns symbol s as values[s] (< 2048) where values are given, else as s.
  VlcTable(const uint8_t* lengths, const uint16_t* codes, int count, const char* name,
           const uint16_t* values = nullptr);
  // Reads one code (from a BitReader or UncheckedBits) and returns its symbol's value; throws
  // CorruptStream on a bit pattern with no symbol.
  template <class Bits>
  int decode(Bits& r) const {
    // Always the next 8 bits, inside the table object: the entry's address depends on no loaded
    // table size or pointer, so it is one load away from the bits.
    uint16_t entry = first_[r.peek(kFirstBits)];
    if (__builtin_expect((entry & 31) == 31, 0))
      entry = second_[(size_t{entry} >> 5 << second_bits_) + (r.peek(kFirstBits + second_bits_) & second_mask_)];
    if (entry == 0) throw_invalid();
    r.skip(entry & 31);  // throws if the code runs past the end
    return entry >> 5;
  }

 private:
  static constexpr int kFirstBits = 8;
  int second_bits_ = 0;  // the longest code's length - kFirstBits, when positive
  uint32_t second_mask_ = 0;
  [[noreturn]] void throw_invalid() const;
  // Entry: (symbol << 5) | length; 0 = no code. A code shorter than kFirstBits fills every entry
  // its bits begin. First level: length 31 marks a link whose symbol field is the index of a
  // second-level table of 2^second_bits_ entries, indexed by the bits after the first 8 (lengths
  // there count from the start of the code).
  std::array<uint16_t, 1 << kFirstBits> first_{};
  std::vector<uint16_t> second_;
  const char* name_;
};

}  // namespace vccv
