"""Packed variable-length batches: per-clip results, span lengths, gradients, frozen use and malformed input."""
from __future__ import annotations

import pytest
import torch
from audio_encoder_references import pack, random_encoder

from megatron_qwen_audio.audio import audio_span_length
from megatron_qwen_audio.model import AudioEncoderConfig

CONFIG = AudioEncoderConfig.tiny(d_model=32, layers=2, heads=2, output_dim=40, max_source_positions=1500)
# Odd and even frame counts, the 1- and 2-frame clips that yield no audio vector, and 30 s.
LENGTHS = [1, 2, 3, 6, 7, 157, 380, 2997, 3000]
# Hand-derived span lengths of LENGTHS: T -> L = ceil(T / 2) -> floor(L / 2) vectors, plus bos and eos.
EXPECTED_SPANS = [2, 2, 3, 3, 4, 41, 97, 751, 752]


@pytest.fixture(scope="module")
def clips(speech_mel) -> list[torch.Tensor]:
    """Real speech clips of LENGTHS, each cut at a different place."""
    mel = torch.as_tensor(speech_mel)
    return [mel[:, (37 * index) % (mel.shape[1] - length + 1):][:, :length] for index, length in enumerate(LENGTHS)]


def test_packed_batch_equals_each_clip_alone(clips):
    encoder = random_encoder(CONFIG, seed=2).eval()
    with torch.no_grad():
        packed = encoder(*pack(clips))
        alone = [encoder(*pack([clip])) for clip in clips]
    assert packed.span_lengths.tolist() == EXPECTED_SPANS
    assert EXPECTED_SPANS == [audio_span_length(t) for t in LENGTHS]
    assert packed.embeddings.shape == (sum(EXPECTED_SPANS), CONFIG.output_dim)
    bos, eos = encoder.audio_bos_eos_token.weight
    for span, single in zip(packed.embeddings.split(EXPECTED_SPANS), alone, strict=True):
        # 1e-6 absolute and relative: a few float32 ulps of values near 3; padding changes only summation order.
        torch.testing.assert_close(span, single.embeddings, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(span[0], bos, rtol=0, atol=0)
        torch.testing.assert_close(span[-1], eos, rtol=0, atol=0)


def test_gradients_reach_every_parameter(clips):
    encoder = random_encoder(CONFIG, seed=4).train()
    out = encoder(*pack([clips[3], clips[4], clips[5]]))
    weights = torch.randn_like(out.embeddings)
    (out.embeddings * weights).sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name
    assert encoder.positional_embedding.grad is None


def test_frozen_encoder_runs_without_autograd(clips):
    """Stage 2: a frozen encoder, with or without no_grad, builds no graph and gives the trainable encoder's values."""
    encoder = random_encoder(CONFIG, seed=5).eval()
    batch = pack([clips[5], clips[6]])
    reference = encoder(*batch).embeddings
    assert reference.requires_grad
    encoder.requires_grad_(False)
    frozen = encoder(*batch).embeddings
    with torch.no_grad():
        no_grad = encoder(*batch).embeddings
    for out in (frozen, no_grad):
        assert not out.requires_grad and out.grad_fn is None
        torch.testing.assert_close(out, reference.detach(), rtol=0, atol=0)


def test_batch_without_clips_gives_no_rows():
    encoder = random_encoder(CONFIG)
    out = encoder(torch.zeros(CONFIG.n_mels, 0, dtype=torch.float16), torch.zeros(0, dtype=torch.int64))
    assert out.embeddings.shape == (0, CONFIG.output_dim)
    assert out.span_lengths.tolist() == []


def test_float16_mel_is_read_in_the_weights_dtype(clips):
    """The loader stores mel as float16; the encoder computes in its own (here float32) dtype."""
    encoder = random_encoder(CONFIG, seed=6).eval()
    clip = clips[5]
    with torch.no_grad():
        from_half = encoder(clip.half(), torch.tensor([clip.shape[1]])).embeddings
        from_float = encoder(clip.half().float(), torch.tensor([clip.shape[1]])).embeddings
    assert from_half.dtype == torch.float32
    torch.testing.assert_close(from_half, from_float, rtol=0, atol=0)


@pytest.mark.parametrize("mel_shape, lengths, message", [
    ((40, 10), [10], r"mel: expected \[80, sum T\]"),
    ((80, 10), [4, 5], r"mel_lengths: the clip lengths add up to 9 frames but mel holds 10"),
    ((80, 10), [10, 0], r"mel_lengths\[1\]: 0 frames is outside 1\.\.3000"),
    ((80, 3001), [3001], r"mel_lengths\[0\]: 3001 frames is outside 1\.\.3000"),
])
def test_malformed_batch_is_a_clear_error(mel_shape, lengths, message):
    encoder = random_encoder(CONFIG)
    with pytest.raises(ValueError, match=message):
        encoder(torch.zeros(mel_shape), torch.tensor(lengths, dtype=torch.int64))


def test_config_rejects_shapes_the_layout_cannot_build():
    with pytest.raises(ValueError, match="d_model 30 is not a multiple of heads 4"):
        AudioEncoderConfig.tiny(d_model=30, heads=4)
    with pytest.raises(ValueError, match="d_model 9 must be even"):
        AudioEncoderConfig.tiny(d_model=9, heads=3)


def test_whisper_large_v2_shape_on_the_meta_device():
    """Counted without allocating: the Whisper-large-v2 blocks and stem, ln_post, the 1280 -> 4096 projection and the
    bos/eos rows are parameters; the 1500 x 1280 sinusoid table is a buffer (HF Whisper counts it as a frozen
    parameter, hence its 636,784,640)."""
    with torch.device("meta"):
        from megatron_qwen_audio.model import AudioEncoder
        encoder = AudioEncoder(AudioEncoderConfig.whisper_large_v2())
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in encoder.named_children()}
    block = 4 * 1280 * 1280 + 3 * 1280 + 1280 * 5120 * 2 + 5120 + 1280 + 4 * 1280
    assert counts["blocks"] == 32 * block
    assert counts["proj"] == 1280 * 4096 + 4096
    assert sum(counts.values()) == 640_119_808
    assert encoder.positional_embedding.shape == (1500, 1280)
