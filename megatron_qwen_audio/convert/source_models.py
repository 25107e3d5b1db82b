"""What each kind of source checkpoint becomes: the model shape it implies and the plan of every tensor.

Kinds: Whisper (Hugging Face WhisperModel / WhisperForConditionalGeneration directory, or an openai-whisper `.pt`;
encoder only) together with Qwen (Qwen-7B v1 layout or a Hugging Face Qwen2 directory); the released Qwen-Audio
(v1 keys, `transformer.audio.*` included); Hugging Face Qwen2-Audio (the released key layout or transformers 5's);
this project's own checkpoints (`resharded`).

Token ids: imports keep every source row at its id. Qwen-7B's rows are the Qwen-Audio table's first rows, so the
tags get new rows. A genuine Qwen2-Audio release has its own special tokens after id 151,645 (`<|AUDIO|>`,
`<|audio_bos|>`, ...), which are not the Qwen-Audio table's: its rows are imported as they are, and a run with this
project's tokenizer reads them as the Qwen-Audio tokens of the same ids (fine-tuning adapts them).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from megatron_qwen_audio.convert.decoder_rules import (
    VocabRows,
    qwen2_decoder_rules,
    qwen_v1_decoder_rules,
)
from megatron_qwen_audio.convert.encoder_rules import (
    fresh_adapter_plan,
    qwen2_audio_encoder_rules,
    qwen_audio_v1_encoder_rules,
    whisper_encoder_rules,
)
from megatron_qwen_audio.convert.megatron_checkpoint import CheckpointReader
from megatron_qwen_audio.convert.model_configs import (
    decoder_config,
    qwen_audio_v1_encoder_config,
    whisper_encoder_config,
)
from megatron_qwen_audio.convert.tensor_files import ConversionError, TensorFiles
from megatron_qwen_audio.convert.tensor_plan import (
    Derived,
    TensorPlan,
    TensorRule,
    TensorSource,
    copied,
    plan_from_rules,
)
from megatron_qwen_audio.model.audio_encoder import AudioEncoderConfig
from megatron_qwen_audio.model.parameter_shards import VOCAB_ROW_PARAMETERS, resize_vocab_rows
from megatron_qwen_audio.training.config import ModelConfig, padded_vocab


@dataclass
class ImportSources:
    """A conversion's inputs: the target shape, the plan, the files read, and the source tensors left out."""

    model: ModelConfig
    plan: TensorPlan
    files: list[TensorSource]
    ignored_prefixes: tuple[str, ...] = ()  # source tensors deliberately left out (a Whisper checkpoint's decoder)

    def ignored(self, name: str) -> bool:
        return bool(self.ignored_prefixes) and name.startswith(self.ignored_prefixes)


def _vocab_rows(model: ModelConfig, tensor_parallel: int, seed: int) -> VocabRows:
    return VocabRows(vocab=model.vocab_size, padded=padded_vocab(model.vocab_size, tensor_parallel,
                                                                 model.vocab_pad_multiple), seed=seed)


def _config(files: TensorFiles, what: str) -> dict:
    config = files.config()
    if not config:
        raise ConversionError(f"{files.path}: no config.json; pass the {what} checkpoint's directory as downloaded")
    return config


def _whisper_layout(files: TensorFiles) -> tuple[str, bool]:
    """(prefix of the encoder's tensors, whether they have Hugging Face names)."""
    for prefix in ("model.encoder.", "encoder.", ""):
        if prefix + "layers.0.self_attn.q_proj.weight" in files:
            return prefix, True
    if "encoder.blocks.0.attn.query.weight" in files:
        return "encoder.", False
    raise ConversionError(f"{files.path}: no Whisper encoder tensors (looked for encoder.layers.0.self_attn.q_proj."
                          "weight and openai-whisper's encoder.blocks.0.attn.query.weight)")


def _qwen_embedding(files: TensorFiles) -> tuple[str, bool]:
    """(the embedding's name, whether the checkpoint has the v1 layout)."""
    if "transformer.wte.weight" in files:
        return "transformer.wte.weight", True
    if "model.embed_tokens.weight" in files:
        return "model.embed_tokens.weight", False
    raise ConversionError(f"{files.path}: neither a Qwen-7B (transformer.wte.weight) nor a Qwen2 "
                          "(model.embed_tokens.weight) checkpoint")


def whisper_and_qwen(whisper: Path, qwen: Path, tensor_parallel: int, seed: int) -> ImportSources:
    """Stage 1's starting point: the Whisper encoder, a fresh adapter, the Qwen decoder (vocabulary resized)."""
    whisper_files, qwen_files = TensorFiles(whisper), TensorFiles(qwen)
    prefix, hf_names = _whisper_layout(whisper_files)
    embedding, is_v1 = _qwen_embedding(qwen_files)
    qwen_config = _config(qwen_files, "Qwen")
    whisper_config = whisper_files.metadata.get("dims") or _config(whisper_files, "Whisper")
    encoder = whisper_encoder_config(whisper_config, str(whisper), output_dim=qwen_config.get("hidden_size", 0))
    model = decoder_config(qwen_config, str(qwen), qwen_files.meta(embedding).shape[0], encoder)
    rows = _vocab_rows(model, tensor_parallel, seed)
    decoder = (qwen_v1_decoder_rules(model.layers, model.heads, rows) if is_v1
               else qwen2_decoder_rules(model.layers, model.heads, model.heads, rows))
    plan = plan_from_rules(qwen_files, decoder)
    plan.update(plan_from_rules(whisper_files, whisper_encoder_rules(encoder, prefix, hf_names)))
    plan.update(fresh_adapter_plan(encoder, plan["embedding.word_embeddings.weight"], seed))
    ignored = ("model.decoder.", "decoder.", "proj_out.") if prefix else ()  # no prefix: a bare encoder file
    return ImportSources(model, plan, [whisper_files, qwen_files], ignored)


def qwen_audio_v1(source: Path, tensor_parallel: int, seed: int) -> ImportSources:
    """The released Qwen-Audio (v1 keys)."""
    files = TensorFiles(source)
    config = _config(files, "Qwen-Audio")
    if "audio" not in config:
        raise ConversionError(f"{source}/config.json: no `audio` section; is it a Qwen-Audio (not Qwen-7B) checkpoint?")
    encoder = qwen_audio_v1_encoder_config(config["audio"], str(source))
    embedding, _ = _qwen_embedding(files)
    model = decoder_config(config, str(source), files.meta(embedding).shape[0], encoder)
    rows = _vocab_rows(model, tensor_parallel, seed)
    return ImportSources(model, plan_from_rules(files, qwen_v1_decoder_rules(model.layers, model.heads, rows)
                                                + qwen_audio_v1_encoder_rules(encoder)), [files])


@dataclass(frozen=True)
class Qwen2AudioNames:
    """Where a Qwen2-Audio checkpoint keeps its parts: the released layout or transformers 5's."""

    tower: str
    projector: str
    language_model: str
    head: str


QWEN2_AUDIO_RELEASED = Qwen2AudioNames("audio_tower.", "multi_modal_projector.", "language_model.model.",
                                       "language_model.lm_head.weight")
QWEN2_AUDIO_TRANSFORMERS5 = Qwen2AudioNames("model.audio_tower.", "model.multi_modal_projector.",
                                            "model.language_model.", "lm_head.weight")


def _with_rows(tensor: torch.Tensor, rows: list[int], values: torch.Tensor) -> torch.Tensor:
    if tensor.is_meta:
        return tensor
    tensor = tensor.clone()
    tensor[rows] = values.to(tensor.dtype)
    return tensor


def qwen2_audio_rules(model: ModelConfig, rows: VocabRows, names: Qwen2AudioNames, audio_bos_eos: tuple[int, int]
                      ) -> list[TensorRule]:
    """Qwen2-Audio <-> ours. Its audio bos/eos are the embedding rows of two tokens (`audio_bos_eos` ids), ours an
    embedding of their own: importing reads those rows, exporting writes ours into them (the model never reads
    those rows otherwise: an audio span's bos/eos positions are always overwritten)."""
    bos_eos = list(audio_bos_eos)
    decoder = qwen2_decoder_rules(model.layers, model.heads, model.heads, rows, names.language_model, names.head)
    embedding = TensorRule(
        ("embedding.word_embeddings.weight", "audio_encoder.audio_bos_eos_token.weight"),
        (names.language_model + "embed_tokens.weight",),
        lambda e: (rows.to_ours(e), e[bos_eos]),
        lambda e, bos_eos_rows: (_with_rows(rows.to_theirs(e), bos_eos, bos_eos_rows),))
    decoder = [embedding if rule.ours == ("embedding.word_embeddings.weight",) else rule for rule in decoder]
    return decoder + qwen2_audio_encoder_rules(model.audio_encoder, names.tower, names.projector)


def qwen2_audio(source: Path, tensor_parallel: int, seed: int, audio_bos_eos: tuple[int, int]) -> ImportSources:
    """A Hugging Face Qwen2AudioForConditionalGeneration directory."""
    files = TensorFiles(source)
    config = _config(files, "Qwen2-Audio")
    names = next((layout for layout in (QWEN2_AUDIO_RELEASED, QWEN2_AUDIO_TRANSFORMERS5)
                  if layout.language_model + "embed_tokens.weight" in files), None)
    if names is None:
        raise ConversionError(f"{source}: no language_model.model.embed_tokens.weight (or transformers 5's "
                              "model.language_model.embed_tokens.weight); is it a Qwen2-Audio checkpoint?")
    text, audio = config.get("text_config", {}), config.get("audio_config", {})
    hidden = text.get("hidden_size", 0)
    encoder: AudioEncoderConfig = whisper_encoder_config(audio, f"{source} audio_config", output_dim=hidden)
    model = decoder_config(text, f"{source} text_config",
                           files.meta(names.language_model + "embed_tokens.weight").shape[0], encoder)
    rows = _vocab_rows(model, tensor_parallel, seed)
    return ImportSources(model, plan_from_rules(files, qwen2_audio_rules(model, rows, names, audio_bos_eos)), [files])


def audio_bos_eos_ids(source: Path) -> tuple[int, int]:
    """The ids of a Qwen2-Audio checkpoint's audio bos/eos tokens, from its own tokenizer files."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as error:
        raise ConversionError(f"{source}: no readable tokenizer ({error}); pass --audio-bos-eos-ids BOS,EOS") from None
    ids = tuple(tokenizer.convert_tokens_to_ids(getattr(tokenizer, attribute, default)) for attribute, default in
                (("audio_bos_token", "<|audio_bos|>"), ("audio_eos_token", "<|audio_eos|>")))
    if any(token_id is None or token_id == tokenizer.unk_token_id for token_id in ids):
        raise ConversionError(f"{source}: its tokenizer has no audio bos/eos tokens; pass --audio-bos-eos-ids BOS,EOS")
    return ids


def resharded(checkpoint: Path, tensor_parallel: int) -> ImportSources:
    """Every tensor of a checkpoint as it is, the vocabulary rows re-padded for `tensor_parallel` (rows past the
    vocabulary are padding: zero, never read)."""
    reader = CheckpointReader(checkpoint)
    rows = padded_vocab(reader.model.vocab_size, tensor_parallel, reader.model.vocab_pad_multiple)
    plan: TensorPlan = {name: copied(reader, name) for name in reader.names}
    for name in VOCAB_ROW_PARAMETERS:
        plan[name] = Derived(reader, (name,), lambda tensor: resize_vocab_rows(tensor, rows))
    return ImportSources(reader.model, plan, [reader])
