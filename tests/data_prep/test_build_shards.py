"""mqa-build-shards end to end: shards read back with plain webdataset equal the reference computation, every bad
line lands in rejects.jsonl, re-runs reuse finished shards, and the output does not depend on the worker count."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import webdataset

from data_prep.build_shards import EXIT_TOO_MANY_REJECTS, EXIT_USAGE, MANIFEST_HELP, main
from data_prep.manifest import ManifestRow, parse_manifest_line
from megatron_qwen_audio.audio.decode import load_audio
from megatron_qwen_audio.audio.features import log_mel
from megatron_qwen_audio.data.shard_format import IGNORE_INDEX, ShardSetIndex, sample_key
from megatron_qwen_audio.text.tags import TASKS, build_sequence

SAMPLES_PER_SHARD = 4


def _tone(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A tone in noise, so every clip has a different, non-silent spectrum."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * (300 + 100 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32) if channels > 1 else wave.astype(np.float32)


def _write_clips(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    clips = {
        "tone16k": (folder / "tone16k.wav", _tone(1.5, 16000, seed=1), 16000, "PCM_16"),
        "stereo44k": (folder / "stereo44k.flac", _tone(2.0, 44100, channels=2, seed=2), 44100, "PCM_16"),
        "tone8k": (folder / "tone8k.wav", _tone(0.7, 8000, seed=3), 8000, "PCM_24"),
        "empty": (folder / "empty.wav", np.zeros(0, dtype=np.float32), 16000, "PCM_16"),
        "long31": (folder / "long31.wav", _tone(31.0, 8000, seed=4), 8000, "PCM_16"),
    }
    for path, wave, rate, subtype in clips.values():
        soundfile.write(path, wave, rate, subtype=subtype)
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF\x24\x10\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(range(256)) * 4)
    return {name: path for name, (path, *_) in clips.items()} | {"broken": broken}


def _manifest_rows(clips: dict[str, Path], speech: list[Path]) -> list[tuple[str, list[Path], str | None]]:
    """(line text, clips the line refers to, expected reject-reason fragment or None) for each manifest line."""
    def row(**fields) -> str:
        return json.dumps(fields)

    words_in = [{"word": "hello", "start": 0.1, "end": 0.6}, {"word": " there", "start": 0.8, "end": 1.4}]
    words_beyond = [{"word": "hello", "start": 0.1, "end": 0.6}, {"word": " there", "start": 0.8, "end": 2.0}]
    return [
        (row(id="asr", audio=str(speech[0]), task="transcribe", audio_lang="en", text_lang="en",
             text="Agent logged in."), [speech[0]], None),
        (row(id="st", audio=str(speech[1]), task="translate", audio_lang="en", text_lang="fr", text="Merci."),
         [speech[1]], None),
        (row(id="srwt", audio="clips/tone16k.wav", task="transcribe", audio_lang="en", text_lang="en",
             timestamps=True, words=words_in), [clips["tone16k"]], None),
        (row(id="cap", audio="clips/stereo44k.flac", task="caption", text_lang="en", text="a steady tone"),
         [clips["stereo44k"]], None),
        (row(id="kw", audio="clips/tone8k.wav", task="keyword", text_lang="en", instruction="scene",
             text="laboratory"), [clips["tone8k"]], None),
        (row(id="qa", audio=str(speech[2]), task="qa", audio_lang="en", question="Who speaks?",
             answer="A woman."), [speech[2]], None),
        (row(id="lid", audio=str(speech[3]), task="lid", audio_lang="en"), [speech[3]], None),
        (row(id="chat2", task="chat", messages=[
            {"role": "user", "content": [{"audio": "clips/tone16k.wav"}, {"audio": str(speech[0])},
                                         {"text": "Which clip is speech?"}]},
            {"role": "assistant", "content": "The second one."}]), [clips["tone16k"], speech[0]], None),
        (row(id="textonly", task="text", messages=[
            {"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"}]), [], None),
        (row(id="missing", audio="clips/nope.wav", task="lid", audio_lang="en"), [], "file not found"),
        (row(id="broken", audio="clips/broken.wav", task="lid", audio_lang="en"), [], "cannot read audio"),
        (row(id="empty", audio="clips/empty.wav", task="lid", audio_lang="en"), [], "zero samples"),
        (row(id="long", audio="clips/long31.wav", task="lid", audio_lang="en"), [], "over the 30 s"),
        (row(id="notext", audio="clips/tone8k.wav", task="transcribe", audio_lang="en", text_lang="en", text=""),
         [], "text: empty"),
        (row(id="overlong", audio="clips/tone8k.wav", task="transcribe", audio_lang="en", text_lang="en",
             text="word " * 2100), [], "over --max-tokens 2048"),
        (row(id="dance", audio="clips/tone8k.wav", task="dance"), [], "task: unknown task 'dance'"),
        (row(id="xx", audio="clips/tone8k.wav", task="transcribe", audio_lang="xx", text_lang="en", text="hi"),
         [], "audio_lang:"),
        ('{"id": "cut", "task": "transcribe", "audio": ', [], "invalid JSON"),
        (row(id="late", audio="clips/tone16k.wav", task="transcribe", audio_lang="en", text_lang="en",
             timestamps=True, words=words_beyond), [], "beyond the clip"),
        (row(id="asr8k", audio="clips/tone8k.wav", task="transcribe", audio_lang="es", text_lang="es",
             text="hola"), [clips["tone8k"]], None),
    ]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, real_speech_paths, qwen_tokenizer_file):
    """A manifest of every task and every kind of bad line, and its shards built once with one worker."""
    root = tmp_path_factory.mktemp("shards")
    clips = _write_clips(root / "clips")
    lines = _manifest_rows(clips, real_speech_paths)
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(text + "\n" for text, _, _ in lines), encoding="utf-8")
    out = root / "built"
    status = main(_args(manifest, out, qwen_tokenizer_file, "--workers", "1", "--max-reject-fraction", "1"))
    assert status == 0
    return manifest, lines, out


def _args(manifest: Path, out: Path, qwen_tokenizer_file: Path, *extra: str) -> list[str]:
    return ["--manifest", str(manifest), "--out", str(out), "--tokenizer", str(qwen_tokenizer_file),
            "--samples-per-shard", str(SAMPLES_PER_SHARD), *extra]


def _read_back(out: Path) -> list[dict]:
    """Every sample of every shard, read with plain webdataset in shard order."""
    tars = sorted(str(path) for path in out.glob("*.tar"))
    return list(webdataset.WebDataset(tars, shardshuffle=False, empty_check=False).decode())


def _tree_bytes(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.iterdir())}


def test_shards_hold_exactly_the_reference_mels_tokens_and_labels(dataset, qwen_tokenizer):
    manifest, lines, out = dataset
    samples = _read_back(out)
    valid_lines = [number for number, (_, _, reason) in enumerate(lines, start=1) if reason is None]
    assert [sample["__key__"] for sample in samples] == [sample_key(number) for number in valid_lines]
    for sample in samples:
        line = sample["json"]["line"]
        text, clip_paths, _ = lines[line - 1]
        row = json.loads(text)
        assert sample["json"]["sample"] == row
        waves = [load_audio(path) for path in clip_paths]
        mels = [log_mel(wave) for wave in waves]
        expected = build_sequence(row, [mel.shape[1] for mel in mels], [len(w) / 16000 for w in waves], qwen_tokenizer)
        assert sample["tokens.npy"].dtype == np.int32 and sample["labels.npy"].dtype == np.int32
        np.testing.assert_array_equal(sample["tokens.npy"], expected.input_ids)
        np.testing.assert_array_equal(sample["labels.npy"], expected.labels)
        assert (sample["labels.npy"] != IGNORE_INDEX).any()
        names = {0: [], 1: ["mel.npy"], 2: ["mel_0.npy", "mel_1.npy"]}[len(mels)]
        assert sorted(name for name in sample if name.startswith("mel")) == names
        stored = [sample[name] for name in names]
        for got, want in zip(stored, mels):
            assert got.dtype == np.float16 and got.shape == want.shape
            np.testing.assert_allclose(got.astype(np.float32), want, atol=1e-3, rtol=0)
        assert sample["json"]["seconds"] == [len(w) / 16000 for w in waves]


def test_index_agrees_with_the_tars(dataset):
    manifest, lines, out = dataset
    index = ShardSetIndex.read(out)
    samples = {sample["__key__"]: sample for sample in _read_back(out)}
    assert [shard.name for shard in index.shards] == [f"shard-{k:06d}.tar" for k in range(5)]
    for number, shard in enumerate(index.shards):
        assert (shard.first_line, shard.last_line) == (number * 4 + 1, number * 4 + 4)
        in_tar = [s["__key__"] for s in _read_back_one(out / shard.name)]
        assert [entry.key for entry in shard.samples] == in_tar
        for entry in shard.samples:
            sample = samples[entry.key]
            row = sample["json"]["sample"]
            mel_members = sorted(name for name in sample if name.startswith("mel"))
            assert entry.frames == [sample[name].shape[1] for name in mel_members]
            assert entry.tokens == len(sample["tokens.npy"])
            assert (entry.task, entry.audio_lang, entry.text_lang) == (
                row["task"], row.get("audio_lang"), row.get("text_lang"))
    assert index.num_samples == len(samples) == 10
    assert (index.manifest_lines, index.rejected) == (20, 10)
    seconds = sum(sum(sample["json"]["seconds"]) for sample in samples.values())
    assert index.hours == pytest.approx(seconds / 3600)
    assert index.counts["task"] == {"caption": 1, "chat": 1, "keyword": 1, "lid": 1, "qa": 1, "text": 1,
                                    "transcribe": 3, "translate": 1}
    assert index.counts["audio_lang"] == {"en": 5, "es": 1}  # caption, keyword, chat and text rows give none
    assert index.counts["text_lang"] == {"en": 4, "es": 1, "fr": 1}


def _read_back_one(tar: Path) -> list[dict]:
    return list(webdataset.WebDataset([str(tar)], shardshuffle=False, empty_check=False))


def test_every_bad_line_is_rejected_with_its_reason_and_line(dataset):
    manifest, lines, out = dataset
    rejects = [json.loads(text) for text in (out / "rejects.jsonl").read_text().splitlines()]
    expected = [(number, reason) for number, (_, _, reason) in enumerate(lines, start=1) if reason]
    assert [reject["line"] for reject in rejects] == [number for number, _ in expected]
    for reject, (number, reason) in zip(rejects, expected):
        assert reason in reject["reason"], (number, reject)
        assert reject["id"] == (None if number == 18 else json.loads(lines[number - 1][0])["id"])
    written = {int(sample["__key__"].split("-")[1]) for sample in _read_back(out)}
    assert written.isdisjoint(reject["line"] for reject in rejects)
    assert len(written) + len(rejects) == len(lines)


def test_rerun_rebuilds_only_missing_shards_and_gives_identical_output(dataset, qwen_tokenizer_file, tmp_path, capsys):
    manifest, _, built = dataset
    out = tmp_path / "copy"
    shutil.copytree(built, out)
    before = _tree_bytes(out)
    (out / "shard-000001.tar").unlink()
    (out / "shard-000001.record.json").unlink()
    untouched = {path.name: path.stat().st_mtime_ns for path in out.glob("shard-*")}
    capsys.readouterr()
    assert main(_args(manifest, out, qwen_tokenizer_file, "--workers", "1", "--max-reject-fraction", "1")) == 0
    assert "(1 built, 4 reused)" in capsys.readouterr().out
    assert {name: (out / name).stat().st_mtime_ns for name in untouched} == untouched
    assert _tree_bytes(out) == before


def test_rerun_refuses_a_folder_built_with_other_settings(dataset, qwen_tokenizer_file, tmp_path, capsys):
    manifest, _, built = dataset
    out = tmp_path / "copy"
    shutil.copytree(built, out)
    before = _tree_bytes(out)
    capsys.readouterr()
    assert main(_args(manifest, out, qwen_tokenizer_file, "--max-tokens", "4096")) == EXIT_USAGE
    error = capsys.readouterr().err.strip().splitlines()
    assert "max_tokens 2048 -> 4096" in error[-1] and "new --out folder" in error[-1]
    assert _tree_bytes(out) == before


def test_too_many_rejects_gives_its_own_exit_status_after_writing_everything(dataset, qwen_tokenizer_file, capsys):
    manifest, _, out = dataset  # same settings: every shard is reused, the index rewritten
    capsys.readouterr()
    assert main(_args(manifest, out, qwen_tokenizer_file, "--max-reject-fraction", "0.4")) == EXIT_TOO_MANY_REJECTS
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "0.500 exceeds --max-reject-fraction 0.4" in last_line
    assert ShardSetIndex.read(out).rejected == 10
    assert main(_args(manifest, out, qwen_tokenizer_file, "--max-reject-fraction", "0.5")) == 0


def test_two_workers_write_byte_identical_shards(dataset, qwen_tokenizer_file, tmp_path):
    manifest, _, built = dataset
    out = tmp_path / "two-workers"
    assert main(_args(manifest, out, qwen_tokenizer_file, "--workers", "2", "--max-reject-fraction", "1")) == 0
    assert _tree_bytes(out) == _tree_bytes(built)


@pytest.mark.parametrize("flags", [["--workers", "0"], ["--samples-per-shard", "-1"], ["--max-reject-fraction", "2"]])
def test_bad_flags_are_usage_errors(dataset, qwen_tokenizer_file, tmp_path, flags):
    manifest, _, _ = dataset
    with pytest.raises(SystemExit) as exit_info:
        main(_args(manifest, tmp_path / "out", qwen_tokenizer_file, *flags))
    assert exit_info.value.code == EXIT_USAGE


def test_missing_manifest_is_a_usage_error(qwen_tokenizer_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(_args(tmp_path / "absent.jsonl", tmp_path / "out", qwen_tokenizer_file))
    assert exit_info.value.code == EXIT_USAGE
    assert "absent.jsonl: no such file" in capsys.readouterr().err


def test_help_gives_a_valid_example_line_for_every_task(qwen_tokenizer, tmp_path):
    examples = [line[line.index("{"):] for line in MANIFEST_HELP.splitlines() if line.startswith("  ") and "{" in line]
    rows = [parse_manifest_line(example.encode(), number, tmp_path) for number, example in enumerate(examples, 1)]
    assert all(isinstance(row, ManifestRow) for row in rows)
    assert {row.sample["task"] for row in rows} == set(TASKS)
    for row in rows:
        clips = len(row.audio_paths)
        sequence = build_sequence(row.sample, [300] * clips, [3.0] * clips, qwen_tokenizer)
        assert (sequence.labels != IGNORE_INDEX).any()


def test_a_row_with_start_and_end_is_that_range_of_its_file(tmp_path, qwen_tokenizer_file):
    """A segment of a long recording: the stored mel is the log-mel of the range alone (first sample at `start`),
    its seconds the range's; a range past the file's end or not increasing is rejected with the reason."""
    recording = tmp_path / "talk.flac"
    soundfile.write(recording, _tone(4.0, 16000, seed=5), 16000, subtype="PCM_16")
    common = {"audio": "talk.flac", "task": "transcribe", "audio_lang": "en", "text_lang": "en", "text": "a cut"}
    rows = [{"id": "cut", "start": 1.25, "end": 2.5, **common}, {"id": "past", "start": 3.5, "end": 4.5, **common},
            {"id": "backwards", "start": 2.0, "end": 1.0, **common}, {"id": "half", "start": 1.0, **common}]
    manifest = tmp_path / "segments.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "built"
    assert main(_args(manifest, out, qwen_tokenizer_file, "--max-reject-fraction", "1")) == 0
    (sample,) = _read_back(out)
    expected = log_mel(load_audio(recording)[20000:40000])
    np.testing.assert_allclose(sample["mel.npy"].astype(np.float32), expected, atol=1e-3, rtol=0)
    assert sample["json"]["seconds"] == [1.25]
    reasons = [json.loads(line)["reason"] for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert ["end 4.5 s is past the file's 4.00 s" in reasons[0], "start/end: 2.0 to 1.0 s is not a range" in reasons[1],
            "start/end: expected both as seconds, got start=1.0 end=None" in reasons[2]] == [True] * 3
