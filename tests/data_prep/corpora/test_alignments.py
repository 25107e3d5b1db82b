"""Audio clips beside their forced alignments (TextGrid, ctm, json) -> transcription rows with word timestamps;
broken clips land in the skipped report."""
import json

from corpus_miniatures import audio_names, write_audio, write_text
from miniature_alignments import words, write_word_alignments

from data_prep.corpora.common import no_language_tag


def test_alignments_in_three_formats_become_word_timestamp_rows(tmp_path, make_manifest):
    root, split = write_word_alignments(tmp_path)
    rows, skips = make_manifest("word-alignments", root, split=split)
    assert audio_names(rows) == ["c.wav", "a.wav", "b.flac"]
    assert rows[1] == {"id": "word-alignments/speaker1/a.wav", "task": "transcribe", "audio": rows[1]["audio"],
                       "audio_lang": "en", "text_lang": "en", "instruction": "wo_itn", "timestamps": True,
                       "words": words(("hello", 0.3, 0.8), (" world", 1.0, 1.6)), "text": "hello world"}
    assert (rows[2]["id"], rows[2]["words"], rows[2]["text"]) == (
        "word-alignments/speaker1/b.flac", words(("good", 0.1, 0.5), (" morning", 0.5, 0.8)), "good morning")
    assert [(row["audio_lang"], row["text_lang"], row["words"], row["text"]) for row in rows[:1]] == [
        ("zh", "zh", words(("你好", 0.1, 0.5), ("世界", 0.5, 0.9)), "你好世界")]
    assert [(skip["where"].removeprefix(f"{root}/"), skip["reason"]) for skip in skips] == [
        ("d.json", "word 'two' starts at 0.8 s, before 'one' ends (1.0 s): words out of order or overlapping"),
        ("e.ctm", "word 'late' ends at 1.5 s, after the clip's 1.0 s"),
        ("f.wav", "no alignment file (f.TextGrid, .ctm or .json) beside it"),
        ("g.TextGrid", "no audio file (g.wav or .flac) beside it"),
        ("h.json", no_language_tag("ru")),
        ("i.TextGrid", "no words (only silence)"),
        ("j.wav", "the clip is 31.00 s long; the encoder takes at most 30 s"),
        ("k.ctm:1", "4 fields; expected UTTERANCE CHANNEL START DURATION WORD [CONFIDENCE]"),
        ("l.TextGrid", "0 word tiers (tiers: phones); expected one interval tier named 'words', in the long "
                       "TextGrid format MFA writes"),
        ("m", "several files for one clip (m.wav, m.ctm, m.json); keep one audio and one alignment"),
    ]


def test_the_language_comes_from_the_json_or_else_language_txt(tmp_path, make_manifest, capsys):
    from data_prep.make_manifest import main

    root = tmp_path / "aligned"
    write_audio(root / "a.wav", seconds=2.0)
    write_text(root / "a.json", json.dumps({"language": "de", "words": words(("guten", 0.2, 0.6), ("tag", 0.7, 1.1))}))
    rows, skips = make_manifest("word-alignments", root)
    assert [(row["audio_lang"], row["text"]) for row in rows] == [("de", "guten tag")] and skips == []
    write_audio(root / "b.wav", seconds=2.0)
    write_text(root / "b.ctm", "b 1 0.2 0.4 hallo\n")
    assert main(["word-alignments", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"{root / 'language.txt'}: missing, and {root / 'b.ctm'} names no language" in error[0]
