"""Long recordings cut into segments by their JSON metadata: GigaSpeech (English podcasts, audiobooks, YouTube) and
WenetSpeech (Mandarin YouTube and podcasts), both in their published layout, paths in the JSON relative to ROOT.

- gigaspeech: ROOT/GigaSpeech.json = {"audios": [{"aid", "path" (e.g. audio/podcast/P0000/POD0000000004.opus),
  "duration", "segments": [{"sid", "begin_time", "end_time", "text_tn", "subsets": ["{XL}", "{L}", ...]}]}]}.
  --split XS|S|M|L|XL|DEV|TEST reads the segments whose subsets hold "{SPLIT}" (the training subsets nest).
- wenetspeech: ROOT/WenetSpeech.json, the same shape with the transcript in "text", a "confidence" (not read: the
  subsets already encode the quality level) and subset names without braces; --split S|M|L|DEV|TEST_NET|TEST_MEETING.

Rows: one per segment of the split, task transcribe, "audio" the whole recording with "start"/"end" = begin_time /
end_time (seconds) for the shard builder to cut; id CORPUS/SID, so a segment keeps its id in every subset holding it.
- gigaspeech: en -> en, instruction itn. text_tn is upper case with punctuation tags: <COMMA> <PERIOD>
  <QUESTIONMARK> <EXCLAMATIONPOINT> become , . ? ! on the word before them (a tag before any word is dropped), then
  the text is sentence-cased: the first letter of each sentence and the pronoun I upper case, the rest lower.
- wenetspeech: zh -> zh, instruction wo_itn (the text has no punctuation), spaces removed except between two Latin
  letters or digits (code-switched English words stay apart).

Skips, `where` = the segment's sid: the recording's audio file missing (one skip per segment of it), end_time not
after begin_time, a segment longer than 30 s (the encoder takes at most 30 s); gigaspeech: a garbage utterance
(text_tn only of <SIL> <MUSIC> <NOISE> <OTHER>), another tag among the words, no words in text_tn; wenetspeech:
empty text. A metadata file that is missing, not JSON, without an "audios" list or with a record lacking a field
is a CorpusLayoutError. The JSON is read whole (json.load): the full corpora's files take several GB of memory.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from data_prep.corpora.common import (
    Corpus,
    CorpusLayoutError,
    Row,
    Skip,
    audio_or_skip,
    checked_split,
    read_json,
)
from megatron_qwen_audio.audio.lengths import MAX_SECONDS

PUNCTUATION_TAGS = {"<COMMA>": ",", "<PERIOD>": ".", "<QUESTIONMARK>": "?", "<EXCLAMATIONPOINT>": "!"}
GARBAGE_TAGS = frozenset({"<SIL>", "<MUSIC>", "<NOISE>", "<OTHER>"})
TAG = re.compile(r"^<[^<>]*>$")
SENTENCE_START = re.compile(r"(^|[.?!]\s+)([^a-zA-Z]*)([a-zA-Z])")
PRONOUN_I = re.compile(r"\bi\b")
SPACE_OUTSIDE_LATIN_WORDS = re.compile(r"(?<![A-Za-z0-9]) | (?![A-Za-z0-9])")


@dataclass(frozen=True)
class LongFormLayout:
    """What tells one long-form corpus from another; the segment walk (`segment_rows`) is shared."""

    corpus: str
    metadata: str  # the JSON file under ROOT
    splits: tuple[str, ...]
    subset_format: str  # a split's entry in a segment's "subsets", e.g. "{{{}}}" -> "{XL}"
    language: str
    instruction: str
    transcript: Callable[[dict], str | Skip]  # segment record -> the row's text, or why it has none


def encoder_limit_problem(seconds: float, what: str) -> str | None:
    """Why a clip of `seconds` cannot be a sample (the encoder and the timestamp tokens stop at 30 s), or None."""
    if seconds > MAX_SECONDS:
        return f"the {what} is {seconds:.2f} s long; the encoder takes at most {MAX_SECONDS} s"
    return None


def read_recordings(metadata: Path) -> list[dict]:
    """The "audios" list of a GigaSpeech/WenetSpeech-style JSON file."""
    document = read_json(metadata, "the corpus's JSON metadata")
    recordings = document.get("audios") if isinstance(document, dict) else None
    if not isinstance(recordings, list):
        raise CorpusLayoutError(f"{metadata}: no \"audios\" list at the top level; is this the published file?")
    return recordings


def segment_rows(layout: LongFormLayout, root: Path, split: str | None) -> Iterator[Row | Skip]:
    """Every segment of the split in the corpus's JSON metadata, as a row cutting its recording, or a Skip."""
    split = checked_split(split, layout.splits, layout.corpus)
    metadata = root / layout.metadata
    subset = layout.subset_format.format(split)
    for recording in read_recordings(metadata):
        try:
            segments = [segment for segment in recording["segments"] if subset in segment["subsets"]]
            if not segments:
                continue
            audio = audio_or_skip(root / recording["path"], recording["path"])
            for segment in segments:
                if isinstance(audio, Skip):
                    yield Skip(segment["sid"], audio.reason)
                else:
                    yield segment_row(layout, audio, segment)
        except KeyError as error:
            raise CorpusLayoutError(f"{metadata}: recording {recording.get('aid', '?')!r} or one of its segments "
                                    f"lacks the field {error}; is this the published file?") from None


def segment_row(layout: LongFormLayout, audio: Path, segment: dict) -> Row | Skip:
    sid = segment["sid"]
    start, end = float(segment["begin_time"]), float(segment["end_time"])
    if end <= start:
        return Skip(sid, f"end_time {end} s is not after begin_time {start} s")
    too_long = encoder_limit_problem(end - start, "segment")
    if too_long:
        return Skip(sid, too_long)
    text = layout.transcript(segment)
    if isinstance(text, Skip):
        return text
    return {"id": f"{layout.corpus}/{sid}", "task": "transcribe", "audio": str(audio), "start": start, "end": end,
            "audio_lang": layout.language, "text_lang": layout.language, "instruction": layout.instruction,
            "text": text}


def sentence_case(text: str) -> str:
    """'WELL. I THINK SO' -> 'Well. I think so'."""
    lowered = PRONOUN_I.sub("I", text.lower())
    return SENTENCE_START.sub(lambda match: match[1] + match[2] + match[3].upper(), lowered)


def gigaspeech_transcript(segment: dict) -> str | Skip:
    """text_tn with its punctuation tags as punctuation, sentence-cased."""
    sid, tokens = segment["sid"], segment["text_tn"].split()
    if tokens and set(tokens) <= GARBAGE_TAGS:
        return Skip(sid, f"garbage utterance ({' '.join(tokens)})")
    words: list[str] = []
    for token in tokens:
        if token in PUNCTUATION_TAGS:
            if words:
                words[-1] += PUNCTUATION_TAGS[token]
        elif TAG.match(token):
            return Skip(sid, f"tag {token} among the words of text_tn")
        else:
            words.append(token)
    if not words:
        return Skip(sid, "no words in text_tn")
    return sentence_case(" ".join(words))


def wenetspeech_transcript(segment: dict) -> str | Skip:
    """The text without the spaces between Chinese characters."""
    text = SPACE_OUTSIDE_LATIN_WORDS.sub("", " ".join(segment["text"].split()))
    return text if text else Skip(segment["sid"], "empty text")


GIGASPEECH = LongFormLayout("gigaspeech", "GigaSpeech.json", ("XS", "S", "M", "L", "XL", "DEV", "TEST"), "{{{}}}",
                            "en", "itn", gigaspeech_transcript)
WENETSPEECH = LongFormLayout("wenetspeech", "WenetSpeech.json", ("S", "M", "L", "DEV", "TEST_NET", "TEST_MEETING"),
                             "{}", "zh", "wo_itn", wenetspeech_transcript)

CORPORA = {
    "gigaspeech": Corpus("GigaSpeech.json segments of podcasts/audiobooks/YouTube: en transcription (itn)",
                         GIGASPEECH.splits, partial(segment_rows, GIGASPEECH)),
    "wenetspeech": Corpus("WenetSpeech.json segments of YouTube/podcasts: zh transcription", WENETSPEECH.splits,
                          partial(segment_rows, WENETSPEECH)),
}
