"""Useful model FLOPs of a training step: the matrix products over real clip frames and real tokens only.

Padding (clips padded to the longest of a batch, rows to the longest row, or every clip to 30 s as the Hugging Face
path does) is left out, so two implementations that pad differently are credited the same work for the same
samples, and useful FLOP/s compares them fairly.

Counted: every linear layer and convolution (2 FLOPs per multiply-add), and attention's two products (scores and the
weighted sum of values) over each clip's or each sample's own length, in full (S x S, as torch.utils.flop_counter
and the usual MFU formulas count them, not halved for the causal mask). Not counted: norms, activations, softmax,
rotary embeddings, pooling, the embedding lookup, biases. The LM head runs only where a target is: the model
computes logits only there.

Backward, by a module's role in the step. `TRAINED`: 3 forwards (the forward, the input gradients, the weight
gradients). `BACKPROPAGATED`, frozen but a module before it trains: 2 (no weight-gradient products). `FORWARD`,
frozen and nothing before it trains: 1. Two exact exceptions keep the count equal to what autograd runs: attention's
products have no weights, so they cost 3 forwards whenever gradients pass through them; and the encoder's first
convolution never computes an input gradient (the log-mel needs none), so it costs 2 forwards when trained.
"""
from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from megatron_qwen_audio.audio.lengths import audio_token_count, encoder_frame_count
from megatron_qwen_audio.model.audio_encoder import AudioEncoderConfig

__all__ = ["Role", "audio_encoder_flops", "decoder_layer_flops", "module_flops", "output_layer_flops"]

CONV_KERNEL = 3  # both conv stem layers


class Role(Enum):
    """What a module does in a training step, which sets how many forwards its backward costs (module doc)."""

    TRAINED = "trained"
    BACKPROPAGATED = "backpropagated"
    FORWARD = "forward"

    @property
    def weighted_passes(self) -> int:
        return {Role.TRAINED: 3, Role.BACKPROPAGATED: 2, Role.FORWARD: 1}[self]

    @property
    def weightless_passes(self) -> int:
        """Passes of a product without weights (attention): no weight gradient, but input gradients whenever
        gradients flow through it."""
        return 1 if self is Role.FORWARD else 3


def _attention_products(length: int, width: int) -> float:
    """Forward FLOPs of scores (Q K^T) and weighted values (P V) over one sequence, all heads together."""
    return 2 * (2.0 * length * length * width)


def audio_encoder_flops(encoder: AudioEncoderConfig, clip_frames: Sequence[int], role: Role) -> float:
    """The conv stem, the blocks and the projection over each clip's own mel frames."""
    d, total = encoder.d_model, 0.0
    for mel_frames in clip_frames:
        frames = encoder_frame_count(mel_frames)
        conv1 = 2.0 * mel_frames * encoder.n_mels * CONV_KERNEL * d
        conv2 = 2.0 * frames * d * CONV_KERNEL * d
        block_linears = 2.0 * frames * (4 * d * d + 2 * d * encoder.ffn_dim)  # q, k, v, out; fc1, fc2
        projection = 2.0 * audio_token_count(mel_frames) * d * encoder.output_dim
        total += conv1 * (2 if role is Role.TRAINED else 1)
        total += (conv2 + encoder.layers * block_linears + projection) * role.weighted_passes
        total += encoder.layers * _attention_products(frames, d) * role.weightless_passes
    return total


def decoder_layer_flops(hidden: int, ffn_hidden: int, sequence_lengths: Sequence[int], role: Role) -> float:
    """One decoder layer (full multi-head attention, SwiGLU MLP) over each sample's own tokens."""
    total = 0.0
    for length in sequence_lengths:
        linears = 2.0 * length * (4 * hidden * hidden + 3 * hidden * ffn_hidden)  # q, k, v, out; gate, up, down
        total += linears * role.weighted_passes + _attention_products(length, hidden) * role.weightless_passes
    return total


def output_layer_flops(hidden: int, vocab_rows: int, target_tokens: int, role: Role) -> float:
    """The LM head over the target positions (the padded vocabulary's rows are all computed)."""
    return 2.0 * target_tokens * hidden * vocab_rows * role.weighted_passes


def module_flops(encoder: AudioEncoderConfig, hidden: int, ffn_hidden: int, vocab_rows: int, *,
                 clip_frames: Sequence[int], sequence_lengths: Sequence[int], target_tokens: int,
                 decoder_layers: int, roles: dict[str, Role]) -> dict[str, float]:
    """Useful FLOPs of each module named in `roles` ("audio_encoder", "decoder", "output_layer"; a pipeline stage
    names only its own) over one step's samples: every clip's mel frames, every sample's input tokens (its length
    without padding) and the target tokens; `decoder_layers` is how many layers the "decoder" entry covers. A step's
    useful FLOPs are their sum."""
    flops = {}
    if "audio_encoder" in roles:
        flops["audio_encoder"] = audio_encoder_flops(encoder, clip_frames, roles["audio_encoder"])
    if "decoder" in roles:
        flops["decoder"] = decoder_layers * decoder_layer_flops(hidden, ffn_hidden, sequence_lengths, roles["decoder"])
    if "output_layer" in roles:
        flops["output_layer"] = output_layer_flops(hidden, vocab_rows, target_tokens, roles["output_layer"])
    return flops
