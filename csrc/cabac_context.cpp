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
  // it is skipped or its block carries no residual.
  auto luma = [](const MbState* n, int b8n) -> uint32_t {
    if (!n || n->pcm) return 0;
    return n->skip || ((n->cbp_luma >> b8n) & 1) == 0;
  };
  auto chroma = [](const MbState* n, int bin) -> int {
    return n && (n->pcm || (!n->skip && (bin == 0 ? n->cbp_chroma != 0 : n->cbp_chroma == 2)));
  };
  const MbState *a = mb_a(), *b = mb_b();
  CbpContexts c;
  c.luma_a = luma(a, 1) | luma(a, 3) << 2;
  c.luma_b = luma(b, 2) | luma(b, 3) << 1;
  for (int bin = 0; bin < 2; ++bin) c.chroma[bin] = chroma(a, bin) + 2 * chroma(b, bin);
  return c;
}

int PictureParser::cbf_luma_cond(int bx, int by) const {
  const MbState* n = bx < 0 ? mb_a() : mb_b();
  bx &= 3;
  by &= 3;
  if (!n) return cbf_unavailable();
  if (n->pcm) return 1;
  if (n->skip || !((n->cbp_luma >> ((by / 2) * 2 + bx / 2)) & 1)) return 0;
  if (n->transform_8x8) return 1;  // the 8x8 block's flag, inferred 1 for 4:2:0
  return (n->cbf_luma >> (by * 4 + bx)) & 1;
}

int PictureParser::cbf_luma_dc_inc() const {
  auto cond = [this](const MbState* n) {
    if (!n) return cbf_unavailable();
    if (n->pcm) return 1;
    return n->i16 && n->cbf_luma_dc ? 1 : 0;
  };
  return cond(mb_a()) + 2 * cond(mb_b());
}

int PictureParser::cbf_chroma_dc_inc(int plane) const {
  auto cond = [this, plane](const MbState* n) {
    if (!n) return cbf_unavailable();
    if (n->pcm) return 1;
    if (n->skip || n->cbp_chroma == 0) return 0;
    return (n->cbf_chroma_dc >> plane) & 1;
  };
  return cond(mb_a()) + 2 * cond(mb_b());
}

int PictureParser::cbf_chroma_ac_cond(int plane, int bx, int by) const {
  if (bx >= 0 && by >= 0) return (cur_->cbf_chroma_ac >> (plane * 4 + by * 2 + bx)) & 1;
  const MbState* n = bx < 0 ? mb_a() : mb_b();
  bx &= 1;
  by &= 1;
  if (!n) return cbf_unavailable();
  if (n->pcm) return 1;
  if (n->skip || n->cbp_chroma != 2) return 0;
  return (n->cbf_chroma_ac >> (plane * 4 + by * 2 + bx)) & 1;
}

}  // namespace vccv
