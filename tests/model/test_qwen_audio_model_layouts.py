"""The combined model at every layout computes what one process computes, and its decoder is Hugging Face Qwen2.

Three torchrun launches of `qwen_audio_model_worker.py` (each costs seconds, so each runs several layouts):
- 1 process: TP=1/PP=1, the reference;
- 2 processes: TP=2, PP=2 (uneven split 1+3 layers), DP=2;
- 4 processes: TP2xPP2, PP2xDP2.
Checked per layout, on the batch of qwen_audio_model_fixtures (clips of different lengths, a text-only row, a
micro-batch with one clip for two TP ranks, micro-batches and a whole data-parallel rank without audio):
- logits of a text batch equal transformers' Qwen2ForCausalLM (1e-5), padded vocabulary rows are -inf;
- loss within 1e-6 relative and every gradient shard within 1e-5 relative of the reference, encoder included, for
  a step with everything trainable, with the decoder frozen (stage 1) and with the encoder frozen (stage 2);
  a gradient summed over TP ranks one time too many or too few (the encoder's) moves it by O(1);
- packed (every layout and the single process): the everything-trainable step with each micro-batch's rows packed
  into one row gives the same loss and gradients as the padded rows (attention leaking across samples changes both;
  RoPE scores depend only on position differences, so restarting positions is exact either way).
Single process: the decoder input holds each clip's encoder rows at its span and token embeddings elsewhere; freezing
a part changes no gradient of the rest, and frozen parameters get none.
"""
from pathlib import Path

import pytest
import torch
from process_launch import torchrun
from qwen_audio_model_fixtures import VOCAB, decoder_tokens, full_initial_state, hf_qwen2_model

from megatron_qwen_audio.model.parameter_shards import VOCAB_ROW_PARAMETERS, resize_vocab_rows, tensor_parallel_shard
from megatron_qwen_audio.training.config import padded_vocab

WORKER = Path(__file__).with_name("qwen_audio_model_worker.py")
LAUNCH_TIMEOUT_S = 300
LAUNCHES = {1: ("1x1",), 2: ("2x1", "1x2", "1x1"), 4: ("2x2", "1x2")}
LAYOUTS = [(processes, layout) for processes, layouts in LAUNCHES.items() if processes > 1 for layout in layouts]
PASSES = ("train", "stage1", "stage2", "packed")
EXPECTED_PASS = {"packed": "train"}  # the padded pass the packed one must reproduce


def _torchrun(processes: int, layouts: tuple[str, ...], weights: Path, out: Path) -> None:
    torchrun(processes, [str(WORKER), "--layouts", ",".join(layouts), "--weights", str(weights), "--out", str(out)],
             ",".join(layouts), LAUNCH_TIMEOUT_S)


@pytest.fixture(scope="module")
def hf_model():
    return hf_qwen2_model()


@pytest.fixture(scope="module")
def launched(tmp_path_factory, hf_model) -> Path:
    """Run every launch once; results land in OUT/xN/TPxPP-rankR.pt."""
    root = tmp_path_factory.mktemp("qwen_audio_layouts")
    weights = root / "weights.pt"
    torch.save(full_initial_state(hf_model), weights)
    for processes, layouts in LAUNCHES.items():
        out = root / f"x{processes}"
        out.mkdir()
        _torchrun(processes, layouts, weights, out)
    return root


def _results(root: Path, processes: int, layout: str) -> list[dict]:
    return [torch.load(root / f"x{processes}" / f"{layout}-rank{rank}.pt", weights_only=False)
            for rank in range(processes)]


@pytest.fixture(scope="module")
def reference(launched) -> dict:
    return _results(launched, 1, "1x1")[0]


@pytest.fixture(scope="module")
def hf_logits(hf_model) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(decoder_tokens()).logits


def _relative(observed: torch.Tensor, expected: torch.Tensor) -> float:
    """||observed - expected|| / ||expected||; 0 or inf for an all-zero expectation (a shard of padded rows only)."""
    difference = float((observed - expected).norm())
    reference_norm = float(expected.norm())
    if reference_norm == 0:
        return 0.0 if difference == 0 else float("inf")
    return difference / reference_norm


def _expected_shard(reference_grad: torch.Tensor, name: str, observed: torch.Tensor, tp_rank: int,
                    tp_size: int) -> torch.Tensor:
    if name in VOCAB_ROW_PARAMETERS:  # padded rows (same count for every TP dividing 8) get no gradient
        reference_grad = resize_vocab_rows(reference_grad, observed.shape[0] * tp_size)
    return tensor_parallel_shard(reference_grad, name, tp_rank, tp_size)


def test_single_process_logits_equal_hf_qwen2(reference, hf_logits):
    logits = reference["logits"]
    assert logits.shape == (*hf_logits.shape[:2], padded_vocab(VOCAB, 1))
    torch.testing.assert_close(logits[..., :VOCAB], hf_logits, rtol=0, atol=1e-5)
    assert torch.isneginf(logits[..., VOCAB:]).all()


@pytest.mark.parametrize("processes,layout", LAYOUTS)
def test_layout_logits_equal_hf_qwen2(launched, hf_logits, processes, layout):
    results = _results(launched, processes, layout)
    last_stage = [result for result in results if result["layout"].is_last_stage]
    for result in last_stage:
        assert result["logits"] is not None
    first_replica = [result for result in last_stage if result["layout"].data_parallel_rank == 0]
    first_replica.sort(key=lambda result: result["layout"].tensor_parallel_rank)
    logits = torch.cat([result["logits"] for result in first_replica], dim=-1)
    torch.testing.assert_close(logits[..., :VOCAB], hf_logits, rtol=0, atol=1e-5)
    assert torch.isneginf(logits[..., VOCAB:]).all()


@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("processes,layout", LAYOUTS)
def test_layout_step_matches_single_process(launched, reference, processes, layout, pass_name):
    _assert_step_matches(_results(launched, processes, layout), reference[EXPECTED_PASS.get(pass_name, pass_name)],
                         layout, pass_name)


def test_single_process_packed_step_matches_the_padded_step(reference):
    _assert_step_matches([reference], reference["train"], "1x1", "packed")


def _assert_step_matches(results: list[dict], expected: dict, layout: str, pass_name: str) -> None:
    reports = [result[pass_name]["loss_report"] for result in results  # one per data-parallel replica
               if result["layout"].is_last_stage and result["layout"].tensor_parallel_rank == 0]
    total = torch.stack(reports).sum(dim=0)
    assert float(total[1]) == float(expected["loss_report"][1])  # target tokens of the global batch
    assert abs(float(total[0] / expected["loss_report"][0]) - 1) <= 1e-6
    seen = set()
    for result in results:
        tp_rank, tp_size = result["layout"].tensor_parallel_rank, result["layout"].tensor_parallel
        assert result[pass_name]["frozen_with_grad"] == []
        for name, grad in result[pass_name]["grads"].items():
            shard = _expected_shard(expected["grads"][name], name, grad, tp_rank, tp_size)
            assert _relative(grad, shard) <= 1e-5, f"{layout} {pass_name} rank {result['layout'].rank}: {name}"
            seen.add(name)
    assert seen == set(expected["grads"]), "every trainable parameter lives on some rank"


def test_freezing_changes_no_gradient_of_the_rest(reference):
    everything = reference["train"]["grads"]
    encoder = {name for name in everything if name.startswith("audio_encoder.")}
    assert encoder and set(reference["stage1"]["grads"]) == encoder
    assert set(reference["stage2"]["grads"]) == set(everything) - encoder
    for pass_name in ("stage1", "stage2"):
        assert reference[pass_name]["frozen_with_grad"] == []
        for name, grad in reference[pass_name]["grads"].items():
            assert grad.norm() > 0, f"{pass_name}: {name} got no gradient"
            assert _relative(grad, everything[name]) <= 1e-6, f"{pass_name}: {name}"


def test_decoder_input_holds_encoder_rows_at_the_spans(reference):
    splice = reference["splice"]
    decoder_input, token_embeddings = splice["decoder_input"], splice["token_embeddings"]  # [L, B, h], [B, L, h]
    in_span = torch.zeros(token_embeddings.shape[:2], dtype=torch.bool)
    for (row, start, end), rows in zip(splice["audio_spans"].tolist(), splice["clips_alone"]):
        assert rows.shape[0] == end - start
        torch.testing.assert_close(decoder_input[start:end, row], rows, rtol=1e-5, atol=1e-5)
        in_span[row, start:end] = True
    assert in_span.any() and not in_span.all()
    torch.testing.assert_close(decoder_input.transpose(0, 1)[~in_span], token_embeddings[~in_span], rtol=0, atol=0)
