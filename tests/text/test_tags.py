"""Tag sequences of the pretraining tasks against hand-written expected strings (released eval-script formats)."""
import pytest

from megatron_qwen_audio.text.tags import TagFormatError, build_sequence, prompt_tags

CLIP_FRAMES, CLIP_PADS, CLIP_SECONDS = 300, 75, 3.0  # 300 mel frames -> 150 after the conv stem -> 75 pooled
SPAN = "<audio>" + "[[[AUDIO:modality]]]" * CLIP_PADS + "</audio>"


def build(sample, tokenizer, frames=(CLIP_FRAMES,), seconds=(CLIP_SECONDS,)):
    return build_sequence(sample, list(frames), list(seconds), tokenizer)


def test_transcribe(qwen_tokenizer, assert_sequence):
    sample = {"task": "transcribe", "audio_lang": "en", "text_lang": "en", "text": "Hello world."}
    sequence = build(sample, qwen_tokenizer)
    assert_sequence(sequence, qwen_tokenizer, [
        (SPAN + "<|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|>", False),
        ("Hello world.<|endoftext|>", True),
    ])
    assert sequence.input_ids[0] == 155_163 and sequence.input_ids[CLIP_PADS + 1] == 155_164
    assert set(sequence.input_ids[1:CLIP_PADS + 1]) == {151_851}


def test_transcribe_with_instruction_and_traditional_chinese_text(qwen_tokenizer, assert_sequence):
    sample = {"task": "transcribe", "audio_lang": "zh", "text_lang": "zh_tr", "instruction": "itn", "text": "你好"}
    assert_sequence(build(sample, qwen_tokenizer), qwen_tokenizer, [
        (SPAN + "<|startoftranscript|><|zh|><|transcribe|><|zh_tr|><|notimestamps|><|itn|>", False),
        ("你好<|endoftext|>", True),
    ])


def test_transcribe_with_word_timestamps(qwen_tokenizer, assert_sequence):
    words = [{"word": "Hello", "start": 0.12, "end": 0.5},  # pause 0.50..0.70 -> stamp 0.60
             {"word": " big", "start": 0.7, "end": 0.9},  # touches the next word -> 0.90
             {"word": " world", "start": 0.9, "end": 1.234}]
    sample = {"task": "transcribe", "audio_lang": "en", "text_lang": "en", "timestamps": True, "words": words}
    assert_sequence(build(sample, qwen_tokenizer), qwen_tokenizer, [
        (SPAN + "<|startoftranscript|><|en|><|transcribe|><|en|><|timestamps|>", False),
        ("<|0.12|>Hello<|0.60|> big<|0.90|> world<|1.23|><|endoftext|>", True),
    ])


def test_translate(qwen_tokenizer, assert_sequence):
    sample = {"task": "translate", "audio_lang": "fr", "text_lang": "en", "text": "Good morning."}
    assert_sequence(build(sample, qwen_tokenizer), qwen_tokenizer, [
        (SPAN + "<|startoftranscript|><|fr|><|translate|><|en|><|notimestamps|><|itn|>", False),
        ("Good morning.<|endoftext|>", True),
    ])


@pytest.mark.parametrize("extra, instruction", [({}, "caption_clotho"), ({"instruction": "caption_audiocaps"},
                                                                         "caption_audiocaps")])
def test_caption(qwen_tokenizer, extra, instruction, assert_sequence):
    sample = {"task": "caption", "text_lang": "en", "text": "A dog barks twice.", **extra}
    assert_sequence(build(sample, qwen_tokenizer), qwen_tokenizer, [
        (SPAN + f"<|startofanalysis|><|unknown|><|caption|><|en|><|notimestamps|><|{instruction}|>", False),
        ("A dog barks twice.<|endoftext|>", True),
    ])


@pytest.mark.parametrize("audio_lang, instruction, label", [
    ("en", "emotion_recognition", "happy"),  # as the released emotion evaluation prompts
    (None, "scene", "airport"),  # non-speech: audio language defaults to unknown, as the scene evaluation
    ("en", "vocal_classification", "Laughter"),
])
def test_keyword_classification(qwen_tokenizer, audio_lang, instruction, label, assert_sequence):
    sample = {"task": "keyword", "audio_lang": audio_lang, "text_lang": "en", "instruction": instruction,
              "text": label}
    assert_sequence(build(sample, qwen_tokenizer), qwen_tokenizer, [
        (SPAN + f"<|startofanalysis|><|{audio_lang or 'unknown'}|><|keyword|><|en|><|notimestamps|>"
                f"<|{instruction}|>", False),
        (f"{label}<|endoftext|>", True),
    ])


def test_qa(qwen_tokenizer, assert_sequence):
    sample = {"task": "qa", "audio_lang": "en", "question": "What is making the sound?", "answer": "A dog"}
    assert_sequence(build(sample, qwen_tokenizer), qwen_tokenizer, [
        (SPAN + "<|startofanalysis|><|en|><|question|>What is making the sound?<|answer|>", False),
        ("A dog<|endoftext|>", True),
    ])


def test_language_identification_target_is_the_tag_alone(qwen_tokenizer, assert_sequence):
    sample = {"task": "lid", "audio_lang": "de"}
    sequence = build(sample, qwen_tokenizer)
    assert_sequence(sequence, qwen_tokenizer, [(SPAN + "<|startoftranscript|>", False), ("<|de|>", True)])
    assert sequence.input_ids[-1] == 151_861  # no end token after the tag


def test_special_spellings_in_the_transcript_are_text(qwen_tokenizer):
    text = "press <|en|> then <|endoftext|>"
    sample = {"task": "transcribe", "audio_lang": "en", "text_lang": "en", "text": text}
    sequence = build(sample, qwen_tokenizer)
    target = [int(i) for i in sequence.labels if i != -100]
    assert target == qwen_tokenizer.encode(text) + [151_643]
    assert qwen_tokenizer.decode(target[:-1]) == text


TRANSCRIBE = {"task": "transcribe", "audio_lang": "en", "text_lang": "en", "text": "hi"}
TIMED = {"task": "transcribe", "audio_lang": "en", "text_lang": "en", "timestamps": True}


def _words(*spans):
    return [{"word": f" w{i}", "start": start, "end": end} for i, (start, end) in enumerate(spans)]


@pytest.mark.parametrize("sample, message", [
    ({"task": "summarize"}, r"^task: unknown task 'summarize'; use one of transcribe, "),
    ({"text": "hi"}, r"^task: unknown task None"),
    ({**TRANSCRIBE, "audio_lang": "xx"}, r"^audio_lang: unknown audio language 'xx'; use one of en, zh"),
    ({**TRANSCRIBE, "audio_lang": None}, r"^audio_lang: missing; give the spoken language"),
    ({**TRANSCRIBE, "audio_lang": "zh_tr"}, r"^audio_lang: unknown audio language 'zh_tr'"),
    ({**TRANSCRIBE, "text_lang": "pt"}, r"^text_lang: unknown text language 'pt'"),
    ({**TRANSCRIBE, "instruction": "shout"}, r"^instruction: unknown output instruction 'shout'"),
    ({"task": "keyword", "text_lang": "en", "text": "dog"}, r"^instruction: missing; give an output instruction"),
    ({**TRANSCRIBE, "text": None}, r"^text: missing; give the target text"),
    ({**TRANSCRIBE, "text": "  \n"}, r"^text: empty; give the target text"),
    ({**TRANSCRIBE, "text": ["hi"]}, r"^text: expected a string, got list"),
    ({"task": "caption", "text_lang": "en", "text": ""}, r"^text: empty"),
    ({"task": "qa", "audio_lang": "en", "answer": "yes"}, r"^question: missing"),
    ({"task": "qa", "audio_lang": "en", "question": "Is it a dog?"}, r"^answer: missing"),
    ({"task": "lid"}, r"^audio_lang: missing"),
    ({**TIMED}, r"^words: timestamps requested but no words"),
    ({**TIMED, "words": []}, r"^words: timestamps requested but no words"),
    ({**TRANSCRIBE, "timestamps": "yes"}, r"^timestamps: expected true or false"),
    ({"task": "translate", "audio_lang": "fr", "text_lang": "en", "timestamps": True, "words": _words((0, 1))},
     r"^timestamps: word timestamps are only supported for task transcribe, not translate"),
    ({**TIMED, "words": _words((0.1, 0.5), (0.6, 3.5))}, r"^words\[1\]\.end: 3\.5 s is beyond the clip's 3\.0 s"),
    ({**TIMED, "words": _words((-0.1, 0.5))}, r"^words\[0\]\.start: -0\.1 s is before 0"),
    ({**TIMED, "words": _words((0.1, 0.5), (0.4, 0.8))},
     r"^words\[1\]\.start: 0\.4 s is before the previous word's end \(0\.5 s\)"),
    ({**TIMED, "words": _words((0.5, 0.2))}, r"^words\[0\]\.end: 0\.2 s is before its start"),
    ({**TIMED, "words": [{"start": 0.1, "end": 0.2}]}, r"^words\[0\]\.word: missing"),
    ({**TIMED, "words": [{"word": "a", "start": "0.1", "end": 0.2}]}, r"^words\[0\]\.start: expected a time"),
    ({**TIMED, "words": ["a"]}, r"^words\[0\]: expected \{word, start, end\}"),
])
def test_content_problems_name_the_field(qwen_tokenizer, sample, message):
    with pytest.raises(TagFormatError, match=message):
        build(sample, qwen_tokenizer)


def test_word_times_beyond_the_last_timestamp_token_are_an_error(qwen_tokenizer):
    sample = {**TIMED, "words": _words((29.0, 30.2))}
    with pytest.raises(TagFormatError, match=r"^words: time 30\.2 s is outside the timestamp tokens"):
        build(sample, qwen_tokenizer, seconds=[31.0])


@pytest.mark.parametrize("frames", [[], [CLIP_FRAMES, CLIP_FRAMES]])
def test_wrong_number_of_clips_is_an_error(qwen_tokenizer, frames):
    with pytest.raises(TagFormatError, match=rf"^audio: task transcribe takes exactly 1 clip \(or audio_text\), "
                                             rf"the sample has {len(frames)}"):
        build(TRANSCRIBE, qwen_tokenizer, frames=frames, seconds=[CLIP_SECONDS] * len(frames))


@pytest.mark.parametrize("sample, prompt_tags, target", [
    ({**TRANSCRIBE, "audio_text": "Hello world.", "text": "Hello world."},
     "<|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|>", "Hello world.<|endoftext|>"),
    ({"task": "translate", "audio_lang": "fr", "text_lang": "en", "audio_text": "Au revoir.", "text": "Goodbye."},
     "<|startoftranscript|><|fr|><|translate|><|en|><|notimestamps|><|itn|>", "Goodbye.<|endoftext|>"),
    ({"task": "lid", "audio_lang": "fr", "audio_text": "Au revoir."}, "<|startoftranscript|>", "<|fr|>"),
])
def test_audio_text_stands_where_the_audio_span_would(qwen_tokenizer, assert_sequence, sample, prompt_tags, target):
    """The same tags and target as with a clip; the untrained prompt starts with the text instead of the span."""
    assert_sequence(build(sample, qwen_tokenizer, frames=(), seconds=()), qwen_tokenizer, [
        (sample["audio_text"] + prompt_tags, False), (target, True)])
    with_clip = build({key: value for key, value in sample.items() if key != "audio_text"}, qwen_tokenizer)
    in_place = build(sample, qwen_tokenizer, frames=(), seconds=())
    text_length = len(qwen_tokenizer.encode(sample["audio_text"]))
    assert with_clip.input_ids[CLIP_PADS + 2:].tolist() == in_place.input_ids[text_length:].tolist()


@pytest.mark.parametrize("sample, frames, message", [
    ({**TRANSCRIBE, "audio_text": "hi"}, (CLIP_FRAMES,), r"^audio_text: the row also has a clip; give either"),
    ({**TIMED, "audio_text": "hi", "words": _words((0, 1))}, (), r"^audio_text: word timestamps need the clip"),
    ({**TRANSCRIBE, "audio_text": " "}, (), r"^audio_text: empty; give the text in place of the audio"),
    ({"task": "text", "audio_text": "hi", "messages": []}, (), r"^audio_text: only the tag-format tasks take text"),
])
def test_audio_text_problems_name_the_field(qwen_tokenizer, sample, frames, message):
    with pytest.raises(TagFormatError, match=message):
        build(sample, qwen_tokenizer, frames=frames, seconds=[CLIP_SECONDS] * len(frames))


@pytest.mark.parametrize("sample, tags", [
    ({"task": "translate", "audio_lang": "fr", "text_lang": "en", "text": "Good morning."},
     "<|startoftranscript|><|fr|><|translate|><|en|><|notimestamps|><|itn|>"),
    ({"task": "transcribe", "audio_lang": "en", "text_lang": "en", "timestamps": True,
      "words": [{"word": "hi", "start": 0.1, "end": 0.4}]},
     "<|startoftranscript|><|en|><|transcribe|><|en|><|timestamps|>"),
    ({"task": "qa", "audio_lang": "en", "question": "What <|en|> is heard?", "answer": "Rain."},
     "<|startofanalysis|><|en|><|question|><|answer|>"),  # a tag spelled in the question is text, not a tag
    ({"task": "lid", "audio_lang": "it"}, "<|startoftranscript|>"),
    ({"task": "text", "messages": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}]},
     "chatml"),
])
def test_prompt_tags_spell_the_hierarchy_a_sample_is_conditioned_on(qwen_tokenizer, sample, tags):
    frames, seconds = ((), ()) if sample["task"] == "text" else ((CLIP_FRAMES,), (CLIP_SECONDS,))
    assert prompt_tags(build(sample, qwen_tokenizer, frames, seconds)) == tags
