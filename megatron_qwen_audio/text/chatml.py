"""ChatML conversations (SFT `chat` with audio, pure-text `text`) -> token ids + labels, as Qwen-Audio-Chat sees them.

Tokenisation follows the released `make_context`: each turn is `<|im_start|>` + encode(role) + encode("\\n") +
encode(content) + `<|im_end|>`, turns joined by encode("\\n"), and a default system turn
"You are a helpful assistant." when the conversation has none. Audio items of a user turn are written as the released
`from_list_format` does: `Audio N:<audio>..</audio>\\n` (N counts audios across the whole conversation), and the text
between audio spans is encoded as one piece, exactly where the released tokenizer splits at `<audio>`/`</audio>`.

Only assistant replies are trained: their content and the closing `<|im_end|>`, not the `<|im_start|>assistant\\n`
header, not the newline that joins turns.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from megatron_qwen_audio.text.sequence_builder import SequenceBuilder, TagFormatError, TaggedSequence
from megatron_qwen_audio.text.special_tokens import IM_END, IM_START
from megatron_qwen_audio.text.tokenizer import TextTokenizer

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Turn:
    """One message, its content as text pieces (str) and audio references (int: 0-based clip index) in order."""

    role: str
    pieces: list[str | int]


ITEM_FORMAT = '{"text": string} or {"audio": path}'


def _content_pieces(content: object, field: str, role: str, first_clip: int, allow_audio: bool) -> list[str | int]:
    """Parse a message's content; adjacent text (including the `Audio N:` labels) is merged into one piece."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise TagFormatError(f"{field}: expected a string or a list of items, each {ITEM_FORMAT}")
    pieces: list[str | int] = []
    text = ""
    clip = first_clip
    for index, item in enumerate(content):
        item_field = f"{field}[{index}]"
        if not isinstance(item, Mapping) or len(item) != 1 or not isinstance(next(iter(item.values())), str):
            raise TagFormatError(f"{item_field}: expected {ITEM_FORMAT}, got {item!r}")
        if "text" in item:
            text += item["text"]
        elif "audio" in item:
            if not allow_audio:
                raise TagFormatError(f"{item_field}: an audio item in a pure-text sample; use task chat for audio")
            if role != "user":
                raise TagFormatError(f"{item_field}: audio is only allowed in user turns, not {role}")
            pieces += [text + f"Audio {clip + 1}:", clip]
            text = "\n"
            clip += 1
        else:
            raise TagFormatError(f"{item_field}: expected {ITEM_FORMAT}, got {item!r}")
    return pieces + [text]


def parse_conversation(sample: Mapping, allow_audio: bool) -> list[Turn]:
    """Validate `sample["messages"]` and return its turns, the default system turn first when none is given."""
    messages = sample.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TagFormatError("messages: missing or empty; give [{\"role\": ..., \"content\": ...}, ...]")
    turns: list[Turn] = []
    clips = 0
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise TagFormatError(f"{field}: expected {{\"role\": ..., \"content\": ...}}, got {message!r}")
        role = message.get("role")
        if role not in ROLES:
            raise TagFormatError(f"{field}.role: unknown role {role!r}; use one of {', '.join(ROLES)}")
        if role == "system" and index > 0:
            raise TagFormatError(f"{field}.role: a system turn may only come first")
        pieces = _content_pieces(message.get("content"), f"{field}.content", role, clips, allow_audio)
        clips += sum(isinstance(piece, int) for piece in pieces)
        if role != "system" and not any(isinstance(p, int) or p.strip() for p in pieces):
            raise TagFormatError(f"{field}.content: empty {role} turn; give its text")
        turns.append(Turn(role, pieces))
    if not any(turn.role == "assistant" for turn in turns):
        raise TagFormatError("messages: no assistant turn, so nothing to train on; add the assistant's reply")
    if turns[0].role != "system":
        turns.insert(0, Turn("system", [DEFAULT_SYSTEM_PROMPT]))
    return turns


def build_chatml_sequence(
    sample: Mapping, audio_frames: Sequence[int], tokenizer: TextTokenizer, allow_audio: bool
) -> TaggedSequence:
    """Token ids and labels of a `chat` (allow_audio) or `text` conversation; clip i fills the i-th audio item."""
    turns = parse_conversation(sample, allow_audio)
    audio_items = sum(isinstance(piece, int) for turn in turns for piece in turn.pieces)
    if audio_items != len(audio_frames):
        raise TagFormatError(f"audio: the conversation has {audio_items} audio items but the sample has "
                             f"{len(audio_frames)} clips")
    newline = tokenizer.encode("\n")
    builder = SequenceBuilder(tokenizer)
    for index, turn in enumerate(turns):
        if index:
            builder.prompt(newline)
        builder.prompt_tokens(IM_START)
        builder.prompt(tokenizer.encode(turn.role) + newline)
        if turn.role == "assistant":
            builder.target(tokenizer.encode("".join(turn.pieces)))  # assistant turns hold text only
            builder.target_tokens(IM_END)
            continue
        for piece in turn.pieces:
            if isinstance(piece, int):
                builder.audio(audio_frames[piece])
            else:
                builder.prompt(tokenizer.encode(piece))
        builder.prompt_tokens(IM_END)
    return builder.build()
