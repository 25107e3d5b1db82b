"""The own-vs-swapped audio losses: the swapped clip is another clip of the same task and language fitted to the
same frame count (so the prompt is unchanged), and the reported losses are the model's teacher-forced target losses
on exactly those inputs; identical clips give no gap."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from megatron_qwen_audio.data.collate import collate
from megatron_qwen_audio.data.sample_decoding import DecodedSample
from megatron_qwen_audio.data.shard_format import SampleEntry
from megatron_qwen_audio.evaluation.audio_dependence import audio_dependence, fitted_clip
from megatron_qwen_audio.text.tags import build_sequence
from megatron_qwen_audio.training.config import MODEL_PRESETS, ParallelConfig
from megatron_qwen_audio.training.train_step import model_inputs

TEXTS = {"en": ["press one", "goodbye now", "thank you"], "fr": ["au revoir", "merci"]}
FRAMES = {"en": [90, 140, 60], "fr": [100, 80]}


def test_fitted_clip_cuts_and_tiles():
    mel = np.arange(10).reshape(2, 5)
    assert fitted_clip(mel, 3).tolist() == [[0, 1, 2], [5, 6, 7]]
    assert fitted_clip(mel, 7).tolist() == [[0, 1, 2, 3, 4, 0, 1], [5, 6, 7, 8, 9, 5, 6]]


@pytest.fixture(scope="module")
def model():
    from megatron_qwen_audio.model.decoder_spec import transformer_config
    from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel
    from megatron_qwen_audio.runtime.parallel import ensure_single_process

    ensure_single_process()
    config = MODEL_PRESETS["tiny"]
    torch.manual_seed(1)
    return QwenAudioModel(config, transformer_config(config, ParallelConfig(device="cpu", precision="fp32"),
                                                     "cpu")).eval()


def _samples(qwen_tokenizer, same_clip: bool) -> list[tuple[SampleEntry, DecodedSample]]:
    generator = np.random.default_rng(0)
    # every frame the same vector: cut or tiled to any length, one clip is the other
    shared = np.repeat(generator.standard_normal((80, 1)), 200, axis=1).astype(np.float16)
    samples = []
    for language, texts in TEXTS.items():
        for text, frames in zip(texts, FRAMES[language]):
            row = {"task": "transcribe", "audio_lang": language, "text_lang": language, "text": text}
            sequence = build_sequence(row, [frames], [frames / 100], qwen_tokenizer)
            mel = shared[:, :frames] if same_clip else generator.standard_normal((80, frames)).astype(np.float16)
            entry = SampleEntry(key=f"{language}-{text}", frames=[frames], tokens=len(sequence.input_ids),
                                task="transcribe", audio_lang=language, text_lang=language)
            samples.append((entry, DecodedSample(entry.key, sequence.input_ids, sequence.labels, [mel])))
    return samples


def _loss(model, sample: DecodedSample, pad_id: int) -> tuple[float, int]:
    batch = collate([sample], pad_id, ["transcribe"])
    with torch.no_grad():
        return float(model(**model_inputs(batch, torch.device("cpu"))).sum()), batch.num_target_tokens


def test_losses_are_the_models_on_own_and_swapped_clips(model, qwen_tokenizer):
    samples = _samples(qwen_tokenizer, same_clip=False)
    (result,) = audio_dependence(model, samples, ["transcribe"], qwen_tokenizer.pad_id, torch.device("cpu"))
    matched = swapped = tokens = 0.0
    for language in TEXTS:
        group = [sample for entry, sample in samples if entry.audio_lang == language]
        for index, sample in enumerate(group):
            partner = group[(index + 1) % len(group)].mels[0]
            frames = sample.mels[0].shape[1]
            fitted = np.concatenate([partner] * 3, axis=1)[:, :frames]
            own_sum, count = _loss(model, sample, qwen_tokenizer.pad_id)
            other_sum, _ = _loss(model, DecodedSample(sample.key, sample.tokens, sample.labels, [fitted]),
                                 qwen_tokenizer.pad_id)
            matched, swapped, tokens = matched + own_sum, swapped + other_sum, tokens + count
    assert result.samples == 5
    assert result.matched_loss == pytest.approx(matched / tokens, rel=1e-6)
    assert result.swapped_loss == pytest.approx(swapped / tokens, rel=1e-6)
    assert result.matched_loss != result.swapped_loss


def test_identical_clips_give_no_gap(model, qwen_tokenizer):
    (result,) = audio_dependence(model, _samples(qwen_tokenizer, same_clip=True), ["transcribe"],
                                 qwen_tokenizer.pad_id, torch.device("cpu"))
    assert result.relative_gap == pytest.approx(0.0, abs=1e-6)
