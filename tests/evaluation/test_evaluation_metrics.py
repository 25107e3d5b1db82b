"""Evaluation metrics against independent references: hand-counted edits for WER / CER, sacrebleu called directly
for BLEU, hand-counted LID confusions, and the Markdown rows they should produce."""
import itertools

import pytest
import sacrebleu

from megatron_qwen_audio.evaluation.metrics import metrics_table, normalize_text, score
from megatron_qwen_audio.text.special_tokens import audio_language_token

_keys = itertools.count()


def record(task, reference, hypothesis, audio_lang=None, text_lang=None):
    return {"key": f"sample-{next(_keys)}", "task": task, "audio_lang": audio_lang, "text_lang": text_lang,
            "reference": reference, "hypothesis": hypothesis}


def transcript(reference, hypothesis, language="en"):
    return record("transcribe", reference, hypothesis, audio_lang=language, text_lang=language)


def translation(reference, hypothesis, source, target):
    return record("translate", reference, hypothesis, audio_lang=source, text_lang=target)


def lid(language, predicted):
    return record("lid", audio_language_token(language), audio_language_token(predicted), audio_lang=language)


def only_row(records):
    rows = score(records)
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("text, language, expected", [
    ("Hello, World!", "en", "hello world"),
    ("He has twenty one cats.", "en", "he has 21 cats"),
    ("he has 21 cats", "en", "he has 21 cats"),
    ("Mr. Smith won't pay twenty-one dollars (laughs).", "en", "mister smith will not pay $21"),
    ("Ça va ?  Très bien, merci !", "fr", "ça va très bien merci"),
    ("Ich heiße Jürgen [Musik]", "de", "ich heiße jürgen"),
    ("你好，世界！", "zh", "你好世界"),
    ("こんにちは、 世界。", "ja", "こんにちは世界"),
])
def test_normalize_text(text, language, expected):
    assert normalize_text(text, language) == expected


def test_one_substitution_in_four_words_is_25_percent_wer():
    row = only_row([transcript("The cat sat down.", "the cat, sat dawn")])
    assert row["wer"] == pytest.approx(1 / 4)
    assert row["cer"] == pytest.approx(1 / 16)  # "the cat sat down": 16 characters with spaces, one substituted
    assert row == {"task": "transcribe", "language": "en", "samples": 1, "wer": row["wer"], "cer": row["cer"],
                   "wer_is_cer": False, "empty_references": 0}


def test_wer_is_corpus_level_not_a_mean_of_samples():
    row = only_row([transcript("the cat sat down", "the cat sat dawn"), transcript("hello world", "hello world")])
    assert row["wer"] == pytest.approx(1 / 6)  # 1 edit over 6 reference words (a mean per sample would be 1/8)
    assert row["samples"] == 2


def test_english_numbers_and_french_accents():
    english = only_row([transcript("She bought twenty one apples.", "she bought 21 apples")])
    assert english["wer"] == 0
    french = only_row([transcript("Ça va très bien.", "ça va tres bien", language="fr")])
    assert french["wer"] == pytest.approx(1 / 4)  # the missing accent is an error


def test_chinese_wer_is_reported_as_cer():
    row = only_row([transcript("你好，世界！", "你好世间", language="zh")])
    assert row["cer"] == pytest.approx(1 / 4)
    assert row["wer"] == row["cer"] and row["wer_is_cer"] is True


def test_empty_references_are_counted_and_left_out_of_wer():
    row = only_row([transcript("the cat sat down", "the cat sat dawn"), transcript("", "some words"),
                    transcript("(laughs)", "ha")])  # empty once the parenthesised text is dropped
    assert row["wer"] == pytest.approx(1 / 4) and row["empty_references"] == 2 and row["samples"] == 3
    nothing = only_row([transcript("", "words")])
    assert nothing["wer"] is None and nothing["cer"] is None and nothing["empty_references"] == 1


FR_EN = [("The weather is nice today.", "The weather is good today."),
         ("Please leave a message after the tone.", "Please leave a message after the beep.")]
ES_EN = [("Thank you for calling.", "Thanks for calling."), ("Goodbye.", "Goodbye.")]
EN_ZH = [("今天天气很好，我们去公园散步吧。", "今天天气不错，我们去公园散步。")]


def test_bleu_matches_sacrebleu_per_language_pair():
    records = [translation(ref, hyp, "fr", "en") for ref, hyp in FR_EN]
    records += [translation(ref, hyp, "es", "en") for ref, hyp in ES_EN]
    records += [translation(ref, hyp, "en", "zh") for ref, hyp in EN_ZH]
    rows = {row["language"]: row for row in score(records)}
    assert list(rows) == ["en->zh", "es->en", "fr->en"]
    for pair, language, tokenize in [(FR_EN, "fr->en", "13a"), (ES_EN, "es->en", "13a"), (EN_ZH, "en->zh", "zh")]:
        references, hypotheses = zip(*pair)
        expected = sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score
        assert rows[language]["bleu"] == pytest.approx(expected), language
        assert rows[language]["samples"] == len(pair)
        assert f"tok:{tokenize}" in rows[language]["bleu_signature"]
    references, hypotheses = zip(*EN_ZH)
    assert rows["en->zh"]["bleu"] != sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score


def test_bleu_is_on_raw_text():
    row = only_row([translation("Hello, World!", "hello world", "fr", "en")])
    assert row["bleu"] == pytest.approx(sacrebleu.corpus_bleu(["hello world"], [["Hello, World!"]]).score)
    assert row["bleu"] < 100


def test_lid_accuracy_and_confusion():
    rows = score([lid("en", "en"), lid("en", "en"), lid("en", "es"), lid("fr", "fr")])
    assert rows == [
        {"task": "lid", "language": "en", "samples": 3, "accuracy": pytest.approx(2 / 3),
         "confusion": {"<|en|>": 2, "<|es|>": 1}},
        {"task": "lid", "language": "fr", "samples": 1, "accuracy": 1.0, "confusion": {"<|fr|>": 1}},
    ]


def test_other_tasks_are_counted_not_dropped():
    rows = score([record("caption", "a dog barks", "a dog barks", text_lang="en"),
                  record("caption", "rain falls", "wind blows", text_lang="en"),
                  record("summarise", "x", "y")])
    assert rows == [{"task": "caption", "language": "en", "samples": 2, "exact_match": 0.5},
                    {"task": "summarise", "language": "?", "samples": 1, "exact_match": 0.0}]


def test_rows_follow_the_task_order():
    rows = score([lid("en", "en"), translation("a b", "a b", "fr", "en"), transcript("a", "a")])
    assert [row["task"] for row in rows] == ["transcribe", "translate", "lid"]


def test_metrics_table():
    records = [transcript("a b c d", "a b c e"),  # WER 1/4, CER 1/7 ("a b c d": 7 characters)
               transcript("你好世界", "你好世间", language="zh"),
               transcript("", "noise", language="de"),
               translation("The weather is nice today.", "The weather is nice today.", "fr", "en"),
               lid("en", "en"), lid("en", "fr"),
               record("keyword", "dog", "dog", audio_lang="unknown", text_lang="en")]
    lines = metrics_table(score(records)).splitlines()
    assert lines == [
        "| task | language | samples | WER | CER | BLEU | accuracy |",
        "| :-- | :-- | --: | --: | --: | --: | --: |",
        "| transcribe | de | 1 |  |  |  |  |",
        "| transcribe | en | 1 | 25.00 | 14.29 |  |  |",
        "| transcribe | zh | 1 | 25.00 (CER) | 25.00 |  |  |",
        "| translate | fr->en | 1 |  |  | 100.00 |  |",
        "| keyword | en | 1 |  |  |  | 1.00 |",
        "| lid | en | 2 |  |  |  | 0.50 |",
    ]
