"""Variable-length attention (encoder clips, decoder packed rows) on the CPU path, through the same script that checks
the GPU path: output and query/key/value gradients equal fp32 attention with a block-diagonal mask, causal and not."""
import subprocess
import sys
from pathlib import Path

from process_launch import clean_environment

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "check_varlen_gpu.py"


def test_cpu_path_equals_block_diagonal_attention():
    finished = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu"], env=clean_environment(),
                              capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    lines = finished.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["cpu float32 causal", "cpu float32 bidirectional"]
    assert lines[-1].endswith("(tolerance 1e-05): ok")
