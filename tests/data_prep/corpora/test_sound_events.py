"""ESC-50's and FSD50K's published layouts -> keyword rows with labels as words; broken entries are reported."""
import pytest
from corpus_miniatures import audio_names
from miniature_sound_events import write_esc50, write_fsd50k

from data_prep.corpora.sound_events import label_as_words


@pytest.mark.parametrize("label, words", [("dog", "dog"), ("chirping_birds", "chirping birds"),
                                          ("Domestic_animals_and_pets", "domestic animals and pets")])
def test_labels_become_lower_case_words(label, words):
    assert label_as_words(label) == words


def test_esc50_clips_become_event_keyword_rows(tmp_path, make_manifest):
    root, split = write_esc50(tmp_path)
    rows, skips = make_manifest("esc50", root, split)
    assert [row["text"] for row in rows] == ["dog", "chirping birds", "chirping birds"]
    assert audio_names(rows) == ["1-100032-A-0.wav", "1-100038-A-14.wav", "2-100648-A-43.wav"]
    assert rows[1] == {"id": "esc50/1-100038-A-14.wav", "task": "keyword", "audio": rows[1]["audio"],
                       "audio_lang": "unknown", "text_lang": "en", "instruction": "event", "text": "chirping birds"}
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("esc50.csv:5", "empty category"),
        ("esc50.csv:6", f"audio file {root / 'audio' / '3-100018-A-3.wav'} not found"),
    ]


def test_an_esc50_fold_split_reads_only_that_fold(tmp_path, make_manifest):
    root, _ = write_esc50(tmp_path)
    rows, skips = make_manifest("esc50", root, split="fold2")
    assert [row["id"] for row in rows] == ["esc50/2-100648-A-43.wav"]
    assert skips == []


def test_fsd50k_splits_become_audioset_ontology_keyword_rows(tmp_path, make_manifest):
    root, split = write_fsd50k(tmp_path)
    train, train_skips = make_manifest("fsd50k", root, split)
    assert train == [{"id": "fsd50k/train/64760", "task": "keyword", "audio": train[0]["audio"],
                      "audio_lang": "unknown", "text_lang": "en", "instruction": "audioset_ontology",
                      "text": "electric guitar, guitar, plucked string instrument, musical instrument, music"}]
    assert audio_names(train) == ["64760.wav"]
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in train_skips] == [
        ("dev.csv:4", "empty labels"),
        ("dev.csv:5", f"audio file {root / 'FSD50K.dev_audio' / '16401.wav'} not found"),
        ("dev.csv:6", "split 'holdout' is neither train nor val"),
    ]
    val, _ = make_manifest("fsd50k", root, split="val")
    assert [(row["id"], row["text"]) for row in val] == [
        ("fsd50k/val/16399", "bark, dog, domestic animals and pets, animal")]
    evaluation, evaluation_skips = make_manifest("fsd50k", root, split="eval")
    assert [(row["id"], row["text"]) for row in evaluation] == [("fsd50k/eval/37199", "chink and clink, tick")]
    assert audio_names(evaluation) == ["37199.wav"] and evaluation_skips == []
