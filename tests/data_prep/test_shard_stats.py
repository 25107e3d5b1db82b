"""mqa-stats on a shard set built from a known manifest: samples, hours, shares, token-length percentiles and tag
combinations equal what the manifest and the shard index say."""
import json

import numpy as np
import soundfile

from data_prep.build_shards import main as build_shards
from data_prep.shard_stats import main as shard_stats
from megatron_qwen_audio.data.shard_format import ShardSetIndex, sample_key

CLIP_SECONDS = {"a.wav": 1.0, "b.wav": 2.0, "c.wav": 3.0}


def _manifest(folder) -> list[dict]:
    for name, seconds in CLIP_SECONDS.items():
        soundfile.write(folder / name, 0.1 * np.sin(np.arange(int(16000 * seconds)) / 7.0), 16000)
    asr = {"task": "transcribe", "audio_lang": "en", "text_lang": "en", "text": "hello there"}
    st = {"task": "translate", "audio_lang": "fr", "text_lang": "en", "text": "good morning to you"}
    return [{"id": "1", "audio": "a.wav", **asr}, {"id": "2", "audio": "b.wav", **asr},
            {"id": "3", "audio": "c.wav", **asr, "instruction": "itn"},
            {"id": "4", "audio": "a.wav", **st}, {"id": "5", "audio": "c.wav", **st},
            {"id": "6", "task": "text", "messages": [{"role": "user", "content": "Hi."},
                                                     {"role": "assistant", "content": "Hello."}]},
            {"id": "7", "audio": "missing.wav", **asr}]


def test_stats_tables_match_the_manifest(tmp_path, qwen_tokenizer_file, capsys):
    rows = _manifest(tmp_path)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "set"
    assert build_shards(["--manifest", str(manifest), "--out", str(out), "--tokenizer", str(qwen_tokenizer_file),
                         "--workers", "1", "--max-reject-fraction", "1"]) == 0
    capsys.readouterr()
    assert shard_stats([str(out)]) == 0
    text = capsys.readouterr().out
    tokens = {sample.key: sample.tokens for shard in ShardSetIndex.read(out).shards for sample in shard.samples}
    asr_tokens = sorted(tokens[sample_key(line)] for line in (1, 2, 3))
    assert f"| {out} | 6 | 0.0028 | 1 |" in text  # 10 s of audio in 6 samples, 1 rejected line
    assert "| transcribe | en | en | 3 | 50.0% | 0.0017 |" in text  # 6 s
    assert "| translate | fr | en | 2 | 33.3% | 0.0011 |" in text  # 4 s
    assert "| text | - | - | 1 | 16.7% | 0.0000 |" in text
    assert f"| transcribe | 3 | {asr_tokens[1]} | {asr_tokens[2]} | {asr_tokens[2]} | {asr_tokens[2]} |" in text
    assert "| transcribe | <|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|> | 2 |" in text
    assert "| transcribe | <|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|itn|> | 1 |" in text
    assert "| translate | <|startoftranscript|><|fr|><|translate|><|en|><|notimestamps|><|itn|> | 2 |" in text
    assert "| text | chatml | 1 |" in text


def test_an_unreadable_set_is_one_line_and_exit_2(tmp_path, capsys):
    assert shard_stats([str(tmp_path / "nothing")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
