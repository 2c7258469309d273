// libFuzzer target for the C++ H.264 parser (csrc/, without the pybind11 layer): opens the input
// as codec.open does (Stream::add_extradata / add_packet / finish), then, for every picture in
// display order, everything the Python layer reads (vccv_gpu/codec/stream.py, csrc/bindings.cpp):
// sequence info, slice headers, scaling matrices, macroblocks, residual (render_residual) and
// coefficients (parsed_picture). Build and run: tests/fuzz/build.sh, README "Hostile input and
// fuzzing".
//
// Only vccv::CorruptStream and vccv::UnsupportedStream may leave the parser. Anything else is a
// finding: another exception (reported, then abort()), a result whose arrays do not have the
// sizes the Python layer gives them or whose values leave their documented ranges (the checks of
// tools/fuzz/harness.py, _check_frame), a crash, a sanitizer report, a timeout or OOM.
//
// Input format (any byte string is valid; tests/fuzz/make_seeds.py writes it, and
// tests/test_libfuzzer_regressions.py replays it through the Python binding):
//
//   byte 0        mode flags: bit 0 clear = Annex B, set = AVCC; bit 1 set = file-backed: the
//                 input is copied to a memfd that is given to Stream::set_source_file, and each
//                 packet goes with its offset in the input, so slice data is read back from
//                 there (as for MP4 files opened by path). Other bits are ignored.
//   Annex B:      bytes 1.. are one packet, added with last = true (a raw .264 file or
//                 codec.open(bytes)); no extradata.
//   AVCC:         bytes 1-2   big-endian length E of the extradata (clamped to what is left)
//                 next E bytes  the extradata: an avcC record, or Annex B parameter sets (as
//                               Stream::add_extradata accepts; skipped when E = 0)
//                 then packets, each a 4-byte big-endian length L (clamped to what is left)
//                 and L bytes of length-prefixed NAL units (the avcC record's length size);
//                 packet k has pts k, the final one last = true. Fewer than 4 bytes left after
//                 a packet end the input (ignored).
//
// tests/fuzz/regressions/ (replayed by CI and tests/test_libfuzzer_regressions.py): crash-* inputs
// of fixed bugs, and smoke-* inputs, valid streams in each input mode (Annex B; AVCC read back from
// the file; AVCC packets with Annex B extradata).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "errors.h"
#include "parameter_sets.h"
#include "picture.h"
#include "stream.h"

namespace {

using namespace vccv;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "h264_fuzzer: FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) fail(std::string("invalid result: ") + what);
}

uint32_t read_be(const uint8_t* p, int bytes) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

// The input as a file (memfd): what Stream::set_source_file opens to read slices back. Closed at
// destruction; the Stream keeps its own descriptor.
struct MemFile {
  int fd = -1;
  std::string path;
  MemFile(const uint8_t* data, size_t size) {
    fd = memfd_create("h264_fuzzer", MFD_CLOEXEC);
    if (fd < 0) fail("memfd_create failed");
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd, data + done, size - done);
      if (n <= 0) fail("writing the memfd failed");
      done += static_cast<size_t>(n);
    }
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  ~MemFile() { ::close(fd); }
};

// codec.open: feeds the input (see the format above) and finishes the stream.
void open_stream(Stream& stream, const uint8_t* data, size_t size) {
  if (size == 0) return;
  const uint8_t mode = data[0];
  const bool avcc = mode & 1, file_backed = mode & 2;
  std::unique_ptr<MemFile> file;
  if (file_backed) {
    file = std::make_unique<MemFile>(data, size);
    stream.set_source_file(file->path);
  }
  size_t pos = 1;
  if (!avcc) {
    stream.add_packet(data + pos, size - pos, std::nullopt, true, file_backed ? static_cast<int64_t>(pos) : -1);
    return;
  }
  if (size - pos < 2) return;
  size_t extradata = std::min<size_t>(read_be(data + pos, 2), size - pos - 2);
  pos += 2;
  if (extradata > 0) stream.add_extradata(data + pos, extradata);
  pos += extradata;
  int64_t pts = 0;
  while (size - pos >= 4) {
    const size_t length = std::min<size_t>(read_be(data + pos, 4), size - pos - 4);
    pos += 4;
    const bool last = size - (pos + length) < 4;
    stream.add_packet(data + pos, length, pts++, last, file_backed ? static_cast<int64_t>(pos) : -1);
    pos += length;
  }
}

// Stream.__init__'s sequence_info (fields of the first picture's SPS/PPS).
void sequence_info(const Stream& stream) {
  const Picture& first = stream.pictures().at(0);
  const Sps& sps = *first.sps;
  volatile size_t sink =
      sps.width() + sps.height() + sps.profile_name().size() + sps.level_name().size() + first.pps->entropy_coding_mode;
  if (sps.vui.timing_info_present && sps.vui.num_units_in_tick > 0 && sps.vui.time_scale > 0)
    sink = sink + static_cast<size_t>(sps.vui.time_scale / (2.0 * sps.vui.num_units_in_tick));
  (void)sink;
}

// slice_headers: the values bindings.cpp computes from each slice header.
void slice_headers(const Picture& pic) {
  volatile int64_t sink = 0;
  for (const Slice& slice : pic.slices) {
    const SliceHeader& h = slice.header;
    sink = sink + pic.pps->pic_init_qp + h.slice_qp_delta;
    for (const auto& list : slice.ref_lists)
      for (const auto& e : list) sink = sink + e.picture + e.long_term;
    for (const auto& list : h.ref_pic_list_modification) sink = sink + static_cast<int64_t>(list.size());
    if (h.has_pred_weight_table)
      for (const auto& entries : h.pred_weight_table.entries)
        for (const auto& e : entries) sink = sink + e.luma_weight + e.chroma_weight[1];
  }
  (void)sink;
}

// macroblocks(), residual(), coefficients() and total_coeff() of one parsed picture, with the
// array sizes bindings.cpp assumes (it wraps the vectors in arrays of these shapes) and the
// ranges the Python harness checks.
void read_picture(const Picture& pic, const ParsedPicture& parsed, std::vector<int16_t>& planes) {
  const MacroblockGrid& g = parsed.macroblocks;
  const int cw = static_cast<int>(pic.sps->coded_width()), ch = static_cast<int>(pic.sps->coded_height());
  check(g.width_mbs * 16 == cw && g.height_mbs * 16 == ch, "macroblock grid does not match the coded size");
  const size_t mbs = static_cast<size_t>(g.width_mbs) * static_cast<size_t>(g.height_mbs);
  check(g.mb_type.size() == mbs && g.qp.size() == mbs && g.cbp.size() == mbs, "mb_type/qp/cbp size");
  check(g.mv.size() == 2 * 16 * mbs * 2, "mv size");
  check(g.ref_idx.size() == 2 * 16 * mbs, "ref_idx size");
  check(parsed.luma_total_coeff.size() == 16 * mbs, "luma_total_coeff size");
  for (size_t i = 0; i < mbs; ++i) {
    check(g.mb_type[i] >= 0 && g.mb_type[i] <= 4, "mb_type outside 0..4");
    check(g.qp[i] >= 0 && g.qp[i] <= 51, "qp outside 0..51");
  }
  for (const int8_t r : g.ref_idx) check(r >= -1 && r <= 31, "ref_idx outside -1..31");

  const CoefficientBlocks& c = parsed.coefficients;
  check(c.data.size() == 3 * (c.n4 + c.n8) + 16 * c.n4 + 64 * c.n8,
        "coefficient buffer size does not match the blocks");
  for (int size : {4, 8}) {
    for (size_t b = 0; b < (size == 4 ? c.n4 : c.n8); ++b) {
      const auto p = size == 4 ? c.position4(b) : c.position8(b);
      const int w = p.plane == 0 ? cw : cw / 2, h = p.plane == 0 ? ch : ch / 2;
      check(p.plane <= (size == 4 ? 2 : 0), "coefficient block plane");
      check(p.x + size <= w && p.y + size <= h, "coefficient block outside its plane");
    }
  }
  // residual(): y [ch][cw], u and v [ch/2][cw/2].
  const size_t luma = static_cast<size_t>(cw) * static_cast<size_t>(ch);
  planes.resize(luma + luma / 2);
  render_residual(c, cw, ch, planes.data(), planes.data() + luma, planes.data() + luma + luma / 4);
  // coefficients(): a view of the one buffer, every value of which Python may read.
  uint64_t sum = 0;
  for (const int16_t v : c.data) sum += static_cast<uint16_t>(v);
  volatile uint64_t sink = sum;
  (void)sink;
}

void run(const uint8_t* data, size_t size) {
  Stream stream;
  try {
    open_stream(stream, data, size);
    stream.finish();
    sequence_info(stream);
  } catch (const CorruptStream&) {
    return;
  } catch (const UnsupportedStream&) {
    return;
  }
  check(!stream.pictures().empty(), "a stream without pictures finished");
  // Pictures before the first random access point, leading ones and those an edit list leaves
  // out are kept as references but not listed; at least one is.
  check(!stream.display_order().empty() && stream.display_order().size() <= stream.pictures().size(),
        "display order size");
  std::vector<int16_t> planes;
  for (const uint32_t index : stream.display_order()) {
    check(index < stream.pictures().size(), "display order names a picture outside the stream");
    const Picture& pic = stream.pictures()[index];
    slice_headers(pic);
    resolve_scaling(*pic.sps, *pic.pps);  // scaling_matrices()
    try {
      const std::shared_ptr<const ParsedPicture> parsed = stream.parsed_picture(index);
      read_picture(pic, *parsed, planes);
    } catch (const CorruptStream&) {
    } catch (const UnsupportedStream&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    run(data, size);
  } catch (const std::exception& e) {
    fail(std::string("unexpected exception: ") + e.what());
  } catch (...) {
    fail("unexpected exception of a non-std type");
  }
  return 0;
}
