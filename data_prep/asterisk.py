"""`mqa-prepare-asterisk`: real multilingual speech manifests from Debian's Asterisk prompt recordings.

Debian ships the Asterisk telephony prompts recorded by professional voices in English, Spanish, French and Italian
(8 kHz PCM WAV, CC-BY-SA-3.0) together with their transcripts. The same prompt name in two languages is the same
sentence, so besides transcription the set gives real speech-translation pairs and language identification. It is
small (about 1.5 hours) but real, fetchable with the ordinary package client, and enough to prove the data path and
to smoke-test training end to end.

The held-out split is made by prompt name, so a held-out sentence is unseen in every language and task: its
translations cannot leak into training through another language.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from data_prep.asterisk_transcripts import TranscriptList, merge_non_speech, parse_transcript_list
from data_prep.debian_packages import DebianFetchError, fetch_debian_packages
from megatron_qwen_audio.audio.decode import probe_audio
from megatron_qwen_audio.audio.lengths import MAX_SECONDS
from megatron_qwen_audio.text.fetch import default_cache_dir

LANGUAGES = ("en", "es", "fr", "it")
PIVOT_LANGUAGE = "en"  # translation pairs are X -> en and en -> X, as in CoVoST 2
SOUNDS_DIR = PurePosixPath("usr/share/asterisk/sounds")
NO_WAV = "no wav"
TOO_LONG = f"longer than {MAX_SECONDS} s"
TRAIN_MANIFEST = "train.jsonl"
HELDOUT_MANIFEST = "heldout.jsonl"


def transcript_package(language: str) -> str:
    return f"asterisk-core-sounds-{language}"


def wav_package(language: str) -> str:
    return f"asterisk-core-sounds-{language}-wav"


def all_packages() -> list[str]:
    return [package for language in LANGUAGES for package in (transcript_package(language), wav_package(language))]


@dataclass(frozen=True)
class Clip:
    """One usable recording: a prompt spoken in one language, with its transcript."""

    language: str
    name: str  # prompt name, may contain a subfolder (`digits/1`)
    relative_path: PurePosixPath  # under the sounds folder: `<voice>/<name>.wav`
    seconds: float
    text: str


def read_transcript_list(root: Path, language: str) -> TranscriptList:
    path = root / "usr/share/doc" / transcript_package(language) / f"core-sounds-{language}.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8-sig") as handle:
        return parse_transcript_list(handle)


def voice_folder(root: Path, language: str) -> PurePosixPath:
    """The one `<language>_<region>_<sex>_<speaker>` folder of the language's WAV package."""
    sounds = root / SOUNDS_DIR
    voices = sorted(path.name for path in sounds.glob(f"{language}_*") if path.is_dir())
    if len(voices) != 1:
        raise DebianFetchError(
            f"{sounds}: expected one {language}_* voice folder from {wav_package(language)}, found {voices or 'none'}; "
            f"delete the cache folder and rerun"
        )
    return PurePosixPath(voices[0])


def recordings(root: Path, voice: PurePosixPath) -> dict[str, str]:
    """Prompt names of the voice's WAV files, keyed by their lower-case form.

    The transcript lists sometimes spell a name in another case than its file (`letters/O` for `letters/o.wav`,
    `digits/1f` for `digits/1F.wav`); matching without case recovers them, and the file's spelling becomes the prompt
    name so that the same prompt pairs up across languages.
    """
    folder = root / SOUNDS_DIR / voice
    names = sorted(path.relative_to(folder).with_suffix("").as_posix() for path in folder.rglob("*.wav"))
    by_lower: dict[str, list[str]] = {}
    for name in names:
        by_lower.setdefault(name.lower(), []).append(name)
    return {lower: spellings[0] for lower, spellings in by_lower.items() if len(spellings) == 1}


def collect_clips(root: Path) -> tuple[dict[str, dict[str, Clip]], list[tuple[str, str, str]], dict[str, int]]:
    """Usable clips per language and prompt name, the skipped entries as (language, name, reason), and the number of
    recordings per language that have no transcript."""
    lists = {language: read_transcript_list(root, language) for language in LANGUAGES}
    merge_non_speech(lists.values())
    clips: dict[str, dict[str, Clip]] = {}
    skipped = [(language, name, reason) for language, parsed in lists.items() for name, reason in parsed.skipped]
    untranscribed: dict[str, int] = {}
    for language, parsed in lists.items():
        voice = voice_folder(root, language)
        files = recordings(root, voice)
        listed = {name.lower() for name in parsed.texts} | {name.lower() for name, _ in parsed.skipped}
        untranscribed[language] = len(files.keys() - listed)
        clips[language] = {}
        for listed_name, text in sorted(parsed.texts.items()):
            name = files.get(listed_name.lower())
            if name is None:
                skipped.append((language, listed_name, NO_WAV))
                continue
            relative = voice / f"{name}.wav"
            seconds = probe_audio(root / SOUNDS_DIR / relative).seconds
            if seconds > MAX_SECONDS:
                skipped.append((language, name, TOO_LONG))
                continue
            clips[language][name] = Clip(language, name, relative, seconds, text)
    return clips, skipped, untranscribed


def is_heldout(name: str, fraction: float, seed: int) -> bool:
    """Deterministic membership of a prompt name in the held-out split, independent of language and task."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def _row(task: str, clip: Clip, text_language: str | None, text: str | None) -> dict:
    pair = f"{clip.language}-{text_language}" if text_language else clip.language
    row = {"id": f"asterisk/{task}/{pair}/{clip.name}", "audio": f"audio/{clip.relative_path}", "task": task,
           "audio_lang": clip.language}
    if text_language:
        row.update(text_lang=text_language, text=text)
    return row


def manifest_rows(clips: dict[str, dict[str, Clip]]) -> list[tuple[str, dict]]:
    """(prompt name, manifest row) for transcription, translation to and from English, and language identification."""
    rows = []
    for language in LANGUAGES:
        rows += [(clip.name, _row("transcribe", clip, language, clip.text)) for clip in clips[language].values()]
    pivot = clips[PIVOT_LANGUAGE]
    for language in LANGUAGES:
        if language == PIVOT_LANGUAGE:
            continue
        other = clips[language]
        shared = sorted(pivot.keys() & other.keys())
        rows += [(name, _row("translate", other[name], PIVOT_LANGUAGE, pivot[name].text)) for name in shared]
        rows += [(name, _row("translate", pivot[name], language, other[name].text)) for name in shared]
    for language in LANGUAGES:
        rows += [(clip.name, _row("lid", clip, None, None)) for clip in clips[language].values()]
    return rows


def copy_audio(clips: Iterable[Clip], root: Path, out_dir: Path) -> None:
    """Put the clips under `out_dir/audio/` (hard links when the cache is on the same file system), reusing copies."""
    for clip in clips:
        source = root / SOUNDS_DIR / clip.relative_path
        target = out_dir / "audio" / clip.relative_path
        if target.is_file() and target.stat().st_size == source.stat().st_size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def summary(clips: dict[str, dict[str, Clip]], splits: dict[str, list[tuple[str, dict]]],
            skipped: list[tuple[str, str, str]], untranscribed: dict[str, int]) -> list[str]:
    lines = ["usable prompts (clips, minutes) per language: " + ", ".join(
        f"{language} {len(clips[language])} ({sum(c.seconds for c in clips[language].values()) / 60:.1f} min)"
        for language in LANGUAGES
    )]
    lines.append("recordings without a transcript (unused): " + ", ".join(
        f"{language} {count}" for language, count in untranscribed.items()
    ))
    for split, rows in splits.items():
        prompts = {name for name, _ in rows}
        tasks = Counter(row["task"] for _, row in rows)
        lines.append(f"{split}: {len(rows)} samples from {len(prompts)} prompt names: " +
                     ", ".join(f"{task} {count}" for task, count in sorted(tasks.items())))
    reasons = Counter((language, reason) for language, _, reason in skipped)
    lines.append(f"skipped {len(skipped)} entries: " + "; ".join(
        f"{language} {reason}: {count}" for (language, reason), count in sorted(reasons.items())
    ))
    return lines


def prepare(out_dir: Path, cache_dir: Path, debs_dir: Path | None, heldout_fraction: float, seed: int) -> list[str]:
    """Fetch the packages, write `train.jsonl` / `heldout.jsonl` and the audio under `out_dir`; return the summary."""
    root = fetch_debian_packages(all_packages(), cache_dir, debs_dir)
    clips, skipped, untranscribed = collect_clips(root)
    splits: dict[str, list[tuple[str, dict]]] = {TRAIN_MANIFEST: [], HELDOUT_MANIFEST: []}
    for name, row in manifest_rows(clips):
        splits[HELDOUT_MANIFEST if is_heldout(name, heldout_fraction, seed) else TRAIN_MANIFEST].append((name, row))
    out_dir.mkdir(parents=True, exist_ok=True)
    copy_audio((clip for per_language in clips.values() for clip in per_language.values()), root, out_dir)
    for file_name, rows in splits.items():
        # Rows are generated task by task and language by language; shuffled (seeded) so every shard, and so every
        # loader worker's share of shards, holds the whole mixture rather than one task.
        random.Random(f"{file_name}/{seed}").shuffle(rows)
        write_jsonl(out_dir / file_name, (row for _, row in rows))
    return summary(clips, splits, skipped, untranscribed)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mqa-prepare-asterisk",
        description="Fetch Debian's Asterisk prompt recordings (en, es, fr, it; 8 kHz WAV with transcripts) and write "
                    "transcription, speech-translation (X->en, en->X) and language-identification manifests: "
                    f"OUT/{TRAIN_MANIFEST} and OUT/{HELDOUT_MANIFEST}, with the audio under OUT/audio/. "
                    "Non-speech prompts, prompts whose transcript is unclear or damaged, prompts without a recording "
                    f"and clips over {MAX_SECONDS} s are skipped and counted in the printed summary.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder for the manifests and audio")
    parser.add_argument("--heldout-fraction", type=_fraction, default=0.1,
                        help="share of prompt names held out in every language and task (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out hash (default 0)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the packages are downloaded and unpacked (default: $MQA_CACHE_DIR/debian or "
                             "~/.cache/megatron_qwen_audio/debian); reused by later runs")
    parser.add_argument("--debs", type=Path, default=None,
                        help="a folder of .deb files downloaded by hand, for machines without apt lists or network: "
                             + ", ".join(all_packages()))
    args = parser.parse_args(argv)
    cache_dir = args.cache or default_cache_dir() / "debian"
    try:
        lines = prepare(args.out, cache_dir, args.debs, args.heldout_fraction, args.seed)
    except DebianFetchError as error:
        print(f"mqa-prepare-asterisk: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
