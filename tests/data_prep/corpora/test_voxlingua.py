"""VoxLingua107's language folders -> language-identification rows; untagged languages are skipped per clip."""
from corpus_miniatures import audio_names
from miniature_voxlingua import write_voxlingua107

from data_prep.corpora.common import no_language_tag


def test_language_folders_become_lid_rows(tmp_path, make_manifest):
    root, split = write_voxlingua107(tmp_path)
    rows, skips = make_manifest("voxlingua107", root, split=split)
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
