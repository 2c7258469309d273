#include "sei.h"

#include "errors.h"

namespace vccv {

std::optional<uint32_t> find_recovery_point(BitReader& r) {
  constexpr uint32_t kRecoveryPoint = 6;
  try {
    while (r.more_rbsp_data() && r.bits_left() >= 16) {
      uint32_t type = 0, size = 0, byte = 0;
      do type += (byte = r.u(8));
      while (byte == 0xff);
      do size += (byte = r.u(8));
      while (byte == 0xff);
      if (size > r.bits_left() / 8) return std::nullopt;
      if (type == kRecoveryPoint) return r.ue();
      r.skip(size_t{size} * 8);
    }
  } catch (const CorruptStream&) {
  }
  return std::nullopt;
}

}  // namespace vccv
