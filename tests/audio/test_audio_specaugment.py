"""SpecAugment: reproducible per-sample masks, width limits, fill policy, and no mutation of the input."""
import numpy as np
import pytest
import torch

from megatron_qwen_audio.audio import SpecAugmentConfig, augment_seed, spec_augment

CONFIG = SpecAugmentConfig()


def random_mel(num_frames: int, seed: int = 0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.5, (80, num_frames)).astype(dtype)


def runs(flags: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def masked_rows_and_columns(mel: np.ndarray, augmented: np.ndarray, fill: float):
    """Rows and columns that hold only the fill value; every changed cell must lie in one of them."""
    filled = augmented == np.float32(fill)
    rows, columns = filled.all(axis=1), filled.all(axis=0)
    changed = augmented != mel
    assert not (changed & ~rows[:, None] & ~columns[None, :]).any(), "a cell changed outside a full mask band"
    return rows, columns


def test_augment_seed_is_a_stable_hash():
    # Pinned values: Python's hash() is salted per process and would differ on every run (and on every rank).
    assert augment_seed(1234, 0, "line-000000001") == 10728600519428045588
    assert augment_seed(1234, 1, "line-000000001") == 12976869576593629828


def test_same_seed_same_masks_and_different_keys_different_masks():
    mel = random_mel(600)
    seeds = [augment_seed(7, 0, f"line-{line:09d}") for line in range(1, 51)]
    assert len(set(seeds)) == len(seeds)
    outputs = [spec_augment(mel, CONFIG, seed) for seed in seeds]
    np.testing.assert_array_equal(spec_augment(mel, CONFIG, seeds[0]), outputs[0])
    distinct = {output.tobytes() for output in outputs}
    assert len(distinct) == len(outputs)
    assert augment_seed(7, 1, "line-000000001") != seeds[0], "a new epoch must redraw the masks"


@pytest.mark.parametrize("fill", ["mean", "floor"])
def test_masks_respect_width_limits_and_fill(fill):
    config = SpecAugmentConfig(fill=fill)
    num_frames = 400  # time masks capped at min(100, 0.2 * 400 / 2) = 40 frames each
    mel = random_mel(num_frames)
    expected_fill = float(mel.astype(np.float64).mean()) if fill == "mean" else float(mel.min())
    masked_anything = 0
    for seed in range(200):
        augmented = spec_augment(mel, config, seed)
        rows, columns = masked_rows_and_columns(mel, augmented, expected_fill)
        row_runs, column_runs = runs(rows), runs(columns)
        # Overlapping masks merge into one run no wider than their sum.
        assert len(row_runs) <= 2 and sum(row_runs) <= 2 * 27
        assert len(column_runs) <= 2 and sum(column_runs) <= 2 * 40
        masked_anything += bool(row_runs) and bool(column_runs)
    assert masked_anything > 150, "most draws should mask both frequencies and time"


def test_width_limit_is_reached():
    # The largest drawn mask over many seeds gets close to the configured maximum: the limits are not undershot.
    mel = random_mel(3000)  # 30 s: time masks capped by max_time_width = 100
    widest_rows = widest_columns = 0
    for seed in range(100):
        rows, columns = masked_rows_and_columns(mel, spec_augment(mel, CONFIG, seed), mel.mean(dtype=np.float64))
        widest_rows = max([widest_rows, *runs(rows)])
        widest_columns = max([widest_columns, *runs(columns)])
    assert 20 <= widest_rows <= 2 * 27
    assert 80 <= widest_columns <= 2 * 100


def test_input_is_never_modified():
    mel = random_mel(300)
    original = mel.copy()
    spec_augment(mel, CONFIG, 3)
    np.testing.assert_array_equal(mel, original)
    tensor = torch.from_numpy(original.copy())
    spec_augment(tensor, CONFIG, 3)
    np.testing.assert_array_equal(tensor.numpy(), original)


def test_disabled_returns_an_unmasked_copy():
    mel = random_mel(300)
    output = spec_augment(mel, SpecAugmentConfig(enabled=False), 3)
    assert output is not mel
    np.testing.assert_array_equal(output, mel)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_torch_and_numpy_agree(dtype):
    mel = random_mel(500, dtype=dtype)
    from_numpy = spec_augment(mel, CONFIG, 11)
    from_torch = spec_augment(torch.from_numpy(mel), CONFIG, 11)
    assert isinstance(from_torch, torch.Tensor) and from_torch.dtype == torch.from_numpy(mel).dtype
    assert not np.array_equal(from_numpy, mel)
    np.testing.assert_array_equal(from_torch.numpy(), from_numpy)


def test_short_clip_keeps_most_frames():
    mel = random_mel(20)  # 0.2 s
    for seed in range(100):
        _, columns = masked_rows_and_columns(mel, spec_augment(mel, CONFIG, seed), mel.mean(dtype=np.float64))
        assert columns.sum() <= 0.2 * 20


def test_rejects_bad_config_and_shape():
    with pytest.raises(ValueError, match="max_time_fraction"):
        SpecAugmentConfig(max_time_fraction=1.5)
    with pytest.raises(ValueError, match="fill"):
        SpecAugmentConfig(fill="zero")
    with pytest.raises(ValueError, match=r"\[mel bins, frames\]"):
        spec_augment(np.zeros(80, np.float32), CONFIG, 0)
