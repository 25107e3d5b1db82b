"""Settings of the training loader, documented where they are defined (YAML configs only override them)."""
from __future__ import annotations

from dataclasses import dataclass, field

from megatron_qwen_audio.audio import SpecAugmentConfig
from megatron_qwen_audio.data.length_batching import BatchBudget
from megatron_qwen_audio.text.special_tokens import ENDOFTEXT, special_tokens


@dataclass
class LoaderConfig:
    seed: int = 1234  # seeds every shuffle of the epoch plan and the SpecAugment masks, mixed with the epoch
    workers: int = 2  # DataLoader worker processes per data-parallel rank; also the plan's slots per rank
    # (0 reads in the training process itself, with the same plan as 1 worker)
    max_batch_tokens: int = 16384  # bound on the positions of the `tokens` tensor: batch size x longest sequence,
    # or with pack_sequences the summed sequence lengths
    # Pack each batch's samples into one row (collate's pack): no padding, attention kept inside each sample and RoPE
    # positions restarting at each, so the loss and gradients are those of the padded batch (tests/model checks it)
    pack_sequences: bool = False
    max_batch_frames: int = 36000  # bound on the summed mel frames of a batch's clips (the encoder packs them)
    max_batch_samples: int = 64  # bound on the batch size
    shuffle_buffer: int = 1000  # samples in each slot's shuffle buffer (like webdataset.shuffle's bufsize)
    batching_pool: int = 1000  # samples sorted by length together, so the batches cut from them are dense
    # fills `tokens` beyond a sample's end and `labels` wherever they do not count; Qwen pads with <|endoftext|>
    pad_token_id: int = field(default_factory=lambda: special_tokens()[ENDOFTEXT])
    spec_augment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)  # masks drawn per sample on the fly
    prefetch_batches: int = 2  # batches each worker prepares ahead of the training step

    def __post_init__(self) -> None:
        for name in ("max_batch_tokens", "max_batch_frames", "max_batch_samples", "shuffle_buffer", "batching_pool",
                     "prefetch_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"loader config: {name}={getattr(self, name)} must be at least 1")
        if self.workers < 0:
            raise ValueError(f"loader config: workers={self.workers} must be 0 or more")

    def batch_budget(self) -> BatchBudget:
        """The budget batches are cut under (length_batching), packed or padded as `pack_sequences` says."""
        return BatchBudget(self.max_batch_tokens, self.max_batch_frames, self.max_batch_samples,
                           packed=self.pack_sequences)

    @property
    def slots_per_rank(self) -> int:
        """Independent reading streams per rank in the epoch plan: one per worker (one when reading in-process)."""
        return max(self.workers, 1)
