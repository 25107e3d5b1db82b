"""VoxLingua107's language folders -> language-identification rows; untagged languages are skipped per clip."""
from corpus_miniatures import audio_names, write_audio, write_text

from data_prep.corpora.common import no_language_tag


def test_language_folders_become_lid_rows(tmp_path, make_manifest):
    root = tmp_path / "voxlingua107"
    for clip in ("en/-0Ie2ZrA2hE__U__S0---0187.440-0197.530.wav", "en/b.wav", "zh/c.wav", "br/d.wav", "br/e.wav"):
        write_audio(root / clip)
    write_text(root / "README.txt", "not a language\n")
    (root / "empty").mkdir()
    rows, skips = make_manifest("voxlingua107", root)
    assert audio_names(rows) == ["-0Ie2ZrA2hE__U__S0---0187.440-0197.530.wav", "b.wav", "c.wav"]
    assert [(row["id"], row["audio_lang"]) for row in rows] == [
        ("voxlingua107/en/-0Ie2ZrA2hE__U__S0---0187.440-0197.530.wav", "en"), ("voxlingua107/en/b.wav", "en"),
        ("voxlingua107/zh/c.wav", "zh")]
    assert rows[2] == {"id": "voxlingua107/zh/c.wav", "task": "lid", "audio": rows[2]["audio"], "audio_lang": "zh"}
    assert skips == [{"where": str(root / "br" / name), "reason": no_language_tag("br")} for name in ("d.wav", "e.wav")]


def test_a_folder_without_language_folders_is_a_one_line_layout_error(tmp_path, capsys):
    from data_prep.make_manifest import main

    (tmp_path / "voxlingua107" / "en").mkdir(parents=True)
    assert main(["voxlingua107", "--root", str(tmp_path / "voxlingua107"), "--out", str(tmp_path / "m.jsonl")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no LANGCODE/*.wav inside; --root must be the VoxLingua107 folder" in error[0]
