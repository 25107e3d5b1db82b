"""The combined model in one process (TP=1, PP=1), as greedy decoding and evaluation run it."""
from __future__ import annotations

import torch

from megatron_qwen_audio.training.config import ModelConfig, ParallelConfig


def single_process_model(model_config: ModelConfig, device: str):
    """(model, its torch device): `model_config` built at TP=1, PP=1 on `device` ("auto", "cpu" or "cuda"; bf16 on a
    GPU, fp32 on the CPU runtime, the only precision it computes in), freshly initialised, in eval mode."""
    from megatron_qwen_audio.model.decoder_spec import transformer_config
    from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel
    from megatron_qwen_audio.runtime.parallel import initialize_parallel

    layout = initialize_parallel(1, 1, device=device, seed=0)
    parallel = ParallelConfig(device=layout.device, precision="fp32" if layout.device == "cpu" else "bf16")
    model = QwenAudioModel(model_config, transformer_config(model_config, parallel, layout.device))
    torch_device = torch.device("cpu") if layout.device == "cpu" else torch.device("cuda", torch.cuda.current_device())
    return model.eval(), torch_device
