// Supplemental enhancement information (7.3.2.3): only what locates random access points.
#pragma once

#include <cstdint>
#include <optional>

#include "bit_reader.h"

namespace vccv {

// recovery_frame_cnt of a recovery point SEI message (D.1.8), if the SEI NAL unit has one.
// SEI cannot affect decoding, so malformed messages are ignored rather than reported.
std::optional<uint32_t> find_recovery_point(BitReader& r);

}  // namespace vccv
