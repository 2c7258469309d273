// CABAC context index increments that depend on neighbouring macroblocks (9.3.3.1.1): what the
// left (A) and upper (B) macroblocks and blocks say about each syntax element's first bin.
#include "picture_parser.h"

namespace vccv {

const MbState* PictureParser::block_owner(int x, int y, int& block) const {
  block = ((y & 15) >> 2) * 4 + ((x & 15) >> 2);
  return owner(x, y);
}

int PictureParser::ref_gt0(int list, int x, int y) const {
  int block;
  const MbState* n = block_owner(x, y, block);
  return n ? (n->ref_gt0[list] >> block) & 1 : 0;
}

const uint8_t* PictureParser::mvd_abs(int list, int x, int y) const {
  static constexpr uint8_t kNone[2] = {0, 0};  // an unavailable neighbour counts as 0
  int block;
  const MbState* n = block_owner(x, y, block);
  return n ? n->mvd_abs[list][block] : kNone;
}

int PictureParser::skip_flag_inc() const { return (mb_a() && !mb_a()->skip) + (mb_b() && !mb_b()->skip); }

int PictureParser::mb_type_inc() const {
  if (sh_->slice_type == kSliceI) return (mb_a() && !mb_a()->i_nxn) + (mb_b() && !mb_b()->i_nxn);
  return (mb_a() && !mb_a()->direct16) + (mb_b() && !mb_b()->direct16);
}

int PictureParser::chroma_pred_mode_inc() const {
  auto cond = [](const MbState* n) { return n && n->intra && !n->pcm && n->chroma_pred_mode != 0; };
  return cond(mb_a()) + cond(mb_b());
}

int PictureParser::transform_8x8_inc() const {
  return (mb_a() && mb_a()->transform_8x8) + (mb_b() && mb_b()->transform_8x8);
}

CbpContexts PictureParser::cbp_contexts() const {
  // condTermFlagN of a luma 8x8 block of neighbour n: 0 when n is unavailable or I_PCM, 1 when
  // it is skipped or its block carries no residual. A skipped MbState has cbp 0, an I_PCM one
  // cbp_luma 15 and cbp_chroma 2 (macroblock_layer.cpp): the bits alone decide.
  auto luma = [](const MbState* n, int b8n) -> uint32_t { return n ? ~(n->cbp_luma >> b8n) & 1 : 0; };
  auto chroma = [](const MbState* n, int bin) -> int {
    return n && (bin == 0 ? n->cbp_chroma != 0 : n->cbp_chroma == 2);
  };
  const MbState *a = mb_a(), *b = mb_b();
  CbpContexts c;
  c.luma_a = luma(a, 1) | luma(a, 3) << 2;
  c.luma_b = luma(b, 2) | luma(b, 3) << 1;
  for (int bin = 0; bin < 2; ++bin) c.chroma[bin] = chroma(a, bin) + 2 * chroma(b, bin);
  return c;
}

// The coded_block_flags below are 0 in a skipped MbState and in blocks its cbp left uncoded, 1 in
// the 4x4 blocks of a CABAC 8x8 block (inferred) and everywhere in an I_PCM one
// (macroblock_layer.cpp): each condTermFlagN is the neighbour's bit, or cbf_unavailable().

int PictureParser::cbf_luma_cond(int bx, int by) const {
  const MbState* n = bx < 0 ? mb_a() : mb_b();
  return n ? (n->cbf_luma >> ((by & 3) * 4 + (bx & 3))) & 1 : cbf_unavailable();
}

int PictureParser::cbf_luma_dc_inc() const {
  auto cond = [this](const MbState* n) { return n ? int{n->cbf_luma_dc} : cbf_unavailable(); };
  return cond(mb_a()) + 2 * cond(mb_b());
}

int PictureParser::cbf_chroma_dc_inc(int plane) const {
  auto cond = [this, plane](const MbState* n) { return n ? (n->cbf_chroma_dc >> plane) & 1 : cbf_unavailable(); };
  return cond(mb_a()) + 2 * cond(mb_b());
}

int PictureParser::cbf_chroma_ac_cond(int plane, int bx, int by) const {
  const MbState* n = bx >= 0 && by >= 0 ? cur_ : (bx < 0 ? mb_a() : mb_b());
  return n ? (n->cbf_chroma_ac >> (plane * 4 + (by & 1) * 2 + (bx & 1))) & 1 : cbf_unavailable();
}

}  // namespace vccv
