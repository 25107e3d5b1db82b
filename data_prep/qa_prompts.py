"""What `mqa-make-qa` asks the language model for one manifest row: the row's label in words, its label kind, and the
chat messages (instructions, the kind's hand-written demonstrations, the row).

Kinds group rows whose labels read alike, so one set of demonstrations (data_prep/qa_demonstrations.json) serves
them: captions; speech (a transcript, and the translation of a translation row); sound events and scenes; emotion;
vocal sounds; speaker attributes; music. Keyword rows pick their kind by output instruction. A label is categorical
(keyword rows: the answer must name one of its values) or free text (the answer must share a content word with it).
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


def chat_messages(label: Label) -> list[dict[str, str]]:
    """System instructions, the kind's demonstrations as earlier turns, then the row's label."""
    messages = [{"role": "system", "content": SYSTEM}]
    for example in demonstrations()[label.kind]:
        messages.append({"role": "user", "content": f"Label: {example['label']}"})
        messages.append({"role": "assistant", "content": json.dumps(
            {"question": example["question"], "answer": example["answer"]}, ensure_ascii=False)})
    messages.append({"role": "user", "content": f"Label: {label.text}"})
    return messages
