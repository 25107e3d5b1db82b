"""A small stand-in for the combined model with its four top-level modules and megatron-style parameter names
(`audio_encoder.*`, `embedding.word_embeddings.*`, `decoder.layers.N.*`, `decoder.final_layernorm.*`,
`output_layer.*`), optionally cut like one pipeline stage, so freeze masks are tested without megatron."""
from __future__ import annotations

from torch import nn

WIDTH = 12
VOCAB = 50


class FakeAudioEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 16, 3, padding=1)
        self.conv2 = nn.Conv1d(16, 16, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList(nn.Linear(16, 16) for _ in range(2))
        self.ln_post = nn.LayerNorm(16)
        self.proj = nn.Linear(16, WIDTH)
        self.audio_bos_eos = nn.Embedding(2, WIDTH)


class FakeEmbedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, WIDTH)


class FakeLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear_qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.linear_fc1 = nn.Linear(WIDTH, 2 * WIDTH, bias=False)


class FakeDecoder(nn.Module):
    def __init__(self, layers: int, final_layernorm: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(FakeLayer() for _ in range(layers))
        if final_layernorm:
            self.final_layernorm = nn.LayerNorm(WIDTH)


class FakeQwenAudio(nn.Module):
    """The whole model (first and last pipeline stage at once) by default."""

    def __init__(self, first_stage: bool = True, last_stage: bool = True, layers: int = 3) -> None:
        super().__init__()
        if first_stage:
            self.audio_encoder = FakeAudioEncoder()
            self.embedding = FakeEmbedding()
        self.decoder = FakeDecoder(layers, final_layernorm=last_stage)
        if last_stage:
            self.output_layer = nn.Linear(WIDTH, VOCAB, bias=False)
