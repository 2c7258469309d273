// Table-driven decoding of the variable-length codes of CAVLC (9.2): a lookup table indexed by
// the next `max_length` bits gives the symbol and its length.
#pragma once

#include <cstdint>
#include <vector>

#include "bit_reader.h"

namespace vccv {

class VlcTable {
 public:
  // Codes (length, value MSB-first) for symbols 0..n-1; length 0 marks a symbol with no code.
  VlcTable(const uint8_t* lengths, const uint16_t* codes, int count, const char* name);
  // Reads one code and returns its symbol; throws CorruptStream on a bit pattern with no symbol.
  int decode(BitReader& r) const;

 private:
  int max_length_ = 0;
  std::vector<uint16_t> lut_;  // (symbol << 5) | length, 0 where no code matches
  const char* name_;
};

}  // namespace vccv
