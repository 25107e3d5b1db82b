"""What `mqa-make-qa` asks the language model for one manifest row (or a few, for a multi-audio conversation): each
row's label in words and its label kind, and the chat messages (instructions, hand-written demonstrations, labels).

Kinds group rows whose labels read alike, so one set of demonstrations (data_prep/qa_demonstrations.json) serves
them: captions; speech (a transcript, and the translation of a translation row); sound events and scenes; emotion;
vocal sounds; speaker attributes; music. Keyword rows pick their kind by output instruction. Multi-audio
conversations (several clips, numbered Audio 1, Audio 2, ...) have demonstrations of their own, whatever the clips'
kinds. A label is categorical (keyword rows: the answer must name one of its values) or free text (the answer must
share a content word with it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEMONSTRATIONS_FILE = Path(__file__).with_name("qa_demonstrations.json")
KEYWORD_KINDS = {
    "event": "sound_event", "audioset_ontology": "sound_event", "scene": "sound_event",
    "emotion_recognition": "emotion", "vocal_classification": "vocal", "speaker_meta": "speaker",
    "note_analysis": "music", "music_description": "music",
}
KEYWORD_LABELS = {
    "sound_event": "Sound events", "emotion": "Speaker emotion", "vocal": "Vocal sound", "speaker": "Speaker",
}
MUSIC_LABELS = {"note_analysis": "Musical note", "music_description": "Instrument"}
SYSTEM = ("You write training data for an audio-language model. Given the label of an audio clip, write one "
          "question that a person listening to the clip could answer, and its answer, which must agree with the "
          "label and mention what the label says. Do not mention the label, a transcript or a file. Reply with only "
          'a JSON object: {"question": "...", "answer": "..."}')

SYSTEM_SEVERAL = ("You write training data for an audio-language model. Given the labels of several audio clips, "
                  "numbered as the conversation will show them (Audio 1, Audio 2, ...), write one question that a "
                  "person listening to all of them could answer, comparing them or asking about one by its number, "
                  "and its answer, which must agree with the labels and mention what they say. Do not mention labels, "
                  'transcripts or files. Reply with only a JSON object: {"question": "...", "answer": "..."}')
SEVERAL_KIND = "several"  # the demonstrations of multi-audio conversations


class NotAskable(ValueError):
    """The row has no label to ask about (the message says why)."""


@dataclass(frozen=True)
class Label:
    kind: str  # a key of the demonstrations
    text: str  # the label as the prompt shows it
    values: tuple[str, ...]  # categorical labels: the values the answer must name one of; free text: ()
    free_text: str  # free-text labels: the text an answer must share a content word with; categorical: ""


def row_label(row: dict) -> Label:
    """The label of a manifest row, or NotAskable for rows without one (lid, qa, chat, text, or an empty label)."""
    task, text = row.get("task"), row.get("text")
    if task in ("lid", "qa", "chat", "text"):
        raise NotAskable(f"task {task} has no label to ask about")
    if not isinstance(text, str) or not text.strip():
        raise NotAskable("the row has no label text")
    if task == "caption":
        return Label("caption", text, (), text)
    if task == "transcribe":
        return Label("speech", f"Transcript ({row.get('audio_lang')}): {text}", (), text)
    if task == "translate":
        return Label("speech", f"Speech ({row.get('audio_lang')}), translated ({row.get('text_lang')}): {text}", (),
                     text)
    kind = KEYWORD_KINDS.get(row.get("instruction", ""))
    if task != "keyword" or kind is None:
        raise NotAskable(f"task {task} with instruction {row.get('instruction')!r} has no demonstrations")
    heading = MUSIC_LABELS.get(row["instruction"]) or KEYWORD_LABELS[kind]
    values = tuple(value.strip() for value in text.split(",") if value.strip())
    return Label(kind, f"{heading}: {text}", values, "")


@cache
def demonstrations() -> dict[str, list[dict]]:
    with open(DEMONSTRATIONS_FILE, encoding="utf-8") as handle:
        return {kind: examples for kind, examples in json.load(handle).items() if not kind.startswith("_")}


def chat_messages(labels: list[Label]) -> list[dict[str, str]]:
    """System instructions, demonstrations as earlier turns, then the labels: for one clip its kind's
    demonstrations; for several (a multi-audio conversation) the comparison demonstrations."""
    if len(labels) == 1:
        messages = [{"role": "system", "content": SYSTEM}]
        examples = [([example["label"]], example) for example in demonstrations()[labels[0].kind]]
    else:
        messages = [{"role": "system", "content": SYSTEM_SEVERAL}]
        examples = [(example["labels"], example) for example in demonstrations()[SEVERAL_KIND]]
    for example_labels, example in examples:
        messages.append({"role": "user", "content": labels_prompt(example_labels)})
        messages.append({"role": "assistant", "content": json.dumps(
            {"question": example["question"], "answer": example["answer"]}, ensure_ascii=False)})
    messages.append({"role": "user", "content": labels_prompt([label.text for label in labels])})
    return messages


def labels_prompt(texts: list[str]) -> str:
    """`Label: ...` for one clip; `Audio 1 label: ...` lines for several, numbered as the conversation shows them."""
    if len(texts) == 1:
        return f"Label: {texts[0]}"
    return "\n".join(f"Audio {number} label: {text}" for number, text in enumerate(texts, start=1))
