"""Held-out samples -> prompts -> greedy hypotheses, one per sample, with their references and tags.

A shard sample holds the whole training sequence: the prompt (tags, audio spans, ChatML turns) and the target, which
`labels` marks. The prompt is every token before the first target token; the reference is that first run of target
tokens (the first assistant turn of a conversation). Decoding stops at `<|endoftext|>` / `<|im_end|>`; a target
without an end token (language identification: just the language tag) is decoded to its own length.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from megatron_qwen_audio.data.collate import audio_spans
from megatron_qwen_audio.data.sample_decoding import DecodedSample, decode_sample
from megatron_qwen_audio.data.shard_format import IGNORE_INDEX, SampleEntry
from megatron_qwen_audio.data.shard_reader import read_shard
from megatron_qwen_audio.data.shard_sets import ShardSet
from megatron_qwen_audio.inference.greedy import Prompt, greedy_decode_batch
from megatron_qwen_audio.text.tokenizer import TextTokenizer

END_TOKENS = ("<|endoftext|>", "<|im_end|>")


@dataclass
class DecodedRecord:
    """One held-out sample's outcome (a line of the per-sample JSONL)."""

    key: str
    task: str
    audio_lang: str | None
    text_lang: str | None
    prompt_tokens: int
    reference: str
    hypothesis: str
    reference_ids: list[int]
    hypothesis_ids: list[int]

    def to_dict(self) -> dict:
        return asdict(self)


def held_out_samples(sets: Sequence[ShardSet], limit: int | None = None
                     ) -> Iterator[tuple[SampleEntry, DecodedSample]]:
    """Every sample of the sets in index order (at most `limit`), with its index entry (task and languages)."""
    count = 0
    for shard_set in sets:
        for shard_id, shard in enumerate(shard_set.index.shards):
            entries = {entry.key: entry for entry in shard.samples}
            for key, members in read_shard(shard_set, shard_id, entries):
                if limit is not None and count >= limit:
                    return
                yield entries[key], decode_sample(members, entries[key], f"{shard_set.name}/{key}")
                count += 1


def split_prompt(sample: DecodedSample) -> tuple[np.ndarray, np.ndarray]:
    """(prompt tokens, reference target tokens) of a sample: before the first target token, and its first run."""
    target = np.flatnonzero(sample.labels != IGNORE_INDEX)
    if len(target) == 0:
        raise ValueError(f"{sample.key}: no target tokens; nothing to evaluate")
    start = int(target[0])
    gaps = np.flatnonzero(np.diff(target) != 1)
    end = int(target[gaps[0]]) + 1 if len(gaps) else int(target[-1]) + 1
    return sample.tokens[:start], sample.tokens[start:end]


def decoding_prompt(sample: DecodedSample, prompt: np.ndarray, device: torch.device) -> Prompt:
    """What greedy decoding takes for `prompt` (the sample's tokens before its target: `split_prompt`): its tokens
    and every clip of the sample, with the span each clip fills, on `device`."""
    clips = [torch.from_numpy(mel) for mel in sample.mels]  # the encoder casts to its weights' dtype
    tokens = torch.from_numpy(prompt.astype(np.int64)).to(device)
    if not clips:
        return Prompt(tokens)
    frames = [clip.shape[1] for clip in clips]
    spans = audio_spans(prompt, frames, sample.key)  # every clip is in the prompt
    return Prompt(tokens, torch.cat(clips, dim=1).to(device), torch.tensor(frames),
                  torch.tensor([(0, start, end) for start, end in spans]).reshape(-1, 3))


class HeldOutDecoder:
    """Greedy-decodes held-out samples with a TP=1, PP=1 model on `device`, a batch of them at a time."""

    def __init__(self, model, tokenizer: TextTokenizer, device: torch.device, max_new_tokens: int) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.max_new_tokens = max_new_tokens
        self.end_ids = {tokenizer.token_id(name) for name in END_TOKENS}

    def _text(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([token for token in ids if token not in self.end_ids]).strip()

    def _budget(self, reference: np.ndarray) -> int:
        """New tokens a hypothesis may take: twice the reference and 8 more when the reference ends with a stop token,
        else (language identification: no end token) exactly the reference's length."""
        if int(reference[-1]) in self.end_ids:
            return min(self.max_new_tokens, 2 * len(reference) + 8)
        return len(reference)

    def _decode_batch(self, items: Sequence[tuple[SampleEntry, DecodedSample]],
                      splits: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[DecodedRecord]:
        """The records of `items` (with their `split_prompt`s), in order, decoded together (each as it would be alone;
        inference/greedy.py)."""
        prompts = [decoding_prompt(sample, prompt, self.device) for (_, sample), (prompt, _) in zip(items, splits)]
        hypotheses = greedy_decode_batch(self.model, prompts, [self._budget(reference) for _, reference in splits],
                                         stop_ids=self.end_ids)
        records = []
        for (entry, sample), (prompt, reference), hypothesis in zip(items, splits, hypotheses):
            reference_ids = [int(token) for token in reference]
            records.append(DecodedRecord(
                key=sample.key, task=entry.task, audio_lang=entry.audio_lang, text_lang=entry.text_lang,
                prompt_tokens=len(prompt), reference=self._text(reference_ids), hypothesis=self._text(hypothesis),
                reference_ids=reference_ids, hypothesis_ids=hypothesis))
        return records

    def decode_in_windows(self, items: Sequence[tuple[SampleEntry, DecodedSample]], batch_size: int,
                          window_batches: int = 8) -> Iterator[list[DecodedRecord]]:
        """The records of `items` in order, `window_batches` x `batch_size` of them at a time. A batch runs until its
        longest row is done, so within a window the samples are batched in order of their token budget (1 for
        language identification, up to 2 x the reference + 8 for a transcript), then of their prompt length."""
        window = batch_size * window_batches
        for start in range(0, len(items), window):
            chunk = items[start: start + window]
            splits = [split_prompt(sample) for _, sample in chunk]
            order = sorted(range(len(chunk)), key=lambda i: (self._budget(splits[i][1]), len(splits[i][0])))
            records: list[DecodedRecord | None] = [None] * len(chunk)
            for first in range(0, len(order), batch_size):
                indices = order[first: first + batch_size]
                decoded = self._decode_batch([chunk[i] for i in indices], [splits[i] for i in indices])
                for index, record in zip(indices, decoded):
                    records[index] = record
            yield records
