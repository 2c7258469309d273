"""Batched beam search and greedy decoding over any step function.

All beams of all clips advance together: one step-function call (one LSTM step) per decoding
step for C * beam_size rows, with the rows of clip c at c*beam_size ... (c+1)*beam_size - 1.
Finished beams stay in their slots and are masked (they can only be extended by <pad> at no
cost), so no Python loop runs over clips or beams. Scores are plain sums of log-probabilities
(no length normalisation: the paper states none). <pad> and <bos> are never generated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

import torch
from torch import Tensor

from .tokens import BOS, EOS, PAD

State = TypeVar("State")
# (previous tokens [R], state) -> (log-probabilities [R, V], next state)
StepFn = Callable[[Tensor, State], tuple[Tensor, State]]
# (state, row index [R]) -> the state of the rows picked by the index
ReorderFn = Callable[[State, Tensor], State]


class Caption(NamedTuple):
    tokens: list[int]  # the generated words, without <bos> and <eos>
    log_prob: float  # sum of the log-probabilities of the tokens (and of <eos> when finished)
    finished: bool  # True when the caption ended with <eos>, False when cut at max_len


def _blocked(log_probs: Tensor) -> Tensor:
    log_probs = log_probs.float().clone()
    log_probs[:, PAD] = float("-inf")
    log_probs[:, BOS] = float("-inf")
    return log_probs


def beam_search(step: StepFn, reorder: ReorderFn, state: State, n_clips: int, beam_size: int,
                max_len: int) -> list[list[Caption]]:
    """Up to `beam_size` captions per clip, best first, each of at most `max_len` tokens (counting
    <eos>). `state` holds the n_clips * beam_size rows' initial decoder state."""
    if beam_size < 1 or max_len < 1:
        raise ValueError(f"beam_size and max_len must be >= 1, got {beam_size}, {max_len}")
    device = _device(state)
    tokens = torch.full((n_clips * beam_size,), BOS, dtype=torch.long, device=device)
    scores = torch.full((n_clips, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0  # the beams are identical at the start: expand only the first
    history = torch.empty((n_clips, beam_size, 0), dtype=torch.long, device=device)
    finished = torch.zeros((n_clips, beam_size), dtype=torch.bool, device=device)
    clip_offsets = torch.arange(n_clips, device=device)[:, None] * beam_size
    for _ in range(max_len):
        log_probs, state = step(tokens, state)
        vocab = log_probs.shape[1]
        pad_only = torch.full((vocab,), float("-inf"), device=device)
        pad_only[PAD] = 0.0  # a finished beam's one continuation: <pad>, keeping its score
        log_probs = torch.where(finished[..., None], pad_only, _blocked(log_probs).view(n_clips, beam_size, vocab))
        candidates = (scores[..., None] + log_probs).view(n_clips, beam_size * vocab)
        scores, picked = candidates.topk(beam_size, dim=1)  # sorted, best first
        origin = torch.div(picked, vocab, rounding_mode="floor")
        new_tokens = picked % vocab
        state = reorder(state, (origin + clip_offsets).view(-1))
        history = torch.cat([history.gather(1, origin[..., None].expand(-1, -1, history.shape[2])),
                             new_tokens[..., None]], dim=2)
        finished = finished.gather(1, origin) | (new_tokens == EOS)
        tokens = new_tokens.view(-1)
        if bool(finished.all()):
            break
    return _captions(history, scores, finished)


def greedy_search(step: StepFn, state: State, n_clips: int, max_len: int) -> list[Caption]:
    """The most likely token at every step, one row per clip, until <eos> or `max_len` tokens."""
    tokens = torch.full((n_clips,), BOS, dtype=torch.long, device=_device(state))
    finished = torch.zeros(n_clips, dtype=torch.bool, device=tokens.device)
    scores = torch.zeros(n_clips, device=tokens.device)
    steps = []
    for _ in range(max_len):
        log_probs, state = step(tokens, state)
        log_probs = _blocked(log_probs)
        best, tokens = log_probs.max(dim=1)
        tokens = torch.where(finished, PAD, tokens)
        scores = scores + torch.where(finished, 0.0, best)
        steps.append(tokens)
        finished = finished | (tokens == EOS)
        if bool(finished.all()):
            break
    return [clip[0] for clip in _captions(torch.stack(steps, 1)[:, None], scores[:, None], finished[:, None])]


def _captions(history: Tensor, scores: Tensor, finished: Tensor) -> list[list[Caption]]:
    results = []
    for clip_history, clip_scores, clip_finished in zip(history.tolist(), scores.tolist(), finished.tolist()):
        captions = []
        for tokens, score, done in zip(clip_history, clip_scores, clip_finished):
            if score == float("-inf"):  # a slot never filled (fewer candidates than beams)
                continue
            words = tokens[: tokens.index(EOS)] if done else tokens
            captions.append(Caption(words, score, done))
        results.append(sorted(captions, key=lambda c: c.log_prob, reverse=True))
    return results


def _device(state: object) -> torch.device:
    tensors = state if isinstance(state, (tuple, list)) else (state,)
    return next(t.device for t in tensors if isinstance(t, Tensor))
