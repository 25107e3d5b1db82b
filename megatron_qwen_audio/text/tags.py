"""Manifest row -> Qwen-Audio tag sequence (token ids + labels) for every task.

Pretraining tasks use the released multi-task tag hierarchy, in this order: transcription tag
(`<|startoftranscript|>` for speech-to-text, `<|startofanalysis|>` for analysis), audio language, task, text
language, timestamps tag, output instruction. The formats follow the released Qwen-Audio evaluation prompts:

- transcribe: `<audio>..</audio><|startoftranscript|><|AL|><|transcribe|><|TL|><|notimestamps|><|wo_itn|>` TEXT
  `<|endoftext|>` (`instruction` replaces `wo_itn`, e.g. `itn`).
- transcribe with word timestamps (SRWT): the prompt ends `<|timestamps|>` (an `instruction`, when given, follows it);
  the target is `<|t0|>w1<|t1|>w2 .. wN<|tN|><|endoftext|>`, N + 1 stamps for N words. t0 is the first word's start,
  tN the last word's end, and the stamp between two words is the middle of the pause between them (their shared
  time when they touch), so neither neighbour's boundary is off by more than half the pause. Word strings are used
  exactly as given (no spaces are added).
- translate: `<|startoftranscript|><|AL|><|translate|><|TL|><|notimestamps|><|itn|>` TRANSLATION `<|endoftext|>`.
- caption: `<|startofanalysis|><|unknown|><|caption|><|TL|><|notimestamps|><|caption_clotho|>` CAPTION
  `<|endoftext|>` (audio_lang defaults to unknown; `instruction` picks caption_audiocaps, caption_plain, ...).
- keyword (classification: scenes, sound events, emotion, vocal sounds, ...):
  `<|startofanalysis|><|AL|><|keyword|><|TL|><|notimestamps|><|INSTRUCTION|>` LABEL `<|endoftext|>`, as the released
  scene / emotion / vocal-sound evaluations prompt (e.g. `<|unknown|>..<|scene|>`, `<|en|>..<|emotion_recognition|>`);
  the instruction is required, audio_lang defaults to unknown.
- qa: `<|startofanalysis|><|AL|><|question|>QUESTION<|answer|>` ANSWER `<|endoftext|>`.
- lid: the prompt ends at `<|startoftranscript|>`; the target is the audio-language tag alone, without an end token,
  because at inference the model goes on with the rest of the hierarchy after it.
- chat / text: ChatML (chatml.py).

Only the target (and its end token) is trained; the prompt and the audio span are not.

Text in place of the audio: a tag-format row may give `audio_text` (the clip's transcript) instead of a clip. Its
tokens stand where the audio span would be and are not trained, the tags and target are as above. A text-only stage
uses such rows to teach a decoder built from scratch what the tags mean and to read the content before the tags (the
language tag's output rows, the copy and translation of what precedes the tags), so that a later stage, with that
decoder frozen, only has to teach the encoder to put there what the decoder already reads. Rows with word timestamps
need the clip's duration and cannot use it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from megatron_qwen_audio.data.shard_format import IGNORE_INDEX
from megatron_qwen_audio.text.chatml import build_chatml_sequence
from megatron_qwen_audio.text.sequence_builder import (
    SequenceBuilder,
    TagFormatError,
    TaggedSequence,
    optional_text,
    required_text,
)
from megatron_qwen_audio.text.special_tokens import (
    AUDIO_END,
    AUDIO_PAD,
    AUDIO_START,
    ENDOFTEXT,
    IM_START,
    audio_language_token,
    output_instruction_token,
    special_tokens,
    text_language_token,
    timestamp_token,
)
from megatron_qwen_audio.text.tokenizer import TextTokenizer

STARTOFTRANSCRIPT = "<|startoftranscript|>"
STARTOFANALYSIS = "<|startofanalysis|>"
NOTIMESTAMPS = "<|notimestamps|>"
TIMESTAMPS = "<|timestamps|>"
QUESTION = "<|question|>"
ANSWER = "<|answer|>"

TASKS = ("transcribe", "translate", "caption", "keyword", "qa", "lid", "chat", "text")


@dataclass(frozen=True)
class HierarchyTask:
    """How one task fills the tag hierarchy; a None default means the manifest must give the field."""

    transcription_tag: str
    task_tag: str
    default_audio_lang: str | None
    default_instruction: str | None
    word_timestamps: bool = False  # whether `timestamps: true` (word-level) is supported


HIERARCHY_TASKS: Mapping[str, HierarchyTask] = {
    "transcribe": HierarchyTask(STARTOFTRANSCRIPT, "<|transcribe|>", None, "wo_itn", word_timestamps=True),
    "translate": HierarchyTask(STARTOFTRANSCRIPT, "<|translate|>", None, "itn"),
    "caption": HierarchyTask(STARTOFANALYSIS, "<|caption|>", "unknown", "caption_clotho"),
    "keyword": HierarchyTask(STARTOFANALYSIS, "<|keyword|>", "unknown", None),
}


def _tag_field(sample: Mapping, field: str, default: str | None, to_token: Callable[[str], str], purpose: str) -> str:
    """The tag token for `sample[field]` (or `default`), as a TagFormatError naming the field when it is invalid."""
    value = optional_text(sample, field)
    if value is None:
        value = default
    if value is None:
        raise TagFormatError(f"{field}: missing; give {purpose}")
    try:
        return to_token(value)
    except ValueError as error:
        raise TagFormatError(f"{field}: {error}") from None


def _audio_lang(sample: Mapping, default: str | None = None) -> str:
    return _tag_field(sample, "audio_lang", default, audio_language_token, "the spoken language (unknown: non-speech)")


def _text_lang(sample: Mapping) -> str:
    return _tag_field(sample, "text_lang", None, text_language_token, "the language of the target text")


def _instruction(sample: Mapping, default: str | None) -> str:
    return _tag_field(sample, "instruction", default, output_instruction_token, "an output instruction")


def _wants_timestamps(sample: Mapping) -> bool:
    value = sample.get("timestamps")
    if value is None:
        return False
    if not isinstance(value, bool):
        raise TagFormatError(f"timestamps: expected true or false, got {value!r}")
    return value


def _word_time(word: Mapping, field: str, key: str) -> float:
    value = word.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TagFormatError(f"{field}.{key}: expected a time in seconds, got {value!r}")
    return float(value)


def word_timestamp_target(words: object, clip_seconds: float, tokenizer: TextTokenizer) -> list[int]:
    """`<|t0|>w1<|t1|>..wN<|tN|>` for words [{word, start, end}, ...] (stamp choice: see the module docstring)."""
    if not isinstance(words, list) or not words:
        raise TagFormatError("words: timestamps requested but no words; give [{word, start, end}, ...] "
                             "or set timestamps to false")
    texts: list[str] = []
    spans: list[tuple[float, float]] = []
    previous_end = 0.0
    for index, word in enumerate(words):
        field = f"words[{index}]"
        if not isinstance(word, Mapping):
            raise TagFormatError(f"{field}: expected {{word, start, end}}, got {word!r}")
        text = required_text(word, "word", "the word's text", where=f"{field}.word")
        start, end = _word_time(word, field, "start"), _word_time(word, field, "end")
        if start < previous_end:
            what = "before 0" if index == 0 else f"before the previous word's end ({previous_end} s)"
            raise TagFormatError(f"{field}.start: {start} s is {what}; word times must increase within the clip")
        if end < start:
            raise TagFormatError(f"{field}.end: {end} s is before its start ({start} s); word times must increase")
        if end > clip_seconds:
            raise TagFormatError(f"{field}.end: {end} s is beyond the clip's {clip_seconds} s; "
                                 f"word times must lie within the clip")
        texts.append(text)
        spans.append((start, end))
        previous_end = end

    stamps = [spans[0][0]]
    stamps += [(left[1] + right[0]) / 2 for left, right in zip(spans, spans[1:])]
    stamps.append(spans[-1][1])
    try:
        stamp_ids = [tokenizer.token_id(timestamp_token(stamp)) for stamp in stamps]
    except ValueError as error:
        raise TagFormatError(f"words: {error}; split the clip into pieces of at most 30 s") from None
    ids = [stamp_ids[0]]
    for text, stamp_id in zip(texts, stamp_ids[1:]):
        ids += tokenizer.encode(text) + [stamp_id]
    return ids


def _hierarchy_sequence(task: HierarchyTask, sample: Mapping, clip_seconds: float, builder: SequenceBuilder) -> None:
    builder.prompt_tokens(task.transcription_tag, _audio_lang(sample, task.default_audio_lang), task.task_tag,
                          _text_lang(sample))
    if _wants_timestamps(sample):
        if not task.word_timestamps:
            raise TagFormatError(f"timestamps: word timestamps are only supported for task transcribe, "
                                 f"not {sample['task']}")
        builder.prompt_tokens(TIMESTAMPS)
        if sample.get("instruction") is not None:
            builder.prompt_tokens(_instruction(sample, None))
        builder.target(word_timestamp_target(sample.get("words"), clip_seconds, builder.tokenizer))
    else:
        builder.prompt_tokens(NOTIMESTAMPS, _instruction(sample, task.default_instruction))
        builder.target(builder.tokenizer.encode(required_text(sample, "text", "the target text")))
    builder.target_tokens(ENDOFTEXT)


def _qa_sequence(sample: Mapping, builder: SequenceBuilder) -> None:
    question = required_text(sample, "question", "the question about the audio")
    answer = required_text(sample, "answer", "the answer (the training target)")
    builder.prompt_tokens(STARTOFANALYSIS, _audio_lang(sample), QUESTION)
    builder.prompt(builder.tokenizer.encode(question))
    builder.prompt_tokens(ANSWER)
    builder.target(builder.tokenizer.encode(answer))
    builder.target_tokens(ENDOFTEXT)


def _lid_sequence(sample: Mapping, builder: SequenceBuilder) -> None:
    language = _audio_lang(sample)
    builder.prompt_tokens(STARTOFTRANSCRIPT)
    builder.target_tokens(language)


AUDIO_TEXT = "audio_text"  # the manifest field that stands in for a tag-format row's clip (module docstring)


def build_sequence(
    sample: Mapping, audio_frames: Sequence[int], audio_seconds: Sequence[float], tokenizer: TextTokenizer
) -> TaggedSequence:
    """Token ids and labels of one manifest row.

    `audio_frames` / `audio_seconds`: mel frames and duration of each decoded clip of the sample, in order (one clip
    for the pretraining tasks, one per audio item for chat, none for text). Raises TagFormatError for content that
    cannot be built; the sequence length limit is the shard builder's concern.
    """
    assert len(audio_frames) == len(audio_seconds), "one duration per clip"
    task = sample.get("task")
    if task not in TASKS:
        raise TagFormatError(f"task: unknown task {task!r}; use one of {', '.join(TASKS)}")
    if task in ("chat", "text"):
        if AUDIO_TEXT in sample:
            raise TagFormatError(f"{AUDIO_TEXT}: only the tag-format tasks take text in place of a clip, not {task}")
        return build_chatml_sequence(sample, audio_frames, tokenizer, allow_audio=task == "chat")

    builder = SequenceBuilder(tokenizer)
    if AUDIO_TEXT in sample:
        if audio_frames:
            raise TagFormatError(f"{AUDIO_TEXT}: the row also has a clip; give either audio or {AUDIO_TEXT}")
        if _wants_timestamps(sample):
            raise TagFormatError(f"{AUDIO_TEXT}: word timestamps need the clip; give audio instead")
        builder.prompt(tokenizer.encode(required_text(sample, AUDIO_TEXT, "the text in place of the audio")))
        clip_seconds = 0.0  # never read: only word timestamps use the duration
    elif len(audio_frames) != 1:
        raise TagFormatError(f"audio: task {task} takes exactly 1 clip (or {AUDIO_TEXT}), the sample has "
                             f"{len(audio_frames)}")
    else:
        builder.audio(audio_frames[0])
        clip_seconds = audio_seconds[0]
    if task in HIERARCHY_TASKS:
        _hierarchy_sequence(HIERARCHY_TASKS[task], sample, clip_seconds, builder)
    elif task == "qa":
        _qa_sequence(sample, builder)
    else:
        _lid_sequence(sample, builder)
    return builder.build()


CHATML_TAGS = "chatml"  # what prompt_tags says of a ChatML sequence: its prompt is turns, not a tag hierarchy


def prompt_tags(sequence: TaggedSequence) -> str:
    """The tags a sequence is conditioned on, as text: the special tokens of its prompt (untrained positions) other
    than the audio span's, in order, e.g. `<|startoftranscript|><|fr|><|translate|><|en|><|notimestamps|><|itn|>`;
    `chatml` for ChatML sequences. Shard indexes record it so a mixture's tag combinations can be counted."""
    names = _special_names()
    prompt_ids = sequence.input_ids[sequence.labels == IGNORE_INDEX].tolist()
    spelled = [names[token] for token in prompt_ids if token in names]
    if IM_START in spelled:
        return CHATML_TAGS
    return "".join(name for name in spelled if name not in (AUDIO_START, AUDIO_PAD, AUDIO_END))


@cache
def _special_names() -> dict[int, str]:
    return {token: name for name, token in special_tokens().items()}
