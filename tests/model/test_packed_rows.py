"""A packed batch that is not what collate(pack=True) makes is refused with a one-line reason, before any layer runs
(the packed loss and gradients themselves are checked against padded rows in test_qwen_audio_model_layouts.py)."""
import pytest
import torch
from qwen_audio_model_fixtures import MODEL, packed_micro_batches

from megatron_qwen_audio.training.config import ParallelConfig


@pytest.fixture(scope="module")
def model():
    from megatron_qwen_audio.model.decoder_spec import transformer_config
    from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel
    from megatron_qwen_audio.runtime.parallel import ensure_single_process

    ensure_single_process()
    return QwenAudioModel(MODEL, transformer_config(MODEL, ParallelConfig(device="cpu", precision="fp32"), "cpu"))


def test_two_rows_or_boundaries_that_do_not_cover_the_row_are_refused(model):
    batch = packed_micro_batches()[1]
    length = batch["tokens"].shape[1]
    two_rows = {**batch, "tokens": batch["tokens"].expand(2, -1), "labels": batch["labels"].expand(2, -1),
                "loss_mask": batch["loss_mask"].expand(2, -1)}
    with pytest.raises(ValueError, match="a batch of 2 rows: a packed batch is one row"):
        model(**two_rows)
    short = torch.tensor([0, 5, length - 1], dtype=torch.int32)
    with pytest.raises(ValueError, match=f"needs sample starts rising from 0 to {length}"):
        model(**{**batch, "cu_seqlens": short})
