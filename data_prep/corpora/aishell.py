"""AISHELL-1 (openslr 33): read Mandarin, --root = `data_aishell`.

It holds `transcript/aishell_transcript_v0.8.txt` (`UTTERANCE-ID WORD WORD ...`, words separated by spaces, no
punctuation) and `wav/SPLIT/SPEAKER/UTTERANCE-ID.wav` for SPLIT train, dev, test (the release ships one
`wav/SPEAKER.tar.gz` per speaker: extract them first). Rows: task transcribe, zh -> zh, instruction `wo_itn` (the
transcripts are unpunctuated), text = the transcript with the spaces between words removed. Skip reasons: a wav of
the split without a transcript line, a transcript line without text. Transcript lines of the other splits' speakers
are not entries of this split.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_prep.corpora.common import Corpus, CorpusLayoutError, Row, Skip, checked_split, read_id_text_lines

SPLITS = ("train", "dev", "test")
TRANSCRIPT = Path("transcript") / "aishell_transcript_v0.8.txt"


def aishell_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, SPLITS, "aishell1")
    folder = root / "wav" / split
    if not folder.is_dir():
        raise CorpusLayoutError(f"{folder}: missing; --root must be data_aishell with wav/*.tar.gz extracted "
                                f"into wav/{split}/SPEAKER/*.wav")
    transcript = root / TRANSCRIPT
    lines = {utterance: (line, text) for line, utterance, text in read_id_text_lines(transcript)}
    for wav in sorted(folder.glob("*/*.wav")):
        if wav.stem not in lines:
            yield Skip(str(wav), f"no line for {wav.stem} in {TRANSCRIPT.name}")
            continue
        line, text = lines[wav.stem]
        if not text:
            yield Skip(f"{transcript}:{line}", f"utterance {wav.stem} has no transcript text")
            continue
        yield {"id": f"aishell1/{split}/{wav.stem}", "task": "transcribe", "audio": str(wav.absolute()),
               "audio_lang": "zh", "text_lang": "zh", "instruction": "wo_itn", "text": "".join(text.split())}


CORPORA = {"aishell1": Corpus("AISHELL-1 data_aishell: zh transcription", SPLITS, aishell_rows)}
