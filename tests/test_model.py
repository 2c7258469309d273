"""The VCCV model: config, the four variants in every backend against the paper's equations
(restated independently in tests/paper_equations.py), masks and padding, beam search, and
memorisation of a few captions.

On a machine without CUDA the Triton kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1,
set here; the kernel modules are imported later, at first use, and Triton reads it then).
"""

from __future__ import annotations

import math
import os

import paper_equations as paper
import pytest
import torch
from torch import nn

from vccv_gpu.model import BOS, EOS, PAD, UNK, VARIANTS, VCCV, Caption, VCCVConfig, beam_search, caption_loss
from vccv_gpu.model.rae import W_R_INIT_SCALE

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
WORDS = range(4, 14)  # the tiny vocabulary's words: ids 4..13


def tiny_config(variant: str = "rae", **overrides) -> VCCVConfig:
    """Odd sizes everywhere so that no block size divides them."""
    sizes = {"vocab_size": 14, "d_i": 40, "d_r": 24, "grid": (3, 3), "n_frames": 5, "embed": 12, "hidden": 20,
             "gate_dim": 10, "dropout": 0.0, "max_len": 7, "variant": variant}
    sizes.update(overrides)
    return VCCVConfig(**sizes)


def features(config: VCCVConfig, clips: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random features and a frame mask with some short clips; padded frames hold garbage."""
    g = torch.Generator().manual_seed(seed)
    n, (h, w) = config.n_frames, config.grid
    v_i = torch.randn(clips, n, h, w, config.d_i, generator=g)
    a_r = torch.randn(clips, n, h, w, config.d_r, generator=g)
    lengths = [n - (i % 3) for i in range(clips)]
    mask = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    return v_i.to(DEVICE), a_r.to(DEVICE), mask.to(DEVICE)


def model(config: VCCVConfig, backend: str, seed: int = 0) -> VCCV:
    torch.manual_seed(seed)
    m = VCCV(config, backend=backend).to(DEVICE)
    assert m.resolved_backend(torch.device(DEVICE)) == backend  # no silent fallback to another path
    with torch.no_grad():  # larger attention and gate weights than the default init: the terms matter
        for name in ("w_g", "w_t", "w_i"):  # not their zero start: every term must count
            if hasattr(m.encoder, name):
                nn.Linear.reset_parameters(getattr(m.encoder, name))
        for name, p in m.encoder.named_parameters():
            if name.startswith(("w_t", "w_i", "w_r", "w_g")):
                p.mul_(3.0)
    return m


def with_varied_endings(m: VCCV) -> VCCV:
    """Sharper word choices and a middling <eos>: beam search then ends some hypotheses early,
    some late and cuts some at max_len (checked where it matters)."""
    with torch.no_grad():
        m.classifier.weight.mul_(8.0)
        m.classifier.bias[EOS] = 0.3
    return m


def captions_batch(captions: list[list[int]]) -> torch.Tensor:
    length = max(len(c) for c in captions) + 2
    tokens = torch.full((len(captions), length), PAD, dtype=torch.long)
    for i, c in enumerate(captions):
        tokens[i, : len(c) + 2] = torch.tensor([BOS, *c, EOS])
    return tokens.to(DEVICE)


def random_captions(clips: int, seed: int = 0, shortest: int = 2, longest: int = 6) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(shortest, longest + 1, (clips,), generator=g).tolist()
    return [torch.randint(WORDS.start, WORDS.stop, (n,), generator=g).tolist() for n in lengths]


# --- config -----------------------------------------------------------------------------------

def test_config_defaults_are_the_papers() -> None:
    c = VCCVConfig(vocab_size=1000)
    assert (c.d_i, c.d_r, c.grid, c.n_frames, c.embed, c.hidden, c.dropout, c.max_len, c.variant) == \
        (2048, 512, (7, 7), 20, 500, 512, 0.5, 50, "rae")
    assert (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_json_round_trip(variant: str) -> None:
    c = tiny_config(variant, grid=(2, 5))
    assert VCCVConfig.from_json(c.to_json()) == c


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="variant"):
        VCCVConfig(vocab_size=100, variant="rae_full")
    with pytest.raises(ValueError, match="dropout"):
        VCCVConfig(vocab_size=100, dropout=1.0)
    with pytest.raises(ValueError, match="unknown"):
        VCCVConfig.from_json('{"vocab_size": 100, "heads": 8}')


def test_variants_have_exactly_their_weights() -> None:
    """Each variant is the previous one plus the paper's next component (Tables I/II)."""
    def modules(variant: str) -> set[str]:
        return {name for name, _ in VCCV(tiny_config(variant)).encoder.named_children()}

    common = {"project", "dropout"}
    sam = {"conv", "w_t", "w_i", "w_GR"}
    assert modules("iframe") == common
    assert modules("rae_no_gate_no_residual") == common | sam
    assert modules("rae_no_gate") == common | sam | {"w_r"}
    assert modules("rae") == common | sam | {"w_r", "w_g", "w_gt", "w_gr", "w_gi", "w_GI_prime"}


def test_attended_feature_starts_on_the_scale_of_the_plain_one() -> None:
    """Eq. 10 divides the attended sum by H x W: Eq. 5's conv and W_GR start at sqrt(H W) times
    PyTorch's default (uniform within 1/sqrt(fan_in)), so that W_GR F^att_R starts on V^c_I's scale."""
    for variant in ("rae_no_gate_no_residual", "rae_no_gate", "rae"):
        torch.manual_seed(0)
        c = tiny_config(variant)
        encoder = VCCV(c).encoder
        for weight, fan_in in ((encoder.conv.weight, c.d_i), (encoder.w_GR.weight, c.d_r)):
            bound = math.sqrt(c.positions) / math.sqrt(fan_in)
            assert 0.8 * bound < float(weight.detach().abs().max()) <= bound, (variant, weight.shape)


def test_attention_starts_where_the_residuals_are() -> None:
    """A fresh model's Eq. 8 terms: W_t and W_I zero, W_r the centred identity times W_R_INIT_SCALE,
    so the first attention map of a clip with residuals peaks where A^s_r does, and without
    residuals is uniform."""
    g = torch.Generator().manual_seed(3)
    for variant in ("rae_no_gate_no_residual", "rae"):
        m = VCCV(tiny_config(variant)).eval()
        c = m.config
        v_i = torch.rand(1, c.n_frames, *c.grid, c.d_i, generator=g)
        a_r = torch.rand(1, c.n_frames, *c.grid, c.d_r, generator=g)
        features = m.encoder.clip_features(v_i, a_r, None)
        h = torch.randn(1, c.hidden, generator=g)
        alpha = torch.tanh(m.encoder.w_t(h)[:, None] + m.encoder.clip_term(features))  # Eq. 8
        if variant == "rae":
            assert torch.equal(alpha.argmax(-1), features.a_s.argmax(-1))
            centred = features.a_s - features.a_s.mean(-1, keepdim=True)
            torch.testing.assert_close(m.encoder.clip_term(features), W_R_INIT_SCALE * centred)
        else:
            assert torch.equal(alpha, torch.zeros_like(alpha))


# --- the model against the paper's equations, restated in tests/paper_equations.py ------------

BACKENDS = ["literal", "reference", "triton"]


def logits_and_grads(m: VCCV, v_i, a_r, tokens, mask) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    m.zero_grad()
    logits = m(v_i, a_r, tokens, mask)
    return logits.detach(), weighted_grads(m, logits)


def weighted_grads(m: VCCV, logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every parameter's gradient of a loss that weights every logit differently, so that every
    gradient path is exercised."""
    weights = torch.linspace(-1, 1, logits.numel(), device=logits.device).view_as(logits)
    (logits * weights).sum().backward()
    return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


def paper_logits_and_grads(m: VCCV, v_i, a_r, tokens, mask) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The same from tests/paper_equations.py with the model's weights, clip by clip, each clip's
    padded frames dropped."""
    m.zero_grad()
    params = dict(m.named_parameters())
    logits = torch.stack([paper.caption_logits(params, m.config.variant, v_i[c][mask[c]], a_r[c][mask[c]], tokens[c])
                          for c in range(v_i.shape[0])])
    return logits.detach(), weighted_grads(m, logits)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_model_follows_the_papers_equations(backend: str, variant: str) -> None:
    """Teacher-forced logits and every parameter's gradient, fp32, masks and padding included, in
    every backend: the paper as written (literal), per-clip constants + per-step ops (reference)
    and the fused Triton kernels (on the CPU: Triton's interpreter)."""
    config = tiny_config(variant)
    v_i, a_r, mask = features(config, clips=4)
    tokens = captions_batch(random_captions(4))
    m = model(config, backend)
    got, got_grads = logits_and_grads(m, v_i, a_r, tokens, mask)
    expected, expected_grads = paper_logits_and_grads(m, v_i, a_r, tokens, mask)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert got_grads.keys() == expected_grads.keys()
    for name, grad in expected_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=1e-5, rtol=1e-4, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_encoder_step_follows_the_papers_equations(backend: str, variant: str) -> None:
    """One decoding step for 3 beams of each clip, each row with its own h_{t-1}: the visual
    feature, SAM's attention map (Eq. 9) and TGM's gate (Eq. 11) of every row and valid frame."""
    config = tiny_config(variant)
    v_i, a_r, mask = features(config, clips=3, seed=4)
    beams = 3
    h = torch.randn(3 * beams, config.hidden, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    m = model(config, backend).eval()
    params = dict(m.named_parameters())
    with torch.no_grad():
        got = m.encoder.step(h, m.precompute(v_i, a_r, mask), beams)
        for row in range(3 * beams):
            clip, valid = row // beams, mask[row // beams]
            visual, attention, gate = paper.encoder(params, variant, v_i[clip][valid], a_r[clip][valid], h[row])
            torch.testing.assert_close(got.visual[row], visual, atol=1e-5, rtol=1e-4)
            for name, mine, theirs in (("attention", got.attention, attention), ("gate", got.gate, gate)):
                assert (mine is None) == (theirs is None), name
                if mine is not None:
                    torch.testing.assert_close(mine[row][valid], theirs, atol=1e-5, rtol=1e-4)
                    assert not mine[row][~valid].any(), f"{name} on padded frames"


def test_caption_loss_is_eq14() -> None:
    config = tiny_config()
    v_i, a_r, mask = features(config, clips=3)
    tokens = captions_batch(random_captions(3, seed=6))
    with torch.no_grad():
        logits = model(config, "reference").eval()(v_i, a_r, tokens, mask)
    assert caption_loss(logits, tokens).item() == pytest.approx(paper.negative_log_likelihood(logits, tokens).item(),
                                                                rel=1e-6)


def test_bf16_triton_model_close_to_fp32_literal() -> None:
    """In bf16 (weights, features, kernels' inputs and outputs) the fused model's logits stay within
    1e-2 of the fp32 literal model's (logits here are below 1; bf16 keeps 8 bits)."""
    config = tiny_config("rae")
    v_i, a_r, mask = features(config, clips=4)
    tokens = captions_batch(random_captions(4))
    with torch.no_grad():
        expected = model(config, "literal").eval()(v_i, a_r, tokens, mask)
        fused = model(config, "triton").to(torch.bfloat16).eval()
        got = fused(v_i.bfloat16(), a_r.bfloat16(), tokens, mask)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, atol=1e-2, rtol=0)


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_beam_search_equals_literal_equations(backend: str) -> None:
    config = tiny_config("rae", max_len=6)
    v_i, a_r, mask = features(config, clips=3, seed=1)
    literal, fast = (with_varied_endings(model(config, k, seed=3)) for k in ("literal", backend))
    expected = literal.generate(v_i, a_r, frame_mask=mask, beam_size=3)
    got = fast.generate(v_i, a_r, frame_mask=mask, beam_size=3)
    assert {c.finished for clip in expected for c in clip} == {True, False}
    assert [[c.tokens for c in clip] for clip in got] == [[c.tokens for c in clip] for clip in expected]
    for got_clip, expected_clip in zip(got, expected):
        for g, e in zip(got_clip, expected_clip):
            assert g.finished == e.finished and g.log_prob == pytest.approx(e.log_prob, abs=1e-4)


@pytest.mark.gpu
def test_triton_model_at_paper_shapes() -> None:
    """Paper sizes (N 20, 7x7, D_I 2048, D_r 512, hidden 512, embed 500), fp32: fused logits and
    gradients match the literal equations, and each beam caption's score is its likelihood under
    the literal model."""
    config = VCCVConfig(vocab_size=60, max_len=8, dropout=0.0)
    v_i, a_r, mask = features(config, clips=3)
    tokens = captions_batch(random_captions(3, longest=7))
    literal, fused = model(config, "literal"), model(config, "triton")
    expected, expected_grads = logits_and_grads(literal, v_i, a_r, tokens, mask)
    got, got_grads = logits_and_grads(fused, v_i, a_r, tokens, mask)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=1e-4, rtol=1e-3, msg=lambda m, name=name: f"{name}: {m}")
    for i, clip in enumerate(fused.generate(v_i, a_r, frame_mask=mask, beam_size=5)):
        for caption in clip:
            tokens = torch.tensor([[BOS, *caption.tokens] + ([EOS] if caption.finished else [])], device=DEVICE)
            with torch.no_grad():
                log_probs = torch.log_softmax(literal.eval()(v_i[i:i + 1], a_r[i:i + 1], tokens, mask[i:i + 1]), -1)
            likelihood = log_probs[0, :-1].gather(1, tokens[0, 1:, None]).sum().item()
            assert caption.log_prob == pytest.approx(likelihood, abs=1e-3)


# --- masks and padding ------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", ["reference", "triton", "literal"])
def test_padded_frames_count_for_nothing(variant: str, backend: str) -> None:
    """A clip of frames (f0, f1) padded to 4 frames with garbage (NaN included) gives the same
    captions' logits as the clip (f0, f1, f0, f1): masked frames have no weight anywhere."""
    config = tiny_config(variant, n_frames=4)
    v_i, a_r, _ = features(config, clips=1)
    repeated = [torch.cat([x[:, :2], x[:, :2]], dim=1) for x in (v_i, a_r)]
    padded = [x.clone() for x in repeated]
    for x in padded:
        x[:, 2] = float("nan")
        x[:, 3] = 1e3
    mask = torch.tensor([[True, True, False, False]], device=DEVICE)
    tokens = captions_batch(random_captions(1))
    m = model(config, backend).eval()
    with torch.no_grad():
        full = m(*repeated, tokens)
        short = m(*padded, tokens, mask)
    torch.testing.assert_close(short, full, atol=1e-5, rtol=1e-5)


def test_loss_ignores_padding() -> None:
    """The loss of a padded batch = the token-weighted mean of each caption's loss on its own."""
    config = tiny_config()
    v_i, a_r, mask = features(config, clips=3)
    captions = [[4, 5], [6, 7, 8, 9, 10, 11], [12]]
    m = model(config, "reference").eval()
    with torch.no_grad():
        tokens = captions_batch(captions)
        batch_loss = caption_loss(m(v_i, a_r, tokens, mask), tokens)
        total, count = 0.0, 0
        for i, c in enumerate(captions):
            alone = captions_batch([c])
            total += caption_loss(m(v_i[i:i + 1], a_r[i:i + 1], alone, mask[i:i + 1]), alone).item() * (len(c) + 1)
            count += len(c) + 1
    assert batch_loss.item() == pytest.approx(total / count, rel=1e-5)


def test_bad_inputs_are_rejected() -> None:
    config = tiny_config()
    v_i, a_r, mask = features(config, clips=2)
    m = model(config, "reference")
    tokens = captions_batch(random_captions(2))
    with pytest.raises(ValueError, match="v_i"):
        m(v_i[:, :, :2], a_r, tokens)
    with pytest.raises(ValueError, match="a_r"):
        m(v_i, a_r[:1], tokens)
    empty = mask.clone()
    empty[1] = False
    with pytest.raises(ValueError, match="valid frame"):
        m(v_i, a_r, tokens, empty)
    with pytest.raises(ValueError, match="backend"):
        VCCV(config, backend="cuda")


# --- beam search ------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_beam_one_is_greedy(variant: str) -> None:
    config = tiny_config(variant, max_len=9)
    v_i, a_r, mask = features(config, clips=5)
    m = model(config, "reference")
    beams = m.generate(v_i, a_r, frame_mask=mask, beam_size=1)
    greedy = m.greedy(v_i, a_r, frame_mask=mask)
    assert [clip[0] for clip in beams] == greedy
    assert all(len(clip) == 1 for clip in beams)


def naive_beam_search(m: VCCV, v_i, a_r, mask, beam_size: int, max_len: int) -> list[list[Caption]]:
    """Textbook beam search, one clip and one beam at a time (no batching, no masking tricks)."""
    results = []
    for i in range(v_i.shape[0]):
        constants = m.precompute(v_i[i:i + 1], a_r[i:i + 1], mask[i:i + 1])
        beams = [(0.0, [], m.initial_state(1, v_i), False)]
        for _ in range(max_len):
            candidates = []
            for score, tokens, state, done in beams:
                if done:
                    candidates.append((score, tokens, state, done))
                    continue
                prev = torch.tensor([tokens[-1] if tokens else BOS], device=DEVICE)
                logits, new_state, _ = m.decode_step(prev, state, constants)
                log_probs = torch.log_softmax(logits.float(), -1)[0].tolist()
                for token, lp in enumerate(log_probs):
                    if token not in (PAD, BOS):
                        candidates.append((score + lp, tokens + [token], new_state, token == EOS))
            beams = sorted(candidates, key=lambda b: b[0], reverse=True)[:beam_size]
            if all(b[3] for b in beams):
                break
        results.append([Caption(t[:-1] if d else t, s, d) for s, t, _, d in beams])
    return results


@pytest.mark.parametrize("beam_size", [3, 5])
def test_batched_beam_search_equals_naive(beam_size: int) -> None:
    """All beams of all clips in one step, finished beams masked = the per-beam textbook loop."""
    config = tiny_config("rae", max_len=6)
    v_i, a_r, mask = features(config, clips=3, seed=1)
    m = with_varied_endings(model(config, "reference", seed=3).eval())
    got = m.generate(v_i, a_r, frame_mask=mask, beam_size=beam_size)
    with torch.no_grad():
        expected = naive_beam_search(m, v_i, a_r, mask, beam_size, max_len=6)
    assert any(c.finished for clip in expected for c in clip) and any(not c.finished for clip in expected for c in clip)
    for got_clip, expected_clip in zip(got, expected):
        assert [(c.tokens, c.finished) for c in got_clip] == [(c.tokens, c.finished) for c in expected_clip]
        assert [c.log_prob for c in got_clip] == pytest.approx([c.log_prob for c in expected_clip], abs=1e-5)


def test_beam_scores_sorted_and_equal_to_the_captions_likelihood() -> None:
    """Each caption's score is the model's log-likelihood of it (teacher forcing, <eos> included)."""
    config = tiny_config("rae", max_len=6)
    v_i, a_r, mask = features(config, clips=3, seed=2)
    m = model(config, "reference", seed=1).eval()
    results = m.generate(v_i, a_r, frame_mask=mask, beam_size=4)
    for i, clip in enumerate(results):
        assert len(clip) == 4
        assert [c.log_prob for c in clip] == sorted((c.log_prob for c in clip), reverse=True)
        for caption in clip:
            tokens = torch.tensor([[BOS, *caption.tokens] + ([EOS] if caption.finished else [])], device=DEVICE)
            with torch.no_grad():
                log_probs = torch.log_softmax(m(v_i[i:i + 1], a_r[i:i + 1], tokens, mask[i:i + 1]), -1)[0]
            likelihood = log_probs[:-1].gather(1, tokens[0, 1:, None]).sum().item()
            assert caption.log_prob == pytest.approx(likelihood, abs=1e-4)


def test_beam_search_eos_handling() -> None:
    """A model that strongly prefers <eos> stops at once; one that never says it runs to max_len."""
    config = tiny_config("rae", max_len=5)
    v_i, a_r, mask = features(config, clips=2)
    m = model(config, "reference")
    with torch.no_grad():
        m.classifier.bias[EOS] = 30.0
    for clip in m.generate(v_i, a_r, frame_mask=mask, beam_size=3):
        assert clip[0].tokens == [] and clip[0].finished and clip[0].log_prob > -1e-6
        assert all(c.finished and len(c.tokens) == 1 for c in clip[1:])  # one word, then <eos>
    with torch.no_grad():
        m.classifier.bias[EOS] = -1e4
    for clip in m.generate(v_i, a_r, frame_mask=mask, beam_size=3, max_len=4):
        assert all(not c.finished and len(c.tokens) == 4 for c in clip)
        assert all(EOS not in c.tokens and PAD not in c.tokens and BOS not in c.tokens for c in clip)


@pytest.mark.parametrize("max_len", [1, 3])
def test_beam_search_respects_max_len(max_len: int) -> None:
    config = tiny_config("rae_no_gate")
    v_i, a_r, mask = features(config, clips=3)
    m = model(config, "reference")
    for clip in m.generate(v_i, a_r, frame_mask=mask, beam_size=3, max_len=max_len):
        for c in clip:
            assert len(c.tokens) + c.finished <= max_len
            assert c.finished or len(c.tokens) == max_len


def test_beam_search_fewer_candidates_than_beams() -> None:
    """With one generable token besides <eos>, only hypotheses that exist are returned."""
    vocab = 5  # pad, bos, eos, unk, one word

    def step(tokens: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.log_softmax(torch.zeros(tokens.shape[0], vocab), -1), state

    (clip,) = beam_search(step, lambda s, rows: s[rows], torch.zeros(8, 1), n_clips=1, beam_size=8, max_len=2)
    # <eos> at once, or one of {unk, word} then any of the three: 7 hypotheses for 8 beams
    assert len(clip) == 7 and len({tuple(c.tokens) for c in clip}) == 7
    assert clip[0] == Caption([], clip[0].log_prob, True) and clip[0].log_prob == pytest.approx(-1.6094379)
    assert all(c.log_prob == pytest.approx(2 * -1.6094379) for c in clip[1:])


def test_generate_keeps_clips_independent_and_restores_training_mode() -> None:
    config = tiny_config("rae")
    v_i, a_r, mask = features(config, clips=4)
    m = model(config, "reference").train()
    together = m.generate(v_i, a_r, frame_mask=mask, beam_size=3)
    assert m.training
    alone = [m.generate(v_i[i:i + 1], a_r[i:i + 1], frame_mask=mask[i:i + 1], beam_size=3)[0]
             for i in range(4)]
    assert [[c.tokens for c in clip] for clip in together] == [[c.tokens for c in clip] for clip in alone]


# --- memorisation -----------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_overfits_eight_captions(variant: str) -> None:
    """A small model memorises 8 (features, caption) pairs: greedy decoding reproduces every
    caption exactly, <eos> included, within 300 Adam steps."""
    config = VCCVConfig(vocab_size=20, d_i=32, d_r=16, grid=(2, 2), n_frames=4, embed=16, hidden=64, gate_dim=16,
                        dropout=0.0, max_len=10, variant=variant)
    g = torch.Generator().manual_seed(0)
    v_i = torch.randn(8, 4, 2, 2, 32, generator=g).to(DEVICE)
    a_r = torch.randn(8, 4, 2, 2, 16, generator=g).to(DEVICE)
    mask = torch.ones(8, 4, dtype=torch.bool, device=DEVICE)
    mask[::3, 3:] = False
    lengths = torch.randint(3, 8, (8,), generator=g).tolist()
    captions = [torch.randint(4, 20, (n,), generator=g).tolist() for n in lengths]
    tokens = captions_batch(captions)
    torch.manual_seed(0)
    m = VCCV(config, backend="reference").to(DEVICE)
    optimiser = torch.optim.Adam(m.parameters(), lr=1e-2)
    for step in range(1, 301):
        loss = caption_loss(m(v_i, a_r, tokens, mask), tokens)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 10 == 0:
            decoded = m.greedy(v_i, a_r, frame_mask=mask)
            if all(d.finished and d.tokens == c for d, c in zip(decoded, captions)):
                return
    pytest.fail(f"{variant}: not memorised after 300 steps (loss {loss.item():.3f}): {decoded} vs {captions}")
