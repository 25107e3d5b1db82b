"""Core attention for the local (no Transformer Engine) decoder spec: torch's scaled_dot_product_attention.

megatron-core's local spec computes attention with `DotProductAttention`, which materialises the [b, heads, s, s]
score matrix in a global buffer and softmaxes it in a separate pass. `torch.nn.functional.scaled_dot_product_attention`
computes the same softmax(q k^T * scale) v with a fused kernel (flash / memory-efficient on GPU, a blocked kernel on
CPU), so memory grows with s rather than s^2. This module is a drop-in for the `core_attention` slot of megatron's
`SelfAttention`: same constructor, same [s, b, heads, head_dim] inputs and [s, b, heads * head_dim] output, and the
same mask conventions:

- `attention_mask` None and mask type causal: causal attention (`is_causal=True`);
- `attention_mask` None otherwise: every key is visible;
- `attention_mask` given: a bool tensor broadcastable to [b, heads, s_q, s_k] in which True means "masked out"
  (megatron's convention; SDPA's bool mask means the opposite, so it is inverted). As in megatron's
  `DotProductAttention`, a given mask is the whole truth and the mask type is not applied on top of it.

Packed rows (megatron's THD format: `packed_seq_params` with `cu_seqlens`, query [t, heads, d] for the t positions of
one row holding several samples) attend causally inside each sample only, through `varlen_attention` (flash
attention over all samples at once on a GPU, SDPA sample by sample elsewhere).

Grouped-query attention is left to SDPA (`enable_gqa`) and to flash attention (fewer key heads). Attention dropout,
when on, runs inside megatron's tensor-parallel RNG fork so each TP rank drops independently and reproducibly, as
`DotProductAttention` does.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from megatron.core import tensor_parallel
from megatron.core.packed_seq_params import PackedSeqParams
from megatron.core.process_groups_config import ProcessGroupCollection
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.module import MegatronModule
from megatron.core.transformer.transformer_config import TransformerConfig

from megatron_qwen_audio.model.varlen_attention import varlen_attention


class SdpaAttention(MegatronModule):
    """softmax(q k^T * scale + mask) v over one tensor-parallel rank's heads, through torch SDPA."""

    def __init__(
        self,
        config: TransformerConfig,
        layer_number: int,
        attn_mask_type: AttnMaskType,
        attention_type: str,
        attention_dropout: float | None = None,
        softmax_scale: float | None = None,
        cp_comm_type: str | None = None,
        pg_collection: ProcessGroupCollection | None = None,
    ):
        super().__init__(config=config)
        if config.context_parallel_size != 1:
            raise ValueError("context_parallel_size > 1 needs Transformer Engine attention; SDPA attention is local")
        if config.apply_query_key_layer_scaling:
            raise ValueError("apply_query_key_layer_scaling is an fp16 overflow workaround SDPA does not need; "
                             "set it False")
        if config.softmax_type != "vanilla":
            raise ValueError(f"softmax_type={config.softmax_type!r}: SDPA attention computes the vanilla softmax")
        self.attn_mask_type = attn_mask_type
        head_dim = config.kv_channels
        self.softmax_scale = 1.0 / math.sqrt(head_dim) if softmax_scale is None else softmax_scale
        self.dropout_p = config.attention_dropout if attention_dropout is None else attention_dropout

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        attn_mask_type: AttnMaskType | None = None,
        attention_bias: torch.Tensor | None = None,
        packed_seq_params: PackedSeqParams | None = None,
    ) -> torch.Tensor:
        """query [s_q, b, heads, d], key/value [s_k, b, groups, d] -> context [s_q, b, heads * d]; packed: query
        [t, heads, d], key/value [t, groups, d] -> [t, heads * d]."""
        assert attention_bias is None, "SDPA attention takes no attention bias"
        if packed_seq_params is not None:
            assert attention_mask is None and packed_seq_params.qkv_format == "thd", "packed rows carry no mask"
            return self._packed(query, key, value, packed_seq_params)
        mask_type = self.attn_mask_type if attn_mask_type is None else attn_mask_type
        if attention_mask is not None:
            sdpa_mask, causal = ~attention_mask, False
        else:
            sdpa_mask, causal = None, mask_type == AttnMaskType.causal and query.shape[0] > 1
        # [s, b, heads, d] -> [b, heads, s, d]: SDPA's layout.
        q, k, v = (tensor.permute(1, 2, 0, 3) for tensor in (query, key, value))
        dropout_p = self.dropout_p if self.training else 0.0
        with tensor_parallel.get_cuda_rng_tracker().fork() if dropout_p else contextlib.nullcontext():
            context = F.scaled_dot_product_attention(
                q, k, v, attn_mask=sdpa_mask, dropout_p=dropout_p, is_causal=causal, scale=self.softmax_scale,
                enable_gqa=q.shape[1] != k.shape[1],
            )
        s_q, batch = query.shape[0], query.shape[1]
        return context.permute(2, 0, 1, 3).reshape(s_q, batch, -1)

    def _packed(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                packed: PackedSeqParams) -> torch.Tensor:
        """Causal attention within each sample of a packed row (module doc): [t, heads, d] -> [t, heads * d]."""
        assert self.attn_mask_type == AttnMaskType.causal, "packed rows are decoder (causal) sequences"
        if self.training and self.dropout_p:
            raise ValueError("attention dropout with packed sequences: variable-length flash attention has none; "
                             "set attention_dropout 0")
        context = varlen_attention(query, key, value, packed.cu_seqlens_q, packed.max_seqlen_q, causal=True,
                                   scale=self.softmax_scale)
        return context.reshape(query.shape[0], -1)
