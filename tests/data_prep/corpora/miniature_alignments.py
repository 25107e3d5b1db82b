"""The word-alignments miniature: clips beside forced alignments in the three formats (TextGrid, ctm, json)."""
from __future__ import annotations

import json
from pathlib import Path

from corpus_miniatures import write_audio, write_text


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


def write_word_alignments(root: Path) -> tuple[Path, str | None]:
    """aligned/, language.txt en: three clips (TextGrid, ctm, zh json), then one broken clip per skip reason (ten)."""
    folder = root / "aligned"
    write_text(folder / "language.txt", "en\n")
    for stem in ("speaker1/a.wav", "speaker1/b.flac", "c.wav", "d.wav", "f.wav", "h.wav", "i.wav", "k.wav", "l.wav",
                 "m.wav"):
        write_audio(folder / stem, seconds=2.0)
    write_audio(folder / "e.wav", seconds=1.0)
    write_audio(folder / "j.wav", seconds=31.0)
    write_text(folder / "speaker1/a.TextGrid", textgrid(2.0, {
        "words": [(0, 0.3, ""), (0.3, 0.8, "hello"), (0.8, 1.0, "<unk>"), (1.0, 1.6, "world"), (1.6, 2.0, "")],
        "phones": [(0, 0.3, ""), (0.3, 0.4, "HH"), (0.4, 0.8, "AH0"), (0.8, 2.0, "")]}))
    write_text(folder / "speaker1/b.ctm", ";; aligned by kaldi\nb 1 0.10 0.40 good 0.98\nb 1 0.50 0.30 morning 0.91\n")
    write_text(folder / "c.json",
               json.dumps({"language": "zh", "words": words(("你好", 0.1, 0.5), ("世界", 0.5, 0.9))}))
    write_text(folder / "d.json", json.dumps(words(("one", 0.5, 1.0), ("two", 0.8, 1.2))))
    write_text(folder / "e.ctm", "e 1 0.5 1.0 late\n")
    write_text(folder / "g.TextGrid", textgrid(1.0, {"words": [(0, 1.0, "orphan")]}))
    write_text(folder / "h.json", json.dumps({"language": "ru", "words": words(("da", 0.1, 0.4))}))
    write_text(folder / "i.TextGrid", textgrid(2.0, {"words": [(0, 1.0, ""), (1.0, 2.0, "sil")]}))
    write_text(folder / "j.ctm", "j 1 0.0 0.5 long\n")
    write_text(folder / "k.ctm", "k 1 0.1 word\n")
    write_text(folder / "l.TextGrid", textgrid(2.0, {"phones": [(0, 2.0, "AH0")]}))
    write_text(folder / "m.ctm", "m 1 0.1 0.2 twice\n")
    write_text(folder / "m.json", json.dumps(words(("twice", 0.1, 0.3))))
    return folder, None


MINIATURES = {"word-alignments": write_word_alignments}
