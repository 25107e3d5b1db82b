"""Whisper log-mel features, value-for-value equal to the released computation but without its 30 s padding.

The released code (openai-whisper, and transformers' WhisperFeatureExtractor) pads every clip with zeros to 30 s,
takes a centred STFT (reflect padding) of the padded clip, and normalises with the maximum over all 3000 frames before
keeping the first len // 160. Computing 30 s for a 5 s clip wastes 5/6 of the work, so here the clip is padded only
far enough that every frame that sees audio is computed exactly as in the 30 s version:

* frames of the 30 s version that see no audio are all-zero, so they give the floor value log10(1e-10) and can never
  exceed the maximum of the others (an all-silent clip is all floor either way), so the maximum over the frames that
  see audio equals the maximum over all 3000;
* the kept frames near the end of the clip see the zero padding that follows it, never the reflect padding of
  torch.stft, exactly as in the 30 s version (the last frames of an STFT of the unpadded clip would differ).
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

from megatron_qwen_audio.audio.lengths import HOP_LENGTH, MAX_MEL_FRAMES, SAMPLE_RATE, mel_frame_count

N_FFT = 400  # 25 ms window
N_MELS = 80
MAX_SAMPLES = MAX_MEL_FRAMES * HOP_LENGTH  # 480000: 30 s, the released padding length
LOG_FLOOR = 1e-10  # mel power clamp before log10
DYNAMIC_RANGE = 8.0  # log10 units kept below the clip's maximum
# Zeros appended to the clip. The end reflect padding (N_FFT // 2) must mirror only zeros (>= 201 samples), and every
# frame whose window reaches into the clip (centre < len + N_FFT // 2) must be computed with the last frame dropped
# (>= 360 samples); 600 leaves a margin.
TAIL_PADDING = 600


@functools.lru_cache(maxsize=1)
def _hann_window() -> torch.Tensor:
    """Periodic Hann window, torch.stft's and Whisper's default."""
    return torch.hann_window(N_FFT, dtype=torch.float32)


@functools.lru_cache(maxsize=1)
def _mel_filters() -> torch.Tensor:
    """[80, 201] slaney mel filter bank, the one WhisperFeatureExtractor (and librosa) builds, as float32."""
    filters = mel_filter_bank(
        num_frequency_bins=1 + N_FFT // 2,
        num_mel_filters=N_MELS,
        min_frequency=0.0,
        max_frequency=SAMPLE_RATE / 2,
        sampling_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(filters.T.astype(np.float32)).contiguous()


def _as_float32_tensor(waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A float32 CPU tensor view of the waveform, copying only when the dtype or device requires it."""
    if isinstance(waveform, torch.Tensor):
        return waveform.detach().to(device="cpu", dtype=torch.float32)
    return torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))


def log_mel(waveform_16k: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Whisper's normalised 80-bin log-mel of a 16 kHz mono clip: float32 [80, len // 160] (or `dtype`, e.g.
    torch.float16 for storage: torch converts several times faster than numpy's astype).

    Equal (to float rounding) to the first len // 160 frames of WhisperFeatureExtractor's 3000-frame output.
    Raises ValueError for clips that are not 1-D, shorter than one hop (no frames), or longer than 30 s.
    """
    samples = _as_float32_tensor(waveform_16k)
    if samples.dim() != 1:
        raise ValueError(f"log_mel expects a 1-D mono waveform, got shape {tuple(samples.shape)}; downmix it first")
    num_samples = samples.shape[0]
    num_frames = mel_frame_count(num_samples)
    if num_frames == 0:
        raise ValueError(
            f"log_mel got {num_samples} samples, fewer than one {HOP_LENGTH}-sample hop, so there are no mel frames; "
            "drop clips shorter than 10 ms"
        )
    if num_samples > MAX_SAMPLES:
        raise ValueError(
            f"log_mel got {num_samples} samples ({num_samples / SAMPLE_RATE:.2f} s), over the {MAX_SAMPLES}-sample "
            "(30 s) limit of the Whisper encoder; split or drop the clip"
        )
    stft = torch.stft(_centred_padded(samples), N_FFT, HOP_LENGTH, window=_hann_window(), center=False,
                      return_complex=True)
    real_imag = torch.view_as_real(stft)
    power = real_imag[..., 0].square().add_(real_imag[..., 1].square())
    # The last STFT frame is dropped as in the released code (3001 -> 3000 frames for 30 s).
    log_spec = torch.matmul(_mel_filters(), power[:, :-1]).clamp_(min=LOG_FLOOR).log10_()
    floor = log_spec.max() - DYNAMIC_RANGE
    kept = torch.maximum(log_spec[:, :num_frames], floor)
    return kept.add_(4.0).div_(4.0).to(dtype).numpy()


def _centred_padded(samples: torch.Tensor) -> torch.Tensor:
    """The clip zero-padded by TAIL_PADDING (capped at 30 s), then reflect-padded by N_FFT // 2 on both sides as
    torch.stft(center=True) would, built in one buffer: one copy of the clip instead of two."""
    half = N_FFT // 2
    num_samples = samples.shape[0]
    length = min(num_samples + TAIL_PADDING, MAX_SAMPLES)
    buffer = torch.zeros(length + 2 * half, dtype=torch.float32)
    clip = buffer[half: half + length]
    clip[:num_samples] = samples
    buffer[:half] = clip[1: half + 1].flip(0)
    buffer[half + length:] = clip[length - half - 1: length - 1].flip(0)  # zeros unless the 30 s cap cut the tail
    return buffer
