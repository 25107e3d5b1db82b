"""`mqa-prepare-asterisk`: real multilingual speech manifests from Debian's Asterisk prompt recordings.

Debian ships the Asterisk telephony prompts recorded by professional voices in English, Spanish, French and Italian
(8 kHz PCM WAV, CC-BY-SA-3.0) together with their transcripts. The same prompt name in two languages is the same
sentence, so besides transcription the set gives real speech-translation pairs and language identification. It is
small (about 1.5 hours) but real, fetchable with the ordinary package client, and enough to prove the data path and
to smoke-test training end to end.

The held-out split is made by prompt name, so a held-out sentence is unseen in every language and task: its
translations cannot leak into training through another language. Prompts whose transcripts read the same in any
language (`minutes`, `vm-minutes`, `queue-minutes`) are one sentence under several names, so they go to the same split.

With `--with-chat` (the default) the same labels also give instruction-tuning samples, each split from its own prompts
only: ChatML questions about one or two recordings (task `chat`: what is said, which language, translate it, which
recording is in a language, do both say the same thing) and text-only instructions (task `text`: translate a
transcript, name its language). One of each per prompt and language at most, the template drawn by a generator
seeded with the prompt name, so the manifests are the same on every run.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from data_prep.asterisk_transcripts import TranscriptList, merge_non_speech, parse_transcript_list
from data_prep.atomic_files import atomic_text_file
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
# Each split's rows for one training stage of the demo recipe, beside the split's whole manifest: `pretrain` the
# tag-format tasks of stage 1, `text` the text side for the text-only stage: the pure-text instructions plus the
# tag-format rows with each clip's transcript in place of its audio (`audio_text`, see megatron_qwen_audio.text.tags),
# which are only in this manifest.
PURPOSE_TASKS = {"pretrain": ("transcribe", "translate", "lid"), "text": ("text",)}
TEXT_IN_PLACE = "text"  # the purpose that also gets the tag-format rows with the transcript in place of the audio
# The demo's first stage reads synthetic copy rows only (`copy_rows`): per language, this many per split
COPY_PURPOSE = "copy"
COPY_ROWS_PER_LANGUAGE = {TRAIN_MANIFEST: 1000, HELDOUT_MANIFEST: 50}
COPY_WORDS = (3, 14)  # words in one copy row, bounds included
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "it": "Italian"}
ORDINALS = ("The first one.", "The second one.")
# Not "Yes." / "No.": "no" is itself a prompt (`vm-no`), and a fixed answer must never read like a label.
SAME_CONTENT_ANSWERS = {True: "Yes, they say the same thing.", False: "No, they say different things."}
TRANSLATE_INSTRUCTIONS = ("Translate into {language}:", "Write this in {language}:")
MIN_WORDS_TO_IDENTIFY = 3  # single words and pairs ("no", "menu", "Local") are spelled alike in several languages


def purpose_manifest(split_manifest: str, purpose: str) -> str:
    """`train.jsonl`, `pretrain` -> `train_pretrain.jsonl`."""
    stem, _, suffix = split_manifest.rpartition(".")
    return f"{stem}_{purpose}.{suffix}"


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


def normalized(text: str) -> str:
    """Case and punctuation removed: how a sentence is compared for being "the same" across prompts."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def text_groups(clips: dict[str, dict[str, Clip]]) -> dict[str, str]:
    """Each prompt name -> the first name (in sorted order) of its group: names joined, transitively, when any of their
    transcripts read the same, in any language. Split membership goes by group, because splitting by name alone put
    e.g. `minutes` in held-out and `digits/minutes` (the same word) in training."""
    names_by_text: dict[str, set[str]] = defaultdict(set)
    for per_language in clips.values():
        for clip in per_language.values():
            names_by_text[normalized(clip.text)].add(clip.name)
    parent = {name: name for names in names_by_text.values() for name in names}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    for names in names_by_text.values():
        first, *rest = sorted(names)
        for name in rest:
            low, high = sorted((root(first), root(name)))
            parent[high] = low  # the smaller name stays the root, so a group's key is its first name
    return {name: root(name) for name in parent}


def split_clips(clips: dict[str, dict[str, Clip]], groups: dict[str, str], fraction: float,
                seed: int) -> dict[str, dict[str, dict[str, Clip]]]:
    """The clips of each manifest, per language and prompt name, held out by text group."""
    splits: dict[str, dict[str, dict[str, Clip]]] = {TRAIN_MANIFEST: {}, HELDOUT_MANIFEST: {}}
    for language, per_language in clips.items():
        for split in splits.values():
            split[language] = {}
        for name, clip in per_language.items():
            heldout = is_heldout(groups[name], fraction, seed)
            splits[HELDOUT_MANIFEST if heldout else TRAIN_MANIFEST][language][name] = clip
    return splits


def audio_path(clip: Clip) -> str:
    """Where a manifest row finds the clip: relative to the manifest's folder, into which `copy_audio` puts it."""
    return f"audio/{clip.relative_path}"


def _row(task: str, clip: Clip, text_language: str | None, text: str | None, in_place: bool) -> dict:
    pair = f"{clip.language}-{text_language}" if text_language else clip.language
    if in_place:
        row = {"id": f"asterisk/{task}-text/{pair}/{clip.name}", "audio_text": clip.text}
    else:
        row = {"id": f"asterisk/{task}/{pair}/{clip.name}", "audio": audio_path(clip)}
    row.update(task=task, audio_lang=clip.language)
    if text_language:
        row.update(text_lang=text_language, text=text)
    return row


def manifest_rows(clips: dict[str, dict[str, Clip]], in_place: bool = False) -> list[tuple[str, dict]]:
    """(prompt name, manifest row) for transcription, translation to and from English, and language identification;
    with `in_place`, the same rows with each clip's transcript in place of its audio."""
    rows = []
    for language in LANGUAGES:
        rows += [(clip.name, _row("transcribe", clip, language, clip.text, in_place))
                 for clip in clips[language].values()]
    pivot = clips[PIVOT_LANGUAGE]
    for language in LANGUAGES:
        if language == PIVOT_LANGUAGE:
            continue
        other = clips[language]
        shared = sorted(pivot.keys() & other.keys())
        rows += [(name, _row("translate", other[name], PIVOT_LANGUAGE, pivot[name].text, in_place)) for name in shared]
        rows += [(name, _row("translate", pivot[name], language, other[name].text, in_place)) for name in shared]
    for language in LANGUAGES:
        rows += [(clip.name, _row("lid", clip, None, None, in_place)) for clip in clips[language].values()]
    return rows


@dataclass(frozen=True)
class Exchange:
    """One user question and the assistant's answer, made from the labels of one clip (and maybe a second one)."""

    template: str
    question: str | list[dict]  # ChatML user content: a text, or audio items followed by a text item
    answer: str
    answer_language: str
    audio_language: str | None = None  # only for a single clip: two clips may be in two languages


@dataclass(frozen=True)
class SplitPool:
    """One split's clips and the text groups: second clips are drawn from here, so they never cross the split."""

    clips: dict[str, dict[str, Clip]]
    groups: dict[str, str]

    def same_prompt(self, clip: Clip) -> list[Clip]:
        """The clip's prompt in the split's other languages: the same sentence, spoken by another voice."""
        return [self.clips[language][clip.name] for language in LANGUAGES
                if language != clip.language and clip.name in self.clips[language]]

    def clips_where(self, keep: Callable[[Clip], bool]) -> list[Clip]:
        return [clip for language in LANGUAGES for clip in self.clips[language].values() if keep(clip)]


Template = Callable[[Clip, SplitPool, random.Random], Exchange | None]  # None: the template does not apply


def _audio_item(clip: Clip) -> dict:
    return {"audio": audio_path(clip)}


def _about_clips(clips: Sequence[Clip], question: str) -> list[dict]:
    return [_audio_item(clip) for clip in clips] + [{"text": question}]


def _transcript(clip: Clip, pool: SplitPool, rng: random.Random) -> Exchange:
    return Exchange("transcript", _about_clips([clip], "What is said in this recording?"), clip.text, clip.language,
                    clip.language)


def _spoken_language(clip: Clip, pool: SplitPool, rng: random.Random) -> Exchange:
    return Exchange("language", _about_clips([clip], "Which language is spoken?"), LANGUAGE_NAMES[clip.language],
                    PIVOT_LANGUAGE, clip.language)


def _speech_translation(clip: Clip, pool: SplitPool, rng: random.Random) -> Exchange | None:
    english = pool.clips[PIVOT_LANGUAGE].get(clip.name)
    if clip.language == PIVOT_LANGUAGE or english is None:
        return None
    return Exchange("translation", _about_clips([clip], "Translate the recording into English."), english.text,
                    PIVOT_LANGUAGE, clip.language)


def _which_language(clip: Clip, pool: SplitPool, rng: random.Random) -> Exchange | None:
    """Two clips in two languages, the second one half the time the same prompt (so only the voice and language tell
    them apart) and otherwise another prompt; the question names the language of either."""
    others = pool.clips_where(lambda other: other.language != clip.language and other.name != clip.name)
    partner_lists = [partners for partners in (pool.same_prompt(clip), others) if partners]
    if not partner_lists:
        return None
    pair = rng.sample([clip, rng.choice(rng.choice(partner_lists))], 2)
    asked = rng.randrange(2)
    question = f"Which recording is in {LANGUAGE_NAMES[pair[asked].language]}?"
    return Exchange("which-language", _about_clips(pair, question), ORDINALS[asked], PIVOT_LANGUAGE)


def _same_content(clip: Clip, pool: SplitPool, rng: random.Random) -> Exchange | None:
    """Yes: the same prompt in another language. No: a prompt of another text group, since prompts of one group may
    say the same thing under different names."""
    different = pool.clips_where(lambda other: pool.groups[other.name] != pool.groups[clip.name])
    choices = [(same, partners) for same, partners in ((True, pool.same_prompt(clip)), (False, different)) if partners]
    if not choices:
        return None
    same, partners = rng.choice(choices)
    pair = rng.sample([clip, rng.choice(partners)], 2)
    return Exchange("same-content", _about_clips(pair, "Do both recordings say the same thing?"),
                    SAME_CONTENT_ANSWERS[same], PIVOT_LANGUAGE)


def _text_translation(clip: Clip, pool: SplitPool, rng: random.Random) -> Exchange | None:
    """X -> English, or English -> X, as the speech translation pairs go. Text samples put the transcript on a line of
    its own after the instruction, so that every line of a sample is either a fixed phrase or a whole transcript."""
    targets = [other for other in pool.same_prompt(clip) if PIVOT_LANGUAGE in (clip.language, other.language)]
    if not targets:
        return None
    target = rng.choice(targets)
    instruction = rng.choice(TRANSLATE_INSTRUCTIONS).format(language=LANGUAGE_NAMES[target.language])
    return Exchange("translation", f"{instruction}\n{clip.text}", target.text, target.language)


def _text_language(clip: Clip, pool: SplitPool, rng: random.Random) -> Exchange | None:
    if len(normalized(clip.text).split()) < MIN_WORDS_TO_IDENTIFY:
        return None
    return Exchange("language", f"Which language is this?\n{clip.text}", LANGUAGE_NAMES[clip.language],
                    PIVOT_LANGUAGE)


INSTRUCTION_TEMPLATES: dict[str, tuple[Template, ...]] = {
    "chat": (_transcript, _spoken_language, _speech_translation, _which_language, _same_content),
    "text": (_text_translation, _text_language),
}


def _exchange(clip: Clip, pool: SplitPool, templates: Sequence[Template], rng: random.Random) -> Exchange | None:
    """The first template, in a random order, that applies to the clip: a uniform choice among those that do."""
    for template in rng.sample(templates, len(templates)):
        exchange = template(clip, pool, rng)
        if exchange is not None:
            return exchange
    return None


def _exchange_row(task: str, clip: Clip, exchange: Exchange) -> dict:
    row = {"id": f"asterisk/{task}/{clip.language}/{clip.name}", "task": task}
    if exchange.audio_language:
        row["audio_lang"] = exchange.audio_language
    row.update(text_lang=exchange.answer_language, template=exchange.template, messages=[
        {"role": "user", "content": exchange.question}, {"role": "assistant", "content": exchange.answer}])
    return row


def instruction_rows(clips: dict[str, dict[str, Clip]], groups: dict[str, str], seed: int) -> list[tuple[str, dict]]:
    """(prompt name, row) of one split's chat and text samples: at most one of each per clip, the template and any
    second clip drawn by a generator seeded with the clip's prompt name and language."""
    pool = SplitPool(clips, groups)
    rows = []
    for task, templates in INSTRUCTION_TEMPLATES.items():
        for language in LANGUAGES:
            for clip in clips[language].values():
                exchange = _exchange(clip, pool, templates, random.Random(f"{seed}/{task}/{language}/{clip.name}"))
                if exchange is not None:
                    rows.append((clip.name, _exchange_row(task, clip, exchange)))
    return rows


def copy_rows(clips: dict[str, dict[str, Clip]], per_language: int, seed: int) -> list[tuple[str, dict]]:
    """(row name, row) of one split's synthetic copy rows: transcription rows whose text in place of the audio is a
    random sequence of words from the split's own transcripts of one language, and whose transcript is that sequence.

    Why: the demo's decoder is trained from scratch, and it only uses what stands before its tags (a transcript in
    place of the audio, later the encoder's output) if it can copy from there. Real sentences are few enough to be
    memorised instead, so the text stage alone barely teaches copying: own vs another transcript in place, held out,
    2.9% apart. Random sequences cannot be memorised; 300 steps on them alone, then the text stage, give 14.7%."""
    rows = []
    for language in LANGUAGES:
        vocabulary = sorted({word for clip in clips[language].values() for word in clip.text.split()})
        generator = random.Random(f"{seed}/copy/{language}")
        for index in range(per_language):
            text = " ".join(generator.choice(vocabulary) for _ in range(generator.randint(*COPY_WORDS)))
            rows.append((f"copy/{language}/{index}", {
                "id": f"asterisk/copy-text/{language}/{index}", "audio_text": text, "task": "transcribe",
                "audio_lang": language, "text_lang": language, "text": text}))
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
    with atomic_text_file(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _counts(counter: Counter) -> str:
    return ", ".join(f"{key} {count}" for key, count in sorted(counter.items()))


def summary(clips: dict[str, dict[str, Clip]], groups: dict[str, str], splits: dict[str, list[tuple[str, dict]]],
            skipped: list[tuple[str, str, str]], untranscribed: dict[str, int]) -> list[str]:
    lines = ["usable prompts (clips, minutes) per language: " + ", ".join(
        f"{language} {len(clips[language])} ({sum(c.seconds for c in clips[language].values()) / 60:.1f} min)"
        for language in LANGUAGES
    )]
    lines.append("recordings without a transcript (unused): " + ", ".join(
        f"{language} {count}" for language, count in untranscribed.items()
    ))
    shared = [size for size in Counter(groups.values()).values() if size > 1]
    lines.append(f"prompt names that share a transcript, kept in one split: {sum(shared)} in {len(shared)} groups")
    for split, rows in splits.items():
        prompts = {name for name, _ in rows}
        lines.append(f"{split}: {len(rows)} samples from {len(prompts)} prompt names: " +
                     _counts(Counter(row["task"] for _, row in rows)))
        # ids are asterisk/TASK/LANGS/NAME; for chat and text samples LANGS is the language of the clip they came from
        lines.append("  per task and language: " + _counts(Counter(
            "/".join(row["id"].split("/")[1:3]) for _, row in rows)))
        templates = Counter(f"{row['task']} {row['template']}" for _, row in rows if "template" in row)
        if templates:
            lines.append("  chat and text samples per template: " + _counts(templates))
    reasons = Counter((language, reason) for language, _, reason in skipped)
    lines.append(f"skipped {len(skipped)} entries: " + "; ".join(
        f"{language} {reason}: {count}" for (language, reason), count in sorted(reasons.items())
    ))
    return lines


def prepare(out_dir: Path, cache_dir: Path, debs_dir: Path | None, heldout_fraction: float, seed: int,
            with_chat: bool = True) -> list[str]:
    """Fetch the packages, write `train.jsonl` / `heldout.jsonl` and the audio under `out_dir`; return the summary."""
    root = fetch_debian_packages(all_packages(), cache_dir, debs_dir)
    clips, skipped, untranscribed = collect_clips(root)
    groups = text_groups(clips)
    splits: dict[str, list[tuple[str, dict]]] = {}
    in_place: dict[str, list[tuple[str, dict]]] = {}
    copies: dict[str, list[tuple[str, dict]]] = {}
    for file_name, split in split_clips(clips, groups, heldout_fraction, seed).items():
        splits[file_name] = manifest_rows(split) + (instruction_rows(split, groups, seed) if with_chat else [])
        in_place[file_name] = manifest_rows(split, in_place=True)
        copies[file_name] = copy_rows(split, COPY_ROWS_PER_LANGUAGE[file_name], seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    copy_audio((clip for per_language in clips.values() for clip in per_language.values()), root, out_dir)
    for file_name, rows in splits.items():
        for purpose, tasks in PURPOSE_TASKS.items():
            subset = [(name, row) for name, row in rows if row["task"] in tasks]
            if purpose == TEXT_IN_PLACE:
                subset += in_place[file_name]
            _write_shuffled(out_dir / purpose_manifest(file_name, purpose), subset, seed)
        _write_shuffled(out_dir / purpose_manifest(file_name, COPY_PURPOSE), copies[file_name], seed)
        _write_shuffled(out_dir / file_name, rows, seed)
    in_place_summary = {f"{purpose_manifest(file_name, TEXT_IN_PLACE)}, transcript in place of the audio": rows
                        for file_name, rows in in_place.items()}
    copy_summary = {f"{purpose_manifest(file_name, COPY_PURPOSE)}, random word sequences to copy": rows
                    for file_name, rows in copies.items()}
    return summary(clips, groups, {**splits, **in_place_summary, **copy_summary}, skipped, untranscribed)


def _write_shuffled(path: Path, rows: list[tuple[str, dict]], seed: int) -> None:
    """Rows are generated task by task and language by language; shuffled (seeded) so every shard, and so every
    loader worker's share of shards, holds the whole mixture rather than one task."""
    random.Random(f"{path.name}/{seed}").shuffle(rows)
    write_jsonl(path, (row for _, row in rows))


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mqa-prepare-asterisk",
        description="Fetch Debian's Asterisk prompt recordings (en, es, fr, it; 8 kHz WAV with transcripts) and write "
                    "transcription, speech-translation (X->en, en->X) and language-identification manifests, with "
                    "ChatML samples built from the same labels (see --with-chat): "
                    f"OUT/{TRAIN_MANIFEST} and OUT/{HELDOUT_MANIFEST} (and each split's rows of the demo's stages: "
                    f"{', '.join(purpose_manifest(TRAIN_MANIFEST, purpose) for purpose in PURPOSE_TASKS)}, ...), "
                    "with the audio under OUT/audio/. "
                    "Non-speech prompts, prompts whose transcript is unclear or damaged, prompts without a recording "
                    f"and clips over {MAX_SECONDS} s are skipped and counted in the printed summary.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder for the manifests and audio")
    parser.add_argument("--heldout-fraction", type=_fraction, default=0.1,
                        help="share of prompt names held out in every language and task; names that share a "
                             "transcript count as one (default 0.1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the held-out hash and of the chat and text templates (default 0)")
    parser.add_argument("--with-chat", action=argparse.BooleanOptionalAction, default=True,
                        help="also write, per prompt and language, one ChatML question about the recording (task "
                             "chat; one or two clips) and one text-only instruction (task text: translate the "
                             "transcript or name its language), each split from its own prompts only (default on; "
                             "--no-with-chat writes the pretraining tasks alone)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the packages are downloaded and unpacked (default: $MQA_CACHE_DIR/debian or "
                             "~/.cache/megatron_qwen_audio/debian); reused by later runs")
    parser.add_argument("--debs", type=Path, default=None,
                        help="a folder of .deb files downloaded by hand, for machines without apt lists or network: "
                             + ", ".join(all_packages()))
    args = parser.parse_args(argv)
    cache_dir = args.cache or default_cache_dir() / "debian"
    try:
        lines = prepare(args.out, cache_dir, args.debs, args.heldout_fraction, args.seed, args.with_chat)
    except DebianFetchError as error:
        print(f"mqa-prepare-asterisk: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
