"""Model shapes read from, and written as, the config files of the formats we convert.

Imports take the shape from the sources' own configs (a Hugging Face config.json, openai-whisper's `dims`), so a
converted checkpoint has exactly its sources' shape; `check_plan` then proves the weights agree with it. Exports
write the config the target library needs to rebuild the model.
"""
from __future__ import annotations

from collections.abc import Mapping

from megatron_qwen_audio.convert.tensor_files import ConversionError
from megatron_qwen_audio.model.audio_encoder import AudioEncoderConfig
from megatron_qwen_audio.text.special_tokens import padded_vocab_size
from megatron_qwen_audio.training.config import ModelConfig


def _field(config: Mapping, names: tuple[str, ...], source: str):
    for name in names:
        if name in config:
            return config[name]
    raise ConversionError(f"{source}: config has no {' or '.join(names)}; is it the config of the kind of model the "
                          "flag says?")


def whisper_encoder_config(config: Mapping, source: str, output_dim: int) -> AudioEncoderConfig:
    """From a Hugging Face WhisperConfig / Qwen2AudioEncoderConfig dict, or openai-whisper's `dims`."""
    if "n_audio_state" in config:  # openai-whisper dims
        return AudioEncoderConfig(n_mels=config["n_mels"], d_model=config["n_audio_state"],
                                  layers=config["n_audio_layer"], heads=config["n_audio_head"],
                                  ffn_dim=4 * config["n_audio_state"], max_source_positions=config["n_audio_ctx"],
                                  output_dim=output_dim)
    return AudioEncoderConfig(
        n_mels=_field(config, ("num_mel_bins",), source), d_model=_field(config, ("d_model",), source),
        layers=_field(config, ("encoder_layers",), source),
        heads=_field(config, ("encoder_attention_heads",), source),
        ffn_dim=_field(config, ("encoder_ffn_dim",), source),
        max_source_positions=_field(config, ("max_source_positions",), source), output_dim=output_dim)


def qwen_audio_v1_encoder_config(audio: Mapping, source: str) -> AudioEncoderConfig:
    """From the `audio` section of a released Qwen-Audio config.json."""
    width = _field(audio, ("n_state",), source)
    return AudioEncoderConfig(n_mels=_field(audio, ("n_mels",), source), d_model=width,
                              layers=_field(audio, ("n_layer",), source), heads=_field(audio, ("n_head",), source),
                              ffn_dim=4 * width, max_source_positions=_field(audio, ("n_ctx",), source),
                              output_dim=_field(audio, ("output_dim",), source))


def _rope_theta(config: Mapping) -> float:
    parameters = config.get("rope_parameters") or {}
    return float(parameters.get("rope_theta", config.get("rope_theta", config.get("rotary_emb_base", 10000.0))))


def decoder_config(config: Mapping, source: str, vocab_rows: int, encoder: AudioEncoderConfig) -> ModelConfig:
    """From a Qwen2 or Qwen v1 config dict. The vocabulary is the Qwen-Audio table's (155,947) unless the source
    has more rows: every source row is kept. Qwen v1 states `intermediate_size` as both SwiGLU branches together."""
    heads = _field(config, ("num_attention_heads",), source)
    groups = config.get("num_key_value_heads", heads)
    if groups != heads:
        raise ConversionError(f"{source}: num_key_value_heads={groups} but the decoder has one key/value head per "
                              f"query head ({heads}), as Qwen-7B; grouped-query checkpoints are not supported")
    if config.get("tie_word_embeddings", False):
        raise ConversionError(f"{source}: tie_word_embeddings is true but Qwen-Audio keeps a separate LM head")
    is_v1 = config.get("model_type") == "qwen" or "layer_norm_epsilon" in config
    intermediate = _field(config, ("intermediate_size",), source)
    return ModelConfig(
        layers=_field(config, ("num_hidden_layers",), source), hidden_size=_field(config, ("hidden_size",), source),
        heads=heads, ffn_hidden_size=intermediate // 2 if is_v1 else intermediate,
        vocab_size=max(vocab_rows, padded_vocab_size()), rotary_base=_rope_theta(config),
        rms_norm_eps=float(_field(config, ("rms_norm_eps", "layer_norm_epsilon"), source)),
        seq_length=int(config.get("max_position_embeddings", config.get("seq_length", 2048))),
        audio_encoder=encoder)


def qwen2_text_config(model: ModelConfig) -> dict:
    """The Qwen2 text config of an export."""
    return {
        "model_type": "qwen2", "vocab_size": model.vocab_size, "hidden_size": model.hidden_size,
        "intermediate_size": model.ffn_hidden_size, "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads, "num_key_value_heads": model.heads, "hidden_act": "silu",
        "max_position_embeddings": model.seq_length, "rms_norm_eps": model.rms_norm_eps,
        "rope_theta": model.rotary_base, "tie_word_embeddings": False, "use_sliding_window": False,
    }


def qwen2_audio_encoder_config(encoder: AudioEncoderConfig) -> dict:
    """The Qwen2AudioEncoderConfig of an export."""
    return {
        "model_type": "qwen2_audio_encoder", "num_mel_bins": encoder.n_mels, "d_model": encoder.d_model,
        "encoder_layers": encoder.layers, "encoder_attention_heads": encoder.heads,
        "encoder_ffn_dim": encoder.ffn_dim, "max_source_positions": encoder.max_source_positions,
        "activation_function": "gelu",
    }


def qwen_audio_v1_config(model: ModelConfig, audio_start_id: int) -> dict:
    """The released Qwen-Audio config.json layout (its model code is loaded with trust_remote_code)."""
    encoder = model.audio_encoder
    return {
        "architectures": ["QWenLMHeadModel"], "model_type": "qwen", "vocab_size": model.vocab_size,
        "hidden_size": model.hidden_size, "intermediate_size": 2 * model.ffn_hidden_size,
        "num_hidden_layers": model.layers, "num_attention_heads": model.heads,
        "kv_channels": model.hidden_size // model.heads, "layer_norm_epsilon": model.rms_norm_eps,
        "rotary_emb_base": model.rotary_base, "rotary_pct": 1.0, "seq_length": model.seq_length,
        "max_position_embeddings": model.seq_length, "no_bias": True, "tie_word_embeddings": False,
        "audio": {"n_mels": encoder.n_mels, "n_ctx": encoder.max_source_positions, "n_state": encoder.d_model,
                  "n_head": encoder.heads, "n_layer": encoder.layers, "output_dim": encoder.output_dim,
                  "add_audio_bos_eos_token": True, "audio_start_id": audio_start_id},
    }
