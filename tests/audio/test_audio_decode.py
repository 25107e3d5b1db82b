"""load_audio / probe_audio: formats, downmix, resampling length, and one-line errors that name the file."""
import numpy as np
import pytest
import soundfile
import soxr

from megatron_qwen_audio.audio import AudioDecodeError, AudioInfo, load_audio, probe_audio


def tone(sample_rate: int, seconds: float, frequency: float = 440.0) -> np.ndarray:
    t = np.arange(round(sample_rate * seconds)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * frequency * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def snr_db(reference: np.ndarray, decoded: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((decoded - reference) ** 2)))


def assert_names_file(error: pytest.ExceptionInfo, path) -> None:
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message


def test_stereo_is_downmixed_to_channel_mean(tmp_path):
    left = tone(16_000, 1.0, 440.0)
    right = np.random.default_rng(0).uniform(-0.5, 0.5, left.shape).astype(np.float32)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 16_000, subtype="FLOAT")
    waveform = load_audio(path)
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    np.testing.assert_allclose(waveform, (left + right) / 2, rtol=0, atol=1e-7)


def test_flac_round_trip_is_lossless(tmp_path):
    pcm16_grid = np.round(tone(16_000, 1.5) * 32768) / 32768  # values FLAC PCM_16 stores exactly
    path = tmp_path / "clip.flac"
    soundfile.write(path, pcm16_grid, 16_000, subtype="PCM_16")
    np.testing.assert_array_equal(load_audio(path), pcm16_grid.astype(np.float32))


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_decoded_values_equal_libsndfiles_float_read(tmp_path, real_speech_paths, subtype):
    """16-bit PCM takes a faster int16 path; it must give bit for bit what libsndfile's float read gives."""
    extremes = np.array([-1.0, -0.5, 0.0, 32767 / 32768, 1 / 32768], dtype=np.float32)
    stereo = np.stack([np.concatenate([extremes, tone(16_000, 0.5)]), np.zeros(len(extremes) + 8000)], axis=1)
    synthetic = tmp_path / f"clip_{subtype}.wav"
    soundfile.write(synthetic, stereo, 16_000, subtype=subtype)
    for path in [synthetic, *real_speech_paths[:2]]:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        if rate == 16_000:
            np.testing.assert_array_equal(load_audio(path), data.mean(axis=1, dtype=np.float32))
        else:
            np.testing.assert_array_equal(load_audio(path), soxr.resample(data[:, 0], rate, 16_000, quality="HQ"))


def test_other_rates_are_resampled_to_16k(tmp_path):
    path = tmp_path / "clip_22k.wav"
    soundfile.write(path, tone(22_050, 2.0), 22_050, subtype="FLOAT")
    waveform = load_audio(path)
    assert len(waveform) == 32_000
    # The resampled tone equals the tone sampled at 16 kHz away from the clip edges.
    np.testing.assert_allclose(waveform[1000:-1000], tone(16_000, 2.0)[1000:-1000], rtol=0, atol=1e-3)


def lossy_round_trip(tmp_path, file_format: str, subtype: str, suffix: str) -> None:
    original = tone(16_000, 2.0)
    path = tmp_path / f"clip.{suffix}"
    soundfile.write(path, original, 16_000, format=file_format, subtype=subtype)
    decoded = load_audio(path)
    assert len(decoded) == len(original)
    assert snr_db(original, decoded) > 25.0


def test_ogg_vorbis_round_trip(tmp_path):
    lossy_round_trip(tmp_path, "OGG", "VORBIS", "ogg")


def test_mp3_round_trip(tmp_path):
    try:
        soundfile.write(tmp_path / "probe.mp3", np.zeros(1600, np.float32), 16_000, format="MP3",
                        subtype="MPEG_LAYER_III")
    except (soundfile.LibsndfileError, ValueError) as error:
        pytest.skip(f"this libsndfile ({soundfile.__libsndfile_version__}) cannot write MP3: {error}")
    lossy_round_trip(tmp_path, "MP3", "MPEG_LAYER_III", "mp3")


def test_probe_reads_the_header(tmp_path):
    path = tmp_path / "stereo_44k.flac"
    soundfile.write(path, np.zeros((66_150, 2), np.float32), 44_100)
    info = probe_audio(path)
    assert info == AudioInfo(sample_rate=44_100, frames=66_150, channels=2)
    assert info.seconds == 1.5


def test_missing_file(tmp_path):
    path = tmp_path / "missing.wav"
    for reader in (load_audio, probe_audio):
        with pytest.raises(AudioDecodeError, match="not found") as error:
            reader(path)
        assert_names_file(error, path)


def broken_header(path) -> None:
    """A valid WAV whose format chunk id is overwritten, so the header no longer parses."""
    soundfile.write(path, tone(16_000, 0.5), 16_000)
    data = bytearray(path.read_bytes())
    format_chunk = data.index(b"fmt ")
    data[format_chunk : format_chunk + 4] = b"\xff\x00\xfe\x01"
    path.write_bytes(bytes(data))


def truncated_header(path) -> None:
    soundfile.write(path, tone(16_000, 0.5), 16_000)
    path.write_bytes(path.read_bytes()[:30])


@pytest.mark.parametrize("corrupt", [broken_header, truncated_header])
def test_malformed_header(tmp_path, corrupt):
    path = tmp_path / "malformed.wav"
    corrupt(path)
    for reader in (load_audio, probe_audio):
        with pytest.raises(AudioDecodeError, match="cannot read audio") as error:
            reader(path)
        assert_names_file(error, path)


def test_zero_sample_file(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0, np.float32), 16_000)
    assert probe_audio(path).frames == 0
    with pytest.raises(AudioDecodeError, match="zero samples") as error:
        load_audio(path)
    assert_names_file(error, path)


def test_non_finite_samples(tmp_path):
    samples = tone(16_000, 0.5)
    samples[100] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, samples, 16_000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN or infinite") as error:
        load_audio(path)
    assert_names_file(error, path)


def test_a_segment_reads_that_range_of_the_file(tmp_path):
    wave = tone(8_000, 2.0)
    path = tmp_path / "clip_8k.wav"
    soundfile.write(path, wave, 8_000, subtype="FLOAT")
    segment = load_audio(path, (0.5, 1.25))
    np.testing.assert_array_equal(segment, soxr.resample(wave[4000:10000], 8_000, 16_000, quality="HQ"))
    assert len(load_audio(path, (0.0, 2.0))) == len(load_audio(path))
