"""The combined Qwen-Audio model, one pipeline stage of it per rank.

    stage 0:     tokens -> embedding (vocab-parallel)          mel clips -> audio_encoder (this TP rank's share)
                                 \\                                      |  all-gather over the TP group
                                  `---- splice: each <audio>..</audio> span := its clip's encoded rows
    every stage:  -> decoder (this stage's TransformerBlock layers; the last stage ends with the final RMSNorm)
    last stage:   -> output_layer (vocab-parallel LM head) -> vocab-parallel cross-entropy x loss_mask

Top-level modules are `audio_encoder` and `embedding` (first stage only), `decoder`, and `output_layer` (last stage
only), and no others; `training/freeze.py` patterns and checkpoints use these names. The RoPE angles come from
megatron's `RotaryEmbedding`, which holds no parameters or state, shared through `_rotary_embedding` rather than
registered as a fifth module.

Padded vocabulary. The embedding and LM head have `padded_vocab(vocab_size, tp, vocab_pad_multiple)` rows so TP ranks
hold equal aligned slices. The logits of rows past `vocab_size` are set to -inf before the loss and in the returned
logits: they take no probability mass, so the loss and the first `vocab_size` logits are those of an unpadded model
(Hugging Face's, the released checkpoint's) whatever the padded rows hold, and argmax never picks them.

Loss. With labels, the last stage returns per-token losses [B, L] multiplied by loss_mask (zero where a position is
not a target; logits are computed at target positions only, `target_losses`); the training step sums them and
megatron divides by the target tokens of the whole global batch (`calculate_per_token_loss`). Without labels it
returns this TP rank's logits [B, L, padded_vocab / tp].

Encoder gradients and DDP. The encoder is replicated over the TP group and each rank encodes a share of the clips
(`encoder_tensor_parallel`); its gradients must be summed over the TP group once per step: use
`encoder_tensor_parallel.finalize_model_grads` as the config's `finalize_model_grads_func`. megatron's DDP launches a
gradient bucket when all its parameters have gradients, so a micro-batch in which this rank encodes nothing (no clips
at all, or fewer clips than TP ranks) still adds 0 x (sum of every trainable encoder parameter) to the decoder input,
giving each of them a zero gradient; without it the encoder's bucket never completes (the classic multimodal hang).
A frozen encoder (stage 2) runs under `torch.no_grad()` and needs none of this.
"""
from __future__ import annotations

from functools import cache

import torch
from megatron.core import parallel_state, tensor_parallel
from megatron.core.enums import ModelType
from megatron.core.models.common.embeddings.language_model_embedding import LanguageModelEmbedding
from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
from megatron.core.packed_seq_params import PackedSeqParams
from megatron.core.transformer.module import MegatronModule
from megatron.core.transformer.transformer_block import TransformerBlock
from megatron.core.transformer.transformer_config import TransformerConfig

from megatron_qwen_audio.audio.lengths import audio_span_length
from megatron_qwen_audio.model.audio_encoder import AudioEncoder
from megatron_qwen_audio.model.audio_splice import splice_audio
from megatron_qwen_audio.model.decoder_spec import qwen_decoder_layer_spec
from megatron_qwen_audio.model.encoder_tensor_parallel import clip_share, gather_encoded_rows
from megatron_qwen_audio.training.config import ModelConfig, padded_vocab


class QwenAudioModel(MegatronModule):
    """Audio encoder + Qwen decoder as one megatron pipeline stage (see the module docstring)."""

    def __init__(self, model: ModelConfig, config: TransformerConfig, pre_process: bool | None = None,
                 post_process: bool | None = None):
        super().__init__(config=config)
        self.pre_process = parallel_state.is_pipeline_first_stage() if pre_process is None else pre_process
        self.post_process = parallel_state.is_pipeline_last_stage() if post_process is None else post_process
        self.model_type = ModelType.encoder_or_decoder  # megatron's schedules: one stack of stages, as GPTModel
        self.share_embeddings_and_output_weights = False  # read by megatron's finalize_model_grads
        self.vocab_size = model.vocab_size
        self.padded_vocab_size = padded_vocab(model.vocab_size, config.tensor_model_parallel_size,
                                              model.vocab_pad_multiple)
        if self.pre_process:
            # Built first, from the default generator that every rank seeded alike, so the TP replicas start equal.
            # CPU initialisation keeps the default device (the CPU, or meta when a converter describes the model)
            device = None if config.use_cpu_initialization else torch.cuda.current_device()
            self.audio_encoder = AudioEncoder(model.audio_encoder).to(device=device, dtype=config.params_dtype)
            self.embedding = LanguageModelEmbedding(config=config, vocab_size=self.padded_vocab_size,
                                                    max_sequence_length=model.seq_length,
                                                    position_embedding_type="rope")
        self.rotary_base = model.rotary_base
        self.decoder = TransformerBlock(config=config, spec=qwen_decoder_layer_spec(), pre_process=self.pre_process,
                                        post_process=self.post_process)
        if self.post_process:
            self.output_layer = tensor_parallel.ColumnParallelLinear(
                config.hidden_size, self.padded_vocab_size, config=config, init_method=config.init_method,
                bias=False, gather_output=False)
        # megatron's local spec builds its norms (torch.nn.RMSNorm) on the CPU in fp32 whatever the config says;
        # Megatron-LM moves and casts every model after building it (`.cuda()`, Float16Module), and so does this
        self.to(device=None if config.use_cpu_initialization else torch.cuda.current_device(),
                dtype=config.params_dtype)

    @property
    def layer_offset(self) -> int:
        """Full-model index of this stage's first decoder layer (parameter_shards.full_parameter_name uses it)."""
        return self.decoder.layers[0].layer_number - 1

    def set_input_tensor(self, input_tensor: torch.Tensor | list[torch.Tensor]) -> None:
        """The pipeline schedule hands a later stage the previous stage's output here, before forward."""
        tensors = input_tensor if isinstance(input_tensor, list) else [input_tensor]
        assert len(tensors) == 1, "one activation tensor flows between the stages"
        self.decoder.set_input_tensor(tensors[0])

    def forward(self, tokens: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                loss_mask: torch.Tensor | None = None, mel: torch.Tensor | None = None,
                mel_lengths: torch.Tensor | None = None, audio_spans: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
        """One stage's forward; every stage may be given the whole batch and takes what it needs.

        First stage: tokens [B, L] and the clips (mel [n_mels, sum T], mel_lengths [n], audio_spans [n, 3]; n may be
        0 or the three None). Last stage: labels and loss_mask [B, L] -> masked per-token losses [B, L], or without
        labels this TP rank's logits [B, L, padded_vocab / tp]. Other stages return hidden states [L, B, hidden].
        Every stage: `cu_seqlens` (int32 [samples + 1], best on the CPU) when B = 1 row packs several samples
        (collate's pack); attention then stays inside each sample and RoPE positions restart at each sample's start.
        Without it, RoPE positions are 0..L-1 in every row (one sample per row).
        """
        hidden = self.decoder_input(tokens, mel, mel_lengths, audio_spans) if self.pre_process else None
        seq_length, rows = (hidden if hidden is not None else self.decoder.input_tensor).shape[:2]
        packed = None if cu_seqlens is None else self.packed_seq_params(cu_seqlens, seq_length, rows)
        longest = seq_length if packed is None else packed.max_seqlen_q
        hidden = self.decoder(hidden_states=hidden, attention_mask=None, rotary_pos_emb=self.rotary_angles(longest),
                              packed_seq_params=packed)
        if not self.post_process:
            return hidden
        if labels is None:
            return self.vocab_logits(hidden).transpose(0, 1)
        assert loss_mask is not None, "labels need their loss_mask"
        return self.target_losses(hidden, labels, loss_mask)

    def target_losses(self, hidden: torch.Tensor, labels: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
        """Per-token losses [B, L] x loss_mask, with logits computed only where loss_mask is non-zero.

        The LM head is the model's widest matrix (155,947 rows) and most positions of an audio batch are audio span
        or prompt, never targets; projecting only the target positions gives the same losses and gradients at a
        fraction of the head's cost (on the demo's batches about a tenth).
        """
        length, batch, width = hidden.shape
        mask = loss_mask.transpose(0, 1).reshape(-1)  # [L * B], hidden's position order
        positions = mask.nonzero().squeeze(1)
        logits = self.vocab_logits(hidden.reshape(length * batch, 1, width)[positions])
        targets = labels.transpose(0, 1).reshape(-1)[positions].unsqueeze(1)
        selected = tensor_parallel.vocab_parallel_cross_entropy(logits.float(), targets).squeeze(1)
        losses = selected.new_zeros(length * batch).index_put((positions,), selected)
        return losses.reshape(length, batch).transpose(0, 1) * loss_mask

    def packed_seq_params(self, cu_seqlens: torch.Tensor, seq_length: int, rows: int) -> PackedSeqParams:
        """megatron's THD description of one packed row: the attention reads the sample boundaries from it, and
        megatron's RoPE gives each sample the angles of positions 0, 1, ... (angles of the longest sample passed)."""
        boundaries = cu_seqlens.tolist()
        if rows != 1:
            raise ValueError(f"cu_seqlens with a batch of {rows} rows: a packed batch is one row; build it with "
                             "collate(pack=True)")
        if boundaries[0] != 0 or boundaries[-1] != seq_length or sorted(boundaries) != boundaries:
            raise ValueError(f"cu_seqlens {boundaries}: a packed row of {seq_length} positions needs sample starts "
                             f"rising from 0 to {seq_length}; build packed batches with collate(pack=True)")
        longest = max(end - start for start, end in zip(boundaries, boundaries[1:]))
        on_device = cu_seqlens.to(device=next(self.parameters()).device, dtype=torch.int32)
        return PackedSeqParams(qkv_format="thd", cu_seqlens_q=on_device, cu_seqlens_kv=on_device,
                               max_seqlen_q=longest, max_seqlen_kv=longest)

    def rotary_angles(self, seq_length: int) -> torch.Tensor:
        """RoPE angles [L, 1, 1, head_dim] of positions 0..L-1 (rotate-half layout, as Qwen and HF Qwen2)."""
        config = self.config
        return _rotary_embedding(config.kv_channels, self.rotary_base, config.use_cpu_initialization)(seq_length)

    def decoder_input(self, tokens: torch.Tensor, mel: torch.Tensor | None, mel_lengths: torch.Tensor | None,
                      audio_spans: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings [L, B, hidden] with every audio span overwritten by its clip's encoded rows."""
        embeddings = self.embedding(input_ids=tokens, position_ids=None)
        clips = 0 if mel_lengths is None else len(mel_lengths)
        encoder_trains = torch.is_grad_enabled() and any(p.requires_grad for p in self.audio_encoder.parameters())
        tp_size = parallel_state.get_tensor_model_parallel_world_size()
        share = clip_share(clips, parallel_state.get_tensor_model_parallel_rank(), tp_size)
        if encoder_trains and not share:
            embeddings = embeddings + self._zero_touching_encoder()
        if not clips:
            return embeddings
        lengths = mel_lengths.tolist()
        span_lengths = [audio_span_length(frames) for frames in lengths]
        row_counts = [sum(span_lengths[clip] for clip in clip_share(clips, rank, tp_size)) for rank in range(tp_size)]
        if share:
            first_frame = sum(lengths[: share.start])
            frames = mel[:, first_frame: first_frame + sum(lengths[share.start: share.stop])]
            with torch.set_grad_enabled(encoder_trains):
                rows = self.audio_encoder(frames, mel_lengths[share.start: share.stop]).embeddings
        else:
            rows = embeddings.new_zeros(0, embeddings.shape[-1])
        rows = gather_encoded_rows(rows, row_counts, parallel_state.get_tensor_model_parallel_group())
        return splice_audio(embeddings, rows, audio_spans, span_lengths)

    def _zero_touching_encoder(self) -> torch.Tensor:
        """0 x the sum of every trainable encoder parameter: a zero whose backward reaches each of them."""
        return 0.0 * sum(p.sum() for p in self.audio_encoder.parameters() if p.requires_grad)

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """This TP rank's logits [L, B, padded_vocab / tp], -inf on the padded vocabulary rows."""
        logits, _ = self.output_layer(hidden)
        rows = logits.shape[-1]
        first_row = parallel_state.get_tensor_model_parallel_rank() * rows
        padded_from = self.vocab_size - first_row
        if padded_from >= rows:
            return logits
        padded = torch.arange(rows, device=logits.device) >= padded_from
        return logits.masked_fill(padded, float("-inf"))


@cache
def _rotary_embedding(head_dim: int, base: float, on_cpu: bool) -> RotaryEmbedding:
    """One megatron RotaryEmbedding per (head width, base, device kind): it only caches inverse frequencies."""
    return RotaryEmbedding(kv_channels=head_dim, rotary_percent=1.0, rotary_base=base, use_cpu_initialization=on_cpu)
