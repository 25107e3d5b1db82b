"""log_mel against transformers' WhisperFeatureExtractor, which pads every clip to 30 s as the released code does."""
import numpy as np
import pytest
import soundfile
import torch
from transformers import WhisperFeatureExtractor

from megatron_qwen_audio.audio import load_audio, log_mel

TOLERANCE = 1e-4  # max abs difference to the reference, in normalised log-mel units
SILENCE_VALUE = (np.log10(1e-10) + 4.0) / 4.0  # -1.5: the clamp floor after Whisper's normalisation


@pytest.fixture(scope="module")
def whisper_reference():
    extractor = WhisperFeatureExtractor(feature_size=80)

    def reference(waveform: np.ndarray) -> np.ndarray:
        features = extractor(waveform, sampling_rate=16000, return_tensors="np").input_features[0]
        assert features.shape == (80, 3000)
        return features[:, : len(waveform) // 160]

    return reference


@pytest.fixture(scope="module")
def speech(real_speech_paths) -> list[np.ndarray]:
    return [load_audio(path) for path in real_speech_paths]


def assert_matches(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.dtype == np.float32
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE)


def test_real_speech_matches_whisper(speech, whisper_reference):
    assert len({len(clip) for clip in speech}) >= 4, "the fixture should give clips of several lengths"
    for clip in speech:
        assert_matches(log_mel(clip), whisper_reference(clip))


@pytest.mark.parametrize(
    "num_samples",
    [
        480_000,  # exactly 30 s: the last kept frames see torch.stft's reflect padding, as in the reference
        479_750,  # the tail padding is cut at 30 s
        479_400,  # the tail padding reaches exactly 30 s
        123_457,  # not a multiple of the 160-sample hop
    ],
)
def test_long_and_odd_lengths_match_whisper(speech, whisper_reference, num_samples):
    clip = np.resize(np.concatenate(speech), num_samples)  # repeats the speech if it is shorter
    assert len(clip) == num_samples
    ours = log_mel(clip)
    assert ours.shape == (80, num_samples // 160)
    assert_matches(ours, whisper_reference(clip))


def test_clip_cut_mid_speech_matches_whisper(speech, whisper_reference):
    # Cut at a hop boundary in loud speech: the last kept frame reaches 40 samples past the end, where
    # the reference sees its zero padding (an STFT of the unpadded clip would see reflected speech there).
    clip = speech[-1]
    frame_energy = np.square(clip[: len(clip) // 160 * 160]).reshape(-1, 160).sum(axis=1)
    cut = 160 * (int(np.argmax(frame_energy)) + 1)  # the clip ends with its loudest hop
    assert_matches(log_mel(clip[:cut]), whisper_reference(clip[:cut]))


def test_maximum_comes_from_frames_beyond_the_kept_ones(speech, whisper_reference):
    # A loud burst in the samples after the last kept frame's window: it sets the per-clip maximum (and so the
    # clamp and every kept value) without appearing in any kept frame.
    kept_frames = 100
    clip = 0.01 * speech[0][: kept_frames * 160 + 150]
    clip[kept_frames * 160 + 50 :] = 0.9
    reference = whisper_reference(clip)
    max_over_kept_frames_only = whisper_reference(clip[: kept_frames * 160])
    assert np.abs(reference - max_over_kept_frames_only).max() > 0.1, "the burst must change the reference"
    assert_matches(log_mel(clip), reference)


def test_silent_clip_matches_whisper(whisper_reference):
    clip = np.zeros(12_345, dtype=np.float32)
    ours = log_mel(clip)
    assert_matches(ours, whisper_reference(clip))
    assert np.all(ours == np.float32(SILENCE_VALUE))


def test_numpy_torch_and_float64_inputs_agree(speech):
    clip = speech[1]
    from_numpy = log_mel(clip)
    np.testing.assert_array_equal(log_mel(torch.from_numpy(clip)), from_numpy)
    np.testing.assert_allclose(log_mel(clip.astype(np.float64)), from_numpy, rtol=0, atol=TOLERANCE)


def test_float16_output_is_the_float32_output_rounded(speech):
    np.testing.assert_array_equal(log_mel(speech[0], dtype=torch.float16), log_mel(speech[0]).astype(np.float16))


def test_input_is_not_modified(speech):
    clip = speech[2].copy()
    log_mel(clip)
    np.testing.assert_array_equal(clip, speech[2])


@pytest.mark.parametrize(
    ("waveform", "message"),
    [
        (np.zeros(0, dtype=np.float32), "no mel frames"),
        (np.zeros(159, dtype=np.float32), "no mel frames"),
        (np.zeros(480_001, dtype=np.float32), "30 s"),
        (np.zeros((2, 16_000), dtype=np.float32), "1-D mono"),
    ],
)
def test_rejects_unusable_clips(waveform, message):
    with pytest.raises(ValueError, match=message):
        log_mel(waveform)


def band_limited_signal(sample_rate: int, seconds: float = 2.0) -> np.ndarray:
    """Amplitude-modulated tones below 5.5 kHz with 50 ms raised-cosine fades: one continuous-time signal, sampled
    at any rate, so every rate holds the same content below 8 kHz."""
    t = np.arange(round(sample_rate * seconds)) / sample_rate
    signal = np.zeros_like(t)
    for frequency, modulation, phase in [(220, 1.0, 0.1), (700, 2.5, 1.0), (1500, 1.5, 2.0), (3100, 3.0, 0.5),
                                         (5200, 4.0, 2.5)]:
        signal += 0.1 * (1 + 0.5 * np.sin(2 * np.pi * modulation * t)) * np.sin(2 * np.pi * frequency * t + phase)
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.05)
    return signal * (0.5 - 0.5 * np.cos(np.pi * fade))


@pytest.mark.parametrize(
    ("sample_rate", "file_format", "subtype"),
    [(16_000, "FLAC", "PCM_24"), (44_100, "FLAC", "PCM_24"), (48_000, "WAV", "FLOAT")],
)
def test_source_rate_does_not_change_features(tmp_path, sample_rate, file_format, subtype):
    expected = log_mel(band_limited_signal(16_000))
    path = tmp_path / f"tones_{sample_rate}.{file_format.lower()}"
    soundfile.write(path, band_limited_signal(sample_rate), sample_rate, format=file_format, subtype=subtype)
    ours = log_mel(load_audio(path))
    assert ours.shape == expected.shape
    above_floor = expected > expected.max() - 2.0  # cells not clamped to (max - 8) / 4
    assert above_floor.mean() > 0.5
    np.testing.assert_allclose(ours[above_floor], expected[above_floor], rtol=0, atol=1e-2)
