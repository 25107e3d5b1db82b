"""Speech emotion corpora: MELD and IEMOCAP, read in their published layouts.

Both emit task keyword rows, audio_lang en, text_lang en, instruction `emotion_recognition`, the emotion as a word.

MELD (Multimodal EmotionLines Dataset, `MELD.Raw/`): `train_sent_emo.csv`, `dev_sent_emo.csv`, `test_sent_emo.csv`
(columns Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season, Episode, StartTime,
EndTime; Emotion, Dialogue_ID and Utterance_ID are read) and the media folders `train_splits/`,
`dev_splits_complete/`, `output_repeated_splits_test/` holding `diaD_uttU.mp4`. The mp4 cannot be decoded here, so
the audio is `diaD_uttU.wav` (or `.flac`) in the split's media folder. Text: the Emotion value (neutral, joy,
sadness, anger, surprise, fear, disgust). Skipped (where: CSV file:line): an empty Emotion; a clip with only its
mp4 (the reason gives the ffmpeg command that extracts the audio); a clip with neither audio nor mp4.

IEMOCAP (`IEMOCAP_full_release/`): `SessionS/dialog/EmoEvaluation/DIALOG.txt`, whose summary lines are
`[START - END]<TAB>UTTERANCE<TAB>CATEGORY<TAB>[V, A, D]` (other lines: `%` headers, per-annotator `C-`/`A-` lines,
blank), and the audio `SessionS/sentences/wav/DIALOG/UTTERANCE.wav`. Text: the category as a word (neu neutral,
hap happy, ang angry, sad sad, exc excited, fru frustrated, fea fearful, sur surprised, dis disgusted). Skipped
(where: EmoEvaluation file:line): `xxx` (the annotators did not agree), `oth` (other), an unknown category, a line
that is not one of the kinds above, a missing wav.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_prep.corpora.common import (
    Corpus,
    CorpusLayoutError,
    Row,
    Skip,
    audio_or_skip,
    checked_split,
    read_table,
)

MELD_SPLITS = ("train", "dev", "test")
MELD_MEDIA_FOLDERS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
MELD_AUDIO_SUFFIXES = (".wav", ".flac")

IEMOCAP_SESSIONS = tuple(f"Session{number}" for number in range(1, 6))
IEMOCAP_SPLITS = ("all", *IEMOCAP_SESSIONS)
IEMOCAP_CATEGORIES = {"neu": "neutral", "hap": "happy", "ang": "angry", "sad": "sad", "exc": "excited",
                      "fru": "frustrated", "fea": "fearful", "sur": "surprised", "dis": "disgusted"}
IEMOCAP_UNUSABLE = {"xxx": "no agreement between annotators", "oth": "other: no emotion category"}
IEMOCAP_OTHER_LINES = ("%", "C-", "A-")  # headers and per-annotator lines around the summary lines


def emotion_row(sample_id: str, audio: Path, emotion: str) -> Row:
    """An English utterance labelled with its emotion word."""
    return {"id": sample_id, "task": "keyword", "audio": str(audio), "audio_lang": "en", "text_lang": "en",
            "instruction": "emotion_recognition", "text": emotion}


def meld_audio_or_skip(folder: Path, clip: str, where: str) -> Path | Skip:
    """The clip's extracted audio (`clip.wav` or `clip.flac`), or a Skip saying whether only the mp4 is there."""
    for suffix in MELD_AUDIO_SUFFIXES:
        if (folder / f"{clip}{suffix}").is_file():
            return (folder / f"{clip}{suffix}").absolute()
    video, wav = folder / f"{clip}.mp4", folder / f"{clip}.wav"
    if video.is_file():
        return Skip(where, f"only the mp4 video: extract its audio to {wav.name} "
                           f"(ffmpeg -i {video} -ac 1 -ar 16000 {wav})")
    return Skip(where, f"audio file {wav} not found (nor .flac, nor the mp4)")


def meld_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, MELD_SPLITS, "meld")
    media = root / MELD_MEDIA_FOLDERS[split]
    if not media.is_dir():
        raise CorpusLayoutError(f"{media}: missing; --root must be the MELD.Raw folder holding "
                                f"{MELD_MEDIA_FOLDERS[split]}/ (its clips' audio as diaD_uttU.wav)")
    table = root / f"{split}_sent_emo.csv"
    for line, record in read_table(table, ("Emotion", "Dialogue_ID", "Utterance_ID")):
        where = f"{table}:{line}"
        if not record["Emotion"]:
            yield Skip(where, "empty Emotion")
            continue
        clip = f"dia{record['Dialogue_ID']}_utt{record['Utterance_ID']}"
        audio = meld_audio_or_skip(media, clip, where)
        yield audio if isinstance(audio, Skip) else emotion_row(f"meld/{split}/{clip}", audio, record["Emotion"])


def iemocap_summary_rows(evaluation: Path, session: Path) -> Iterator[Row | Skip]:
    """The rows of one EmoEvaluation file: one per summary line."""
    # errors="replace": annotators' free-text comments may hold stray bytes; the summary lines are ASCII
    with open(evaluation, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith(IEMOCAP_OTHER_LINES):
                continue
            where = f"{evaluation}:{number}"
            fields = line.split("\t")
            if not line.startswith("[") or len(fields) < 3:
                yield Skip(where, "not a '[START - END]<TAB>UTTERANCE<TAB>CATEGORY<TAB>[V, A, D]' summary line")
                continue
            utterance, category = fields[1].strip(), fields[2].strip()
            if category in IEMOCAP_UNUSABLE:
                yield Skip(where, f"label {category!r} ({IEMOCAP_UNUSABLE[category]})")
                continue
            if category not in IEMOCAP_CATEGORIES:
                yield Skip(where, f"unknown category {category!r} (known: {', '.join(IEMOCAP_CATEGORIES)})")
                continue
            audio = audio_or_skip(session / "sentences" / "wav" / evaluation.stem / f"{utterance}.wav", where)
            yield audio if isinstance(audio, Skip) else emotion_row(f"iemocap/{utterance}", audio,
                                                                    IEMOCAP_CATEGORIES[category])


def iemocap_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, IEMOCAP_SPLITS, "iemocap")
    for session_name in IEMOCAP_SESSIONS if split == "all" else (split,):
        session = root / session_name
        evaluations = session / "dialog" / "EmoEvaluation"
        if not evaluations.is_dir():
            raise CorpusLayoutError(f"{evaluations}: missing; --root must be the IEMOCAP folder holding "
                                    f"{session_name}/dialog/EmoEvaluation/")
        for evaluation in sorted(evaluations.glob("Ses*.txt")):
            yield from iemocap_summary_rows(evaluation, session)


CORPORA = {
    "meld": Corpus("MELD TV-series dialogue (audio extracted from the mp4s): en keyword (emotion_recognition)",
                   MELD_SPLITS, meld_rows),
    "iemocap": Corpus("IEMOCAP acted dialogue: en keyword (emotion_recognition)", IEMOCAP_SPLITS, iemocap_rows),
}
