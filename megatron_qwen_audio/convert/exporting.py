"""A checkpoint (any TP/PP layout) -> a Hugging Face directory: Qwen2-Audio for transformers/vLLM, or Qwen-Audio v1.

Tensors are read one rule at a time and written into safetensors shards of at most `max_shard_bytes`, so memory
holds about one shard. The directory is written under a `.tmp-` name and renamed when complete.

Qwen2-Audio export (`transformers.Qwen2AudioForConditionalGeneration.from_pretrained` loads it): the released key
layout (`audio_tower.*`, `multi_modal_projector.linear.*`, `language_model.model.*`, `language_model.lm_head.weight`,
which transformers renames on load), the audio bos/eos vectors written into the embedding rows of `<audio>` and
`</audio>`, `audio_token_index` = the audio pad token `[[[AUDIO:modality]]]`, and the tokenizer and processor files
with the Qwen-Audio special tokens at their ids (convert/hf_processor_files.py).
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import save_file

from megatron_qwen_audio.convert.decoder_rules import VocabRows, qwen_v1_decoder_rules
from megatron_qwen_audio.convert.encoder_rules import qwen_audio_v1_encoder_rules
from megatron_qwen_audio.convert.hf_processor_files import write_processor_files
from megatron_qwen_audio.convert.megatron_checkpoint import CheckpointReader
from megatron_qwen_audio.convert.model_configs import (
    qwen2_audio_encoder_config,
    qwen2_text_config,
    qwen_audio_v1_config,
)
from megatron_qwen_audio.convert.source_models import QWEN2_AUDIO_RELEASED, qwen2_audio_rules
from megatron_qwen_audio.convert.tensor_files import ConversionError
from megatron_qwen_audio.convert.tensor_plan import TensorRule, export_tensors
from megatron_qwen_audio.text.special_tokens import special_tokens

FORMATS = ("qwen2-audio", "qwen-audio")
AUDIO_PAD, AUDIO_BOS, AUDIO_EOS = "[[[AUDIO:modality]]]", "<audio>", "</audio>"


def _write_shards(out: Path, tensors: Iterable[tuple[str, torch.Tensor]], max_shard_bytes: int,
                  dtype: torch.dtype | None) -> None:
    """safetensors shards `model-0000K-of-0000N.safetensors` and their index, filled in order."""
    shard: dict[str, torch.Tensor] = {}
    files: list[list[str]] = []
    size = total = 0

    def flush() -> None:
        nonlocal shard, size
        if shard:
            save_file(shard, str(out / f"part-{len(files)}.safetensors"), metadata={"format": "pt"})
            files.append(list(shard))
            shard, size = {}, 0

    for name, tensor in tensors:
        tensor = (tensor if dtype is None else tensor.to(dtype)).contiguous()
        if tensor.untyped_storage().nbytes() != tensor.nbytes:  # a view (q of a fused qkv): safetensors needs its own
            tensor = tensor.clone()
        if size and size + tensor.nbytes > max_shard_bytes:
            flush()
        shard[name] = tensor
        size += tensor.nbytes
        total += tensor.nbytes
    flush()
    weight_map = {}
    for index, names in enumerate(files):
        final = f"model-{index + 1:05d}-of-{len(files):05d}.safetensors"
        (out / f"part-{index}.safetensors").rename(out / final)
        weight_map.update(dict.fromkeys(names, final))
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1) + "\n")


def _qwen2_audio(reader: CheckpointReader, out: Path, tokenizer_file: Path, dtype: torch.dtype) -> list[TensorRule]:
    model, ids = reader.model, special_tokens()
    config = {
        "architectures": ["Qwen2AudioForConditionalGeneration"], "model_type": "qwen2_audio",
        "audio_config": qwen2_audio_encoder_config(model.audio_encoder), "text_config": qwen2_text_config(model),
        "audio_token_index": ids[AUDIO_PAD], "dtype": str(dtype).removeprefix("torch."),
    }
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    (out / "generation_config.json").write_text(json.dumps({
        "eos_token_id": [ids["<|endoftext|>"], ids["<|im_end|>"]], "pad_token_id": ids["<|endoftext|>"],
    }, indent=1) + "\n")
    write_processor_files(out, tokenizer_file, n_mels=model.audio_encoder.n_mels)
    rows = VocabRows(vocab=model.vocab_size, padded=model.vocab_size, seed=0)
    return qwen2_audio_rules(model, rows, QWEN2_AUDIO_RELEASED, (ids[AUDIO_BOS], ids[AUDIO_EOS]))


def _qwen_audio_v1(reader: CheckpointReader, out: Path, tokenizer_file: Path, dtype: torch.dtype
                   ) -> list[TensorRule]:
    """The released layout's weights, config and `qwen.tiktoken`; its model and tokenizer code (loaded with
    trust_remote_code) comes from the Qwen-Audio release and is not redistributed here."""
    model = reader.model
    config = qwen_audio_v1_config(model, audio_start_id=special_tokens()[AUDIO_BOS])
    config["torch_dtype"] = str(dtype).removeprefix("torch.")
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    shutil.copyfile(tokenizer_file, out / "qwen.tiktoken")
    rows = VocabRows(vocab=model.vocab_size, padded=model.vocab_size, seed=0)
    return qwen_v1_decoder_rules(model.layers, model.heads, rows) + qwen_audio_v1_encoder_rules(model.audio_encoder)


def export_checkpoint(checkpoint: Path, out: Path, fmt: str, tokenizer_file: Path, dtype: torch.dtype | None = None,
                      max_shard_bytes: int = 2 << 30) -> Path:
    """Write the Hugging Face directory `out` (format `fmt`, one of FORMATS) from a checkpoint folder or run."""
    if fmt not in FORMATS:
        raise ConversionError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    if out.exists():
        raise ConversionError(f"{out} exists; choose a new output folder (an export never overwrites)")
    reader = CheckpointReader(checkpoint)
    stored_dtype = reader.meta("decoder.final_layernorm.weight").dtype
    partial = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        describe = _qwen2_audio if fmt == "qwen2-audio" else _qwen_audio_v1
        rules = describe(reader, partial, tokenizer_file, dtype or stored_dtype)
        _write_shards(partial, export_tensors(rules, reader.read), max_shard_bytes, dtype)
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out
