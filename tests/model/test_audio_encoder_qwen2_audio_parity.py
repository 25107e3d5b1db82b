"""The adapter path (pool -> ln_post -> proj) equals transformers' Qwen2-Audio audio tower and projector.

Qwen2-Audio pads every clip to 3000 frames and masks the rest with `feature_attention_mask`; it pools and normalises
in the same order as Qwen-Audio v1 (blocks -> AvgPool1d(2, 2) -> layer_norm -> projection). What is not comparable:
its audio bos/eos are text tokens of the LM vocabulary (ours are the v1 `audio_bos_eos_token` rows, checked here for
place only), and its stem reads whatever the 3000-frame input holds past a clip's end, so the reference input is
zero-padded and the short clip has an even frame count, where the stem reads no frame past the clip's end.
"""
from __future__ import annotations

import torch
from audio_encoder_references import hf_qwen2_audio_tower, pack, random_encoder
from transformers.masking_utils import create_bidirectional_mask

from megatron_qwen_audio.audio import MAX_MEL_FRAMES, audio_token_count
from megatron_qwen_audio.model import AudioEncoderConfig

CONFIG = AudioEncoderConfig.tiny(d_model=32, layers=2, heads=2, output_dim=48, max_source_positions=1500)


def qwen2_audio_vectors(encoder, clips: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each clip's projected audio vectors as Qwen2AudioModel.forward computes them from a padded batch."""
    tower, projector = hf_qwen2_audio_tower(encoder)
    features = torch.zeros(len(clips), CONFIG.n_mels, MAX_MEL_FRAMES)
    feature_attention_mask = torch.zeros(len(clips), MAX_MEL_FRAMES, dtype=torch.long)
    for row, clip in enumerate(clips):
        features[row, :, : clip.shape[1]] = clip
        feature_attention_mask[row, : clip.shape[1]] = 1
    # As in Qwen2AudioModel.forward: frame lengths from the feature mask, then a bidirectional key mask over 1500.
    frame_lengths, vector_counts = tower._get_feat_extract_output_lengths(feature_attention_mask.sum(-1))
    frame_mask = (torch.arange(CONFIG.max_source_positions)[None, :] < frame_lengths[:, None]).long()
    attention_mask = create_bidirectional_mask(
        config=tower.config, inputs_embeds=torch.zeros(len(clips), CONFIG.max_source_positions, 1),
        attention_mask=frame_mask)
    vectors = projector(tower(features, attention_mask=attention_mask).last_hidden_state)
    return [row[:count] for row, count in zip(vectors, vector_counts.tolist(), strict=True)]


def test_pooled_projected_output_matches_qwen2_audio(speech_mel):
    encoder = random_encoder(CONFIG, seed=1).eval()
    full = torch.as_tensor(speech_mel[:, :MAX_MEL_FRAMES])
    assert full.shape[1] == MAX_MEL_FRAMES, "the speech fixture should cover 30 s"
    short = full[:, 1000:1826]
    with torch.no_grad():
        ours = encoder(*pack([full, short]))
        references = qwen2_audio_vectors(encoder, [full, short])
    assert ours.span_lengths.tolist() == [752, 208]  # 3000 -> 1500 -> 750 (+2); 826 -> 413 -> 206 (+2)
    spans = ours.embeddings.split(ours.span_lengths.tolist())
    bos, eos = encoder.audio_bos_eos_token.weight
    for span, reference, clip in zip(spans, references, [full, short], strict=True):
        assert len(reference) == audio_token_count(clip.shape[1])
        torch.testing.assert_close(span[1:-1], reference, rtol=0, atol=1e-5)
        torch.testing.assert_close(span[0], bos, rtol=0, atol=0)
        torch.testing.assert_close(span[-1], eos, rtol=0, atol=0)
