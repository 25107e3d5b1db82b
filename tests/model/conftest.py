"""Fixtures of the encoder tests: real speech as the loader would hand it to the encoder."""
from __future__ import annotations

import numpy as np
import pytest

from megatron_qwen_audio.audio import load_audio, log_mel


@pytest.fixture(scope="session")
def speech_mel(real_speech_paths) -> np.ndarray:
    """Whisper log-mel [80, T] of several real English prompts joined end to end (float16-rounded, as stored)."""
    waveform = np.concatenate([load_audio(path) for path in real_speech_paths])
    return log_mel(waveform[: 30 * 16000]).astype(np.float16).astype(np.float32)
