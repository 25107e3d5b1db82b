"""`mqa-make-qa --manifest M.jsonl --out QA.jsonl --model NAME`: question-answer samples about each clip of a
manifest, written by a language model from the clip's raw label (Qwen-Audio's QA augmentation).

Any OpenAI-compatible chat endpoint serves (vLLM, TGI, llama.cpp, a hosted API): `--base-url`, `--model` and
`--api-key`, or $OPENAI_BASE_URL, $MQA_QA_MODEL and $OPENAI_API_KEY. Each row's request holds instructions, the
hand-written demonstrations of its label kind (data_prep/qa_demonstrations.json, data_prep/qa_prompts.py) and its
label. At most `--concurrency` requests are in flight. HTTP failures (429, 5xx, timeouts, dropped connections) are
retried by the `openai` client with exponential backoff, honouring Retry-After, up to `--retries` times; a reply that
fails validation (data_prep/qa_validation.py) is asked again, up to `--attempts` requests per row. Every reply is
cached under `--cache` (default: beside the output) by a hash of the model, the messages and the attempt number, so a
re-run, after an interruption or with a longer manifest, pays only for what it has not asked yet.

Output: a manifest of `qa` rows (the source row's clip, segment and speech language, `question`, `answer`, and
`source` = the row's id and label), or with `--format chat` of ChatML rows (user: the clip and the question;
assistant: the answer) for stage-2 SFT, in the input's order. With `--format chat --clips N` consecutive askable
rows are asked about together: one multi-audio conversation (Audio 1 .. Audio N) per group, whose answer must agree
with one of the clips' labels; every input line that gives none lands in
`QA.rejects.jsonl` with its reason (no label to ask about, the endpoint failed, or the last reply's validation
failure). Exit status 0, or 2 for a usage error.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import openai
from tqdm import tqdm

from data_prep.atomic_files import atomic_text_file, write_atomically
from data_prep.manifest import ManifestReject, ManifestRow, read_manifest
from data_prep.qa_prompts import Label, NotAskable, chat_messages, row_label
from data_prep.qa_validation import checked_pair
from megatron_qwen_audio.text.special_tokens import AUDIO_LANGUAGES

PROGRAM = "mqa-make-qa"
ROWS_PER_WINDOW = 1024  # rows whose requests are scheduled together (memory stays flat on long manifests); with
# --clips > 1 a window's last conversation may hold fewer clips
QUESTION_LANGUAGE = "en"  # the QA audio-language tag of non-speech clips, as the released ClothoAQA prompt has it


@dataclass(frozen=True)
class Reject:
    line: int
    id: str | None
    reason: str


@dataclass
class ReplyCounts:
    received: int = 0  # from the endpoint in this run
    cached: int = 0  # read from the cache instead of asked again


@dataclass
class CompletionCache:
    """One file per reply, named by the hash of what was asked; written atomically, so an interrupted run leaves
    only whole entries."""

    folder: Path
    counts: ReplyCounts = field(default_factory=ReplyCounts)

    @staticmethod
    def key(model: str, messages: list[dict], attempt: int) -> str:
        request = json.dumps({"model": model, "messages": messages, "attempt": attempt}, sort_keys=True)
        return hashlib.sha256(request.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        path = self.path(key)
        return json.loads(path.read_text(encoding="utf-8"))["reply"] if path.is_file() else None

    def put(self, key: str, reply: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps({"reply": reply}, ensure_ascii=False).encode("utf-8"))


@dataclass(frozen=True)
class Asker:
    """Sends a row's messages to the endpoint (or reads the reply from the cache)."""

    client: openai.AsyncOpenAI
    model: str
    temperature: float
    cache: CompletionCache
    slots: asyncio.Semaphore

    async def reply(self, messages: list[dict], attempt: int) -> str:
        key = CompletionCache.key(self.model, messages, attempt)
        cached = self.cache.get(key)
        if cached is not None:
            self.cache.counts.cached += 1
            return cached
        async with self.slots:
            response = await self.client.chat.completions.create(model=self.model, messages=messages,
                                                                 temperature=self.temperature)
        reply = response.choices[0].message.content or ""
        self.cache.put(key, reply)
        self.cache.counts.received += 1
        return reply


def qa_row(rows: list[ManifestRow], question: str, answer: str, labels: list[Label], out_folder: Path) -> dict:
    """The qa sample of one row: its clip (path relative to the output's folder) and segment, its speech language
    (or `en` for non-speech), the pair, and where it came from."""
    (row,), (label,) = rows, labels
    sample = row.sample
    audio_lang = sample.get("audio_lang")
    qa = {"id": f"{sample['id']}/qa", "task": "qa", "audio": os.path.relpath(row.audio_paths[0], out_folder)}
    qa.update({name: sample[name] for name in ("start", "end") if name in sample})
    qa["audio_lang"] = audio_lang if audio_lang in AUDIO_LANGUAGES and audio_lang != "unknown" else QUESTION_LANGUAGE
    return {**qa, "question": question, "answer": answer, "source": {"id": sample["id"], "label": label.text}}


def chat_row(rows: list[ManifestRow], question: str, answer: str, labels: list[Label], out_folder: Path) -> dict:
    """The pair as a ChatML sample for stage-2 SFT: the user turn holds the clips (the sample builder labels them
    `Audio 1:`, `Audio 2:`, ...) and the question, the assistant turn the answer."""
    user = [{"audio": os.path.relpath(row.audio_paths[0], out_folder)} for row in rows] + [{"text": question}]
    return {"id": "+".join(row.sample["id"] for row in rows) + "/chat", "task": "chat",
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
            "source": [{"id": row.sample["id"], "label": label.text} for row, label in zip(rows, labels)]}


SAMPLE_FORMATS = {"qa": qa_row, "chat": chat_row}


def askable(row: ManifestRow | ManifestReject, sample_format: str) -> Label | Reject:
    """The label to ask about, or why the row gives no sample."""
    if isinstance(row, ManifestReject):
        return Reject(row.line, row.id, row.reason)
    sample_id = row.sample["id"]
    if len(row.audio_paths) != 1:
        return Reject(row.line, sample_id, f"{len(row.audio_paths)} clips; QA is asked about one clip")
    if sample_format == "chat" and ("start" in row.sample or "end" in row.sample):
        return Reject(row.line, sample_id, "a segment (start/end) cannot be a chat audio item, which takes a whole "
                                           "file; cut the clip or use --format qa")
    try:
        return row_label(row.sample)
    except NotAskable as error:
        return Reject(row.line, sample_id, str(error))


async def group_outcome(rows: list[ManifestRow], labels: list[Label], asker: Asker, attempts: int,
                        out_folder: Path, sample_format: str) -> list[dict | Reject]:
    """One sample about the rows' clips (one clip, or several for a multi-audio conversation), or a reject for each
    row saying why there is none."""
    messages = chat_messages(labels)
    reason = ""
    for attempt in range(attempts):
        try:
            reply = await asker.reply(messages, attempt)
        except openai.APIError as error:
            reason = (f"the endpoint failed after retries: {type(error).__name__}: "
                      f"{' '.join(str(error).split())[:200]}")
            break
        checked = checked_pair(reply, labels)
        if isinstance(checked, tuple):
            return [SAMPLE_FORMATS[sample_format](rows, *checked, labels, out_folder)]
        reason = f"{checked} (after {attempts} attempts)"
    return [Reject(row.line, row.sample["id"], reason) for row in rows]


async def window_outcomes(window: list[ManifestRow | ManifestReject], asker: Asker, args: argparse.Namespace,
                          out_folder: Path) -> list[dict | Reject]:
    """The samples and rejects of a window of rows, in the order of their (first) lines: askable rows go in
    consecutive groups of `--clips`."""
    checked = [(row, askable(row, args.format)) for row in window]
    outcomes = [(label.line, label) for _, label in checked if isinstance(label, Reject)]
    usable = [(row, label) for row, label in checked if not isinstance(label, Reject)]
    groups = [usable[start: start + args.clips] for start in range(0, len(usable), args.clips)]
    results = await asyncio.gather(*(group_outcome([row for row, _ in group], [label for _, label in group], asker,
                                                   args.attempts, out_folder, args.format) for group in groups))
    for group, group_result in zip(groups, results):
        outcomes += [(group[0][0].line, outcome) for outcome in group_result]
    return [outcome for _, outcome in sorted(outcomes, key=lambda item: item[0])]


async def generate(args: argparse.Namespace) -> tuple[int, int, ReplyCounts]:
    """Write the qa manifest and its rejects; (rows written, rejects, reply counts)."""
    client = openai.AsyncOpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=args.retries,
                                timeout=args.timeout)
    cache = CompletionCache(args.cache)
    asker = Asker(client, args.model, args.temperature, cache, asyncio.Semaphore(args.concurrency))
    out_folder = args.out.absolute().parent
    out_folder.mkdir(parents=True, exist_ok=True)
    written = rejected = 0
    rows = read_manifest(args.manifest)
    with atomic_text_file(args.out) as out, atomic_text_file(rejects_file(args.out)) as rejects, \
            tqdm(unit="row", desc=PROGRAM) as progress:
        while window := [row for _, row in zip(range(ROWS_PER_WINDOW), rows)]:
            for outcome in await window_outcomes(window, asker, args, out_folder):
                if isinstance(outcome, Reject):
                    rejected += 1
                    rejects.write(json.dumps(outcome.__dict__, ensure_ascii=False) + "\n")
                else:
                    written += 1
                    out.write(json.dumps(outcome, ensure_ascii=False) + "\n")
            progress.update(len(window))
    await client.close()
    return written, rejected, cache.counts


def rejects_file(out: Path) -> Path:
    """`QA.jsonl` -> `QA.rejects.jsonl` beside it."""
    return out.with_name(f"{out.stem}.rejects.jsonl")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True, help="manifest whose rows' labels are asked about")
    parser.add_argument("--out", type=Path, required=True, help="qa manifest to write (rejects beside it)")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"),
                        help="the endpoint, e.g. http://localhost:8000/v1 (default $OPENAI_BASE_URL)")
    parser.add_argument("--model", default=os.environ.get("MQA_QA_MODEL"), help="model name (default $MQA_QA_MODEL)")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"),
                        help="key (default $OPENAI_API_KEY; any text for endpoints without authentication)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at most (default 16)")
    parser.add_argument("--retries", type=int, default=5, help="HTTP retries per request, with backoff (default 5)")
    parser.add_argument("--attempts", type=int, default=2, help="requests per row while its replies fail validation "
                                                                "(default 2)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    parser.add_argument("--format", choices=sorted(SAMPLE_FORMATS), default="qa",
                        help="qa: tag-format QA samples (stage 1); chat: ChatML samples, the clip and question in "
                             "the user turn (stage-2 SFT). Both read the same cached replies (default qa)")
    parser.add_argument("--clips", type=int, default=1, help="clips per sample: 1, or with --format chat 2 or more "
                        "for multi-audio conversations (consecutive rows grouped; default 1)")
    parser.add_argument("--cache", type=Path, help="reply cache folder (default: OUT's name + .cache beside it)")
    args = parser.parse_args(argv)
    for name in ("model", "api_key"):
        if not getattr(args, name):
            flag = f"--{name.replace('_', '-')}"
            parser.error(f"{flag} is required (or its environment variable; see {flag} in --help)")
    if not args.manifest.is_file():
        parser.error(f"--manifest {args.manifest}: no such file")
    for name in ("concurrency", "attempts", "clips"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.clips > 1 and args.format != "chat":
        parser.error("--clips > 1 makes multi-audio conversations: add --format chat")
    args.cache = args.cache or args.out.with_name(args.out.name + ".cache")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    written, rejected, counts = asyncio.run(generate(args))
    print(f"{PROGRAM}: {written} qa rows to {args.out}, {rejected} rejected -> {rejects_file(args.out)}; "
          f"{counts.received} replies received, {counts.cached} read from the cache ({args.cache})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
