"""The combined model's pieces on their own, in this process: SDPA core attention against a hand-written softmax,
the audio splice, the clip split over TP ranks, the HF Qwen2 / tensor-parallel tensor mappings, the config, and the
parameters' dtype."""
import dataclasses
import math

import pytest
import torch
from qwen_audio_model_fixtures import MODEL

from megatron_qwen_audio.convert.decoder_rules import interleave_qkv
from megatron_qwen_audio.model.audio_splice import splice_audio
from megatron_qwen_audio.model.parameter_shards import (
    full_parameter_name,
    load_full_state,
    resize_vocab_rows,
    tensor_parallel_shard,
)
from megatron_qwen_audio.training.config import ParallelConfig


def _attention_config(heads: int, groups: int):
    from megatron.core.transformer.transformer_config import TransformerConfig

    return TransformerConfig(num_layers=1, hidden_size=heads * 8, num_attention_heads=heads, num_query_groups=groups,
                             attention_dropout=0.0, use_cpu_initialization=True)


def _softmax_attention(query, key, value, masked_out):
    """Reference: per head, softmax(q k^T / sqrt(d)) v with masked_out [s_q, s_k] (True = hidden); [s, b, n, d]."""
    repeat = query.shape[2] // key.shape[2]
    key, value = key.repeat_interleave(repeat, dim=2), value.repeat_interleave(repeat, dim=2)
    scores = torch.einsum("qbnd,kbnd->bnqk", query, key) / math.sqrt(query.shape[-1])
    probabilities = scores.masked_fill(masked_out, float("-inf")).softmax(dim=-1)
    context = torch.einsum("bnqk,kbnd->qbnd", probabilities, value)
    return context.reshape(query.shape[0], query.shape[1], -1)


@pytest.mark.parametrize("groups", [4, 2])
def test_sdpa_attention_is_causal_softmax_attention(groups):
    from megatron.core.transformer.enums import AttnMaskType

    from megatron_qwen_audio.model.sdpa_attention import SdpaAttention

    generator = torch.Generator().manual_seed(0)
    query = torch.randn(7, 2, 4, 8, generator=generator)
    key, value = (torch.randn(7, 2, groups, 8, generator=generator) for _ in range(2))
    attention = SdpaAttention(_attention_config(4, groups), layer_number=1, attn_mask_type=AttnMaskType.causal,
                              attention_type="self")
    future = torch.ones(7, 7, dtype=torch.bool).triu(1)
    torch.testing.assert_close(attention(query, key, value, None), _softmax_attention(query, key, value, future))


def test_sdpa_attention_takes_megatron_masks_as_the_whole_truth():
    """A given mask (True = masked out, megatron's convention) replaces causality rather than adding to it."""
    from megatron.core.transformer.enums import AttnMaskType

    from megatron_qwen_audio.model.sdpa_attention import SdpaAttention

    generator = torch.Generator().manual_seed(1)
    query, key, value = (torch.randn(5, 2, 4, 8, generator=generator) for _ in range(3))
    masked_out = torch.rand(2, 1, 5, 5, generator=generator) < 0.4
    masked_out[..., 0] = False  # every query sees at least one key
    attention = SdpaAttention(_attention_config(4, 4), layer_number=1, attn_mask_type=AttnMaskType.causal,
                              attention_type="self")
    torch.testing.assert_close(attention(query, key, value, masked_out),
                               _softmax_attention(query, key, value, masked_out))


def test_splice_overwrites_exactly_the_spans_and_passes_gradients_to_both_sides():
    generator = torch.Generator().manual_seed(2)
    embeddings = torch.randn(10, 2, 3, generator=generator, requires_grad=True)  # [s, b, h]
    rows = torch.randn(7, 3, generator=generator, requires_grad=True)
    spans = torch.tensor([[1, 2, 6], [0, 7, 10]])  # clip 0: row 1 tokens 2..5; clip 1: row 0 tokens 7..9
    merged = splice_audio(embeddings, rows, spans, span_lengths=[4, 3])
    expected = embeddings.detach().clone()
    expected[2:6, 1] = rows.detach()[:4]
    expected[7:10, 0] = rows.detach()[4:]
    torch.testing.assert_close(merged, expected, rtol=0, atol=0)
    weights = torch.randn(merged.shape, generator=generator)
    (merged * weights).sum().backward()
    torch.testing.assert_close(rows.grad, torch.cat([weights[2:6, 1], weights[7:10, 0]]), rtol=0, atol=0)
    untouched = torch.ones(10, 2, 1)
    untouched[2:6, 1] = 0
    untouched[7:10, 0] = 0
    torch.testing.assert_close(embeddings.grad, weights * untouched, rtol=0, atol=0)


@pytest.mark.parametrize("spans,message", [
    ([[0, 2, 5]], r"audio_spans\[0\]=\(0, 2, 5\): clip 0 encodes to 4 rows"),
    ([[3, 2, 6]], r"audio_spans\[0\]=\(3, 2, 6\).*the batch is 2 rows x 10 tokens"),
    ([[0, 8, 12]], r"audio_spans\[0\]=\(0, 8, 12\)"),
])
def test_splice_refuses_spans_that_do_not_fit(spans, message):
    with pytest.raises(ValueError, match=message) as raised:
        splice_audio(torch.zeros(10, 2, 3), torch.zeros(4, 3), torch.tensor(spans), span_lengths=[4])
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("clips,tp_size", [(0, 2), (1, 2), (3, 2), (2, 4), (7, 3)])
def test_clip_shares_are_contiguous_balanced_and_cover_every_clip(clips, tp_size):
    from megatron_qwen_audio.model.encoder_tensor_parallel import clip_share

    shares = [clip_share(clips, rank, tp_size) for rank in range(tp_size)]
    assert [clip for share in shares for clip in share] == list(range(clips))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_qkv_interleave_is_megatrons_per_group_order():
    """2 key/value groups of 2 query heads each, head width 1: rows q0 q1 k0 v0 | q2 q3 k1 v1."""
    query = torch.tensor([[10.0], [11.0], [12.0], [13.0]])
    key = torch.tensor([[20.0], [21.0]])
    value = torch.tensor([[30.0], [31.0]])
    fused = interleave_qkv(query, key, value, query_groups=2)
    assert fused.flatten().tolist() == [10, 11, 20, 30, 12, 13, 21, 31]


def test_tensor_parallel_shards_follow_megatrons_local_layout():
    fc1 = torch.arange(8.0).reshape(8, 1)  # gate rows 0..3, up rows 4..7
    assert tensor_parallel_shard(fc1, "decoder.layers.0.mlp.linear_fc1.weight", 1, 2).flatten().tolist() == [2, 3,
                                                                                                          6, 7]
    proj = torch.arange(8.0).reshape(2, 4)
    assert tensor_parallel_shard(proj, "decoder.layers.0.self_attention.linear_proj.weight", 1, 2).tolist() == [
        [2, 3], [6, 7]]
    qkv_bias = torch.arange(6.0)
    assert tensor_parallel_shard(qkv_bias, "decoder.layers.2.self_attention.linear_qkv.bias", 0, 2).tolist() == [0, 1,
                                                                                                              2]
    norm = torch.arange(4.0)
    assert tensor_parallel_shard(norm, "decoder.final_layernorm.weight", 1, 2) is norm
    assert full_parameter_name("decoder.layers.2.mlp.linear_fc2.weight", 3) == "decoder.layers.5.mlp.linear_fc2.weight"
    assert full_parameter_name("output_layer.weight", 3) == "output_layer.weight"
    assert resize_vocab_rows(torch.ones(3, 2), 5).tolist() == [[1, 1]] * 3 + [[0, 0]] * 2
    assert resize_vocab_rows(torch.ones(5, 2), 3).shape == (3, 2)


def test_loading_a_state_of_another_shape_names_the_tensor():
    model = torch.nn.Module()
    model.output_layer = torch.nn.Linear(4, 8, bias=False)
    with pytest.raises(KeyError, match="output_layer.weight: not in the full state"):
        load_full_state(model, {}, layer_offset=0, tp_rank=0, tp_size=1)
    model.decoder = torch.nn.Linear(4, 4, bias=False)
    state = {"output_layer.weight": torch.zeros(6, 4), "decoder.weight": torch.zeros(4, 5)}
    with pytest.raises(ValueError, match=r"decoder.weight: the full tensor \[4, 5\] .* the model holds \[4, 4\]"):
        load_full_state(model, state, layer_offset=0, tp_rank=0, tp_size=1)


def test_transformer_config_per_device_and_uneven_pipeline():
    from megatron_qwen_audio.model.decoder_spec import pipeline_layout, transformer_config

    assert pipeline_layout((1, 3)) == [["embedding", "decoder"], ["decoder"] * 3 + ["loss"]]
    cpu = transformer_config(MODEL, ParallelConfig(device="cpu", precision="fp32"), "cpu")
    assert (cpu.params_dtype, cpu.use_cpu_initialization, cpu.batch_p2p_comm) == (torch.float32, True, False)
    assert cpu.variable_seq_lengths and cpu.calculate_per_token_loss and cpu.add_qkv_bias and not cpu.add_bias_linear
    assert cpu.layernorm_epsilon == MODEL.rms_norm_eps and cpu.init_method_std == 0.02
    gpu = transformer_config(MODEL, ParallelConfig(device="cuda", precision="bf16"), "cuda")
    assert (gpu.params_dtype, gpu.bf16, gpu.use_cpu_initialization) == (torch.bfloat16, True, False)
    with pytest.raises(ValueError, match="sequence_parallel=true needs Transformer Engine"):
        transformer_config(MODEL, dataclasses.replace(ParallelConfig(), sequence_parallel=True), "cuda")


def test_every_parameter_takes_the_configs_dtype_norms_included():
    """megatron's local spec builds its RMSNorms in fp32 on the CPU whatever the config says; on a GPU that put the
    norms on the CPU beside bf16 weights on the GPU. The model moves and casts itself as Megatron-LM does."""
    from megatron_qwen_audio.model.decoder_spec import transformer_config
    from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel
    from megatron_qwen_audio.runtime.parallel import ensure_single_process

    ensure_single_process()
    config = transformer_config(MODEL, ParallelConfig(device="cpu"), "cpu")
    config.params_dtype = torch.bfloat16
    model = QwenAudioModel(MODEL, config)
    norms = [name for name, _ in model.named_parameters() if "layernorm" in name]
    assert norms and {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}
