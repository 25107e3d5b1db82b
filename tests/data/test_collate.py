import numpy as np
import pytest
import torch

from megatron_qwen_audio.data.collate import collate
from megatron_qwen_audio.data.sample_decoding import DecodedSample
from megatron_qwen_audio.text.special_tokens import special_tokens

IDS = special_tokens()
A, P, E, EOT = IDS["<audio>"], IDS["[[[AUDIO:modality]]]"], IDS["</audio>"], IDS["<|endoftext|>"]
X = -100


def sample(key, tokens, labels, clip_frames=()):
    mels = [np.full((80, frames), float(i + 1), np.float32) for i, frames in enumerate(clip_frames)]
    return DecodedSample(key, np.array(tokens, np.int32), np.array(labels, np.int32), mels)


def test_collate_shifts_labels_pads_rows_and_points_spans_at_the_audio_tokens():
    # 8 mel frames -> 4 encoder frames -> 2 audio tokens: the span is <audio> P P </audio>.
    with_audio = sample("s/1", [10, A, P, P, E, 11, 12, EOT], [X, X, X, X, X, 11, 12, EOT], clip_frames=[8])
    text_only = sample("s/2", [20, 21, 22], [X, 21, 22])
    batch = collate([with_audio, text_only], pad_token_id=EOT, tasks=["asr", "chat"])
    assert batch.tokens.tolist() == [[10, A, P, P, E, 11, 12], [20, 21, EOT, EOT, EOT, EOT, EOT]]
    assert batch.labels.tolist() == [[EOT, EOT, EOT, EOT, 11, 12, EOT], [21, 22, EOT, EOT, EOT, EOT, EOT]]
    assert batch.loss_mask.tolist() == [[0, 0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0, 0]]
    assert batch.position_ids.tolist() == [list(range(7))] * 2 and batch.cu_seqlens is None
    assert batch.audio_spans.tolist() == [[0, 1, 5]]
    assert batch.mel_lengths.tolist() == [8] and batch.mel.shape == (80, 8)
    assert batch.keys == ["s/1", "s/2"] and batch.tasks == ["asr", "chat"]
    assert (batch.num_samples, batch.num_target_tokens, batch.audio_seconds) == (2, 5, 0.08)
    assert batch.tokens.dtype == batch.labels.dtype == torch.int64 and batch.loss_mask.dtype == torch.float32


def test_packing_puts_the_samples_back_to_back_in_one_row_with_restarting_positions_and_shifted_spans():
    with_audio = sample("s/1", [10, A, P, P, E, 11, 12, EOT], [X, X, X, X, X, 11, 12, EOT], clip_frames=[8])
    text_only = sample("s/2", [20, 21, 22], [X, 21, 22])
    second_clip = sample("s/3", [9, A, P, P, E, 5, EOT], [X] * 5 + [5, EOT], clip_frames=[9])
    padded = collate([with_audio, text_only, second_clip], pad_token_id=EOT, tasks=["asr", "chat", "lid"])
    batch = collate([with_audio, text_only, second_clip], pad_token_id=EOT, tasks=["asr", "chat", "lid"], pack=True)
    assert batch.cu_seqlens.tolist() == [0, 7, 9, 15] and batch.cu_seqlens.dtype == torch.int32
    assert batch.tokens.tolist() == [[10, A, P, P, E, 11, 12, 20, 21, 9, A, P, P, E, 5]]
    # each sample's last input predicts its own last token, never the next sample's first
    assert batch.labels.tolist() == [[EOT, EOT, EOT, EOT, 11, 12, EOT, 21, 22, EOT, EOT, EOT, EOT, 5, EOT]]
    assert batch.loss_mask.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 6, 0, 1, 0, 1, 2, 3, 4, 5]]
    assert batch.audio_spans.tolist() == [[0, 1, 5], [0, 10, 14]]
    assert padded.cu_seqlens is None and padded.audio_spans.tolist() == [[0, 1, 5], [2, 1, 5]]
    for field in ("mel", "mel_lengths"):
        assert torch.equal(getattr(batch, field), getattr(padded, field))
    for field in ("sequence_lengths", "keys", "tasks", "num_samples", "num_target_tokens", "audio_seconds"):
        assert getattr(batch, field) == getattr(padded, field)
    assert batch.sequence_lengths == [7, 2, 6]


def test_clips_are_packed_along_time_in_order_of_appearance():
    # 10 mel frames -> 5 -> 2 audio tokens; 20 -> 10 -> 5 audio tokens (span 7); 9 -> 5 -> 2.
    two_clips = sample("s/1", [A, P, P, E, 7, A, *[P] * 5, E, 8, EOT], [X] * 12 + [8, EOT], clip_frames=[10, 20])
    one_clip = sample("s/2", [9, A, P, P, E, 5, EOT], [X] * 5 + [5, EOT], clip_frames=[9])
    batch = collate([two_clips, one_clip], pad_token_id=EOT, tasks=["asr", "asr"])
    assert batch.audio_spans.tolist() == [[0, 0, 4], [0, 5, 12], [1, 1, 5]]
    assert batch.mel_lengths.tolist() == [10, 20, 9]
    assert batch.mel[0].tolist() == [1.0] * 10 + [2.0] * 20 + [1.0] * 9


def test_a_batch_without_clips_has_empty_audio_fields():
    batch = collate([sample("s/1", [1, 2, 3], [X, 2, 3])], pad_token_id=EOT, tasks=["asr"])
    assert batch.mel.shape == (80, 0) and batch.mel_lengths.shape == (0,) and batch.audio_spans.shape == (0, 3)
    assert batch.audio_seconds == 0.0


def test_a_span_that_disagrees_with_its_clip_length_names_the_sample():
    wrong = sample("s/9", [A, P, E, 5, EOT], [X, X, X, 5, EOT], clip_frames=[8])  # 8 frames need a span of 4
    with pytest.raises(ValueError, match=r"s/9: the audio span at token 0 does not end where 8 mel frames put it"):
        collate([wrong], pad_token_id=EOT, tasks=["asr"])
