"""Sequence lengths through the audio encoder, as the released Qwen-Audio code computes them.

The shard builder needs them to size the `<audio>`..`</audio>` span in the token sequence before any model exists,
and the model needs the same numbers to place encoder frames, so both read them from here.
"""

HOP_LENGTH = 160
SAMPLE_RATE = 16000
MAX_SECONDS = 30
MAX_MEL_FRAMES = MAX_SECONDS * SAMPLE_RATE // HOP_LENGTH  # 3000


def mel_frame_count(num_samples: int) -> int:
    """Mel frames kept for a 16 kHz clip of `num_samples` samples (the released code keeps len // 160)."""
    return num_samples // HOP_LENGTH


def encoder_frame_count(mel_frames: int) -> int:
    """Frames after the stride-2 conv stem: (T - 1) // 2 + 1 (3000 -> 1500)."""
    return (mel_frames - 1) // 2 + 1


def audio_token_count(mel_frames: int) -> int:
    """Audio embeddings the adapter emits after AvgPool1d(2, 2): (L - 2) // 2 + 1 (3000 mel frames -> 750)."""
    return (encoder_frame_count(mel_frames) - 2) // 2 + 1


def audio_span_length(mel_frames: int) -> int:
    """Token positions of one clip in the text: `<audio>` + one pad per audio embedding + `</audio>`."""
    return audio_token_count(mel_frames) + 2
