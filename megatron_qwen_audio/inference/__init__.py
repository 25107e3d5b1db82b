"""Decoding with a trained model: greedy decoding of the Qwen-Audio prompt formats (inference/greedy.py)."""
