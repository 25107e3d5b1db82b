"""Tiny source checkpoints in every layout `mqa-convert import` reads, built with transformers in the test (no
downloads), and the batches the converted models are compared on. No megatron import: the torchrun worker uses it.

Every tensor is random (norm weights near 1), so a swapped, transposed or mis-split tensor changes the logits.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from megatron_qwen_audio.audio.lengths import audio_span_length
from megatron_qwen_audio.convert.encoder_rules import encoder_tensor_names
from megatron_qwen_audio.model.audio_encoder import AudioEncoderConfig
from megatron_qwen_audio.model.audio_encoder_keys import hf_whisper_encoder_key
from megatron_qwen_audio.text.special_tokens import padded_vocab_size, special_tokens

SEED = 4321
QWEN_VOCAB = 1000  # fewer rows than Qwen-Audio's table: the import adds 154,947 initialised rows
# 10 heads: layouts at TP=2 and at TP=5, whose vocabulary padding differs from TP=1's (for `reshard`)
HIDDEN, HEADS, FFN, LAYERS = 80, 10, 100, 4
AUDIO_FRAMES = 120  # even: the encoder stem reads no frame past the clip (see the encoder docstring)
TEXT_TOKENS_SHAPE = (2, 24)


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            is_norm = name.endswith(("norm.weight", "layernorm.weight", "layer_norm.weight", "_ln.weight"))
            parameter.copy_(1.0 + 0.1 * noise if is_norm else 0.1 * noise)
    return model.eval()


def qwen2_text_config(vocab: int):
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
                       num_attention_heads=HEADS, num_key_value_heads=HEADS, rms_norm_eps=1e-5, rope_theta=10000.0,
                       tie_word_embeddings=False, max_position_embeddings=256)


def whisper_config():
    from transformers import WhisperConfig

    return WhisperConfig(num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=2,
                         encoder_ffn_dim=128, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64,
                         max_source_positions=1500, vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                         decoder_start_token_id=1)


def save_qwen2(root: Path):
    from transformers import Qwen2ForCausalLM

    model = randomize(Qwen2ForCausalLM(qwen2_text_config(QWEN_VOCAB)), SEED)
    model.save_pretrained(root / "qwen2")
    return model


def save_qwen_v1(root: Path, qwen2) -> None:
    """The Qwen2 model in Qwen-7B's own layout: fused c_attn = [q; k; v], **w2 = gate, w1 = up**."""
    from safetensors.torch import save_file

    state = qwen2.state_dict()
    v1 = {"transformer.wte.weight": state["model.embed_tokens.weight"],
          "transformer.ln_f.weight": state["model.norm.weight"], "lm_head.weight": state["lm_head.weight"]}
    for layer in range(LAYERS):
        hf, ours = f"model.layers.{layer}.", f"transformer.h.{layer}."
        for tensor in ("weight", "bias"):
            v1[ours + f"attn.c_attn.{tensor}"] = torch.cat(
                [state[hf + f"self_attn.{part}_proj.{tensor}"] for part in "qkv"])
        v1.update({ours + "ln_1.weight": state[hf + "input_layernorm.weight"],
                   ours + "attn.c_proj.weight": state[hf + "self_attn.o_proj.weight"],
                   ours + "ln_2.weight": state[hf + "post_attention_layernorm.weight"],
                   ours + "mlp.w2.weight": state[hf + "mlp.gate_proj.weight"],
                   ours + "mlp.w1.weight": state[hf + "mlp.up_proj.weight"],
                   ours + "mlp.c_proj.weight": state[hf + "mlp.down_proj.weight"]})
    folder = root / "qwen_v1"
    folder.mkdir()
    save_file({name: tensor.contiguous() for name, tensor in v1.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "model_type": "qwen", "vocab_size": QWEN_VOCAB, "hidden_size": HIDDEN, "intermediate_size": 2 * FFN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "layer_norm_epsilon": 1e-5,
        "rotary_emb_base": 10000, "seq_length": 256}))


def save_whisper(root: Path):
    """A Hugging Face WhisperModel directory and the same encoder as an openai-whisper `.pt` file."""
    from transformers import WhisperModel

    model = randomize(WhisperModel(whisper_config()), SEED + 1)
    model.save_pretrained(root / "whisper")
    encoder = model.encoder.state_dict()
    config = whisper_config()
    openai_names = [name for name in _our_encoder_names() if not name.startswith(("proj.", "audio_bos_eos_token."))]
    torch.save({"dims": {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": config.d_model, "n_audio_head": 2,
                         "n_audio_layer": 2, "n_vocab": 100, "n_text_ctx": 448, "n_text_state": 32,
                         "n_text_head": 2, "n_text_layer": 1},
                "model_state_dict": {f"encoder.{name}": encoder[hf_whisper_encoder_key(name)].clone()
                                     for name in openai_names}}, root / "whisper_openai.pt")
    return model


def _our_encoder_names() -> list[str]:
    config = whisper_config()
    return encoder_tensor_names(AudioEncoderConfig(d_model=config.d_model, layers=2, heads=2, ffn_dim=128,
                                                   output_dim=HIDDEN))


def qwen2_audio_model():
    """A tiny Qwen2AudioForConditionalGeneration with the Qwen-Audio vocabulary and audio pad token."""
    from transformers import Qwen2AudioConfig, Qwen2AudioEncoderConfig, Qwen2AudioForConditionalGeneration

    audio = Qwen2AudioEncoderConfig(num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=2,
                                    encoder_ffn_dim=128, max_source_positions=1500)
    config = Qwen2AudioConfig(audio_config=audio, text_config=qwen2_text_config(padded_vocab_size()).to_dict(),
                              audio_token_index=special_tokens()["[[[AUDIO:modality]]]"])
    return randomize(Qwen2AudioForConditionalGeneration(config), SEED + 2)


def text_tokens() -> torch.Tensor:
    return torch.randint(0, QWEN_VOCAB, TEXT_TOKENS_SHAPE, generator=torch.Generator().manual_seed(SEED + 3))


def audio_batch() -> dict[str, torch.Tensor]:
    """One row: text, an audio span of an AUDIO_FRAMES-frame clip, more text (QwenAudioModel.forward arguments)."""
    ids = special_tokens()
    span = audio_span_length(AUDIO_FRAMES)
    generator = torch.Generator().manual_seed(SEED + 4)
    before, after = torch.randint(0, QWEN_VOCAB, (5,), generator=generator), torch.randint(0, QWEN_VOCAB, (7,),
                                                                                          generator=generator)
    audio = torch.tensor([ids["<audio>"]] + [ids["[[[AUDIO:modality]]]"]] * (span - 2) + [ids["</audio>"]])
    return {"tokens": torch.cat([before, audio, after]).unsqueeze(0),
            "mel": torch.randn(80, AUDIO_FRAMES, generator=generator),
            "mel_lengths": torch.tensor([AUDIO_FRAMES]),
            "audio_spans": torch.tensor([[0, 5, 5 + span]])}


def hf_audio_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same batch as Qwen2-Audio takes it: features zero-padded to 3000 frames with their mask."""
    features = torch.zeros(1, 80, 3000)
    features[0, :, :AUDIO_FRAMES] = batch["mel"]
    mask = torch.zeros(1, 3000, dtype=torch.long)
    mask[0, :AUDIO_FRAMES] = 1
    return {"input_ids": batch["tokens"], "attention_mask": torch.ones_like(batch["tokens"]),
            "input_features": features, "feature_attention_mask": mask}
