#include "vlc.h"

#include <string>

#include "errors.h"

namespace vccv {

VlcTable::VlcTable(const uint8_t* lengths, const uint16_t* codes, int count, const char* name, const uint16_t* values)
    : name_(name) {
  int max_length = 0;
  for (int s = 0; s < count; ++s)
    if (lengths[s] > max_length) max_length = lengths[s];
  second_bits_ = max_length > kFirstBits ? max_length - kFirstBits : 0;
  second_mask_ = (1u << second_bits_) - 1;
  for (int s = 0; s < count; ++s) {
    const int len = lengths[s];
    if (len == 0) continue;
    const auto entry = static_cast<uint16_t>(((values ? values[s] : s) << 5) | len);
    if (len <= kFirstBits) {
      const size_t begin = size_t{codes[s]} << (kFirstBits - len);
      for (size_t k = 0; k < (size_t{1} << (kFirstBits - len)); ++k) first_[begin + k] = entry;
      continue;
    }
    // Longer codes: the first kFirstBits bits select a second-level table.
    const size_t prefix = size_t{codes[s]} >> (len - kFirstBits);
    if ((first_[prefix] & 31) != 31) {
      first_[prefix] = static_cast<uint16_t>(((second_.size() >> second_bits_) << 5) | 31);
      second_.resize(second_.size() + (size_t{1} << second_bits_), 0);
    }
    const size_t table = size_t{first_[prefix]} >> 5;
    const int rest = len - kFirstBits;
    const size_t suffix = size_t{codes[s]} & ((size_t{1} << rest) - 1);
    const size_t begin = (table << second_bits_) + (suffix << (second_bits_ - rest));
    for (size_t k = 0; k < (size_t{1} << (second_bits_ - rest)); ++k) second_[begin + k] = entry;
  }
}

void VlcTable::throw_invalid() const { throw CorruptStream(std::string("invalid ") + name_ + " code"); }

}  // namespace vccv
