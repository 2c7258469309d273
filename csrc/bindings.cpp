// pybind11 module vccv_gpu._h264: the Stream class and the two exception types.
// Parsing runs with the GIL released so callers can parse clips in a thread pool.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "bin_trace.h"
#include "bit_reader.h"
#include "cabac.h"
#include "errors.h"
#include "picture.h"
#include "recycled_memory.h"
#include "resample.h"
#include "scan_tables.h"
#include "stream.h"

namespace py = pybind11;
using namespace vccv;

namespace {

const char* slice_type_name(SliceType t) {
  static const char* const kNames[] = {"P", "B", "I", "SP", "SI"};
  return kNames[t];
}

const char* picture_type_name(SliceType t) { return t == kSliceB ? "B" : (t == kSliceP || t == kSliceSP) ? "P" : "I"; }

const Picture& picture_at(const Stream& s, size_t decode_index) {
  if (decode_index >= s.pictures().size())
    throw py::index_error("decode index " + std::to_string(decode_index) + " out of range (" +
                          std::to_string(s.pictures().size()) + " pictures)");
  return s.pictures()[decode_index];
}

template <typename F>
void with_bytes(const py::buffer& buffer, F&& f) {
  const py::buffer_info info = buffer.request();
  if (info.itemsize != 1 || info.ndim > 1 || (info.ndim == 1 && info.strides[0] != 1))
    throw py::type_error("expected a contiguous bytes-like object");
  const auto* data = static_cast<const uint8_t*>(info.ptr);
  const auto size = static_cast<size_t>(info.size);
  py::gil_scoped_release release;
  f(data, size);
}

py::dict sequence_info(const Stream& s) {
  const Picture& first = picture_at(s, s.first_listed());
  const Sps& sps = *first.sps;
  const Pps& pps = *first.pps;
  py::dict d;
  d["width"] = sps.width();
  d["height"] = sps.height();
  d["coded_width"] = sps.coded_width();
  d["coded_height"] = sps.coded_height();
  d["profile"] = sps.profile_name();
  d["profile_idc"] = sps.profile_idc;
  d["level"] = sps.level_name();
  d["entropy"] = pps.entropy_coding_mode ? "cabac" : "cavlc";
  d["chroma_format_idc"] = sps.chroma_format_idc;
  d["bit_depth"] = sps.bit_depth_luma;
  d["pic_order_cnt_type"] = sps.pic_order_cnt_type;
  d["max_num_ref_frames"] = sps.max_num_ref_frames;
  d["direct_8x8_inference"] = sps.direct_8x8_inference;
  d["transform_8x8_mode"] = pps.transform_8x8_mode;
  d["constrained_intra_pred"] = pps.constrained_intra_pred;
  d["weighted_pred"] = pps.weighted_pred;
  d["weighted_bipred_idc"] = pps.weighted_bipred_idc;
  d["scaling_matrix_present"] = sps.scaling.present || pps.scaling.present;
  const Vui& vui = sps.vui;
  d["fps"] = py::none();
  if (vui.timing_info_present && vui.num_units_in_tick > 0 && vui.time_scale > 0)
    d["fps"] = vui.time_scale / (2.0 * vui.num_units_in_tick);  // E.2.1: two ticks per frame
  d["full_range"] = vui.video_full_range;
  d["colour_primaries"] = vui.colour_primaries;
  d["transfer_characteristics"] = vui.transfer_characteristics;
  d["matrix_coefficients"] = vui.matrix_coefficients;
  d["max_num_reorder_frames"] =
      vui.bitstream_restriction ? py::object(py::int_(vui.max_num_reorder_frames)) : py::none();
  return d;
}

py::list slice_headers(const Stream& s, size_t decode_index) {
  const Picture& pic = picture_at(s, decode_index);
  py::list out;
  for (const Slice& slice : pic.slices) {
    const SliceHeader& h = slice.header;
    py::dict d;
    d["first_mb_in_slice"] = h.first_mb_in_slice;
    d["slice_type"] = slice_type_name(h.slice_type);
    d["nal_ref_idc"] = h.nal_ref_idc;
    d["idr"] = h.idr;
    d["pps_id"] = h.pps_id;
    d["frame_num"] = h.frame_num;
    d["idr_pic_id"] = h.idr_pic_id;
    d["pic_order_cnt_lsb"] = h.pic_order_cnt_lsb;
    d["delta_pic_order_cnt_bottom"] = h.delta_pic_order_cnt_bottom;
    d["delta_pic_order_cnt"] = py::make_tuple(h.delta_pic_order_cnt[0], h.delta_pic_order_cnt[1]);
    d["direct_spatial_mv_pred"] = h.direct_spatial_mv_pred;
    d["num_ref_idx_active"] = py::make_tuple(h.num_ref_idx_active[0], h.num_ref_idx_active[1]);
    py::list modifications;
    for (const auto& list : h.ref_pic_list_modification) {
      py::list ops;
      for (const auto& op : list) ops.append(py::make_tuple(op.modification_of_pic_nums_idc, op.value));
      modifications.append(ops);
    }
    d["ref_pic_list_modification"] = modifications;
    if (h.has_pred_weight_table) {
      const PredWeightTable& t = h.pred_weight_table;
      py::list lists;
      for (const auto& entries : t.entries) {
        py::list l;
        for (const auto& e : entries)
          l.append(
              py::make_tuple(e.luma_present ? py::object(py::make_tuple(e.luma_weight, e.luma_offset)) : py::none(),
                             e.chroma_present ? py::object(py::make_tuple(e.chroma_weight[0], e.chroma_offset[0],
                                                                          e.chroma_weight[1], e.chroma_offset[1]))
                                              : py::none()));
        lists.append(l);
      }
      d["pred_weight_table"] =
          py::dict(py::arg("luma_log2_weight_denom") = t.luma_log2_weight_denom,
                   py::arg("chroma_log2_weight_denom") = t.chroma_log2_weight_denom, py::arg("entries") = lists);
    } else {
      d["pred_weight_table"] = py::none();
    }
    d["long_term_reference"] = h.long_term_reference;
    py::list mmcos;
    for (const auto& op : h.mmcos) mmcos.append(op.mmco);
    d["memory_management_control_operations"] = mmcos;
    d["cabac_init_idc"] = h.cabac_init_idc;
    d["slice_qp"] = pic.pps->pic_init_qp + h.slice_qp_delta;
    d["disable_deblocking_filter_idc"] = h.disable_deblocking_filter_idc;
    d["slice_alpha_c0_offset_div2"] = h.slice_alpha_c0_offset_div2;
    d["slice_beta_offset_div2"] = h.slice_beta_offset_div2;
    d["slice_data_bit_offset"] = h.slice_data_bit_offset;
    py::list lists;  // RefPicList0/1: (decoding index or -1, long-term) per reference index
    for (const auto& list : slice.ref_lists) {
      py::list entries;
      for (const auto& e : list) entries.append(py::make_tuple(e.picture, e.long_term));
      lists.append(entries);
    }
    d["ref_pic_lists"] = lists;
    out.append(d);
  }
  return out;
}

// The weights in force for a picture (Table 7-2 fall-backs applied), in raster order.
py::tuple scaling_matrices(const Stream& s, size_t decode_index) {
  const Picture& pic = picture_at(s, decode_index);
  const ResolvedScaling w = resolve_scaling(*pic.sps, *pic.pps);
  py::array_t<uint8_t> m4({6, 4, 4}), m8({6, 8, 8});
  auto a4 = m4.mutable_unchecked<3>();
  auto a8 = m8.mutable_unchecked<3>();
  for (size_t i = 0; i < 6; ++i) {
    for (size_t k = 0; k < 16; ++k) a4(i, kZigzag4x4[k] / 4, kZigzag4x4[k] % 4) = w.w4x4[i][k];
    for (size_t k = 0; k < 64; ++k) a8(i, kZigzag8x8[k] / 8, kZigzag8x8[k] % 8) = w.w8x8[i][k];
  }
  return py::make_tuple(m4, m8);
}

template <typename T>
py::array_t<T> to_array(const PictureArray<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

// A read-only view of a parsed picture's array, keeping the (shared, cached) picture alive.
template <typename T>
py::array_t<T> view_array(const std::shared_ptr<const ParsedPicture>& owner, const PictureArray<T>& v,
                          std::vector<py::ssize_t> shape) {
  auto* keep = new std::shared_ptr<const ParsedPicture>(owner);
  py::capsule base(keep, [](void* p) { delete static_cast<std::shared_ptr<const ParsedPicture>*>(p); });
  py::array_t<T> a(shape, v.data(), base);
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}

// A writable array over a recycled buffer (recycled_memory.h), given back when the array goes:
// residual planes and coefficient buffers are megabytes per picture.
template <typename T>
py::array_t<T> recycled_array(std::vector<py::ssize_t> shape) {
  struct Buffer {
    void* data = nullptr;
    size_t bytes = 0;
    ~Buffer() { release_buffer(data, bytes); }
  };
  size_t count = 1;
  for (const py::ssize_t d : shape) count *= static_cast<size_t>(d);
  auto buffer = std::make_unique<Buffer>();
  buffer->bytes = count * sizeof(T);
  buffer->data = acquire_buffer(buffer->bytes);
  T* data = static_cast<T*>(buffer->data);
  py::capsule base(buffer.get(), [](void* p) { delete static_cast<Buffer*>(p); });
  buffer.release();  // the capsule owns it now
  return py::array_t<T>(shape, data, base);
}

// One parsed picture, kept so that macroblocks, residual and coefficients share one parse.
struct PyParsedPicture {
  std::shared_ptr<const ParsedPicture> shared;
  const ParsedPicture& parsed;
  int coded_width, coded_height;
  PyParsedPicture(std::shared_ptr<const ParsedPicture> p, int w, int h)
      : shared(std::move(p)), parsed(*shared), coded_width(w), coded_height(h) {}

  py::dict macroblocks() const {
    const MacroblockGrid& g = parsed.macroblocks;
    const py::ssize_t h = g.height_mbs, w = g.width_mbs;
    py::dict d;
    d["mb_type"] = view_array(shared, g.mb_type, {h, w});
    d["qp"] = view_array(shared, g.qp, {h, w});
    d["cbp"] = view_array(shared, g.cbp, {h, w});
    d["mv"] = view_array(shared, g.mv, {2, 4 * h, 4 * w, 2});
    d["ref_idx"] = view_array(shared, g.ref_idx, {2, 4 * h, 4 * w});
    d["intra_pred"] = view_array(shared, g.intra_pred, {4 * h, 4 * w});
    d["intra_size"] = view_array(shared, g.intra_size, {h, w});
    d["intra_chroma_pred"] = view_array(shared, g.intra_chroma_pred, {h, w});
    return d;
  }

  void require_coefficients() const {
    if (!parsed.has_coefficients)
      throw std::logic_error("this picture was parsed for its macroblocks only (parse_picture(coefficients=False))");
  }

  py::tuple residual() const {
    require_coefficients();
    auto y = recycled_array<int16_t>({coded_height, coded_width});
    auto u = recycled_array<int16_t>({coded_height / 2, coded_width / 2});
    auto v = recycled_array<int16_t>({coded_height / 2, coded_width / 2});
    {
      py::gil_scoped_release release;
      render_residual(parsed.coefficients, coded_width, coded_height, y.mutable_data(), u.mutable_data(),
                      v.mutable_data());
    }
    return py::make_tuple(y, u, v);
  }

  // The one int16 buffer of CoefficientBlocks, read-only (the picture stays cached):
  // coeffs4 [n4,16], coeffs8 [n8,64], positions4 [n4,3], positions8 [n8,3].
  py::tuple coefficients() const {
    require_coefficients();
    const CoefficientBlocks& c = parsed.coefficients;
    return py::make_tuple(view_array(shared, c.data, {static_cast<py::ssize_t>(c.data.size())}), c.n4, c.n8);
  }
};

// ---- resampling (resample.h): numpy views in, checked, then computed with the GIL released ----

template <typename T, int Flags>
PlaneView<T> plane_view(const py::array_t<T, Flags>& a, const char* name) {
  if (a.ndim() != 2 || a.strides(1) != static_cast<py::ssize_t>(sizeof(T)) ||
      a.strides(0) % static_cast<py::ssize_t>(sizeof(T)) != 0 ||
      a.strides(0) < a.shape(1) * static_cast<py::ssize_t>(sizeof(T)))
    throw py::value_error(std::string(name) + ": expected a 2-D array with contiguous rows");
  return {a.data(), a.strides(0) / static_cast<py::ssize_t>(sizeof(T)), a.shape(0), a.shape(1)};
}

using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using WeightArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// Taps (i0, i1, w0, w1) of one axis, kept alive here (a cast may have copied them), every index
// checked against the plane extents it reads: `extent` samples at full resolution, `half_extent`
// in the subsampled (chroma) planes.
struct TapArrays {
  IndexArray i0, i1;
  WeightArray w0, w1;
  TapArrays(const py::tuple& taps, int64_t extent, int64_t half_extent, const char* name) {
    if (taps.size() != 4) throw py::value_error(std::string(name) + ": expected (i0, i1, w0, w1)");
    i0 = taps[0].cast<IndexArray>();
    i1 = taps[1].cast<IndexArray>();
    w0 = taps[2].cast<WeightArray>();
    w1 = taps[3].cast<WeightArray>();
    const py::ssize_t n = i0.size();
    if (i0.ndim() != 1 || i1.ndim() != 1 || w0.ndim() != 1 || w1.ndim() != 1 || i1.size() != n || w0.size() != n ||
        w1.size() != n)
      throw py::value_error(std::string(name) + ": taps must be 1-D arrays of one length");
    for (const auto* idx : {&i0, &i1})
      for (py::ssize_t k = 0; k < n; ++k) {
        const int64_t i = idx->data()[k];
        if (i < 0 || i >= extent || (i >> 1) >= half_extent)
          throw py::value_error(std::string(name) + ": tap index " + std::to_string(i) + " outside the plane");
      }
  }
  AxisTaps taps() const { return {i0.data(), i1.data(), w0.data(), w1.data(), static_cast<size_t>(i0.size())}; }
};

py::array_t<uint8_t> resample_rgb_py(const py::array_t<uint8_t>& rgb, const py::tuple& rows, const py::tuple& cols) {
  if (rgb.ndim() != 3 || rgb.shape(2) != 3 || rgb.strides(2) != 1 || rgb.strides(1) != 3 ||
      rgb.strides(0) < 3 * rgb.shape(1))
    throw py::value_error("rgb: expected a [height, width, 3] array with contiguous rows");
  const TapArrays row_taps(rows, rgb.shape(0), rgb.shape(0), "rows"),
      col_taps(cols, rgb.shape(1), rgb.shape(1), "cols");
  const AxisTaps r = row_taps.taps(), c = col_taps.taps();
  py::array_t<uint8_t> out({py::ssize_t{3}, static_cast<py::ssize_t>(r.size), static_cast<py::ssize_t>(c.size)});
  uint8_t* dst = out.mutable_data();
  const uint8_t* src = rgb.data();
  const ptrdiff_t stride = rgb.strides(0);
  {
    py::gil_scoped_release release;
    resample_rgb(src, stride, r, c, dst);
  }
  return out;
}

// Exact dtypes only (no silent conversion): int16 planes (one frame) or int32 (a sum).
template <typename T>
using PlaneArray = py::array_t<T, 0>;

template <typename T>
py::array_t<float> resample_residual_py(const PlaneArray<T>& y, const PlaneArray<T>& u, const PlaneArray<T>& v,
                                        const py::tuple& rows, const py::tuple& cols, const WeightArray& matrix) {
  if (matrix.ndim() != 2 || matrix.shape(0) != 3 || matrix.shape(1) != 3)
    throw py::value_error("matrix: expected [3, 3]");
  const auto yv = plane_view<T>(y, "y"), uv = plane_view<T>(u, "u"), vv = plane_view<T>(v, "v");
  const int64_t half_h = std::min(uv.height, vv.height), half_w = std::min(uv.width, vv.width);
  const TapArrays row_taps(rows, yv.height, half_h, "rows"), col_taps(cols, yv.width, half_w, "cols");
  const AxisTaps r = row_taps.taps(), c = col_taps.taps();
  float m[3][3];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) m[i][j] = matrix.at(i, j);
  py::array_t<float> out({py::ssize_t{3}, static_cast<py::ssize_t>(r.size), static_cast<py::ssize_t>(c.size)});
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    resample_residual(yv, uv, vv, r, c, m, dst);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_h264, m) {
  m.doc() = "H.264 bitstream parser (NAL units, parameter sets, slice headers, display order)";
  py::register_exception<UnsupportedStream>(m, "UnsupportedStream");
  py::register_exception<CorruptStream>(m, "CorruptStream");

  m.def("resample_rgb", &resample_rgb_py, py::arg("rgb"), py::arg("rows"), py::arg("cols"),
        "uint8 RGB [3, rows, cols] from an interleaved uint8 RGB image [height, width, 3]: bilinear blend.");
  const char* resample_residual_doc =
      "float32 RGB residual [3, rows, cols] from int16 (or int32) Y/U/V planes: bilinear blend, then the 3x3 matrix.";
  m.def("resample_residual", &resample_residual_py<int16_t>, py::arg("y"), py::arg("u"), py::arg("v"), py::arg("rows"),
        py::arg("cols"), py::arg("matrix"), resample_residual_doc);
  m.def("resample_residual", &resample_residual_py<int32_t>, py::arg("y"), py::arg("u"), py::arg("v"), py::arg("rows"),
        py::arg("cols"), py::arg("matrix"), resample_residual_doc);

  py::class_<PyParsedPicture>(m, "ParsedPicture")
      .def("macroblocks", &PyParsedPicture::macroblocks)
      .def("residual", &PyParsedPicture::residual)
      .def("coefficients", &PyParsedPicture::coefficients)
      .def(
          "ref_picture",
          [](const PyParsedPicture& p) {
            const MacroblockGrid& g = p.parsed.macroblocks;
            py::array_t<int32_t> a({py::ssize_t{2}, py::ssize_t{4 * g.height_mbs}, py::ssize_t{4 * g.width_mbs}});
            const size_t blocks = p.parsed.luma_blocks();
            int32_t* out = a.mutable_data();
            for (int list = 0; list < 2; ++list)
              for (size_t b = 0; b < blocks; ++b) *out++ = p.parsed.ref_picture(list, b);
            return a;
          },
          "Decoding index of the picture each 4x4 block's ref_idx names in its slice's list [2, H4, W4]; -1 "
          "where the list is unused (for oracles that predict from decoded reference pictures).")
      .def(
          "total_coeff",
          [](const PyParsedPicture& p) {
            const MacroblockGrid& g = p.parsed.macroblocks;
            return to_array(p.parsed.luma_total_coeff, {4 * g.height_mbs, 4 * g.width_mbs});
          },
          "TotalCoeff(coeff_token) of each luma 4x4 block (CAVLC), for self-consistency checks.");

  py::class_<Stream>(m, "Stream")
      .def(py::init<>())
      .def(
          "add_extradata",
          [](Stream& s, const py::buffer& b) { with_bytes(b, [&](auto* d, size_t n) { s.add_extradata(d, n); }); },
          py::arg("data"), "Container extradata: an avcC record or Annex B parameter sets.")
      .def("set_source_file", &Stream::set_source_file, py::arg("path"),
           "The file the packets come from: slice data found there (add_packet's file_offset) is read "
           "back when parsed instead of being kept in memory.")
      .def(
          "add_packet",
          [](Stream& s, const py::buffer& b, std::optional<int64_t> pts, bool last, int64_t file_offset,
             bool presented) {
            with_bytes(b, [&](auto* d, size_t n) { s.add_packet(d, n, pts, last, file_offset, presented); });
          },
          py::arg("data"), py::arg("pts") = py::none(), py::arg("last") = false, py::arg("file_offset") = -1,
          py::arg("presented") = true,
          "One access unit (or a whole Annex B stream); `last` marks the end of the input; `file_offset`: "
          "where these bytes lie in the source file, if they lie there as they are; `presented` false: "
          "an edit list leaves its picture out of the presentation.")
      .def_property_readonly("rbsp_bytes", &Stream::rbsp_bytes, "Bytes of slice data held in memory.")
      .def("finish",
           [](Stream& s) {
             py::gil_scoped_release release;
             s.finish();
           })
      .def_property_readonly("truncated", &Stream::truncated)
      .def_property_readonly("skipped_leading_slices", &Stream::skipped_leading_slices)
      .def_property_readonly("num_pictures", [](const Stream& s) { return s.pictures().size(); })
      .def(
          "pictures",
          [](const Stream& s) {
            std::vector<int64_t> shown(s.pictures().size(), -1);
            for (size_t k = 0; k < s.display_order().size(); ++k) shown[s.display_order()[k]] = static_cast<int64_t>(k);
            py::list out;
            for (const Picture& p : s.pictures())
              out.append(py::make_tuple(shown[p.decode_index], p.decode_index,
                                        p.pts ? py::object(py::int_(*p.pts)) : py::none(), picture_type_name(p.type),
                                        p.key, p.slices.size(), p.nal_ref_idc != 0));
            return out;
          },
          "Decoding order: (display index or -1 where not listed, decode_index, pts, type, key, num_slices, "
          "reference) per picture.")
      .def("sequence_info", &sequence_info, "Fields of the first listed picture's SPS/PPS.")
      .def("slice_headers", &slice_headers, py::arg("decode_index"))
      .def(
          "parse_picture",
          [](const Stream& s, size_t decode_index, bool coefficients) {
            const Picture& pic = picture_at(s, decode_index);
            std::shared_ptr<const ParsedPicture> parsed;
            {
              py::gil_scoped_release release;
              parsed = s.parsed_picture(static_cast<uint32_t>(decode_index), coefficients);
            }
            return std::make_unique<PyParsedPicture>(std::move(parsed), static_cast<int>(pic.sps->coded_width()),
                                                     static_cast<int>(pic.sps->coded_height()));
          },
          py::arg("decode_index"), py::arg("coefficients") = true,
          "Entropy-decodes one picture's slice data; coefficients=False: for its macroblocks only (no "
          "residual or coefficients from it).")
      .def("scaling_matrices", &scaling_matrices, py::arg("decode_index"),
           "Resolved 4x4 [6,4,4] and 8x8 [6,8,8] weights (raster order) for a picture.");

#ifdef VCCV_TRACE_BINS  // the CABAC bin recorder of benchmarks/engine_floor.py (bin_trace.h)
  m.def("record_bins", &bin_trace::record, py::arg("on"),
        "Starts recording every CABAC bin the parser decodes (dropping any earlier record), or stops.");
  m.def(
      "replay_bins",
      [](int repeats, bool branch_free) {
        bin_trace::Replay replay;
        {
          py::gil_scoped_release release;
          replay = bin_trace::replay(repeats, branch_free);
        }
        return py::make_tuple(replay.seconds, replay.bins);
      },
      py::arg("repeats"), py::arg("branch_free"),
      "Decodes the recorded bins again on the engine alone: (seconds of the fastest pass, bins).");
#endif
}
