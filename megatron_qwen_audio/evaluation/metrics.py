"""Scores of decoded held-out samples, per task and language, computed the way published Qwen-Audio numbers are.

- transcribe: corpus-level WER and CER (jiwer) on Whisper-normalised text (`normalize_text`); for languages written
  without spaces (zh, ja) the WER field holds the CER and says so, as the Qwen-Audio and Whisper papers report them.
- translate: corpus BLEU (sacrebleu) on the raw text, per (spoken language -> text language) pair.
- lid: accuracy of the predicted language tag, and what the model predicted for each spoken language.
- any other task: the exact-match rate only, so that no decoded sample goes unreported.

Records are the per-sample dicts of decoding: {"key", "task", "audio_lang", "text_lang", "reference", "hypothesis"}.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

import jiwer
import sacrebleu
from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

from megatron_qwen_audio.text.tags import TASKS


def _project_task(name: str) -> str:
    """`name`, checked against the tag builder's task list, so that renaming a task there fails here at import."""
    if name not in TASKS:
        raise ImportError(f"task {name!r} is not one of the tag builder's tasks {TASKS}")
    return name


TRANSCRIBE = _project_task("transcribe")
TRANSLATE = _project_task("translate")
LID = _project_task("lid")

ENGLISH = "en"
CHINESE = frozenset({"zh", "zh_tr"})  # simplified and traditional text tags
NO_SPACE_LANGUAGES = CHINESE | {"ja"}  # words are not separated by spaces: score characters
UNKNOWN_LANGUAGE = "?"  # group name when a record has no language tag

# Whisper's British -> American spelling map ships with the Whisper tokenizer files on the model hub, not with the
# transformers package; without it spelling variants ("colour" / "color") count as errors, a small effect.
_ENGLISH_NORMALIZER = EnglishTextNormalizer(english_spelling_mapping={})
_BASIC_NORMALIZER = BasicTextNormalizer(remove_diacritics=False)

Record = Mapping[str, object]
Metrics = dict[str, object]


def normalize_text(text: str, language: str | None) -> str:
    """Whisper's evaluation normalisation of `text` in `language`, applied to reference and hypothesis before WER/CER.

    Published Whisper and Qwen-Audio WERs are computed after this normalisation, so scores are only comparable with
    theirs when it is applied; it also keeps casing and punctuation, which the training targets may or may not carry
    (`wo_itn`), from counting as recognition errors.

    - English (`en`): transformers' `EnglishTextNormalizer` (Whisper's): lowercases; drops text in brackets and
      parentheses and the fillers hmm / mm / mhm / mmm / uh / um; expands contractions and titles ("won't" -> "will
      not", "mr" -> "mister"); removes punctuation, symbols and diacritics; writes numbers as digits ("twenty one" ->
      "21", "twenty-one dollars" -> "$21"). No spelling map is applied (see `_ENGLISH_NORMALIZER`).
    - Any other language: `BasicTextNormalizer` with `remove_diacritics=False`: lowercases, drops text in brackets and
      parentheses, replaces punctuation and symbols with spaces, and keeps accents, so "é" for "e" is an error.
    - Then whitespace is collapsed to single spaces and trimmed; for languages written without spaces (zh, zh_tr, ja)
      it is removed altogether, so that the spaces left where punctuation was do not count as characters in the CER.
    """
    normalizer = _ENGLISH_NORMALIZER if language == ENGLISH else _BASIC_NORMALIZER
    separator = "" if language in NO_SPACE_LANGUAGES else " "
    return separator.join(normalizer(text).split())


def _transcription_metrics(records: Sequence[Record], language: str | None) -> Metrics:
    """Corpus WER and CER: total edits over total reference words (characters) of the group.

    A reference that is empty after normalisation has no words to divide by; jiwer would score it 100% per inserted
    word, so such samples are left out of both rates and counted in `empty_references` instead.
    """
    pairs = [(normalize_text(r["reference"], language), normalize_text(r["hypothesis"], language)) for r in records]
    scored = [(reference, hypothesis) for reference, hypothesis in pairs if reference]
    no_spaces = language in NO_SPACE_LANGUAGES
    wer = cer = None
    if scored:
        references, hypotheses = (list(texts) for texts in zip(*scored))
        cer = jiwer.cer(references, hypotheses)
        wer = cer if no_spaces else jiwer.wer(references, hypotheses)
    return {"wer": wer, "cer": cer, "wer_is_cer": no_spaces, "empty_references": len(pairs) - len(scored)}


def _translation_metrics(records: Sequence[Record], language: str | None) -> Metrics:
    """Corpus BLEU on the raw text: sacrebleu tokenises itself (13a, or its `zh` tokenizer for Chinese targets),
    and its signature is kept so the number can be reproduced and compared."""
    bleu = sacrebleu.BLEU(tokenize="zh" if language in CHINESE else "13a")
    score = bleu.corpus_score([r["hypothesis"] for r in records], [[r["reference"] for r in records]])
    return {"bleu": score.score, "bleu_signature": str(bleu.get_signature())}


def _exact_match_rate(records: Sequence[Record]) -> float:
    return sum(r["hypothesis"] == r["reference"] for r in records) / len(records)


def _lid_metrics(records: Sequence[Record], language: str | None) -> Metrics:
    """Accuracy of the predicted tag, and how often each tag was predicted for this spoken language (one row of the
    confusion matrix; the rows of all languages together make the whole matrix)."""
    return {"accuracy": _exact_match_rate(records), "confusion": dict(Counter(r["hypothesis"] for r in records))}


def _other_metrics(records: Sequence[Record], language: str | None) -> Metrics:
    return {"exact_match": _exact_match_rate(records)}


_SCORERS: Mapping[str, Callable[[Sequence[Record], str | None], Metrics]] = {
    TRANSCRIBE: _transcription_metrics,
    TRANSLATE: _translation_metrics,
    LID: _lid_metrics,
}


def _text_language(record: Record) -> str | None:
    """The language the reference is written in (the spoken one for tasks without a text language, such as lid)."""
    return record.get("text_lang") or record.get("audio_lang")


def _group_language(record: Record) -> str:
    """Translation is grouped by language pair ("fr->en"), every other task by its text language."""
    if record["task"] == TRANSLATE:
        source, target = record.get("audio_lang"), record.get("text_lang")
        return f"{source or UNKNOWN_LANGUAGE}->{target or UNKNOWN_LANGUAGE}"
    return _text_language(record) or UNKNOWN_LANGUAGE


def _group_order(key: tuple[str, str]) -> tuple[int, str, str]:
    """Tasks in the tag builder's order (unknown ones last), then languages alphabetically."""
    task, language = key
    return (TASKS.index(task) if task in TASKS else len(TASKS), task, language)


def score(records: Iterable[Record]) -> list[dict]:
    """One row per (task, language) group: {"task", "language", "samples", metric fields...}.

    Metric fields: transcribe: wer, cer (fractions; None when every reference is empty), wer_is_cer,
    empty_references; translate: bleu (0-100), bleu_signature; lid: accuracy (fraction), confusion
    ({predicted tag: count}); other tasks: exact_match (fraction).
    """
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in records:
        groups[(record["task"], _group_language(record))].append(record)
    rows = []
    for task, language in sorted(groups, key=_group_order):
        members = groups[(task, language)]
        metrics = _SCORERS.get(task, _other_metrics)(members, _text_language(members[0]))
        rows.append({"task": task, "language": language, "samples": len(members), **metrics})
    return rows


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _wer_cell(row: Mapping) -> str:
    """WER in percent, marked "(CER)" where the language is scored by characters."""
    cell = _percent(row.get("wer"))
    return f"{cell} (CER)" if cell and row.get("wer_is_cer") else cell


_COLUMNS: Sequence[tuple[str, str, Callable[[Mapping], str]]] = (  # header, alignment, cell
    ("task", ":--", lambda row: row["task"]),
    ("language", ":--", lambda row: row["language"]),
    ("samples", "--:", lambda row: str(row["samples"])),
    ("WER", "--:", _wer_cell),
    ("CER", "--:", lambda row: _percent(row.get("cer"))),
    ("BLEU", "--:", lambda row: _number(row.get("bleu"))),
    ("accuracy", "--:", lambda row: _number(row.get("accuracy", row.get("exact_match")))),
)


def _table_line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def metrics_table(rows: Iterable[Mapping]) -> str:
    """The rows of `score` as a Markdown table: WER and CER in percent, BLEU on sacrebleu's 0-100 scale, accuracy
    (exact-match rate for tasks without a metric of their own) as a fraction, all with 2 decimals; blank where a
    metric does not apply to the task."""
    lines = [_table_line(header for header, _, _ in _COLUMNS), _table_line(align for _, align, _ in _COLUMNS)]
    lines += [_table_line(cell(row) for _, _, cell in _COLUMNS) for row in rows]
    return "\n".join(lines)
