"""VCCV: the residuals-assisted encoder and the LSTM decoder (paper section III, Eq. 13-14).

    model = VCCV(VCCVConfig(vocab_size=10_000))
    logits = model(v_i, a_r, tokens)             # teacher forcing: [B, T, V]
    loss = caption_loss(logits, tokens)          # Eq. 14, padding ignored
    captions = model.generate(v_i, a_r)          # per clip: beam_size Captions, best first

v_i [B, N, H, W, D_I] and a_r [B, N, H, W, D_r] are the stored I-frame and residual features
(channel-last); `frame_mask` [B, N] (bool) marks the valid frames of clips shorter than N.
`backend` chooses how the encoder runs (see `vccv_gpu.kernels.backend`): "triton" (fused kernels),
"reference" (the same per-step ops in plain PyTorch), "literal" (Eq. 3-12 recomputed at every
step, the paper as written: slow, for checking), or "auto" (Triton on CUDA, else the reference);
None reads $VCCV_BACKEND (default auto).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vccv_gpu.kernels.backend import BACKENDS, resolve_backend

from .beam import Caption, beam_search, greedy_search
from .config import VCCVConfig
from .rae import RAE, ClipConstants, EncoderStep
from .tokens import PAD

__all__ = ["VCCV", "DecoderState", "caption_loss"]

DecoderState = tuple[Tensor, Tensor]  # (h, c) of the LSTM, one row per clip and beam


class VCCV(nn.Module):
    """The captioning model: `RAE` encoder (the config's variant), then an LSTM cell fed with
    [F^att_G; embedding of the previous token], dropout on its output and a linear layer to the
    vocabulary. The LSTM state starts at zero."""

    def __init__(self, config: VCCVConfig, backend: str | None = None) -> None:
        super().__init__()
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.config = config
        self.backend = backend
        self.encoder = RAE(config)
        self.embed = nn.Embedding(config.vocab_size, config.embed, padding_idx=PAD)
        self.lstm = nn.LSTMCell(config.d_i + config.embed, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden, config.vocab_size)

    def resolved_backend(self, device: torch.device) -> str:
        """How the encoder runs for tensors on `device`: "triton", "reference" or "literal"."""
        return resolve_backend(self.backend, device)

    def precompute(self, v_i: Tensor, a_r: Tensor, frame_mask: Tensor | None = None) -> ClipConstants:
        """The per-clip constants of the encoder, computed once and shared by every step and beam."""
        return self.encoder.precompute(v_i, a_r, frame_mask, self.resolved_backend(v_i.device))

    def initial_state(self, rows: int, like: Tensor) -> DecoderState:
        zeros = torch.zeros(rows, self.config.hidden, dtype=self.classifier.weight.dtype, device=like.device)
        return zeros, zeros.clone()

    def decode_step(self, prev_tokens: Tensor, state: DecoderState, constants: ClipConstants,
                    beams: int = 1) -> tuple[Tensor, DecoderState, EncoderStep]:
        """One step for C * beams rows: the logits of the next token [R, V], the new state and the
        encoder's output (attention map and gate, for visualisation)."""
        h, c = state
        encoded = self.encoder.step(h, constants, beams)
        h, c = self.lstm(torch.cat([encoded.visual, self.embed(prev_tokens)], dim=1), (h, c))  # Eq. 13
        return self.classifier(self.dropout(h)), (h, c), encoded

    def forward(self, v_i: Tensor, a_r: Tensor, tokens: Tensor, frame_mask: Tensor | None = None) -> Tensor:
        """Teacher forcing: tokens [B, T] are the captions (<bos> words <eos>, then <pad>);
        logits[:, t] [B, T, V] score the token that follows tokens[:, t]."""
        if tokens.dim() != 2 or tokens.shape[0] != v_i.shape[0]:
            raise ValueError(f"tokens must be [{v_i.shape[0]}, T], got {list(tokens.shape)}")
        constants = self.precompute(v_i, a_r, frame_mask)
        state = self.initial_state(tokens.shape[0], v_i)
        logits = []
        for t in range(tokens.shape[1]):
            step_logits, state, _ = self.decode_step(tokens[:, t], state, constants)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)

    @torch.no_grad()
    def generate(self, v_i: Tensor, a_r: Tensor, *, beam_size: int = 5, max_len: int | None = None,
                 frame_mask: Tensor | None = None) -> list[list[Caption]]:
        """Beam search (paper: beam 5): per clip, up to beam_size Captions, best first. Runs in eval
        mode (no dropout) whatever the module's mode; max_len defaults to the config's."""
        max_len = self.config.max_len if max_len is None else max_len
        with _eval(self):
            constants = self.precompute(v_i, a_r, frame_mask)
            step = self._log_prob_step(constants, beam_size)
            state = self.initial_state(v_i.shape[0] * beam_size, v_i)
            return beam_search(step, _reorder, state, v_i.shape[0], beam_size, max_len)

    @torch.no_grad()
    def greedy(self, v_i: Tensor, a_r: Tensor, *, max_len: int | None = None,
               frame_mask: Tensor | None = None) -> list[Caption]:
        """Greedy decoding, one Caption per clip, in eval mode."""
        max_len = self.config.max_len if max_len is None else max_len
        with _eval(self):
            constants = self.precompute(v_i, a_r, frame_mask)
            state = self.initial_state(v_i.shape[0], v_i)
            return greedy_search(self._log_prob_step(constants, 1), state, v_i.shape[0], max_len)

    def _log_prob_step(self, constants: ClipConstants, beams: int):
        def step(tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
            logits, state, _ = self.decode_step(tokens, state, constants, beams)
            return F.log_softmax(logits.float(), dim=-1), state

        return step


def caption_loss(logits: Tensor, tokens: Tensor) -> Tensor:
    """Eq. 14 as a loss: the negative log-likelihood of each caption's next tokens given the
    previous ones, averaged over the non-padding targets of the batch. logits [B, T, V] from
    `VCCV.forward(…, tokens)`, tokens [B, T]."""
    targets = tokens[:, 1:]
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=PAD)


def _reorder(state: DecoderState, rows: Tensor) -> DecoderState:
    return state[0].index_select(0, rows), state[1].index_select(0, rows)


class _eval:
    """Puts a module in eval mode for a block and restores its mode after."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.was_training = self.module.training
        self.module.eval()

    def __exit__(self, *exc: object) -> None:
        self.module.train(self.was_training)
