"""`mqa-convert export`: a checkpoint -> a directory transformers' Qwen2AudioForConditionalGeneration loads with the
same logits as our model on a batch with audio; import -> export -> import is bit-identical (Qwen2-Audio and
Qwen-Audio v1 layouts); an export reads a checkpoint saved under TP=2 like one saved by the importer; transformers'
greedy `generate` on the exported model, fed by the exported processor, returns our greedy decoding's tokens."""
from __future__ import annotations

import shutil

import pytest
import torch
from conftest import layout_logits, run_convert
from convert_sources import audio_batch, hf_audio_inputs, qwen2_audio_model
from safetensors.torch import load_file

from megatron_qwen_audio.convert.megatron_checkpoint import CheckpointReader
from megatron_qwen_audio.text.special_tokens import padded_vocab_size, special_tokens
from megatron_qwen_audio.training.config import padded_vocab

FP32 = ("--dtype", "fp32")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, qwen_tokenizer_file) -> dict:
    root = tmp_path_factory.mktemp("export")
    reference = qwen2_audio_model()
    reference.save_pretrained(root / "hf_source")
    ids = special_tokens()
    run_convert("import", "--qwen2-audio", str(root / "hf_source"), "--out", str(root / "ckpt"), *FP32,
                "--audio-bos-eos-ids", f"{ids['<audio>']},{ids['</audio>']}")
    for fmt in ("qwen2-audio", "qwen-audio"):
        run_convert("export", "--ckpt", str(root / "ckpt"), "--out", str(root / fmt), "--format", fmt,
                    tokenizer_file=qwen_tokenizer_file)
    return {"root": root, "reference": reference, "tokenizer_file": qwen_tokenizer_file}


def _hf_logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(**hf_audio_inputs(audio_batch())).logits


def test_exported_model_gives_our_logits_on_audio(exported):
    from transformers import Qwen2AudioForConditionalGeneration

    root = exported["root"]
    results = layout_logits(root / "ckpt", {1: "1x1"}, root / "logits", "--audio")
    ours = results["1x1"]["audio"][..., : padded_vocab_size()]
    loaded = Qwen2AudioForConditionalGeneration.from_pretrained(root / "qwen2-audio").eval()
    torch.testing.assert_close(_hf_logits(loaded), ours, rtol=0, atol=1e-4)
    torch.testing.assert_close(_hf_logits(exported["reference"]), ours, rtol=0, atol=1e-4)


def _assert_same_checkpoints(first, second) -> None:
    first, second = CheckpointReader(first), CheckpointReader(second)
    assert first.names == second.names
    for name in first.names:
        assert torch.equal(first.read(name), second.read(name)), name


@pytest.mark.parametrize("fmt, flag", [("qwen2-audio", "--qwen2-audio"), ("qwen-audio", "--qwen-audio")])
def test_import_export_import_is_bit_identical(exported, fmt, flag):
    root = exported["root"]
    run_convert("import", flag, str(root / fmt), "--out", str(root / f"reimported-{fmt}"), *FP32)
    _assert_same_checkpoints(root / "ckpt", root / f"reimported-{fmt}")


def test_export_reads_a_checkpoint_saved_at_tensor_parallel_2(exported):
    root = exported["root"]
    layout_logits(root / "ckpt", {2: "2x1"}, root / "logits_tp2", "--save-layout", "2x1", "--save-to",
                  str(root / "run_tp2"))
    run_convert("export", "--ckpt", str(root / "run_tp2"), "--out", str(root / "from_tp2"), "--format",
                "qwen2-audio", tokenizer_file=exported["tokenizer_file"])
    expected = load_file(str(root / "qwen2-audio" / "model-00001-of-00001.safetensors"))
    observed = load_file(str(root / "from_tp2" / "model-00001-of-00001.safetensors"))
    assert sorted(observed) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(observed[name], tensor), name


def test_processor_of_the_export_frames_audio_with_our_tokens(exported):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(exported["root"] / "qwen2-audio")
    ids = special_tokens()
    text = "<audio>[[[AUDIO:modality]]]</audio><|startoftranscript|><|en|><|transcribe|>"
    inputs = processor(text=text, audio=[torch.zeros(19200).numpy()], sampling_rate=16000, return_tensors="pt")
    tokens = inputs["input_ids"][0].tolist()
    assert tokens[0] == ids["<audio>"] and tokens.count(ids["[[[AUDIO:modality]]]"]) == 30
    assert tokens[31:] == [ids["</audio>"], ids["<|startoftranscript|>"], ids["<|en|>"], ids["<|transcribe|>"]]


PROMPT = "<audio>[[[AUDIO:modality]]]</audio><|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|>"


def test_transformers_generate_equals_our_greedy_decoding(exported, real_speech_paths, qwen_tokenizer):
    """The prompt as the exported AutoProcessor builds it must be our tokenizer's, span for span. The encoder input
    is our log-mel zero-padded past the clip (as our loader hands it over): the processor instead pads the waveform
    to 30 s, so the stem's last frame would see the mel of silence; that difference is the encoder's (see
    model/audio_encoder.py), not the export's."""
    from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

    from megatron_qwen_audio.audio import load_audio, log_mel
    from megatron_qwen_audio.audio.lengths import audio_span_length

    root = exported["root"]
    waveform = load_audio(real_speech_paths[0])[:19200]  # 1.2 s: 120 mel frames
    processor = AutoProcessor.from_pretrained(root / "qwen2-audio")
    inputs = processor(text=PROMPT, audio=[waveform], sampling_rate=16000, return_tensors="pt")
    tokens = inputs["input_ids"][0]
    span = audio_span_length(120)
    expanded = PROMPT.replace("[[[AUDIO:modality]]]", "[[[AUDIO:modality]]]" * (span - 2))
    assert tokens.tolist() == qwen_tokenizer.encode_with_special(expanded)
    mel = torch.as_tensor(log_mel(waveform))
    prompt = {"tokens": tokens, "mel": mel, "mel_lengths": torch.tensor([120]),
              "audio_spans": torch.tensor([[0, 0, span]])}
    torch.save(prompt, root / "prompt.pt")
    model = Qwen2AudioForConditionalGeneration.from_pretrained(root / "qwen2-audio").eval()
    stop_ids = ",".join(str(token) for token in model.generation_config.eos_token_id)
    ours = layout_logits(root / "ckpt", {1: "1x1"}, root / "greedy", "--greedy", str(root / "prompt.pt"),
                         "--greedy-tokens", "12", "--stop-ids", stop_ids)["1x1"]["greedy"]

    features = torch.zeros_like(inputs["input_features"])
    features[0, :, :120] = mel
    assert inputs["feature_attention_mask"].sum() == 120
    generated = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                               input_features=features, feature_attention_mask=inputs["feature_attention_mask"],
                               do_sample=False, max_new_tokens=12)
    assert len(set(ours)) > 1  # a real continuation, not one repeated token
    assert generated[0, len(tokens):].tolist() == ours


def test_reshard_pads_the_vocabulary_for_another_tensor_parallel_size(exported):
    """TP=5 pads the vocabulary to another row count than TP=1 (megatron's own resharding cannot change a global
    shape); resharding there and back gives the original checkpoint."""
    root = exported["root"]
    run_convert("reshard", "--ckpt", str(root / "ckpt"), "--out", str(root / "tp5"), "--tp", "5", *FP32)
    run_convert("reshard", "--ckpt", str(root / "tp5"), "--out", str(root / "tp5_back"), *FP32)
    vocab = padded_vocab_size()
    original = CheckpointReader(root / "ckpt").read("output_layer.weight")
    resharded = CheckpointReader(root / "tp5").read("output_layer.weight")
    assert resharded.shape[0] == padded_vocab(vocab, 5) != original.shape[0]
    assert torch.equal(resharded[:vocab], original[:vocab]) and not resharded[vocab:].any()
    _assert_same_checkpoints(root / "ckpt", root / "tp5_back")


def test_export_of_an_incomplete_checkpoint_fails_and_writes_nothing(exported, tmp_path):
    """A checkpoint folder without its `complete` marker (cut off while being written) is refused by name."""
    cut_off = tmp_path / "cut_off"
    shutil.copytree(exported["root"] / "ckpt", cut_off)
    (cut_off / "complete").unlink()
    finished = run_convert("export", "--ckpt", str(cut_off), "--out", str(tmp_path / "hf"), "--format",
                           "qwen2-audio", expect_ok=False, tokenizer_file=exported["tokenizer_file"])
    assert finished.returncode == 2
    assert f"{cut_off} is incomplete" in finished.stderr.strip().splitlines()[-1]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cut_off"]
