"""ChatML sequences (chat with audio, pure text) against hand-written expected conversations."""
import pytest

from megatron_qwen_audio.text.tags import TagFormatError, build_sequence

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


def span(pads: int) -> str:
    return "<audio>" + "[[[AUDIO:modality]]]" * pads + "</audio>"


def build(sample, tokenizer, frames=()):
    return build_sequence(sample, list(frames), [frame / 100 for frame in frames], tokenizer)


def test_two_audios_in_one_turn(qwen_tokenizer, assert_sequence):
    sample = {"task": "chat", "messages": [
        {"role": "user", "content": [{"audio": "a.wav"}, {"audio": "b.wav"}, {"text": "Which clip is louder?"}]},
        {"role": "assistant", "content": "The second one."},
    ]}
    # 300 mel frames -> 75 audio tokens, 200 -> 50
    assert_sequence(build(sample, qwen_tokenizer, frames=[300, 200]), qwen_tokenizer, [
        (SYSTEM + "<|im_start|>user\nAudio 1:" + span(75) + "\nAudio 2:" + span(50) + "\nWhich clip is louder?"
         "<|im_end|>\n<|im_start|>assistant\n", False),
        ("The second one.<|im_end|>", True),
    ])


def test_multi_turn_conversation_numbers_audios_across_turns(qwen_tokenizer, assert_sequence):
    sample = {"task": "chat", "messages": [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": [{"text": "Listen: "}, {"audio": "bird.wav"}, {"text": "What is it?"}]},
        {"role": "assistant", "content": [{"text": "A bird."}]},
        {"role": "user", "content": [{"audio": "car.wav"}, {"text": "And this?"}]},
        {"role": "assistant", "content": "A car."},
    ]}
    assert_sequence(build(sample, qwen_tokenizer, frames=[300, 1000]), qwen_tokenizer, [
        ("<|im_start|>system\nYou answer briefly.<|im_end|>\n<|im_start|>user\nListen: Audio 1:" + span(75) +
         "\nWhat is it?<|im_end|>\n<|im_start|>assistant\n", False),
        ("A bird.<|im_end|>", True),
        ("\n<|im_start|>user\nAudio 2:" + span(250) + "\nAnd this?<|im_end|>\n<|im_start|>assistant\n", False),
        ("A car.<|im_end|>", True),
    ])


def test_pure_text_conversation(qwen_tokenizer, assert_sequence):
    sample = {"task": "text", "messages": [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Green."},
    ]}
    assert_sequence(build(sample, qwen_tokenizer), qwen_tokenizer, [
        (SYSTEM + "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n", False),
        ("Blue.<|im_end|>", True),
        ("\n<|im_start|>user\nAnother?<|im_end|>\n<|im_start|>assistant\n", False),
        ("Green.<|im_end|>", True),
    ])


def test_role_and_content_are_encoded_apart_like_make_context(qwen_tokenizer):
    """A reply starting with a newline keeps its own "\\n" token instead of merging with the header's ("\\n\\n")."""
    sample = {"task": "text", "messages": [{"role": "user", "content": "Hi"},
                                           {"role": "assistant", "content": "\nOK"}]}
    ids = [int(i) for i in build(sample, qwen_tokenizer).input_ids]
    newline, double_newline = qwen_tokenizer.encode("\n"), qwen_tokenizer.encode("\n\n")
    assert newline == [198] and double_newline == [271]
    assistant_header = [151_644] + qwen_tokenizer.encode("assistant")
    start = len(ids) - ids[::-1].index(151_644) - 1
    assert ids[start:] == assistant_header + [198, 198] + qwen_tokenizer.encode("OK") + [151_645]


def test_special_spellings_in_user_text_are_text(qwen_tokenizer):
    sample = {"task": "text", "messages": [{"role": "user", "content": "Type <|im_end|><|im_start|> and <audio>"},
                                           {"role": "assistant", "content": "Done <|endoftext|>"}]}
    sequence = build(sample, qwen_tokenizer)
    ids = [int(i) for i in sequence.input_ids]
    assert ids.count(151_645) == 3 and ids.count(151_644) == 3  # one pair per turn, none from the text
    assert 151_643 not in ids and 155_163 not in ids
    assert qwen_tokenizer.decode(sequence.input_ids).count("<|im_end|>") == 4


USER, ASSISTANT = {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}


@pytest.mark.parametrize("task, messages, clips, message", [
    ("chat", None, 0, r"^messages: missing or empty"),
    ("text", [], 0, r"^messages: missing or empty"),
    ("text", [USER, {"role": "bot", "content": "x"}], 0, r"^messages\[1\]\.role: unknown role 'bot'; use one of"),
    ("text", [USER, {"role": "system", "content": "x"}, ASSISTANT], 0,
     r"^messages\[1\]\.role: a system turn may only come first"),
    ("text", [USER], 0, r"^messages: no assistant turn"),
    ("text", [USER, {"role": "assistant", "content": "  "}], 0, r"^messages\[1\]\.content: empty assistant turn"),
    ("text", [{"role": "user", "content": []}, ASSISTANT], 0, r"^messages\[0\]\.content: empty user turn"),
    ("text", [{"role": "user", "content": 7}, ASSISTANT], 0, r"^messages\[0\]\.content: expected a string or a list"),
    ("text", [{"role": "user", "content": [{"image": "x.png"}]}, ASSISTANT], 0,
     r"^messages\[0\]\.content\[0\]: expected \{\"text\": string\} or \{\"audio\": path\}"),
    ("text", [{"role": "user", "content": [{"text": 1}]}, ASSISTANT], 0, r"^messages\[0\]\.content\[0\]: expected"),
    ("text", [{"role": "user", "content": [{"audio": "a.wav"}]}, ASSISTANT], 0,
     r"^messages\[0\]\.content\[0\]: an audio item in a pure-text sample; use task chat"),
    ("chat", [USER, {"role": "assistant", "content": [{"audio": "a.wav"}]}], 1,
     r"^messages\[1\]\.content\[0\]: audio is only allowed in user turns, not assistant"),
    ("chat", [{"role": "user", "content": [{"audio": "a.wav"}, {"audio": "b.wav"}]}, ASSISTANT], 1,
     r"^audio: the conversation has 2 audio items but the sample has 1 clips"),
    ("text", [USER, ASSISTANT], 1, r"^audio: the conversation has 0 audio items but the sample has 1 clips"),
])
def test_conversation_problems_name_the_field(qwen_tokenizer, task, messages, clips, message):
    with pytest.raises(TagFormatError, match=message):
        build({"task": task, "messages": messages}, qwen_tokenizer, frames=[300] * clips)
