"""mqa-prepare-asterisk on the real Debian packages (fetched once into the shared cache), and the fetcher's failure
path on a machine without apt lists."""
import json
import shutil
from collections import Counter, defaultdict
from functools import partial
from pathlib import Path, PurePosixPath

import pytest

from data_prep import asterisk
from data_prep.build_shards import main as build_shards
from data_prep.debian_packages import DebianFetchError, fetch_debian_packages
from data_prep.manifest import audio_references
from megatron_qwen_audio.audio.decode import probe_audio
from megatron_qwen_audio.data.shard_format import ShardSetIndex

INSTRUCTION_TASKS = ("chat", "text")


def _empty_apt_lists(tmp_path, monkeypatch) -> None:
    """Point apt at empty package lists: what a fresh container without `apt-get update` looks like."""
    lists = tmp_path / "apt-lists"
    (lists / "partial").mkdir(parents=True)
    config = tmp_path / "apt.conf"
    config.write_text(f'Dir::State::Lists "{lists}";\nDir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n')
    monkeypatch.setenv("APT_CONFIG", str(config))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, debian_cache_dir):
    out = tmp_path_factory.mktemp("asterisk")
    assert asterisk.main(["--out", str(out), "--cache", str(debian_cache_dir), "--heldout-fraction", "0.1"]) == 0
    return out


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _prompt(row) -> str:
    return row["id"].split("/", 3)[3]  # asterisk/TASK/LANGS/NAME, NAME may hold a slash


def test_no_heldout_prompt_appears_in_train_in_any_language_or_task(prepared):
    train, heldout = _rows(prepared / "train.jsonl"), _rows(prepared / "heldout.jsonl")
    train_names, heldout_names = {_prompt(r) for r in train}, {_prompt(r) for r in heldout}
    assert not train_names & heldout_names
    assert 0.05 < len(heldout_names) / len(train_names | heldout_names) < 0.15
    assert {r["task"] for r in heldout} == {"transcribe", "translate", "lid", "chat", "text"}
    assert {r["audio_lang"] for r in heldout if r["task"] == "lid"} == set(asterisk.LANGUAGES)


def test_translations_pair_one_prompt_across_languages(prepared):
    rows = _rows(prepared / "train.jsonl") + _rows(prepared / "heldout.jsonl")
    transcripts = {(r["audio_lang"], _prompt(r)): r for r in rows if r["task"] == "transcribe"}
    translations = [r for r in rows if r["task"] == "translate"]
    directions = defaultdict(int)
    for row in translations:
        source, target = row["audio_lang"], row["text_lang"]
        directions[source, target] += 1
        assert row["audio"] == transcripts[source, _prompt(row)]["audio"]
        assert row["text"] == transcripts[target, _prompt(row)]["text"]
    assert set(directions) == {("es", "en"), ("fr", "en"), ("it", "en"), ("en", "es"), ("en", "fr"), ("en", "it")}
    assert all(count > 300 for count in directions.values())


def test_known_prompts_have_their_hand_checked_texts(prepared):
    rows = {r["id"]: r for r in _rows(prepared / "train.jsonl") + _rows(prepared / "heldout.jsonl")}
    thanks = rows["asterisk/translate/es-en/auth-thankyou"]
    assert (thanks["audio"], thanks["text"]) == ("audio/es_MX_f_Allison/auth-thankyou.wav", "Thank you.")
    assert rows["asterisk/translate/en-fr/auth-thankyou"]["text"] == "Merci."
    assert rows["asterisk/transcribe/en-en/digits/1"]["audio"] == "audio/en_US_f_Allison/digits/1.wav"
    assert rows["asterisk/transcribe/en-en/letters/at"]["text"] == "at"  # the "[@]" gloss is not spoken
    assert rows["asterisk/lid/it/auth-thankyou"] == {
        "id": "asterisk/lid/it/auth-thankyou", "audio": "audio/it_IT_m_Carlo/auth-thankyou.wav", "task": "lid",
        "audio_lang": "it"}
    assert not any(key.endswith("/beep") for key in rows)  # non-speech in English, so in Italian too
    assert "asterisk/transcribe/es-es/digits/0" not in rows  # listed as both "cero" and "diez"


def test_every_row_points_at_a_real_clip_of_at_most_30_seconds(prepared):
    for row in _rows(prepared / "heldout.jsonl"):
        for path in audio_references(row):
            info = probe_audio(prepared / path)
            assert info.sample_rate == 8000 and 0 < info.seconds <= 30, row


def test_without_apt_lists_the_cli_says_in_one_line_how_to_get_the_packages(tmp_path, monkeypatch, capsys):
    _empty_apt_lists(tmp_path, monkeypatch)
    status = asterisk.main(["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "empty-cache")])
    error = capsys.readouterr().err
    assert status == 1
    assert len(error.strip().splitlines()) == 1
    assert "apt-get update" in error and "--debs DIR" in error


def test_debs_folder_replaces_apt(tmp_path, debian_cache_dir, monkeypatch):
    package = asterisk.transcript_package("en")
    fetch_debian_packages([package], debian_cache_dir)
    _empty_apt_lists(tmp_path, monkeypatch)
    assert fetch_debian_packages([package], debian_cache_dir).is_dir()  # unpacked before: apt is not asked again
    debs = tmp_path / "debs"
    debs.mkdir()
    for deb in (debian_cache_dir / "debs").glob(f"{package}_*.deb"):
        shutil.copy(deb, debs)
    root = fetch_debian_packages([package], tmp_path / "cache", debs)
    assert (root / "usr/share/doc" / package / "core-sounds-en.txt.gz").is_file()
    with pytest.raises(DebianFetchError, match="apt-get update"):
        fetch_debian_packages([asterisk.transcript_package("fr")], tmp_path / "cache", debs)


def test_heldout_membership_is_a_deterministic_function_of_name_and_seed():
    names = [f"prompt-{i}" for i in range(2000)]
    chosen = {name for name in names if asterisk.is_heldout(name, 0.2, seed=0)}
    assert chosen == {name for name in names if asterisk.is_heldout(name, 0.2, seed=0)}
    assert 300 < len(chosen) < 500
    assert chosen != {name for name in names if asterisk.is_heldout(name, 0.2, seed=1)}
    assert not any(asterisk.is_heldout(name, 0.0, seed=0) for name in names)


def test_prompts_that_share_a_transcript_in_any_language_form_one_group():
    def clip(language: str, name: str, text: str) -> asterisk.Clip:
        return asterisk.Clip(language, name, PurePosixPath(f"{language}/{name}.wav"), 1.0, text)

    clips = {"en": {"b": clip("en", "b", "Minutes."), "c": clip("en", "c", "minutes"), "d": clip("en", "d", "hours")},
             "it": {"a": clip("it", "a", "minuti"), "b": clip("it", "b", "Minuti!")}}
    assert asterisk.text_groups(clips) == {"a": "a", "b": "a", "c": "a", "d": "d"}  # c joins a through b


def _instruction_rows(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["task"] in INSTRUCTION_TASKS]


def _text_lines(row: dict) -> list[str]:
    """Every line of text a sample shows the model: `text`, and each message's text."""
    texts = [row.get("text") or ""]
    for message in row.get("messages", []):
        content = message["content"]
        texts += [content] if isinstance(content, str) else [item.get("text", "") for item in content]
    return [line for text in texts for line in text.splitlines()]


def test_no_heldout_prompt_text_or_audio_appears_in_any_train_row(prepared):
    train, heldout = _rows(prepared / "train.jsonl"), _rows(prepared / "heldout.jsonl")
    heldout_texts = {asterisk.normalized(r["text"]) for r in heldout if r["task"] == "transcribe"}
    train_lines = [asterisk.normalized(line) for row in train for line in _text_lines(row)]
    # Whole lines, since a sample puts each transcript on a line of its own. A held-out phrase may still occur inside
    # a longer train sentence ("has left the conference" in "the leader has left the conference"): the prompts are
    # built from such phrases, and that is not the held-out sentence.
    assert not heldout_texts & set(train_lines)
    heldout_audio = {ref for row in heldout for ref in audio_references(row)}
    assert not heldout_audio & {ref for row in train for ref in audio_references(row)}
    assert len(_instruction_rows(train)) > 3000 and len(_instruction_rows(heldout)) > 400


class Labels:
    """A split's transcribe rows, looked up by audio path and by (language, prompt name)."""

    def __init__(self, rows: list[dict]) -> None:
        transcripts = [row for row in rows if row["task"] == "transcribe"]
        self.by_audio = {row["audio"]: row for row in transcripts}
        self.by_prompt = {(row["audio_lang"], _prompt(row)): row for row in transcripts}

    def text(self, language: str, name: str) -> str:
        return self.by_prompt[language, name]["text"]

    def language(self, audio: str) -> str:
        return self.by_audio[audio]["audio_lang"]

    def prompt(self, audio: str) -> str:
        return _prompt(self.by_audio[audio])


def _check_chat_answer(row: dict, labels: Labels, audio: list[str]) -> None:
    question, answer = row["messages"][0]["content"][-1]["text"], row["messages"][1]["content"]
    language, name, template = row["id"].split("/")[2], _prompt(row), row["template"]
    if template in ("transcript", "language", "translation"):
        assert audio == [labels.by_prompt[language, name]["audio"]] and row["audio_lang"] == language, row
        if template == "transcript":
            assert answer == labels.text(language, name)
        elif template == "language":
            assert answer == asterisk.LANGUAGE_NAMES[language]
        else:
            assert language != "en" and answer == labels.text("en", name), row
        return
    assert len(audio) == 2 and audio[0] != audio[1], row
    assert (language, name) in {(labels.language(a), labels.prompt(a)) for a in audio}
    if template == "which-language":
        asked = next(code for code, english in asterisk.LANGUAGE_NAMES.items() if question.endswith(f" {english}?"))
        assert [labels.language(a) == asked for a in audio] == [answer == ordinal for ordinal in asterisk.ORDINALS]
    else:
        assert template == "same-content", row
        same = labels.prompt(audio[0]) == labels.prompt(audio[1])
        assert answer == asterisk.SAME_CONTENT_ANSWERS[same], row
        assert not same or labels.language(audio[0]) != labels.language(audio[1]), row


def _check_text_answer(row: dict, labels: Labels) -> None:
    language, name = row["id"].split("/")[2], _prompt(row)
    instruction, shown = row["messages"][0]["content"].split("\n")
    answer = row["messages"][1]["content"]
    assert shown == labels.text(language, name), row
    if row["template"] == "language":
        assert (instruction, answer) == ("Which language is this?", asterisk.LANGUAGE_NAMES[language])
    else:
        target = row["text_lang"]
        assert "en" in (language, target) and language != target, row
        assert instruction.endswith(f" {asterisk.LANGUAGE_NAMES[target]}:")
        assert answer == labels.text(target, name), row


def test_instruction_answers_agree_with_the_labels_and_audio_files_exist(prepared):
    for split in ("train.jsonl", "heldout.jsonl"):
        rows = _rows(prepared / split)
        labels = Labels(rows)  # each split's own labels: a row may only use clips of its split
        answers = defaultdict(set)
        for row in _instruction_rows(rows):
            answers[row["task"], row["template"]].add(row["messages"][1]["content"])
            audio = audio_references(row)
            assert all((prepared / path).is_file() for path in audio)
            if row["task"] == "chat":
                _check_chat_answer(row, labels, audio)
            else:
                assert audio == [] and "audio_lang" not in row
                _check_text_answer(row, labels)
        assert answers["chat", "which-language"] == set(asterisk.ORDINALS)
        assert answers["chat", "same-content"] == set(asterisk.SAME_CONTENT_ANSWERS.values())
        assert answers["chat", "language"] == answers["text", "language"] == set(asterisk.LANGUAGE_NAMES.values())


def test_instruction_rows_build_into_shards_without_rejects(prepared, qwen_tokenizer_file):
    subset, seen = [], defaultdict(int)
    for split in ("train.jsonl", "heldout.jsonl"):
        for row in _instruction_rows(_rows(prepared / split)):
            kind = (split, row["task"], row["template"])
            seen[kind] += 1
            if seen[kind] <= 8:
                subset.append(row)
    assert len(subset) == 2 * 7 * 8  # every template in both splits
    manifest = prepared / "instruction-subset.jsonl"  # beside audio/, which the rows' paths are relative to
    asterisk.write_jsonl(manifest, subset)
    out = prepared / "instruction-shards"
    assert build_shards(["--manifest", str(manifest), "--out", str(out), "--tokenizer", str(qwen_tokenizer_file),
                         "--workers", "1", "--max-reject-fraction", "0"]) == 0
    index = ShardSetIndex.read(out)
    assert (index.num_samples, index.rejected) == (len(subset), 0)
    assert index.counts["task"] == {"chat": 5 * 2 * 8, "text": 2 * 2 * 8}


def _manifests(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("train.jsonl", "heldout.jsonl")}


def test_two_runs_write_identical_manifests_and_without_chat_only_the_pretraining_rows(prepared, debian_cache_dir,
                                                                                       tmp_path):
    cache = ["--cache", str(debian_cache_dir), "--heldout-fraction", "0.1"]
    assert asterisk.main(["--out", str(tmp_path / "again"), *cache]) == 0
    assert _manifests(tmp_path / "again") == _manifests(prepared)
    assert asterisk.main(["--out", str(tmp_path / "plain"), "--no-with-chat", *cache]) == 0
    for split in ("train.jsonl", "heldout.jsonl"):
        with_chat = [row for row in _rows(prepared / split) if row["task"] not in INSTRUCTION_TASKS]
        key = json.dumps
        assert sorted(map(key, _rows(tmp_path / "plain" / split))) == sorted(map(key, with_chat))


def test_each_stage_manifest_holds_exactly_its_tasks_rows_of_the_split(prepared):
    """train_pretrain.jsonl / train_text.jsonl (and held-out's) hold the split's rows of those tasks; the text one also
    holds every pretraining row again with the clip's transcript in place of its audio, in no other manifest."""
    key = partial(json.dumps, sort_keys=True)
    for split in (asterisk.TRAIN_MANIFEST, asterisk.HELDOUT_MANIFEST):
        rows = _rows(prepared / split)
        assert not any("audio_text" in row for row in rows)
        subsets = {purpose: _rows(prepared / asterisk.purpose_manifest(split, purpose))
                   for purpose in asterisk.PURPOSE_TASKS}
        for purpose, tasks in asterisk.PURPOSE_TASKS.items():
            own = [row for row in subsets[purpose] if "audio_text" not in row]
            assert sorted(map(key, own)) == sorted(key(row) for row in rows if row["task"] in tasks) and own
        pretrain = subsets["pretrain"]
        transcripts = {row["audio"]: row["text"] for row in pretrain if row["task"] == "transcribe"}
        expected = [{**{k: v for k, v in row.items() if k not in ("id", "audio")},
                     "audio_text": transcripts[row["audio"]]} for row in pretrain]
        in_place = [{k: v for k, v in row.items() if k != "id"} for row in subsets["text"] if "audio_text" in row]
        assert sorted(map(key, in_place)) == sorted(map(key, expected)), split


def test_copy_manifests_hold_random_sequences_of_their_own_splits_words_as_prompt_and_transcript(prepared):
    """train_copy.jsonl / heldout_copy.jsonl: per language a fixed number of transcription rows whose text in place of
    the audio equals the transcript: a sequence of words of that split's own transcripts in that language (so no
    held-out word reaches training through them), different from every real transcript, and not repeated."""
    for split in (asterisk.TRAIN_MANIFEST, asterisk.HELDOUT_MANIFEST):
        transcripts = [row for row in _rows(prepared / split) if row["task"] == "transcribe"]
        copies = _rows(prepared / asterisk.purpose_manifest(split, asterisk.COPY_PURPOSE))
        per_language = asterisk.COPY_ROWS_PER_LANGUAGE[split]
        assert Counter(row["audio_lang"] for row in copies) == dict.fromkeys(asterisk.LANGUAGES, per_language)
        low, high = asterisk.COPY_WORDS
        real = {row["text"] for row in transcripts}
        vocabulary = defaultdict(set)
        for row in transcripts:
            vocabulary[row["audio_lang"]].update(row["text"].split())
        for row in copies:
            words = row["text"].split()
            assert (row["task"], row["text_lang"], row["audio_text"]) == ("transcribe", row["audio_lang"], row["text"])
            assert low <= len(words) <= high and set(words) <= vocabulary[row["audio_lang"]]
            assert row["text"] not in real
        assert len({row["text"] for row in copies}) > 0.99 * len(copies)
