"""Evaluation of a trained checkpoint on held-out samples (`mqa-eval`): `decoding` greedily decodes each held-out
sample from its Qwen-Audio prompt into a per-sample record (reference, hypothesis, task and language tags), `metrics`
scores those records per task and language (WER / CER for transcription, BLEU for speech translation, accuracy for
language identification) and renders them as a Markdown table, and `cli` ties the two together."""
