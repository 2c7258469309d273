"""The VCCV captioning model: residuals-assisted encoder (SAM + TGM) and LSTM decoder with
batched beam search (paper section III).

Special token ids are fixed here for the whole package: <pad>=0, <bos>=1, <eos>=2, <unk>=3
(`PAD`, `BOS`, `EOS`, `UNK`); the vocabulary built from the captions puts words from id 4 on.
"""

from .beam import Caption, beam_search, greedy_search
from .config import VARIANTS, RAEConfig
from .encoder import MODES, RAE, ClipConstants, EncoderStep
from .rae import VCCV, caption_loss
from .tokens import BOS, EOS, PAD, SPECIAL_TOKENS, UNK

__all__ = [
    "BOS", "EOS", "MODES", "PAD", "RAE", "SPECIAL_TOKENS", "UNK", "VARIANTS", "VCCV", "Caption", "ClipConstants",
    "EncoderStep", "RAEConfig", "beam_search", "caption_loss", "greedy_search",
]
