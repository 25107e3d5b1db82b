"""The exported tokenizer/processor files, loaded back with transformers' Auto classes, against the project's own
tokenizer, feature extractor and ChatML builder."""
import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoProcessor, AutoTokenizer, Qwen2AudioProcessor

from megatron_qwen_audio.audio.features import log_mel
from megatron_qwen_audio.audio.lengths import SAMPLE_RATE, audio_token_count, mel_frame_count
from megatron_qwen_audio.convert.hf_processor_files import write_processor_files
from megatron_qwen_audio.text.chatml import build_chatml_sequence
from megatron_qwen_audio.text.special_tokens import AUDIO_END, AUDIO_PAD, AUDIO_START, special_tokens

PLAIN_TEXTS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "Ça a été très agréable : où est le café ? Élève, naïve, cœur.",
    "El niño comió paella en Logroño; ¿qué año fue?",
    "Perché è così difficile? Più caffè, per favore.",
    "今天天气很好，我们去公园散步吧。语音识别",
    "12345 and 3.14159, 2024-05-01, 1,000,000",
    "  leading spaces\n\nnew paragraph\r\n\ttab   trailing  \n",
    "def f(x: int) -> str:\n    return f'{x!r}'  # don't\n\nif a<=b && c!=d: print([1, 2])",
    "He's, they'RE, we'll, I'd; 'LL",
    "Hello , world 's !",
]
DECOMPOSED = "Cafe\u0301 de\u0301ja\u0300 vu"  # NFD accents: both tokenizers normalise to NFC first
SPECIAL_TEXTS = [
    f"{AUDIO_START}{AUDIO_PAD}{AUDIO_END}<|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|>",
    f"{AUDIO_START}{AUDIO_PAD}{AUDIO_END}<|startoftranscript|><|en|><|transcribe|><|en|><|timestamps|><|wo_itn|>"
    "<|0.00|> Hello there.<|1.20|><|endoftext|>",
    "<|im_start|>user\nAudio 1:<audio>[[[AUDIO:modality]]]</audio>\nWhat is it?<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more<|extra_5|>x</audio>y",
]
ASR_PROMPT = SPECIAL_TEXTS[0]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, qwen_tokenizer_file: Path) -> Path:
    out = tmp_path_factory.mktemp("hf_export")
    write_processor_files(out, qwen_tokenizer_file)
    return out


@pytest.fixture(scope="module")
def hf_tokenizer(export_dir: Path):
    return AutoTokenizer.from_pretrained(export_dir, local_files_only=True)


@pytest.fixture(scope="module")
def hf_processor(export_dir: Path):
    return AutoProcessor.from_pretrained(export_dir, local_files_only=True)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(round(seconds * SAMPLE_RATE))).astype(np.float32)


def test_written_files(export_dir: Path):
    names = {path.name for path in export_dir.iterdir()}
    assert {"tokenizer.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json",
            "chat_template.jinja"} <= names
    features = json.loads((export_dir / "preprocessor_config.json").read_text())
    assert features["feature_extractor_type"] == "WhisperFeatureExtractor"
    assert (features["feature_size"], features["sampling_rate"], features["n_fft"], features["hop_length"],
            features["chunk_length"], features["return_attention_mask"]) == (80, 16000, 400, 160, 30, True)
    # The class name and dict form transformers 4 understands as well as 5.
    tokenizer_config = json.loads((export_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tokenizer_config["extra_special_tokens"] == {
        "audio_token": AUDIO_PAD, "audio_bos_token": AUDIO_START, "audio_eos_token": AUDIO_END}


@pytest.mark.parametrize("text", PLAIN_TEXTS + [DECOMPOSED])
def test_plain_text_ids_match_qwen_tokenizer(hf_tokenizer, qwen_tokenizer, text: str):
    assert hf_tokenizer.encode(text) == qwen_tokenizer.encode(text)


@pytest.mark.parametrize("text", SPECIAL_TEXTS)
def test_special_tokens_in_text_match_encode_with_special(hf_tokenizer, qwen_tokenizer, text: str):
    assert hf_tokenizer.encode(text) == qwen_tokenizer.encode_with_special(text)


def test_asr_prompt_ids(hf_tokenizer):
    assert hf_tokenizer.encode(ASR_PROMPT) == [155163, 151851, 155164, 151852, 151859, 151855, 151859, 151868, 154877]


@pytest.mark.parametrize("text", PLAIN_TEXTS + SPECIAL_TEXTS)
def test_decode_round_trips(hf_tokenizer, text: str):
    assert hf_tokenizer.decode(hf_tokenizer.encode(text)) == text


def test_vocabulary_and_every_special_id(hf_tokenizer, qwen_tokenizer):
    assert len(hf_tokenizer) == qwen_tokenizer.vocab_size == 155_165
    table = special_tokens()
    assert hf_tokenizer.convert_tokens_to_ids(list(table)) == list(table.values())
    assert hf_tokenizer.convert_ids_to_tokens(list(table.values())) == list(table)
    assert hf_tokenizer.eos_token == "<|endoftext|>" and hf_tokenizer.eos_token_id == qwen_tokenizer.eod_id
    assert hf_tokenizer.pad_token_id == qwen_tokenizer.pad_id
    assert (hf_tokenizer.audio_token, hf_tokenizer.audio_bos_token, hf_tokenizer.audio_eos_token) == (
        AUDIO_PAD, AUDIO_START, AUDIO_END)


def test_processor_expands_the_audio_pad_and_computes_project_features(hf_processor, hf_tokenizer):
    assert isinstance(hf_processor, Qwen2AudioProcessor)
    assert hf_processor.audio_token_id == 151_851
    waveform = noise(1.2)
    mel_frames = mel_frame_count(len(waveform))
    assert mel_frames == 120
    inputs = hf_processor(text=f"Hi{ASR_PROMPT}", audio=waveform, sampling_rate=SAMPLE_RATE, return_tensors="np")
    ids = inputs["input_ids"][0].tolist()
    start, end = ids.index(hf_tokenizer.convert_tokens_to_ids(AUDIO_START)), ids.index(
        hf_tokenizer.convert_tokens_to_ids(AUDIO_END))
    assert ids[start + 1:end] == [151_851] * audio_token_count(mel_frames)
    assert ids.count(151_851) == audio_token_count(mel_frames)
    assert inputs["input_features"].shape == (1, 80, 3000)
    assert inputs["feature_attention_mask"].sum() == mel_frames
    np.testing.assert_allclose(inputs["input_features"][0, :, :mel_frames], log_mel(waveform), atol=1e-4)


CONVERSATIONS = [
    {"messages": [
        {"role": "user", "content": [{"audio": "a.wav"}, {"audio": "b.wav"}, {"text": "Which clip is louder?"}]},
        {"role": "assistant", "content": "The second one."},
    ]},
    {"messages": [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": [{"text": "Listen: "}, {"audio": "bird.wav"}, {"text": "What is it?"}]},
        {"role": "assistant", "content": [{"text": "A bird."}]},
        {"role": "user", "content": [{"audio": "car.wav"}, {"text": "And this?"}]},
        {"role": "assistant", "content": "A car."},
    ]},
]


def test_chat_template_renders_the_documented_chatml(hf_processor):
    rendered = hf_processor.apply_chat_template(CONVERSATIONS[0]["messages"], tokenize=False)
    span = AUDIO_START + AUDIO_PAD + AUDIO_END
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nAudio 1:" + span
        + "\nAudio 2:" + span + "\nWhich clip is louder?<|im_end|>\n<|im_start|>assistant\nThe second one.<|im_end|>"
    )
    prompt = hf_processor.apply_chat_template(CONVERSATIONS[0]["messages"][:1], tokenize=False,
                                              add_generation_prompt=True)
    assert rendered.startswith(prompt) and prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_chat_template_accepts_transformers_style_items(hf_processor):
    messages = [{"role": "user", "content": [
        {"type": "audio", "path": "a.wav"}, {"type": "text", "text": "What is it?"}]}]
    assert hf_processor.apply_chat_template(messages, tokenize=False) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nAudio 1:"
        + AUDIO_START + AUDIO_PAD + AUDIO_END + "\nWhat is it?<|im_end|>")


@pytest.mark.parametrize("sample", CONVERSATIONS)
def test_chat_template_and_processor_give_the_chatml_builder_ids(hf_processor, qwen_tokenizer, sample):
    waveforms = [noise(seconds, seed) for seed, seconds in enumerate((3.0, 2.0))]
    rendered = hf_processor.apply_chat_template(sample["messages"], tokenize=False)
    inputs = hf_processor(text=rendered, audio=waveforms, sampling_rate=SAMPLE_RATE, return_tensors="np")
    frames = [mel_frame_count(len(waveform)) for waveform in waveforms]
    expected = build_chatml_sequence(sample, frames, qwen_tokenizer, allow_audio=True).input_ids
    assert inputs["input_ids"][0].tolist() == expected.tolist()
