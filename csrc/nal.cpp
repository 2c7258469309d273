#include "nal.h"

#include <string>

#include "errors.h"

namespace vccv {

std::vector<NalSpan> split_annexb(const uint8_t* data, size_t size) {
  std::vector<NalSpan> nals;
  size_t i = 0;
  size_t start = SIZE_MAX;  // first byte of the current NAL unit, if any
  auto close = [&](size_t end) {
    while (end > start && data[end - 1] == 0) --end;  // trailing_zero_8bits
    if (end > start) nals.push_back({data + start, end - start});
  };
  while (i + 2 < size) {
    if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1) {
      if (start != SIZE_MAX) close(i);
      i += 3;
      start = i;
    } else if (data[i + 2] > 1) {
      i += 3;  // no start code can begin at i, i+1 or i+2
    } else {
      ++i;
    }
  }
  if (start != SIZE_MAX) close(size);
  return nals;
}

std::vector<NalSpan> split_length_prefixed(const uint8_t* data, size_t size, int length_size, bool& cut) {
  std::vector<NalSpan> nals;
  cut = false;
  size_t i = 0;
  const auto n = static_cast<size_t>(length_size);
  while (i < size) {
    if (size - i < n) {
      cut = true;
      break;
    }
    size_t length = 0;
    for (size_t k = 0; k < n; ++k) length = (length << 8) | data[i + k];
    i += n;
    if (length > size - i) {
      cut = true;
      if (size > i) nals.push_back({data + i, size - i});
      break;
    }
    if (length > 0) nals.push_back({data + i, length});
    i += length;
  }
  return nals;
}

AvcConfig parse_avcc(const uint8_t* data, size_t size) {
  if (size < 7 || data[0] != 1) throw CorruptStream("avcC record is malformed");
  AvcConfig config;
  config.length_size = (data[4] & 3) + 1;
  if (config.length_size == 3) throw CorruptStream("avcC lengthSizeMinusOne = 2 is reserved");
  size_t i = 5;
  auto read_sets = [&](size_t count) {
    for (size_t k = 0; k < count; ++k) {
      if (size - i < 2) throw CorruptStream("avcC record ends inside a parameter set length");
      const size_t length = (size_t{data[i]} << 8) | data[i + 1];
      i += 2;
      if (length > size - i) throw CorruptStream("avcC parameter set exceeds the record");
      if (length > 0) config.parameter_sets.push_back({data + i, length});
      i += length;
    }
  };
  read_sets(data[i++] & 0x1f);  // numOfSequenceParameterSets
  if (i >= size) throw CorruptStream("avcC record ends before numOfPictureParameterSets");
  read_sets(data[i++]);
  // High-profile extension fields (chroma_format etc.) repeat the SPS: not needed.
  return config;
}

NalHeader parse_nal_header(const NalSpan& nal) {
  if (nal.size < 1) throw CorruptStream("empty NAL unit");
  const uint8_t b = nal.data[0];
  if (b & 0x80) throw CorruptStream("forbidden_zero_bit is set in a NAL unit header");
  NalHeader h{static_cast<uint8_t>((b >> 5) & 3), static_cast<uint8_t>(b & 0x1f), 1};
  if (h.nal_unit_type == kNalPrefix || h.nal_unit_type == kNalSliceExtension ||
      h.nal_unit_type == kNalSliceExtensionDepth) {
    h.header_bytes = 4;  // nal_unit_header_{svc,mvc,3davc}_extension: 3 bytes after the flag byte
    if (nal.size < h.header_bytes)
      throw CorruptStream("NAL unit of type " + std::to_string(h.nal_unit_type) +
                          " is shorter than its extension header");
  }
  return h;
}

bool is_vcl(uint8_t nal_unit_type) { return nal_unit_type >= 1 && nal_unit_type <= 5; }

}  // namespace vccv
