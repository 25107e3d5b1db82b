"""Tiny encoders with distinguishable weights, packed inputs, and the transformers modules they are checked against."""
from __future__ import annotations

import numpy as np
import torch
from transformers import Qwen2AudioConfig, Qwen2AudioEncoderConfig, WhisperConfig
from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioEncoder, Qwen2AudioMultiModalProjector
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from megatron_qwen_audio.model import AudioEncoder, AudioEncoderConfig, hf_qwen2_audio_key, hf_whisper_encoder_key


def random_encoder(config: AudioEncoderConfig, seed: int = 0) -> AudioEncoder:
    """An encoder whose every tensor differs from its defaults (LayerNorms included), so that a swapped or
    mis-mapped weight changes the output."""
    torch.manual_seed(seed)
    encoder = AudioEncoder(config)
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return encoder


def pack(clips: list[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_mels, T_i] clips -> (mel [n_mels, sum T], mel_lengths), the loader's batch layout."""
    tensors = [torch.as_tensor(clip, dtype=torch.float32) for clip in clips]
    return torch.cat(tensors, dim=1), torch.tensor([t.shape[1] for t in tensors], dtype=torch.int64)


def hf_whisper_encoder(encoder: AudioEncoder, mel_frames: int) -> WhisperEncoder:
    """transformers' WhisperEncoder for exactly `mel_frames` (even) frames, with eager attention and our weights."""
    config = encoder.config
    positions = mel_frames // 2
    reference = WhisperEncoder(WhisperConfig(
        num_mel_bins=config.n_mels, d_model=config.d_model, encoder_layers=config.layers,
        encoder_attention_heads=config.heads, encoder_ffn_dim=config.ffn_dim, max_source_positions=positions,
        attn_implementation="eager")).eval()
    state = {hf_whisper_encoder_key(name): value for name, value in encoder.state_dict().items()
             if not name.startswith(("proj.", "audio_bos_eos_token."))}
    state["embed_positions.weight"] = state["embed_positions.weight"][:positions]
    reference.load_state_dict(state, strict=True)
    return reference


def hf_qwen2_audio_tower(encoder: AudioEncoder) -> tuple[Qwen2AudioEncoder, Qwen2AudioMultiModalProjector]:
    """transformers' Qwen2-Audio audio tower (3000 frames, eager attention) and projector, with our weights."""
    config = encoder.config
    audio_config = Qwen2AudioEncoderConfig(
        num_mel_bins=config.n_mels, d_model=config.d_model, encoder_layers=config.layers,
        encoder_attention_heads=config.heads, encoder_ffn_dim=config.ffn_dim,
        max_source_positions=config.max_source_positions, attn_implementation="eager")
    model_config = Qwen2AudioConfig(audio_config=audio_config,
                                    text_config={"model_type": "qwen2", "hidden_size": config.output_dim})
    tower = Qwen2AudioEncoder(audio_config).eval()
    projector = Qwen2AudioMultiModalProjector(model_config).eval()
    state = {hf_qwen2_audio_key(name): value for name, value in encoder.state_dict().items()
             if not name.startswith("audio_bos_eos_token.")}
    tower.load_state_dict({k.removeprefix("audio_tower."): v for k, v in state.items()
                           if k.startswith("audio_tower.")}, strict=True)
    projector.load_state_dict({k.removeprefix("multi_modal_projector."): v for k, v in state.items()
                               if k.startswith("multi_modal_projector.")}, strict=True)
    return tower, projector
