"""Which language-model replies become QA samples: shape, emptiness, refusals, agreement with the label."""
import pytest

from data_prep.qa_prompts import NotAskable, chat_messages, row_label
from data_prep.qa_validation import checked_pair

CAPTION = row_label({"task": "caption", "text": "A dog barks while cars pass."})
EVENTS = row_label({"task": "keyword", "instruction": "audioset_ontology", "text": "bark, dog, domestic animals"})
CHINESE = row_label({"task": "transcribe", "audio_lang": "zh", "text": "今天天气很好"})


def reply(question: str, answer: str) -> str:
    return f'{{"question": "{question}", "answer": "{answer}"}}'


@pytest.mark.parametrize("label, text, outcome", [
    (CAPTION, reply("What barks?", "A dog."), ("What barks?", "A dog.")),
    (CAPTION, reply("What is heard?", "Traffic passing by."), "the answer shares no content word with the label"),
    (CAPTION, reply("What is heard?", "The sound of cars."), ("What is heard?", "The sound of cars.")),
    (CAPTION, "[1, 2]", "the reply is not a JSON object"),
    (CAPTION, '{"question": "Q?"}', "the reply lacks string fields question and answer"),
    (CAPTION, reply(" ", "A dog."), "empty question or answer"),
    (CAPTION, reply("What barks?", "As an AI, I can't hear the dog."), "the reply is a refusal"),
    (EVENTS, reply("Which animal?", "A dog, barking."), ("Which animal?", "A dog, barking.")),
    (EVENTS, reply("Which animal?", "A doggy."), "the answer names none of the label's values "
                                                 "(bark, dog, domestic animals)"),
    (CHINESE, reply("天气怎么样？", "天气很好。"), ("天气怎么样？", "天气很好。")),  # characters count as words
])
def test_replies_are_kept_or_rejected_with_the_reason(label, text, outcome):
    assert checked_pair(text, [label]) == outcome


def test_a_multi_audio_answer_must_agree_with_one_of_the_clips():
    assert checked_pair(reply("Which one has a dog?", "The second: a dog."), [CHINESE, EVENTS]) == (
        "Which one has a dog?", "The second: a dog.")
    assert checked_pair(reply("Which one?", "The first, a cat."), [CAPTION, EVENTS]) == (
        "the answer agrees with none of the clips' labels")


def test_rows_without_a_label_kind_are_not_askable_and_others_get_their_demonstrations():
    with pytest.raises(NotAskable, match="task lid has no label to ask about"):
        row_label({"task": "lid", "audio_lang": "en"})
    with pytest.raises(NotAskable, match="instruction 'speech_edit' has no demonstrations"):
        row_label({"task": "keyword", "instruction": "speech_edit", "text": "x"})
    messages = chat_messages([EVENTS])
    assert messages[0]["role"] == "system" and messages[-1] == {"role": "user", "content": "Label: Sound events: "
                                                                                          "bark, dog, domestic animals"}
    assert [message["role"] for message in messages[1:-1]] == ["user", "assistant"] * 2
    several = chat_messages([CAPTION, EVENTS])
    assert several[-1]["content"] == ("Audio 1 label: A dog barks while cars pass.\n"
                                      "Audio 2 label: Sound events: bark, dog, domestic animals")
    assert several[1]["content"].startswith("Audio 1 label: ") and "several audio clips" in several[0]["content"]
