"""`mqa-eval` end to end on real speech: shards built by the shard builder (transcription, translation, language
identification, a ChatML turn about two clips, a text-only chat), a checkpoint imported from a tiny transformers
Qwen2-Audio; every sample's hypothesis must be what transformers' greedy `generate` makes of the same prompt."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from process_launch import clean_environment

from data_prep.build_shards import main as build_shards
from megatron_qwen_audio.audio import load_audio
from megatron_qwen_audio.data.shard_sets import ShardSetSpec, open_shard_sets
from megatron_qwen_audio.evaluation.decoding import held_out_samples, split_prompt
from megatron_qwen_audio.text.special_tokens import special_tokens

sys.path.insert(0, str(Path(__file__).parent.parent / "convert"))
from convert_sources import qwen2_audio_model  # noqa: E402

SAMPLES = [
    {"id": "asr", "task": "transcribe", "audio_lang": "en", "text_lang": "en", "text": "Agent logged in."},
    {"id": "asr2", "task": "transcribe", "audio_lang": "en", "text_lang": "en", "text": "Goodbye.", "clip": 1},
    {"id": "st", "task": "translate", "audio_lang": "en", "text_lang": "fr", "text": "Agent connecté."},
    {"id": "lid", "task": "lid", "audio_lang": "en"},
    {"id": "chat", "task": "chat", "messages": [
        {"role": "user", "content": [{"audio": 0}, {"audio": 1}, {"text": "Which one is longer?"}]},
        {"role": "assistant", "content": "The second one."}]},
    {"id": "text", "task": "text", "messages": [
        {"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"}]},
]


CLIP_SECONDS = (1.2, 2.0)  # 120 and 200 mel frames: even counts


def _even_clips(real_speech_paths: list[Path], folder: Path) -> list[Path]:
    """Real speech cut to CLIP_SECONDS, as 16 kHz WAV files."""
    clips = []
    for index, seconds in enumerate(CLIP_SECONDS):
        clip, samples = folder / f"speech{index}.wav", int(seconds * 16000)
        waveform = load_audio(real_speech_paths[index])[:samples]
        assert len(waveform) == samples, f"{real_speech_paths[index]} is shorter than {seconds} s"
        soundfile.write(clip, waveform, 16000, subtype="FLOAT")
        clips.append(clip)
    return clips


def _manifest_line(sample: dict, speech: list[Path]) -> str:
    sample = json.loads(json.dumps(sample))
    if "messages" in sample:
        for item in sample["messages"][0]["content"]:
            if isinstance(item, dict) and "audio" in item:
                item["audio"] = str(speech[item["audio"]])
    elif sample["task"] != "text":
        sample["audio"] = str(speech[sample.pop("clip", 0)])
    return json.dumps(sample, ensure_ascii=False)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, real_speech_paths, qwen_tokenizer_file) -> dict:
    root = tmp_path_factory.mktemp("eval")
    manifest = root / "heldout.jsonl"
    speech = _even_clips(real_speech_paths, root)
    manifest.write_text("".join(_manifest_line(sample, speech) + "\n" for sample in SAMPLES))
    assert build_shards(["--manifest", str(manifest), "--out", str(root / "shards"), "--tokenizer",
                         str(qwen_tokenizer_file)]) == 0
    reference = qwen2_audio_model()
    reference.save_pretrained(root / "hf")
    environment = clean_environment()
    environment["MQA_TOKENIZER_FILE"] = str(qwen_tokenizer_file)
    ids = special_tokens()

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", *command], env=environment, capture_output=True, text=True,
                              timeout=600, check=True)

    run("megatron_qwen_audio.convert.cli", "import", "--qwen2-audio", str(root / "hf"), "--out", str(root / "ckpt"),
        "--dtype", "fp32", "--audio-bos-eos-ids", f"{ids['<audio>']},{ids['</audio>']}")
    finished = run("megatron_qwen_audio.evaluation.cli", str(root / "ckpt"), "--shards", str(root / "shards"),
                   "--out", str(root / "eval"), "--max-new-tokens", "12")
    records = [json.loads(line) for line in (root / "eval" / "samples.jsonl").read_text().splitlines()]
    return {"root": root, "reference": reference, "records": records, "stdout": finished.stdout}


def test_every_sample_is_decoded_with_its_tags(evaluated):
    records = evaluated["records"]
    assert [(r["task"], r["audio_lang"], r["text_lang"]) for r in records] == [
        ("transcribe", "en", "en"), ("transcribe", "en", "en"), ("translate", "en", "fr"), ("lid", "en", None),
        ("chat", None, None),
        ("text", None, None)]
    assert records[0]["reference"] == "Agent logged in." and records[2]["reference"] == "Agent connecté."
    assert records[3]["reference"] == "<|en|>" and len(records[3]["hypothesis_ids"]) == 1  # the tag alone
    assert records[4]["reference"] == "The second one."


def test_hypotheses_equal_transformers_generate_on_the_same_prompts(evaluated):
    """transformers gets each prompt's ids and its clips zero-padded to 3000 frames (the clips have even frame
    counts, where both encoders read the same stem inputs: see the export test)."""
    model, ids = evaluated["reference"], special_tokens()
    end_ids = [ids["<|endoftext|>"], ids["<|im_end|>"]]
    sets = open_shard_sets([ShardSetSpec(path_or_url=str(evaluated["root"] / "shards"))])
    for (_, sample), record in zip(held_out_samples(sets), evaluated["records"], strict=True):
        prompt, reference = split_prompt(sample)
        assert (record["prompt_tokens"], record["reference_ids"]) == (len(prompt), reference.tolist())
        input_ids = torch.from_numpy(prompt.astype(np.int64))[None]
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if sample.mels:
            features = torch.zeros(len(sample.mels), 80, 3000)
            mask = torch.zeros(len(sample.mels), 3000, dtype=torch.long)
            for clip, mel in enumerate(sample.mels):
                features[clip, :, : mel.shape[1]] = torch.from_numpy(mel.astype(np.float32))
                mask[clip, : mel.shape[1]] = 1
            inputs.update(input_features=features, feature_attention_mask=mask)
        generated = model.generate(**inputs, do_sample=False, max_new_tokens=len(record["hypothesis_ids"]),
                                   eos_token_id=end_ids)
        assert generated[0, len(prompt):].tolist() == record["hypothesis_ids"], record["key"]


def test_metrics_and_audio_dependence_are_printed_and_written(evaluated):
    table = (evaluated["root"] / "eval" / "metrics.md").read_text()
    for row in ("transcribe", "translate", "lid", "own audio lower by"):
        assert row in table and row in evaluated["stdout"]
    dependence = json.loads((evaluated["root"] / "eval" / "audio_dependence.json").read_text())
    # the one translation sample has no partner clip of its task and language
    assert [(row["task"], row["samples"]) for row in dependence] == [("transcribe", 2)]
    assert dependence[0]["matched_loss"] > 0 and dependence[0]["swapped_loss"] > 0
