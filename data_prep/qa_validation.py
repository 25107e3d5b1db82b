"""Checks on every question-answer pair a language model returns, before it becomes a training sample.

A reply passes when: it is a JSON object (a ```json fence around it is tolerated) with string fields `question` and
`answer`; both are non-empty; neither reads as a refusal; and the answer agrees with the label: for a categorical
label it names one of the label's values (whole words, any case), for a free-text label it shares at least one
content word with it (words of two or more letters outside a small stop list; every Han/kana character counts as a
word, since those scripts do not separate words). The reason for a failure is one short sentence.
"""
from __future__ import annotations

import json
import re

from data_prep.qa_prompts import Label

REFUSALS = re.compile(r"\b(i'?m sorry|i am sorry|i cannot|i can'?t|i'?m unable|i am unable|as an ai|"
                      r"i won'?t be able|cannot (help|assist)|not able to (help|answer))\b", re.IGNORECASE)
FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]|[^\W\d_]{2,}|\d+")
STOP_WORDS = frozenset("""a an and are as at be but by for from has have he her his i in is it its of on or our she
that the their them there these they this to was we were what which who will with you your do does did not no yes
""".split())


def content_words(text: str) -> set[str]:
    return {word for word in WORD.findall(text.lower()) if word not in STOP_WORDS}


def checked_pair(reply: str, labels: list[Label]) -> tuple[str, str] | str:
    """(question, answer) of a valid reply, else the reason it is rejected; with several clips' labels (a
    multi-audio conversation) the answer must agree with at least one of them."""
    text = reply.strip()
    fenced = FENCE.match(text)
    try:
        document = json.loads(fenced.group(1) if fenced else text)
    except json.JSONDecodeError:
        return "the reply is not JSON"
    if not isinstance(document, dict):
        return "the reply is not a JSON object"
    question, answer = document.get("question"), document.get("answer")
    if not isinstance(question, str) or not isinstance(answer, str):
        return "the reply lacks string fields question and answer"
    question, answer = question.strip(), answer.strip()
    if not question or not answer:
        return "empty question or answer"
    if REFUSALS.search(question) or REFUSALS.search(answer):
        return "the reply is a refusal"
    disagreements = [disagreement(answer, label) for label in labels]
    if all(disagreements):
        return disagreements[0] if len(labels) == 1 else "the answer agrees with none of the clips' labels"
    return question, answer


def disagreement(answer: str, label: Label) -> str | None:
    """Why the answer does not agree with the label, or None when it does (module doc)."""
    if label.values:
        lowered = answer.lower()
        if not any(re.search(rf"\b{re.escape(value.lower())}\b", lowered) for value in label.values):
            return f"the answer names none of the label's values ({', '.join(label.values)})"
    elif not content_words(answer) & content_words(label.free_text):
        return "the answer shares no content word with the label"
    return None
