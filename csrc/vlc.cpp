#include "vlc.h"

#include <string>

#include "errors.h"

namespace vccv {

VlcTable::VlcTable(const uint8_t* lengths, const uint16_t* codes, int count, const char* name) : name_(name) {
  for (int s = 0; s < count; ++s)
    if (lengths[s] > max_length_) max_length_ = lengths[s];
  lut_.assign(size_t{1} << max_length_, 0);
  for (int s = 0; s < count; ++s) {
    const int len = lengths[s];
    if (len == 0) continue;
    const size_t first = size_t{codes[s]} << (max_length_ - len);
    const size_t n = size_t{1} << (max_length_ - len);
    for (size_t k = 0; k < n; ++k) lut_[first + k] = static_cast<uint16_t>((s << 5) | len);
  }
}

int VlcTable::decode(BitReader& r) const {
  const uint16_t entry = lut_[r.peek(max_length_)];
  if (entry == 0) throw CorruptStream(std::string("invalid ") + name_ + " code");
  r.skip(entry & 31);  // throws if the code runs past the end
  return entry >> 5;
}

}  // namespace vccv
