// pybind11 module _h264_testing, built for the tests into tests/ (never installed): windows onto
// the bit reader, the emulation-prevention removal and the CABAC engine for their unit tests.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bit_reader.h"
#include "cabac.h"
#include "errors.h"
#include "transform.h"

namespace py = pybind11;
using namespace vccv;

namespace {

// Reads `codes` ("u:N", "ue", "se", "te:MAX", "more_rbsp_data", "byte_aligned") in order from an
// RBSP: a window onto the bit reader for its unit tests.
py::list read_bits(const py::bytes& data, const std::vector<std::string>& codes) {
  const std::string bytes = data;
  BitReader r(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  py::list out;
  for (const std::string& code : codes) {
    const auto colon = code.find(':');
    const std::string kind = code.substr(0, colon);
    const auto arg = colon == std::string::npos ? 0u : static_cast<uint32_t>(std::stoul(code.substr(colon + 1)));
    if (kind == "u")
      out.append(r.u(static_cast<int>(arg)));
    else if (kind == "ue")
      out.append(r.ue());
    else if (kind == "se")
      out.append(r.se());
    else if (kind == "te")
      out.append(r.te(arg));
    else if (kind == "more_rbsp_data")
      out.append(r.more_rbsp_data());
    else if (kind == "byte_aligned")
      out.append(r.byte_aligned());
    else
      throw py::value_error("unknown code " + code);
  }
  return out;
}

// Decodes bins with the CABAC engine, for its unit tests: op >= 0 decodes a decision with that
// context, -1 a bypass bin, -2 a terminate bin.
py::list cabac_bins(const py::bytes& data, int cabac_init_idc, int slice_qp, const std::vector<int>& ops) {
  const std::string bytes = data;
  BitReader r(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  CabacDecoder d(r, cabac_init_idc, slice_qp);
  py::list out;
  for (const int op : ops) out.append(op >= 0 ? d.decision(op) : (op == -1 ? d.bypass() : d.terminate()));
  d.sync_reader();
  out.append(r.position());
  return out;
}

// inverse_transform4x4 / 8x8 (or their portable code) of 16 / 64 raster coefficients, written with a
// row stride wider than the block (as into a plane); returns the block in raster order.
std::vector<int16_t> inverse_transform(const std::vector<int16_t>& d, bool portable) {
  const int n = d.size() == 16 ? 4 : (d.size() == 64 ? 8 : 0);
  if (n == 0) throw py::value_error("expected 16 or 64 coefficients");
  const int stride = n + 3;
  std::vector<int16_t> plane(static_cast<size_t>(n * stride), -1);
  const auto transform = n == 4 ? (portable ? inverse_transform4x4_portable : inverse_transform4x4)
                                : (portable ? inverse_transform8x8_portable : inverse_transform8x8);
  transform(d.data(), plane.data(), stride);
  std::vector<int16_t> out;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < stride; ++j)
      if (j < n)
        out.push_back(plane[static_cast<size_t>(i * stride + j)]);
      else if (plane[static_cast<size_t>(i * stride + j)] != -1)
        throw std::logic_error("wrote outside the block");
  return out;
}

}  // namespace

PYBIND11_MODULE(_h264_testing, m) {
  m.doc() = "Test-only access to the H.264 parser's bit reader, CABAC engine and inverse transforms";
  py::register_local_exception<CorruptStream>(m, "CorruptStream");  // not vccv_gpu._h264's translator
  m.def("read_bits", &read_bits, py::arg("rbsp"), py::arg("codes"));
  m.def("remove_emulation_prevention", [](const py::bytes& data) {
    const std::string bytes = data;
    const auto out = remove_emulation_prevention(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
  });
  m.def("cabac_bins", &cabac_bins, py::arg("rbsp"), py::arg("cabac_init_idc"), py::arg("slice_qp"), py::arg("ops"),
        "op >= 0 decodes a decision with that context, -1 a bypass bin, -2 a terminate bin; the last item is the "
        "bit position reached.");
  m.def("inverse_transform", &inverse_transform, py::arg("coefficients"), py::arg("portable") = false,
        "8.5.12.2 / 8.5.13.2 of 16 (4x4) or 64 (8x8) raster coefficients; the residual block in raster order "
        "(portable: the code for machines without SSE2).");
}
