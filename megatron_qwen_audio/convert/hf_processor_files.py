"""Tokenizer and processor files for an exported Hugging Face `Qwen2AudioForConditionalGeneration` directory.

A checkpoint exported for transformers or vLLM is only usable if `AutoTokenizer.from_pretrained(dir)` and
`AutoProcessor.from_pretrained(dir)` work offline and give the ids the model was trained on. Those ids are Qwen-Audio's,
not Qwen2-Audio's: ranks 0..151642 of `qwen.tiktoken` (byte-level BPE with Qwen's single-digit pre-tokenizer, NFC
first) and the 3,522 released special tokens at 151643..155164, among them `<|endoftext|>` (151643, end of document
and padding), the audio pad `[[[AUDIO:modality]]]` (151851), `<audio>` (155163) and `</audio>` (155164). So the fast
tokenizer is built from the project's own ranks and special-token table, and the processor is told our audio
spellings instead of Qwen2-Audio's `<|AUDIO|>`, `<|audio_bos|>`, `<|audio_eos|>`.

The processor expands each `[[[AUDIO:modality]]]` of its text into one pad per audio embedding (the count
megatron_qwen_audio.audio.lengths computes), so prompts and the chat template carry a single pad per clip. Only the
released spellings of special tokens are read as control tokens: the paper's aliases (`<|startoftranscripts|>`, ...)
stay text here, because a fast tokenizer cannot give two spellings one id.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from tokenizers import Tokenizer, normalizers
from transformers import PreTrainedTokenizerFast, Qwen2AudioProcessor, WhisperFeatureExtractor
from transformers.convert_slow_tokenizer import TikTokenConverter

from megatron_qwen_audio.audio.features import N_FFT, N_MELS
from megatron_qwen_audio.audio.lengths import HOP_LENGTH, MAX_SECONDS, SAMPLE_RATE
from megatron_qwen_audio.text.chatml import DEFAULT_SYSTEM_PROMPT
from megatron_qwen_audio.text.fetch import resolve_tokenizer_file
from megatron_qwen_audio.text.special_tokens import AUDIO_END, AUDIO_PAD, AUDIO_START, IM_END, IM_START, special_tokens
from megatron_qwen_audio.text.tokenizer import QWEN_PATTERN, QwenTokenizer, parse_tiktoken_ranks

# Tokenizer attributes Qwen2AudioProcessor takes its audio spellings from (pad, span start, span end).
AUDIO_TOKEN_ATTRIBUTES = ("audio_token", "audio_bos_token", "audio_eos_token")

# ChatML as chatml.py builds it: a default system turn when none is given, turns joined by "\n", audio items written
# `Audio N:<audio>..</audio>\n` (no space after the colon, N counting clips across the conversation). Items may be
# transformers-style ({"type": "audio", ...}, {"type": "text", "text": ...}) or the project's ({"audio": path},
# {"text": ...}). transformers renders with trim_blocks, which drops a newline right after a block tag, so those are
# written as expressions.
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% if not messages or messages[0]['role'] != 'system' %}"
    f"{IM_START}system\n{DEFAULT_SYSTEM_PROMPT}{IM_END}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if not loop.first or message['role'] != 'system' %}{{ '\\n' }}{% endif %}"
    f"{IM_START}{{{{ message['role'] }}}}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'audio' or 'audio' in item or 'audio_url' in item %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    f"Audio {{{{ audio_count.value }}}}:{AUDIO_START}{AUDIO_PAD}{AUDIO_END}\n"
    "{% elif 'text' in item %}"
    "{{ item['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    f"{IM_END}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    f"{{{{ '\\n' }}}}{IM_START}assistant\n"
    "{% endif %}"
)


class _VerifiedRanksConverter(TikTokenConverter):
    """TikTokenConverter fed ranks already read and checksummed by the project.

    The base class would read the file through tiktoken's loader, which keeps a copy in a cache folder of its own
    keyed by the file's path and reads that copy back later without checking it.
    """

    def __init__(self, ranks: Mapping[bytes, int], special_names: list[str]):
        super().__init__(pattern=QWEN_PATTERN, extra_special_tokens=special_names)
        self._ranks = ranks

    def load_tiktoken_bpe(self, tiktoken_url: object) -> Mapping[bytes, int]:
        return self._ranks


def _check_special_ids(backend: Tokenizer, table: Mapping[str, int]) -> None:
    """Added tokens take the next free ids in order; any other id would silently break released checkpoints."""
    got = {name: backend.token_to_id(name) for name in table}
    moved = {name: token_id for name, token_id in got.items() if token_id != table[name]}
    if moved:
        raise ValueError(f"special tokens did not land at their released ids (name: id got): {moved}")


def build_fast_tokenizer(ranks_data: bytes) -> PreTrainedTokenizerFast:
    """The Qwen-Audio tokenizer as a transformers fast tokenizer, giving QwenTokenizer's ids (see module docstring)."""
    table = special_tokens()
    backend = _VerifiedRanksConverter(parse_tiktoken_ranks(ranks_data), list(table)).converted()
    backend.normalizer = normalizers.NFC()  # QwenTokenizer.encode normalises to NFC too
    _check_special_ids(backend, table)
    reference = QwenTokenizer(ranks_data)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=reference.decode([reference.eod_id]),
        pad_token=reference.decode([reference.pad_id]),
        # Named extra special tokens become tokenizer attributes, which Qwen2AudioProcessor reads.
        extra_special_tokens=dict(zip(AUDIO_TOKEN_ATTRIBUTES, (AUDIO_PAD, AUDIO_START, AUDIO_END))),
    )


def build_processor(ranks_data: bytes, n_mels: int = N_MELS) -> Qwen2AudioProcessor:
    """Whisper log-mel features as audio/features.py computes them (padded to 30 s, as the released model saw them)
    plus the tokenizer; `n_mels` 80 for Qwen-Audio's encoder, 128 for a Whisper-large-v3 one."""
    feature_extractor = WhisperFeatureExtractor(
        feature_size=n_mels, sampling_rate=SAMPLE_RATE, hop_length=HOP_LENGTH, chunk_length=MAX_SECONDS,
        n_fft=N_FFT, return_attention_mask=True,
    )
    return Qwen2AudioProcessor(
        feature_extractor=feature_extractor, tokenizer=build_fast_tokenizer(ranks_data), chat_template=CHAT_TEMPLATE
    )


def _make_tokenizer_config_portable(out_dir: Path) -> None:
    """Let environments still on transformers 4 load the tokenizer too; transformers 5 reads both forms.

    transformers 5 saves its class name `TokenizersBackend`, which transformers 4 does not know, and the audio tokens
    as top-level `*_token` keys, which transformers 4 ignores; `PreTrainedTokenizerFast` and an `extra_special_tokens`
    dict mean the same to both versions.
    """
    config_file = out_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # an alias in transformers 5, so not taken from __name__
    config["extra_special_tokens"] = {name: config.pop(name) for name in AUDIO_TOKEN_ATTRIBUTES}
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_processor_files(out_dir: Path, tokenizer_file: Path, n_mels: int = N_MELS) -> None:
    """Write tokenizer, feature-extractor, processor and chat-template files into `out_dir`.

    `tokenizer_file` is the released `qwen.tiktoken` (checked against its SHA-256 before use).
    """
    processor = build_processor(resolve_tokenizer_file(tokenizer_file).read_bytes(), n_mels)
    processor.save_pretrained(out_dir)
    _make_tokenizer_config_portable(Path(out_dir))
    # transformers 5 nests the feature extractor in processor_config.json (and prefers it there); transformers 4
    # reads it from preprocessor_config.json only.
    processor.feature_extractor.save_pretrained(out_dir)
