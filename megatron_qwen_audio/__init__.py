"""Megatron-Qwen-Audio: Qwen-Audio style training on megatron-core."""
