"""CoVoST 2 split tables in the source language's Common Voice folder -> translation rows; broken records skipped."""
from corpus_miniatures import audio_names, write_audio, write_text
from miniature_covost import HEADER, write_covost2

from data_prep.corpora.common import no_language_tag
from data_prep.corpora.covost import SPLITS


def test_covost_lists_every_pair_and_split_with_fr_en_train_first():
    assert SPLITS[0] == "fr_en.train" and len(SPLITS) == (21 + 15) * 3
    assert {"zh-CN_en.dev", "en_sv-SE.test", "en_ja.train"} <= set(SPLITS)


def test_translations_become_rows_with_source_and_target_tags(tmp_path, make_manifest):
    french, split = write_covost2(tmp_path)
    rows, skips = make_manifest("covost2", french, split=split)
    assert audio_names(rows) == ["common_voice_fr_1.mp3"]
    assert rows == [{"id": "covost2/fr_en.dev/common_voice_fr_1.mp3", "audio": rows[0]["audio"], "task": "translate",
                     "audio_lang": "fr", "text_lang": "en", "instruction": "itn", "text": "Hello everyone."}]
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("covost_v2.fr_en.dev.tsv:3", "empty translation"),
        ("covost_v2.fr_en.dev.tsv:4", f"audio file {french / 'clips' / 'common_voice_fr_3.mp3'} not found"),
    ]


def test_english_to_chinese_and_untagged_pairs(tmp_path, make_manifest):
    english = tmp_path / "cv-corpus-4" / "en"
    write_text(english / "covost_v2.en_zh-CN.test.tsv", HEADER + "common_voice_en_1.mp3\tHello.\t你好。\tc1\n")
    write_text(english / "covost_v2.en_sv-SE.test.tsv", HEADER + "common_voice_en_1.mp3\tHello.\tHej.\tc1\n")
    write_audio(english / "clips" / "common_voice_en_1.mp3")
    rows, skips = make_manifest("covost2", english, split="en_zh-CN.test")
    assert [(row["id"], row["audio_lang"], row["text_lang"], row["text"]) for row in rows] == [
        ("covost2/en_zh-CN.test/common_voice_en_1.mp3", "en", "zh", "你好。")]
    assert skips == []
    rows, skips = make_manifest("covost2", english, split="en_sv-SE.test")
    assert rows == []
    assert skips == [{"where": f"{english / 'covost_v2.en_sv-SE.test.tsv'}:2", "reason": no_language_tag("sv-SE")}]


def test_a_pair_outside_covost_is_a_one_line_layout_error(tmp_path, capsys):
    from data_prep.make_manifest import main

    assert main(["covost2", "--root", str(tmp_path), "--out", str(tmp_path / "m.jsonl"), "--split", "fr_de.train"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "covost2: unknown split 'fr_de.train'" in error[0]
