"""The conv stem, positions and blocks equal transformers' WhisperEncoder, clip by clip inside a packed batch."""
from __future__ import annotations

import math

import pytest
import torch
from audio_encoder_references import hf_whisper_encoder, pack, random_encoder
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from megatron_qwen_audio.model import AudioEncoderConfig, sinusoids

CONFIG = AudioEncoderConfig.tiny(d_model=64, layers=2, heads=4, max_source_positions=1500)


def test_positions_are_whispers_sinusoids():
    """HF initialises its position table with its own copy of openai-whisper's formula: ours must equal it, and
    position p is sin(p * 10000^(-c / (d/2 - 1))) in channel c < d/2 and cos of it in channel d/2 + c."""
    reference = WhisperEncoder(WhisperConfig(num_mel_bins=80, d_model=64, encoder_layers=1, encoder_attention_heads=4,
                                             encoder_ffn_dim=128, max_source_positions=300))
    ours = sinusoids(300, 64)
    torch.testing.assert_close(ours, reference.embed_positions.weight.detach(), rtol=0, atol=0)
    assert ours[7, 5].item() == pytest.approx(math.sin(7 * 10000 ** (-5 / 31)), abs=1e-6)
    assert ours[7, 32 + 5].item() == pytest.approx(math.cos(7 * 10000 ** (-5 / 31)), abs=1e-6)
    buffer = random_encoder(CONFIG).positional_embedding
    torch.testing.assert_close(buffer, sinusoids(1500, 64), rtol=0, atol=0)
    assert not any(p is buffer for p in random_encoder(CONFIG).parameters())


def test_packed_clips_match_whisper_encoder_per_clip(speech_mel):
    """Each clip of a packed batch (different even lengths; one of 2 frames, which becomes a single encoder frame)
    gives the block outputs that WhisperEncoder computes for that clip alone, and our ln_post equals its final
    layer_norm: this proves the layout, the weight mapping, the key masking and that no clip sees another."""
    encoder = random_encoder(CONFIG).eval()
    lengths = [250, 2, 1000, 64]
    starts = [0, 300, 400, 1500]
    clips = [speech_mel[:, start:start + length] for start, length in zip(starts, lengths, strict=True)]
    with torch.no_grad():
        frames = encoder.encode_frames(*pack(clips))
    assert frames.lengths == [125, 1, 500, 32]
    for index, clip in enumerate(clips):
        reference = hf_whisper_encoder(encoder, clip.shape[1])
        with torch.no_grad():
            blocks, final = block_and_final_outputs(reference, torch.as_tensor(clip))
            ours = frames.hidden.split(frames.lengths)[index]
            torch.testing.assert_close(ours, blocks, rtol=0, atol=1e-5)
            torch.testing.assert_close(encoder.ln_post(ours), final, rtol=0, atol=1e-5)


def block_and_final_outputs(reference: WhisperEncoder, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """WhisperEncoder's last block output (read by a hook: it is not returned) and its layer-normed output."""
    captured = []
    hook = reference.layers[-1].register_forward_hook(lambda module, args, output: captured.append(output[0]))
    final = reference(clip[None]).last_hidden_state[0]
    hook.remove()
    return captured[0], final
