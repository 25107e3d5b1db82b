"""Checkpoint interop: import Whisper, Qwen-7B/Qwen2, Qwen-Audio and Qwen2-Audio weights into a training checkpoint,
export checkpoints to Hugging Face, reshard (`mqa-convert`, convert/cli.py).

Reading order: tensor_files (read sources lazily) -> tensor_plan (a conversion as rules and a checked plan) ->
decoder_rules / encoder_rules / model_configs (the formats) -> source_models (what each source kind becomes) ->
megatron_checkpoint (streaming write and region read of megatron-core distributed checkpoints) -> exporting.
"""
