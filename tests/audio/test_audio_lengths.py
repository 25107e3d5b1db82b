"""Lengths through the frontend and encoder, against the released formulas and the torch layers they describe."""
import pytest
import torch

from megatron_qwen_audio.audio import (
    audio_span_length,
    audio_token_count,
    encoder_frame_count,
    log_mel,
    mel_frame_count,
)


def test_thirty_seconds():
    assert mel_frame_count(480_000) == 3000
    assert encoder_frame_count(3000) == 1500
    assert audio_token_count(3000) == 750
    assert audio_span_length(3000) == 752


@pytest.mark.parametrize(
    ("num_samples", "mel", "encoder", "tokens"),
    [
        # mel = n // 160; encoder = (mel - 1) // 2 + 1; tokens = (encoder - 2) // 2 + 1
        (160, 1, 1, 0),
        (480, 3, 2, 1),
        (1_599, 9, 5, 2),
        (16_000, 100, 50, 25),
        (16_161, 101, 51, 25),
        (123_457, 771, 386, 193),
        (479_999, 2999, 1500, 750),
    ],
)
def test_odd_lengths(num_samples, mel, encoder, tokens):
    assert mel_frame_count(num_samples) == mel
    assert encoder_frame_count(mel) == encoder
    assert audio_token_count(mel) == tokens
    assert audio_span_length(mel) == tokens + 2


def test_mel_frames_match_log_mel():
    for num_samples in (160, 319, 16_000, 16_161):
        assert log_mel(torch.zeros(num_samples)).shape == (80, mel_frame_count(num_samples))


def test_encoder_lengths_match_the_layers():
    # The released encoder: conv1 (k3, p1), conv2 (k3, stride 2, p1), then AvgPool1d(2, 2).
    conv1 = torch.nn.Conv1d(1, 1, kernel_size=3, padding=1)
    conv2 = torch.nn.Conv1d(1, 1, kernel_size=3, stride=2, padding=1)
    pool = torch.nn.AvgPool1d(2, 2)
    with torch.no_grad():
        for mel_frames in [3, 4, 5, 7, 100, 101, 771, 2999, 3000]:
            encoded = conv2(conv1(torch.zeros(1, 1, mel_frames)))
            assert encoded.shape[-1] == encoder_frame_count(mel_frames)
            assert pool(encoded).shape[-1] == audio_token_count(mel_frames)
