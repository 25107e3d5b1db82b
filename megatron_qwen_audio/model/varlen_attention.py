"""Attention over sequences of different lengths laid end to end ([t, heads, d], no padding anywhere).

Both the audio encoder (every clip of a batch, bidirectional) and the decoder's packed rows (every sample of a row,
causal) attend within segments marked by `cu_seqlens` (int32 [segments + 1], the first position of each segment and
then t). On a GPU in bf16/fp16 that is torch's variable-length flash attention
(`torch.nn.attention.varlen.varlen_attn`): one kernel over all segments, no t x t scores, no padded position computed.
Elsewhere (the CPU runtime, fp32) each segment goes through `scaled_dot_product_attention` on its own: the same
numbers, with one call per segment.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FLASH_DTYPES = (torch.bfloat16, torch.float16)


def varlen_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seqlens: torch.Tensor,
                     max_length: int, causal: bool, scale: float | None = None) -> torch.Tensor:
    """query [t, heads, d], key/value [t, kv_heads, d] (kv_heads dividing heads) -> [t, heads, d], attention
    restricted to each segment of `cu_seqlens` (on the query's device), causal or not; `max_length` is the longest
    segment."""
    if query.is_cuda and query.dtype in FLASH_DTYPES:
        from torch.nn.attention.varlen import varlen_attn

        return varlen_attn(query, key, value, cu_seqlens, cu_seqlens, max_length, max_length, scale=scale,
                           window_size=(-1, 0) if causal else (-1, -1))
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    segments = [
        F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), is_causal=causal,
                                       scale=scale, enable_gqa=q.shape[1] != k.shape[1]).transpose(0, 1)
        for q, k, v in zip(query.split(lengths), key.split(lengths), value.split(lengths))
    ]
    return torch.cat(segments) if segments else query.new_zeros(query.shape)
