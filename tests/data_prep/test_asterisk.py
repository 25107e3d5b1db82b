"""mqa-prepare-asterisk on the real Debian packages (fetched once into the shared cache), and the fetcher's failure
path on a machine without apt lists."""
import json
import shutil
from collections import defaultdict

import pytest

from data_prep import asterisk
from data_prep.debian_packages import DebianFetchError, fetch_debian_packages
from megatron_qwen_audio.audio.decode import probe_audio


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
    assert {r["task"] for r in heldout} == {"transcribe", "translate", "lid"}
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
        info = probe_audio(prepared / row["audio"])
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
