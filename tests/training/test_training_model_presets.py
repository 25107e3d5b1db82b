"""The model presets against independent references: the released Qwen-Audio's vocabulary and parameter count
(HF Qwen2-Audio built at the preset's shape on the meta device measures 8.396B, as does the released model)."""
from __future__ import annotations

import torch
from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

from megatron_qwen_audio.training.config import MODEL_PRESETS, ModelConfig, TrainConfig

RELEASED_VOCAB = 155947  # Qwen-Audio's embedding rows
RELEASED_PARAMETERS_BILLIONS = 8.396  # the whole model: encoder, projection, Qwen-7B with the 155,947-row vocab


def hf_qwen2_audio_config(model: ModelConfig) -> Qwen2AudioConfig:
    encoder = model.audio_encoder
    return Qwen2AudioConfig(
        audio_config=dict(num_mel_bins=encoder.n_mels, d_model=encoder.d_model, encoder_layers=encoder.layers,
                          encoder_attention_heads=encoder.heads, encoder_ffn_dim=encoder.ffn_dim,
                          max_source_positions=encoder.max_source_positions),
        text_config=dict(model_type="qwen2", vocab_size=model.vocab_size, hidden_size=model.hidden_size,
                         intermediate_size=model.ffn_hidden_size, num_hidden_layers=model.layers,
                         num_attention_heads=model.heads, num_key_value_heads=model.heads,
                         rope_theta=model.rotary_base, rms_norm_eps=model.rms_norm_eps,
                         tie_word_embeddings=model.share_embeddings_and_output_weights),
    )


def test_qwen_audio_7b_preset_has_the_released_parameter_count():
    with torch.device("meta"):
        reference = Qwen2AudioForConditionalGeneration(hf_qwen2_audio_config(MODEL_PRESETS["qwen_audio_7b"]))
    count = sum(parameter.numel() for parameter in reference.parameters())
    assert round(count / 1e9, 3) == RELEASED_PARAMETERS_BILLIONS


def test_presets_keep_the_released_vocabulary_so_the_real_tokenizer_fits():
    assert MODEL_PRESETS["qwen_audio_7b"].vocab_size == RELEASED_VOCAB
    assert MODEL_PRESETS["tiny"].vocab_size == RELEASED_VOCAB
    assert MODEL_PRESETS["qwen_audio_7b"] == ModelConfig() == TrainConfig().model

