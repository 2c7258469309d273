// NAL unit framing (Annex B byte streams, AVCC length prefixes, the avcC record) and the
// NAL unit header (7.3.1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vccv {

// nal_unit_type values (Table 7-1) the parser acts on.
enum NalType : uint8_t {
  kNalSlice = 1,
  kNalSlicePartitionA = 2,
  kNalSlicePartitionB = 3,
  kNalSlicePartitionC = 4,
  kNalIdrSlice = 5,
  kNalSei = 6,
  kNalSps = 7,
  kNalPps = 8,
  kNalAccessUnitDelimiter = 9,
  kNalEndOfSequence = 10,
  kNalEndOfStream = 11,
  kNalFiller = 12,
  kNalSpsExtension = 13,
  kNalPrefix = 14,
  kNalSubsetSps = 15,
  kNalDepthParameterSet = 16,
  kNalAuxiliarySlice = 19,
  kNalSliceExtension = 20,
  kNalSliceExtensionDepth = 21,
};

struct NalSpan {
  const uint8_t* data;  // first byte of the NAL unit header
  size_t size;
};

struct NalHeader {
  uint8_t nal_ref_idc;
  uint8_t nal_unit_type;
  size_t header_bytes;  // 1, or 4 for the SVC/MVC/3D extension headers (types 14, 20, 21)
};

// Splits an Annex B byte stream at start codes; trailing_zero_8bits are dropped.
std::vector<NalSpan> split_annexb(const uint8_t* data, size_t size);

// Splits a packet of NAL units each preceded by a big-endian length of length_size bytes.
// A length running past the packet ends the list with the partial unit and sets `cut`.
std::vector<NalSpan> split_length_prefixed(const uint8_t* data, size_t size, int length_size, bool& cut);

// AVCDecoderConfigurationRecord (ISO/IEC 14496-15, 5.3.3.1): the `avcC` box payload.
struct AvcConfig {
  int length_size = 4;
  std::vector<NalSpan> parameter_sets;  // SPS then PPS units
};
AvcConfig parse_avcc(const uint8_t* data, size_t size);

// Parses and validates the header (forbidden_zero_bit, extension header lengths).
NalHeader parse_nal_header(const NalSpan& nal);

bool is_vcl(uint8_t nal_unit_type);

}  // namespace vccv
