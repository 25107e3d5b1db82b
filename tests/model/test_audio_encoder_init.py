"""A freshly built encoder must hear its input: the frames it hands on differ from clip to clip.

With PyTorch's default convolution init the stem shrinks the log-mel so much that the fixed sinusoidal positions
dominate every frame, and two different stretches of speech come out nearly identical (cosine 0.998 frame by frame on
the demo's tiny encoder), which kept a from-scratch encoder from learning anything for hundreds of steps.
"""
from __future__ import annotations

import torch
from audio_encoder_references import pack

from megatron_qwen_audio.model import AudioEncoder, AudioEncoderConfig

CLIP_FRAMES = 400


def frame_cosines(encoder: AudioEncoder, speech_mel) -> float:
    """Mean cosine, position by position, between the encoder frames of two different stretches of real speech."""
    mel = torch.as_tensor(speech_mel)
    first, second = mel[:, :CLIP_FRAMES], mel[:, 1000:1000 + CLIP_FRAMES]
    with torch.no_grad():
        encoded = encoder.encode_frames(*pack([first, second]))
    frames = encoded.hidden.split(encoded.lengths)
    return torch.nn.functional.cosine_similarity(frames[0], frames[1], dim=-1).mean().item()


def test_fresh_encoder_frames_follow_the_content(speech_mel):
    torch.manual_seed(0)
    encoder = AudioEncoder(AudioEncoderConfig.tiny(output_dim=64))
    assert frame_cosines(encoder, speech_mel) < 0.95
    with torch.no_grad():  # the default init, for contrast: the positions drown the content
        for conv in (encoder.conv1, encoder.conv2):
            conv.reset_parameters()
    assert frame_cosines(encoder, speech_mel) > 0.98
