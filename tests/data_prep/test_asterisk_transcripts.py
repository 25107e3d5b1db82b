"""The Asterisk transcript parser on hand-written lists that contain each oddity of the real ones."""
from data_prep.asterisk_transcripts import (
    ANNOTATED_TEXT,
    CONFLICTING_TEXTS,
    DAMAGED_TEXT,
    EMPTY_TEXT,
    NON_SPEECH,
    NOT_A_PROMPT_LINE,
    merge_non_speech,
    parse_transcript_list,
)

ENGLISH = """\
; Core Asterisk Sounds in English

auth-thankyou: Thank you.
agent-pass: Please enter your password  followed by the pound key.
beep: [this is a simple beep tone]
silence/1: (1 second of silence)
letters/at: at [@]
letters/space: space [ ]
spy-iax2: IAX (note: does not say "2")
digits/1: one
vm-savefolder: Which folder should I save the message to?
dir-welcome:
a stray line without a name
""".splitlines()

SPANISH = """\
digits/0: cero
digits/0: diez
digits/2: dos
beep: un suono beep
""".splitlines()

ITALIAN = """\
conf-full: La conferenza ? piena.
at-tone-time-exactly: Al segnale acustico, il tempo sar? esattamente..
vm-changeto: Quale cartella? Prego scegliere.
""".splitlines()


def test_spoken_texts_are_kept_and_cleaned():
    parsed = parse_transcript_list(ENGLISH)
    assert parsed.texts == {
        "auth-thankyou": "Thank you.",
        "agent-pass": "Please enter your password followed by the pound key.",
        "letters/at": "at",
        "letters/space": "space",
        "digits/1": "one",
        "vm-savefolder": "Which folder should I save the message to?",
    }


def test_unusable_entries_are_skipped_with_their_reason():
    parsed = parse_transcript_list(ENGLISH)
    assert sorted(parsed.skipped) == sorted([
        ("beep", NON_SPEECH),
        ("silence/1", NON_SPEECH),
        ("spy-iax2", ANNOTATED_TEXT),
        ("dir-welcome", EMPTY_TEXT),
        ("line 13", NOT_A_PROMPT_LINE),
    ])
    assert parsed.non_speech == {"beep", "silence/1"}


def test_conflicting_duplicates_are_skipped():
    parsed = parse_transcript_list(SPANISH)
    assert parsed.texts == {"digits/2": "dos", "beep": "un suono beep"}
    assert parsed.skipped == [("digits/0", CONFLICTING_TEXTS)]


def test_question_marks_in_place_of_lost_letters_are_damage_but_real_questions_are_not():
    parsed = parse_transcript_list(ITALIAN)
    assert parsed.texts == {"vm-changeto": "Quale cartella? Prego scegliere."}
    assert sorted(parsed.skipped) == [("at-tone-time-exactly", DAMAGED_TEXT), ("conf-full", DAMAGED_TEXT)]


def test_non_speech_in_one_language_is_non_speech_in_all():
    english, spanish = parse_transcript_list(ENGLISH), parse_transcript_list(SPANISH)
    merge_non_speech([english, spanish])
    assert "beep" not in spanish.texts
    assert ("beep", NON_SPEECH) in spanish.skipped
    assert spanish.texts == {"digits/2": "dos"}
