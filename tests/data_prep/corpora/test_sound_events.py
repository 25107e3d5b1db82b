"""ESC-50's and FSD50K's published layouts -> keyword rows with labels as words; broken entries are reported."""
import pytest
from corpus_miniatures import audio_names, write_audio, write_text

from data_prep.corpora.sound_events import label_as_words

ESC50_HEADER = "filename,fold,target,category,esc10,src_file,take\n"


@pytest.mark.parametrize("label, words", [("dog", "dog"), ("chirping_birds", "chirping birds"),
                                          ("Domestic_animals_and_pets", "domestic animals and pets")])
def test_labels_become_lower_case_words(label, words):
    assert label_as_words(label) == words


def write_esc50(root):
    write_text(root / "meta" / "esc50.csv", ESC50_HEADER +
               "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
               "1-100038-A-14.wav,1,14,chirping_birds,False,100038,A\n"
               "2-100648-A-43.wav,2,43,chirping_birds,False,100648,A\n"
               "1-115545-A-48.wav,1,48,,False,115545,A\n"
               "3-100018-A-3.wav,3,3,cow,False,100018,A\n")
    for name in ("1-100032-A-0.wav", "1-100038-A-14.wav", "2-100648-A-43.wav", "1-115545-A-48.wav"):
        write_audio(root / "audio" / name)


def test_esc50_clips_become_event_keyword_rows(tmp_path, make_manifest):
    root = tmp_path / "ESC-50-master"
    write_esc50(root)
    rows, skips = make_manifest("esc50", root)
    assert [row["text"] for row in rows] == ["dog", "chirping birds", "chirping birds"]
    assert audio_names(rows) == ["1-100032-A-0.wav", "1-100038-A-14.wav", "2-100648-A-43.wav"]
    assert rows[1] == {"id": "esc50/1-100038-A-14.wav", "task": "keyword", "audio": rows[1]["audio"],
                       "audio_lang": "unknown", "text_lang": "en", "instruction": "event", "text": "chirping birds"}
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("esc50.csv:5", "empty category"),
        ("esc50.csv:6", f"audio file {root / 'audio' / '3-100018-A-3.wav'} not found"),
    ]


def test_an_esc50_fold_split_reads_only_that_fold(tmp_path, make_manifest):
    root = tmp_path / "ESC-50-master"
    write_esc50(root)
    rows, skips = make_manifest("esc50", root, split="fold2")
    assert [row["id"] for row in rows] == ["esc50/2-100648-A-43.wav"]
    assert skips == []


def write_fsd50k(root):
    truth = root / "FSD50K.ground_truth"
    write_text(truth / "dev.csv", "fname,labels,mids,split\n"
               "64760,\"Electric_guitar,Guitar,Plucked_string_instrument,Musical_instrument,Music\","
               "\"/m/02sgy,/m/0342h,/m/0fx80y,/m/04szw,/m/04rlf\",train\n"
               "16399,\"Bark,Dog,Domestic_animals_and_pets,Animal\",\"/m/05tny_,/m/0bt9lr,/m/068hy,/m/0jbk\",val\n"
               "16400,,,train\n"
               "16401,Bark,/m/05tny_,train\n"
               "16402,Bark,/m/05tny_,holdout\n")
    write_text(truth / "eval.csv", "fname,labels,mids\n"
               "37199,\"Chink_and_clink,Tick\",\"/m/07q7njn,/m/07qjznt\"\n")
    for name in ("64760", "16399", "16400"):
        write_audio(root / "FSD50K.dev_audio" / f"{name}.wav")
    write_audio(root / "FSD50K.eval_audio" / "37199.wav")


def test_fsd50k_splits_become_audioset_ontology_keyword_rows(tmp_path, make_manifest):
    root = tmp_path / "FSD50K"
    write_fsd50k(root)
    train, train_skips = make_manifest("fsd50k", root)
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
