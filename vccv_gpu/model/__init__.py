"""The VCCV captioning model (paper section III): the residuals-assisted encoder (RAE: SAM + TGM)
and the LSTM decoder with batched beam search.

Read in this order: `config` (`VCCVConfig`: sizes and variant), `clip_features` (Eq. 3-7),
`sam` (Eq. 8-10), `tgm` (Eq. 11-12), `rae` (`RAE`: the encoder, Eq. 2), `vccv` (`VCCV`: the
decoder, Eq. 13, and the loss, Eq. 14), `beam` (beam search), `tokens`.

Special token ids are fixed here for the whole package: <pad>=0, <bos>=1, <eos>=2, <unk>=3
(`PAD`, `BOS`, `EOS`, `UNK`); the vocabulary built from the captions puts words from id 4 on.
"""

from .beam import Caption, beam_search, greedy_search
from .config import VARIANTS, VCCVConfig
from .rae import RAE, ClipConstants, EncoderStep
from .tokens import BOS, EOS, PAD, SPECIAL_TOKENS, UNK
from .vccv import VCCV, caption_loss

__all__ = [
    "BOS", "EOS", "PAD", "RAE", "SPECIAL_TOKENS", "UNK", "VARIANTS", "VCCV", "Caption", "ClipConstants",
    "EncoderStep", "VCCVConfig", "beam_search", "caption_loss", "greedy_search",
]
