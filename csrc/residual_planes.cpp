// The residual planes of a picture (8.5.12.2, 8.5.13.2): every coefficient block's inverse
// transform written at its place, zeros elsewhere.
#include <cstring>

#include "picture.h"
#include "transform.h"

namespace vccv {

void render_residual(const CoefficientBlocks& blocks, int coded_width, int coded_height, int16_t* y, int16_t* u,
                     int16_t* v) {
  std::memset(y, 0, sizeof(int16_t) * static_cast<size_t>(coded_width * coded_height));
  std::memset(u, 0, sizeof(int16_t) * static_cast<size_t>(coded_width * coded_height / 4));
  std::memset(v, 0, sizeof(int16_t) * static_cast<size_t>(coded_width * coded_height / 4));
  int16_t* planes[3] = {y, u, v};
  for (size_t b = 0; b < blocks.n4; ++b) {
    const auto p = blocks.position4(b);
    const int stride = p.plane == 0 ? coded_width : coded_width / 2;
    inverse_transform4x4(blocks.coeffs4(b),
                         planes[p.plane] + static_cast<size_t>(p.y) * static_cast<size_t>(stride) + p.x, stride);
  }
  for (size_t b = 0; b < blocks.n8; ++b) {
    const auto p = blocks.position8(b);
    inverse_transform8x8(blocks.coeffs8(b), y + static_cast<size_t>(p.y) * static_cast<size_t>(coded_width) + p.x,
                         coded_width);
  }
}

}  // namespace vccv
