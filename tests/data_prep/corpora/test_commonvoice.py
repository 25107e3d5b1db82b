"""Common Voice's published language folders -> transcription and speaker-meta rows; broken records are skipped."""
from corpus_miniatures import audio_names, write_audio, write_text

from data_prep.corpora.common import no_language_tag

NEW_HEADER = ("client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
              "gender", "accents", "variant", "locale", "segment")
OLD_HEADER = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents", "locale",
              "segment")


def write_tsv(path, header, records):
    """A Common Voice TSV: the header, then one line per record given as {column: value} (others left empty)."""
    lines = ["\t".join(header)] + ["\t".join(record.get(column, "") for column in header) for record in records]
    return write_text(path, "\n".join(lines) + "\n")


def clip(number, sentence, locale, **columns):
    return {"client_id": "c0ffee", "path": f"common_voice_{locale}_{number}.mp3", "sentence": sentence,
            "locale": locale, **columns}


def french_folder(tmp_path):
    """A cv-corpus-*/fr folder: dev.tsv in the newer header, clips for all records but number 4."""
    root = tmp_path / "cv-corpus-17.0-2024-03-15" / "fr"
    write_tsv(root / "dev.tsv", NEW_HEADER, [
        clip(1, "Bonjour, le monde !", "fr", gender="female_feminine", age="twenties"),
        clip(2, 'Il a dit "oui".', "fr", gender="male"),
        clip(3, "", "fr", age="fourties"),
        clip(4, "Où est le fichier ?", "fr", gender="other", age="sixties"),
        clip(5, "Sans locuteur.", "fr"),
        clip(6, "Refusé.", "fr", gender="do_not_wish_to_say"),
        clip(7, "Inconnu.", "fr", gender="robot", age="teens"),
    ])
    for number in (1, 2, 3, 5, 6, 7):
        write_audio(root / "clips" / f"common_voice_fr_{number}.mp3")
    return root


def test_sentences_become_itn_transcription_rows(tmp_path, make_manifest):
    root = french_folder(tmp_path)
    rows, skips = make_manifest("commonvoice", root, split="dev")
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
    root = french_folder(tmp_path)
    rows, skips = make_manifest("commonvoice-speaker", root, split="dev")
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

    root = french_folder(tmp_path)
    assert main(["commonvoice", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "train.tsv: missing; expected a metadata table" in capsys.readouterr().err
    assert main(["commonvoice-speaker", "--root", str(root.parent), "--out", str(tmp_path / "m.jsonl")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "clips: missing; --root must be a Common Voice language folder" in error[0]
