"""Shapes, weights and batches shared by the combined-model tests and their per-rank worker (no megatron import).

The global batch is four micro-batches, chosen for the cases multimodal megatron models are known to break on:
  A: 2 rows, 3 clips of different lengths (2 in one row), the other row text-only  (3 clips over 2 TP ranks)
  B: 2 rows, 1 clip, a text-only row                                                (fewer clips than TP ranks)
  C, D: text only                                                                   (no clips at all)
Each micro-batch has its own length (the pipeline exchanges shapes). With data parallelism 2, one rank gets A and B,
the other C and D: a whole step without audio while its peer trains the encoder. `packed_micro_batches` is the same
global batch with each micro-batch's rows packed into one row (collate's pack layout).
"""
from __future__ import annotations

import torch

from megatron_qwen_audio.audio.lengths import audio_span_length
from megatron_qwen_audio.audio.specaugment import SpecAugmentConfig, augment_seed, spec_augment
from megatron_qwen_audio.convert.decoder_rules import VocabRows, qwen2_decoder_rules
from megatron_qwen_audio.convert.tensor_files import InMemoryTensors
from megatron_qwen_audio.convert.tensor_plan import plan_from_rules
from megatron_qwen_audio.model.audio_encoder import AudioEncoder, AudioEncoderConfig
from megatron_qwen_audio.training.config import ModelConfig

SEED = 1234
VOCAB = 100  # padded to 128 rows at TP=1 and 256 at TP=2: TP rank 1 then holds padded rows only
LAYERS = 4
STAGE_LAYERS = {1: None, 2: (1, 3)}  # pipeline size -> decoder layers per stage (uneven at PP=2)
MODEL = ModelConfig(
    layers=LAYERS, hidden_size=64, heads=4, ffn_hidden_size=96, vocab_size=VOCAB, vocab_pad_multiple=128,
    seq_length=128, audio_encoder=AudioEncoderConfig.tiny(d_model=32, layers=2, heads=2, output_dim=64),
)
# (row of each clip, its first token, its mel frames) per micro-batch, and each micro-batch's token length
MICRO_BATCH_CLIPS = (
    ((0, 3, 57), (0, 30, 24), (1, 5, 90)),
    ((1, 4, 40),),
    (),
    (),
)
MICRO_BATCH_LENGTHS = (48, 36, 20, 27)
ROWS = 2
SHORT_ROW_PADDING = 5  # row 1 of every micro-batch ends this many positions early
DECODER_TOKENS_SHAPE = (2, 24)  # the text batch of the Hugging Face parity check


def hf_qwen2_model():
    """A tiny Qwen2ForCausalLM of MODEL's decoder shape with every tensor random (HF zeroes biases at init, which
    would leave the qkv-bias mapping untested); norm weights near 1."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=MODEL.hidden_size, intermediate_size=MODEL.ffn_hidden_size,
        num_hidden_layers=LAYERS, num_attention_heads=MODEL.heads, num_key_value_heads=MODEL.heads,
        rms_norm_eps=MODEL.rms_norm_eps, rope_theta=MODEL.rotary_base, tie_word_embeddings=False,
        max_position_embeddings=MODEL.seq_length, attn_implementation="eager",
    )
    generator = torch.Generator().manual_seed(SEED)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.copy_(1.0 + 0.1 * noise if name.endswith("norm.weight") else 0.1 * noise)
    return model


def full_initial_state(hf_model) -> dict[str, torch.Tensor]:
    """The combined model's full (TP=1, PP=1) tensors: the HF decoder mapped, and a freshly initialised encoder."""
    rules = qwen2_decoder_rules(LAYERS, MODEL.heads, MODEL.heads, VocabRows(vocab=VOCAB, padded=VOCAB, seed=0))
    state = {name: derived.build() for name, derived in plan_from_rules(InMemoryTensors(hf_model.state_dict()),
                                                                          rules).items()}
    torch.manual_seed(SEED + 1)
    encoder = AudioEncoder(MODEL.audio_encoder)
    state.update({f"audio_encoder.{name}": tensor for name, tensor in encoder.state_dict().items()
                  if name != "positional_embedding"})
    return {name: tensor.detach().clone() for name, tensor in state.items()}


def decoder_tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, DECODER_TOKENS_SHAPE, generator=torch.Generator().manual_seed(SEED + 2))


def _augmented_clips(frames: list[int], generator: torch.Generator, batch_index: int) -> torch.Tensor:
    """Random log-mel clips with the loader's SpecAugment masks (seeded per clip, so every rank draws the same),
    packed [n_mels, sum T] in float16 as the loader stores them."""
    clips = [spec_augment(torch.randn(MODEL.audio_encoder.n_mels, length, generator=generator), SpecAugmentConfig(),
                          augment_seed(SEED, 0, f"{batch_index}/{clip}")) for clip, length in enumerate(frames)]
    return torch.cat(clips, dim=1).half() if clips else torch.zeros(MODEL.audio_encoder.n_mels, 0).half()


def micro_batches() -> list[dict[str, torch.Tensor]]:
    """The global batch as `QwenAudioModel.forward` keyword arguments, micro-batch by micro-batch.

    As `collate` builds them: labels inside audio spans and past a row's end do not count (loss_mask 0), mel is
    float16 [80, sum T] packed in clip order, with SpecAugment on.
    """
    generator = torch.Generator().manual_seed(SEED + 3)
    batches = []
    for clips, length in zip(MICRO_BATCH_CLIPS, MICRO_BATCH_LENGTHS):
        tokens = torch.randint(0, VOCAB, (ROWS, length), generator=generator)
        labels = torch.randint(0, VOCAB, (ROWS, length), generator=generator)
        loss_mask = torch.ones(ROWS, length)
        loss_mask[1, length - SHORT_ROW_PADDING:] = 0  # row 1 is shorter: right padding
        spans = []
        for row, start, frames in clips:
            end = start + audio_span_length(frames)
            loss_mask[row, start:end] = 0
            spans.append((row, start, end))
        frames = [clip[2] for clip in clips]
        batches.append({
            "tokens": tokens,
            "labels": labels,
            "loss_mask": loss_mask,
            "mel": _augmented_clips(frames, generator, batch_index=len(batches)),
            "mel_lengths": torch.tensor(frames, dtype=torch.int64),
            "audio_spans": torch.tensor(spans, dtype=torch.int64).reshape(-1, 3),
        })
    return batches


def packed_micro_batches() -> list[dict[str, torch.Tensor]]:
    """micro_batches() with each micro-batch's two rows back to back in one row, row 1 without its right padding:
    what `collate(..., pack=True)` makes of the same samples (spans shifted, `cu_seqlens` at the row starts)."""
    packed = []
    for batch, length in zip(micro_batches(), MICRO_BATCH_LENGTHS):
        lengths = (length, length - SHORT_ROW_PADDING)
        spans = batch["audio_spans"].clone()
        spans[spans[:, 0] == 1, 1:] += lengths[0]
        spans[:, 0] = 0
        packed.append({
            **{name: torch.cat([batch[name][row, :lengths[row]] for row in range(ROWS)]).unsqueeze(0)
               for name in ("tokens", "labels", "loss_mask")},
            "mel": batch["mel"], "mel_lengths": batch["mel_lengths"], "audio_spans": spans,
            "cu_seqlens": torch.tensor([0, lengths[0], sum(lengths)], dtype=torch.int32),
        })
    return packed
