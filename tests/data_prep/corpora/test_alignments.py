"""Audio clips beside their forced alignments (TextGrid, ctm, json) -> transcription rows with word timestamps;
broken clips land in the skipped report."""
import json

from corpus_miniatures import audio_names, write_audio, write_text

from data_prep.corpora.common import no_language_tag


def textgrid(duration: float, tiers: dict[str, list[tuple[float, float, str]]]) -> str:
    """A TextGrid in Praat's long text format, spaced as the Montreal Forced Aligner writes it."""
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ", f"xmax = {duration} ",
             "tiers? <exists> ", f"size = {len(tiers)} ", "item []: "]
    for number, (name, intervals) in enumerate(tiers.items(), start=1):
        lines += [f"    item [{number}]:", '        class = "IntervalTier" ', f'        name = "{name}" ',
                  "        xmin = 0 ", f"        xmax = {duration} ", f"        intervals: size = {len(intervals)} "]
        for index, (start, end, text) in enumerate(intervals, start=1):
            lines += [f"        intervals [{index}]:", f"            xmin = {start} ", f"            xmax = {end} ",
                      f'            text = "{text}" ']
    return "\n".join(lines) + "\n"


def words(*timed: tuple[str, float, float]) -> list[dict]:
    return [{"word": word, "start": start, "end": end} for word, start, end in timed]


def test_alignments_in_three_formats_become_word_timestamp_rows(tmp_path, make_manifest):
    root = tmp_path / "aligned"
    write_text(root / "language.txt", "en\n")
    for stem in ("speaker1/a.wav", "speaker1/b.flac", "c.wav", "d.wav", "f.wav", "h.wav", "i.wav", "k.wav", "l.wav",
                 "m.wav"):
        write_audio(root / stem, seconds=2.0)
    write_audio(root / "e.wav", seconds=1.0)
    write_audio(root / "j.wav", seconds=31.0)
    write_text(root / "speaker1/a.TextGrid", textgrid(2.0, {
        "words": [(0, 0.3, ""), (0.3, 0.8, "hello"), (0.8, 1.0, "<unk>"), (1.0, 1.6, "world"), (1.6, 2.0, "")],
        "phones": [(0, 0.3, ""), (0.3, 0.4, "HH"), (0.4, 0.8, "AH0"), (0.8, 2.0, "")]}))
    write_text(root / "speaker1/b.ctm", ";; aligned by kaldi\nb 1 0.10 0.40 good 0.98\nb 1 0.50 0.30 morning 0.91\n")
    write_text(root / "c.json", json.dumps({"language": "zh", "words": words(("你好", 0.1, 0.5), ("世界", 0.5, 0.9))}))
    write_text(root / "d.json", json.dumps(words(("one", 0.5, 1.0), ("two", 0.8, 1.2))))
    write_text(root / "e.ctm", "e 1 0.5 1.0 late\n")
    write_text(root / "g.TextGrid", textgrid(1.0, {"words": [(0, 1.0, "orphan")]}))
    write_text(root / "h.json", json.dumps({"language": "ru", "words": words(("da", 0.1, 0.4))}))
    write_text(root / "i.TextGrid", textgrid(2.0, {"words": [(0, 1.0, ""), (1.0, 2.0, "sil")]}))
    write_text(root / "j.ctm", "j 1 0.0 0.5 long\n")
    write_text(root / "k.ctm", "k 1 0.1 word\n")
    write_text(root / "l.TextGrid", textgrid(2.0, {"phones": [(0, 2.0, "AH0")]}))
    write_text(root / "m.ctm", "m 1 0.1 0.2 twice\n")
    write_text(root / "m.json", json.dumps(words(("twice", 0.1, 0.3))))
    rows, skips = make_manifest("word-alignments", root)
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
