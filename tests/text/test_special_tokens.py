"""The shipped special-token table and the tag helpers, checked against the released layout."""
import pytest

from megatron_qwen_audio.text.special_tokens import (
    AUDIO_LANGUAGES,
    OUTPUT_INSTRUCTIONS,
    TEXT_LANGUAGES,
    audio_language_token,
    base_vocab_size,
    output_instruction_token,
    padded_vocab_size,
    special_tokens,
    split_on_special_tokens,
    text_language_token,
    timestamp_token,
)


def test_table_is_the_released_contiguous_layout():
    table = special_tokens()
    assert len(table) == 3522
    assert base_vocab_size() == 151_643 and padded_vocab_size() == 155_947
    assert sorted(table.values()) == list(range(151_643, 155_165))
    released = {
        "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|extra_204|>": 151850,
        "[[[AUDIO:modality]]]": 151851, "<|startoftranscript|>": 151852, "<|startofanalysis|>": 151853,
        "<|translate|>": 151854, "<|transcribe|>": 151855, "<|caption|>": 151856, "<|keyword|>": 151857,
        "<|unknown|>": 151858, "<|en|>": 151859, "<|it|>": 151866, "<|zh_tr|>": 151867, "<|notimestamps|>": 151868,
        "<|timestamps|>": 151870, "<|0.00|>": 151871, "<|30.00|>": 154871, "<audio>": 155163, "</audio>": 155164,
    }
    assert {name: table[name] for name in released} == released


def test_every_timestamp_token_is_in_the_table_in_order():
    table = special_tokens()
    assert [table[timestamp_token(step / 100)] for step in range(3001)] == list(range(151_871, 154_872))


@pytest.mark.parametrize("seconds, token", [
    (0.0, "<|0.00|>"), (0.004, "<|0.00|>"), (0.006, "<|0.01|>"), (12.344, "<|12.34|>"), (12.346, "<|12.35|>"),
    (9.995001, "<|10.00|>"), (30, "<|30.00|>"), (30.004, "<|30.00|>"),
])
def test_timestamp_rounds_to_the_nearest_hundredth(seconds, token):
    assert timestamp_token(seconds) == token


@pytest.mark.parametrize("seconds", [-0.006, 30.006, float("nan"), float("inf")])
def test_timestamp_outside_the_table_is_an_error(seconds):
    with pytest.raises(ValueError, match="outside the timestamp tokens"):
        timestamp_token(seconds)


def test_language_and_instruction_tags_exist_in_the_table():
    table = special_tokens()
    assert [table[audio_language_token(code)] for code in AUDIO_LANGUAGES] == [
        151859, 151860, 151861, 151862, 151863, 151864, 151865, 151866, 151858]
    assert table[text_language_token("zh_tr")] == 151867
    assert set(TEXT_LANGUAGES) == set(AUDIO_LANGUAGES) | {"zh_tr"}
    assert table[output_instruction_token("wo_itn")] == 154877
    assert all(output_instruction_token(name) in table for name in OUTPUT_INSTRUCTIONS)


@pytest.mark.parametrize("helper, code", [
    (audio_language_token, "zh_tr"), (audio_language_token, "EN"), (text_language_token, "pt"),
    (output_instruction_token, "pitch"), (output_instruction_token, "<|itn|>"),
])
def test_unknown_tag_values_are_errors_listing_the_choices(helper, code):
    with pytest.raises(ValueError, match="use one of"):
        helper(code)


def test_split_on_special_tokens_reads_aliases_and_keeps_the_text_between():
    text = "a<|startoftranscripts|>b <|en|><|en|>\n<|analysis|>"
    assert list(split_on_special_tokens(text)) == [
        ("a", False), ("<|startoftranscripts|>", True), ("b ", False), ("<|en|>", True), ("<|en|>", True),
        ("\n", False), ("<|analysis|>", True),
    ]
    assert list(split_on_special_tokens("<|not_a_token|>")) == [("<|not_a_token|>", False)]
