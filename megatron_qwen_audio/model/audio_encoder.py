"""The Qwen-Audio audio encoder: Whisper-large-v2 blocks plus the adapter that turns mel clips into decoder inputs.

Data flow (one call encodes every clip of a batch):

    mel [n_mels, sum T] + mel_lengths [num_clips]     packed along time, as the loader yields them
    -> per-clip padding to the longest clip, for the conv stem only (a few percent of the encoder's work)
    -> conv1 (k3, p1) + GELU -> conv2 (k3, s2, p1) + GELU      T -> L = (T - 1) // 2 + 1 frames
    -> + sinusoidal positions[:L] -> the real frames only, end to end: [sum L, d_model]
    -> N pre-LN blocks, attention within each clip (`varlen_attention`: flash attention on a GPU)
    -> mean of each clip's frame pairs -> ln_post -> proj     L -> (L - 2) // 2 + 1 vectors of output_dim
    -> audio_bos_eos_token[0] + vectors + audio_bos_eos_token[1]
    -> packed [sum audio_span_length(T), output_dim]   what the decoder writes over each `<audio>`..`</audio>` span

No padded frame goes through a block: the blocks' cost follows the real audio, never a 30 s window or the longest
clip of the batch. Every clip is encoded exactly as if it were alone: the conv stem sees zeros past the clip's last
mel frame (its own zero padding), attention never crosses clips, and pooling only pairs a clip's own frames (an odd
last frame is dropped, as AvgPool1d(2, 2) drops it). The released Qwen-Audio code instead feeds the stem mel frames
of the 30 s-padded waveform past the clip's end, so its output for a clip depends on the longest clip of its batch;
for a clip with an even frame count encoded alone the two agree. Storing only the real frames (the shard format)
makes batch-independence the reproducible choice.

Parameter names are those of the released Qwen-Audio v1 checkpoint without its `transformer.audio.` prefix (which
are openai-whisper's `encoder.*` names plus the adapter), so loading either is a prefix strip. The mapping to Hugging
Face names (`audio_encoder_keys.py` says it in code):

    ours (= Qwen-Audio v1 `transformer.audio.*`)   HF WhisperEncoder / Qwen2AudioEncoder (`audio_tower.*`)
    conv1, conv2                                   conv1, conv2
    positional_embedding (buffer [1500, d])        embed_positions.weight
    blocks.N.attn.query / key / value / out        layers.N.self_attn.q_proj / k_proj / v_proj / out_proj
    blocks.N.attn_ln                               layers.N.self_attn_layer_norm
    blocks.N.mlp.0 / mlp.2                         layers.N.fc1 / fc2
    blocks.N.mlp_ln                                layers.N.final_layer_norm
    ln_post                                        layer_norm
    proj                                           Qwen2-Audio: multi_modal_projector.linear (Whisper: none)
    audio_bos_eos_token                            none (Qwen2-Audio uses text tokens of the LM vocabulary)

`ln_post` holds the same weights as Whisper's final `layer_norm` (openai-whisper calls it ln_post too), but Whisper
applies it right after the blocks, while Qwen-Audio v1 and HF Qwen2-Audio apply it after the pooling. Layer norm and
averaging do not commute, so an encoder initialised from Whisper-large-v2 starts with ln_post in its Qwen-Audio place.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from megatron_qwen_audio.audio.lengths import audio_span_length, audio_token_count, encoder_frame_count
from megatron_qwen_audio.model.varlen_attention import varlen_attention


@dataclass(frozen=True)
class AudioEncoderConfig:
    """Shape of the encoder and adapter; Whisper-large-v2 with a Qwen-7B-wide projection by default."""

    n_mels: int = 80  # mel bins of the input (Whisper-large-v2 and Qwen-Audio v1: 80)
    d_model: int = 1280  # width of the conv stem, the blocks and the pooled frames
    layers: int = 32  # transformer blocks
    heads: int = 20  # attention heads (head dim d_model / heads = 64)
    ffn_dim: int = 5120  # hidden width of each block's MLP (4 x d_model)
    max_source_positions: int = 1500  # frames after the stride-2 stem for 30 s; longer clips are rejected
    output_dim: int = 4096  # decoder hidden size: width of the projected audio vectors and bos/eos embeddings
    layer_norm_eps: float = 1e-5  # every LayerNorm (Whisper's value)

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ValueError(f"AudioEncoderConfig: d_model {self.d_model} is not a multiple of heads {self.heads}")
        if self.d_model % 2:
            raise ValueError(f"AudioEncoderConfig: d_model {self.d_model} must be even for sinusoidal positions")

    @classmethod
    def whisper_large_v2(cls, output_dim: int = 4096) -> AudioEncoderConfig:
        """The released Qwen-Audio encoder: Whisper-large-v2 (32 x 1280, 20 heads) projected to `output_dim`."""
        return cls(output_dim=output_dim)

    @classmethod
    def tiny(cls, d_model: int = 64, layers: int = 2, heads: int = 4, output_dim: int = 96,
             max_source_positions: int = 1500) -> AudioEncoderConfig:
        """A few-thousand-parameter encoder of the same layout, for CPU tests and smoke runs."""
        return cls(d_model=d_model, layers=layers, heads=heads, ffn_dim=4 * d_model,
                   max_source_positions=max_source_positions, output_dim=output_dim)


@dataclass
class EncodedFrames:
    """Block outputs of a batch of clips, end to end: clip i owns the next `lengths[i]` rows of `hidden`."""

    hidden: torch.Tensor  # [sum L, d_model]
    mel_lengths: list[int]  # T of each clip
    lengths: list[int]  # L = encoder_frame_count(T) of each clip


@dataclass
class EncodedAudio:
    """What the decoder writes over the audio spans: clip i owns the next `span_lengths[i]` rows of `embeddings`."""

    embeddings: torch.Tensor  # [sum span_lengths, output_dim]: bos, audio vectors, eos of each clip, clips in order
    span_lengths: torch.Tensor  # int64 [num_clips], on the CPU: audio_span_length(T) of each clip


@dataclass(frozen=True)
class ClipBoundaries:
    """Where each clip's frames lie in the end-to-end frame rows, in the form `varlen_attention` takes."""

    cu_seqlens: torch.Tensor  # int32 [num_clips + 1] on the frames' device: first row of each clip, then the total
    longest: int  # frames of the longest clip

    @classmethod
    def of(cls, lengths: list[int], device: torch.device) -> ClipBoundaries:
        starts = torch.tensor([0, *lengths], dtype=torch.int64).cumsum(0).to(device=device, dtype=torch.int32)
        return cls(cu_seqlens=starts, longest=max(lengths))


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's fixed positions: sin of `length` positions at channels/2 geometric timescales, then cos of them."""
    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length).view(-1, 1) * inv_timescales.view(1, -1)
    return torch.cat([scaled_time.sin(), scaled_time.cos()], dim=1)


class MultiHeadSelfAttention(nn.Module):
    """Whisper attention: the key has no bias (softmax ignores a per-query constant, so it would be dead weight)."""

    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        self.heads = config.heads
        self.query = nn.Linear(config.d_model, config.d_model)
        self.key = nn.Linear(config.d_model, config.d_model, bias=False)
        self.value = nn.Linear(config.d_model, config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, clips: ClipBoundaries) -> torch.Tensor:
        """x [sum L, d]: the frames of every clip end to end; each frame attends to its own clip's frames only."""
        frames, width = x.shape

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(frames, self.heads, width // self.heads)

        attended = varlen_attention(split_heads(self.query(x)), split_heads(self.key(x)), split_heads(self.value(x)),
                                    clips.cu_seqlens, clips.longest, causal=False)
        return self.out(attended.reshape(frames, width))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: x + attn(attn_ln(x)), then x + mlp(mlp_ln(x)) with a GELU MLP."""

    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        self.attn_ln = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.attn = MultiHeadSelfAttention(config)
        self.mlp_ln = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, config.ffn_dim), nn.GELU(),
                                 nn.Linear(config.ffn_dim, config.d_model))

    def forward(self, x: torch.Tensor, clips: ClipBoundaries) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x), clips)
        return x + self.mlp(self.mlp_ln(x))


class AudioEncoder(nn.Module):
    """Packed log-mel clips -> the vectors of each clip's `<audio>`..`</audio>` span (see the module docstring)."""

    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv1d(config.n_mels, config.d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(config.d_model, config.d_model, kernel_size=3, stride=2, padding=1)
        for conv in (self.conv1, self.conv2):
            # He-normal, not PyTorch's default (variance 1 / (3 fan_in)), which shrinks the log-mel about threefold
            # per convolution: a freshly built encoder then adds the sinusoidal positions (amplitude 1) to frames
            # 30 times weaker, every clip comes out nearly the same (cosine 0.998 between clips, frame by frame),
            # and a from-scratch encoder learns nothing for hundreds of steps. Whisper weights replace these anyway.
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        self.register_buffer("positional_embedding", sinusoids(config.max_source_positions, config.d_model))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(config) for _ in range(config.layers))
        self.ln_post = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.proj = nn.Linear(config.d_model, config.output_dim)
        self.audio_bos_eos_token = nn.Embedding(2, config.output_dim)

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> EncodedAudio:
        """mel [n_mels, sum T] (moved to the weights' device and dtype), mel_lengths [num_clips] (best on the CPU)."""
        return self.adapt(self.encode_frames(mel, mel_lengths))

    def encode_frames(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> EncodedFrames:
        """The conv stem (each clip padded to the longest) and the blocks (real frames only, end to end)."""
        mel_frames = self._checked_lengths(mel, mel_lengths)
        frames = [encoder_frame_count(t) for t in mel_frames]
        if not frames:
            return EncodedFrames(self.positional_embedding.new_zeros(0, self.config.d_model), [], [])
        clips = mel.to(self.conv1.weight.device, self.conv1.weight.dtype).split(mel_frames, dim=1)
        x = pad_sequence([clip.T for clip in clips], batch_first=True).transpose(1, 2)  # [B, n_mels, max T]
        # Zero the stem's frames past each clip's end: conv2 must see there what a lone clip sees (its zero padding).
        x = F.gelu(self.conv1(x)) * self._real(mel_frames, x.shape[-1]).unsqueeze(1)
        x = F.gelu(self.conv2(x)).transpose(1, 2)  # [B, max L, d]
        x = (x + self.positional_embedding[: x.shape[1]].to(x.dtype))[self._real(frames, x.shape[1])]  # [sum L, d]
        boundaries = ClipBoundaries.of(frames, x.device)
        for block in self.blocks:
            x = block(x, boundaries)
        return EncodedFrames(hidden=x, mel_lengths=mel_frames, lengths=frames)

    def adapt(self, frames: EncodedFrames) -> EncodedAudio:
        """Pool pairs of each clip's frames, normalise, project, and frame each clip with the audio bos/eos
        embeddings."""
        token_counts = [audio_token_count(t) for t in frames.mel_lengths]
        width = frames.hidden.shape[-1]
        pooled = [clip[: 2 * count].view(count, 2, width).mean(dim=1)
                  for clip, count in zip(frames.hidden.split(frames.lengths), token_counts)]
        vectors = self.proj(self.ln_post(torch.cat(pooled) if pooled else frames.hidden[:0]))
        bos, eos = self.audio_bos_eos_token.weight.to(vectors.dtype).split(1)
        spans = [piece for clip in vectors.split(token_counts) for piece in (bos, clip, eos)]
        return EncodedAudio(
            embeddings=torch.cat(spans) if spans else vectors,
            span_lengths=torch.tensor([audio_span_length(t) for t in frames.mel_lengths], dtype=torch.int64),
        )

    def _checked_lengths(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> list[int]:
        """The clip lengths as ints, after the checks that turn a malformed batch into a one-line error."""
        if mel.dim() != 2 or mel.shape[0] != self.config.n_mels:
            raise ValueError(f"mel: expected [{self.config.n_mels}, sum T] log-mel frames, got {list(mel.shape)}; "
                             f"the encoder was built for n_mels={self.config.n_mels}")
        lengths = mel_lengths.tolist()
        if sum(lengths) != mel.shape[1]:
            raise ValueError(f"mel_lengths: the clip lengths add up to {sum(lengths)} frames but mel holds "
                             f"{mel.shape[1]}; pass the lengths of the packed clips in order")
        max_frames = 2 * self.config.max_source_positions
        for index, frames in enumerate(lengths):
            if not 1 <= frames <= max_frames:
                raise ValueError(f"mel_lengths[{index}]: {frames} frames is outside 1..{max_frames} "
                                 "(the encoder's positions cover 30 s); drop or trim the clip when building shards")
        return lengths

    def _real(self, lengths: list[int], padded_length: int) -> torch.Tensor:
        """bool [B, padded_length]: True at the first lengths[i] positions of row i."""
        positions = torch.arange(padded_length, device=self.conv1.weight.device)
        return positions < torch.tensor(lengths, dtype=torch.int64, device=positions.device).unsqueeze(1)
