"""The variable-length attention paths against a dense reference, on the device they run on (issue: GPU throughput).

`model/varlen_attention.py` takes torch's variable-length flash attention on a GPU in bf16 and a per-segment SDPA
loop elsewhere; CPU tests exercise only the loop. This script checks the path of the device it runs on against
plain fp32 attention with a block-diagonal mask (causal for the decoder's packed rows, bidirectional for the
encoder's clips), forward output and the gradients of query, key and value, and prints the largest relative errors.
Segment lengths include 1 and one far longer than the rest, as real batches have.

Run on a GPU before trusting packed training there: `python benchmarks/check_varlen_gpu.py` (seconds); it exits 1
when an error exceeds the dtype's tolerance. `--device cpu` checks the CPU path (the test does).
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from megatron_qwen_audio.model.varlen_attention import varlen_attention

SEGMENT_LENGTHS = (1, 37, 5, 300, 64, 2)
HEADS, HEAD_DIM = 4, 64
TOLERANCE = {torch.bfloat16: 2e-2, torch.float32: 1e-5}  # relative norm error: bf16 has 8 mantissa bits


def dense_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, lengths: tuple[int, ...],
                    causal: bool) -> torch.Tensor:
    """fp32 SDPA over the whole row with a block-diagonal (and causal) mask: [t, heads, d] -> [t, heads, d]."""
    segment = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).to(query.device)
    position = torch.arange(len(segment), device=query.device)
    visible = segment[:, None] == segment[None, :]
    if causal:
        visible &= position[:, None] >= position[None, :]
    q, k, v = (tensor.float().transpose(0, 1) for tensor in (query, key, value))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=visible).transpose(0, 1)


def relative_errors(device: torch.device, dtype: torch.dtype, causal: bool) -> dict[str, float]:
    """||observed - reference|| / ||reference|| of the output and of the query/key/value gradients."""
    generator = torch.Generator().manual_seed(0)
    total = sum(SEGMENT_LENGTHS)
    inputs = [torch.randn(total, HEADS, HEAD_DIM, generator=generator).to(device) for _ in range(3)]
    upstream = torch.randn(total, HEADS, HEAD_DIM, generator=generator).to(device)
    cu_seqlens = torch.tensor([0, *SEGMENT_LENGTHS]).cumsum(0).to(device=device, dtype=torch.int32)
    results = {}
    for name, run in (("reference", lambda q, k, v: dense_reference(q, k, v, SEGMENT_LENGTHS, causal)),
                      ("observed", lambda q, k, v: varlen_attention(q, k, v, cu_seqlens, max(SEGMENT_LENGTHS),
                                                                    causal))):
        leaves = [tensor.to(torch.float32 if name == "reference" else dtype).clone().requires_grad_()
                  for tensor in inputs]
        output = run(*leaves)
        output.backward(upstream.to(output.dtype))
        results[name] = [output.detach().float(), *(leaf.grad.float() for leaf in leaves)]
    return {label: float((observed - reference).norm() / reference.norm())
            for label, observed, reference in zip(("output", "query grad", "key grad", "value grad"),
                                                  results["observed"], results["reference"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    worst = 0.0
    for causal in (True, False):
        errors = relative_errors(device, dtype, causal)
        worst = max(worst, *errors.values())
        described = ", ".join(f"{label} {error:.2e}" for label, error in errors.items())
        print(f"{name} {str(dtype).removeprefix('torch.')} {'causal' if causal else 'bidirectional'}: {described}")
    passed = worst <= TOLERANCE[dtype]
    print(f"largest relative error {worst:.2e} (tolerance {TOLERANCE[dtype]:.0e}): {'ok' if passed else 'FAILED'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
