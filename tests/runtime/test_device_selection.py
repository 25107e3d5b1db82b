"""`select_device` sees the real machine and never falls back to CPU behind the user's back."""
import pytest
import torch

from megatron_qwen_audio.runtime.cpu import select_device


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_auto_picks_cpu_only_without_gpu(no_gpu):
    assert select_device("auto") == "cpu"
    assert select_device("cpu") == "cpu"


def test_auto_picks_cuda_when_a_gpu_exists(gpu):
    assert select_device("auto") == "cuda"
    assert select_device("cuda") == "cuda"


def test_explicit_cpu_is_honoured_on_a_gpu_machine(gpu):
    assert select_device("cpu") == "cpu"


def test_cuda_without_gpu_is_a_one_line_error(no_gpu):
    with pytest.raises(RuntimeError, match=r"device: cuda was requested .* set device: cpu") as raised:
        select_device("cuda")
    assert "\n" not in str(raised.value)


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match=r"device: 'gpu' is not one of cuda, cpu, auto"):
        select_device("gpu")
