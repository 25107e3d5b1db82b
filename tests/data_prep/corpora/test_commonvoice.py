"""Common Voice's published language folders -> transcription and speaker-meta rows; broken records are skipped."""
from corpus_miniatures import audio_names, write_audio
from miniature_commonvoice import OLD_HEADER, clip, write_commonvoice, write_commonvoice_speaker, write_tsv

from data_prep.corpora.common import no_language_tag


def test_sentences_become_itn_transcription_rows(tmp_path, make_manifest):
    root, split = write_commonvoice(tmp_path)
    rows, skips = make_manifest("commonvoice", root, split=split)
    assert [row["text"] for row in rows] == ["Bonjour, le monde !", 'Il a dit "oui".', "Sans locuteur.", "Refusé.",
                                             "Inconnu."]
    assert audio_names(rows) == [f"common_voice_fr_{number}.mp3" for number in (1, 2, 5, 6, 7)]
    assert rows[0] == {"id": "commonvoice/dev/common_voice_fr_1.mp3", "audio": rows[0]["audio"],
                       "task": "transcribe", "audio_lang": "fr", "text_lang": "fr", "instruction": "itn",
                       "text": "Bonjour, le monde !"}
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("dev.tsv:4", "empty sentence"),
        ("dev.tsv:5", f"audio file {root / 'clips' / 'common_voice_fr_4.mp3'} not found"),
    ]


def test_traditional_chinese_locales_and_untagged_languages(tmp_path, make_manifest):
    taiwan, breton = tmp_path / "cv-corpus-5.1-2020-06-22" / "zh-TW", tmp_path / "cv-corpus-5.1-2020-06-22" / "br"
    write_tsv(taiwan / "train.tsv", OLD_HEADER, [clip(1, "我們今天去公園。", "zh-TW")])
    write_tsv(breton / "train.tsv", OLD_HEADER, [clip(1, "Demat dit.", "br")])
    write_audio(taiwan / "clips" / "common_voice_zh-TW_1.mp3")
    write_audio(breton / "clips" / "common_voice_br_1.mp3")
    rows, skips = make_manifest("commonvoice", taiwan)
    assert [(row["id"], row["audio_lang"], row["text_lang"], row["text"]) for row in rows] == [
        ("commonvoice/train/common_voice_zh-TW_1.mp3", "zh", "zh_tr", "我們今天去公園。")]
    assert skips == []
    rows, skips = make_manifest("commonvoice", breton)
    assert rows == []
    assert skips == [{"where": f"{breton / 'train.tsv'}:2", "reason": no_language_tag("br")}]


def test_speaker_gender_and_age_become_speaker_meta_keywords(tmp_path, make_manifest):
    root, split = write_commonvoice_speaker(tmp_path)
    rows, skips = make_manifest("commonvoice-speaker", root, split=split)
    assert [(row["id"], row["text"]) for row in rows] == [
        ("commonvoice-speaker/dev/common_voice_fr_1.mp3", "female, twenties"),
        ("commonvoice-speaker/dev/common_voice_fr_2.mp3", "male"),
        ("commonvoice-speaker/dev/common_voice_fr_3.mp3", "forties"),
    ]
    assert rows[0] == {"id": "commonvoice-speaker/dev/common_voice_fr_1.mp3", "audio": rows[0]["audio"],
                       "task": "keyword", "audio_lang": "fr", "text_lang": "en", "instruction": "speaker_meta",
                       "text": "female, twenties"}
    assert [(skip["where"].split("/")[-1], skip["reason"].split(" (")[0]) for skip in skips] == [
        ("dev.tsv:5", f"audio file {root / 'clips' / 'common_voice_fr_4.mp3'} not found"),
        ("dev.tsv:6", "no age or gender given"),
        ("dev.tsv:7", "no age or gender given"),
        ("dev.tsv:8", "gender 'robot' is not a Common Voice value"),
    ]


def test_a_folder_without_clips_or_split_table_is_a_one_line_layout_error(tmp_path, capsys):
    from data_prep.make_manifest import main

    root, _ = write_commonvoice(tmp_path)
    assert main(["commonvoice", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "train.tsv: missing; expected a metadata table" in capsys.readouterr().err
    assert main(["commonvoice-speaker", "--root", str(root.parent), "--out", str(tmp_path / "m.jsonl")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "clips: missing; --root must be a Common Voice language folder" in error[0]
