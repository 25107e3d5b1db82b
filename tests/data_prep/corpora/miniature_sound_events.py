"""Miniature ESC-50 and FSD50K folders in their published layouts, valid and broken entries alike."""
from __future__ import annotations

from pathlib import Path

from corpus_miniatures import write_audio, write_text

ESC50_HEADER = "filename,fold,target,category,esc10,src_file,take\n"


def write_esc50(root: Path) -> tuple[Path, str | None]:
    """ESC-50, all folds: three clips over folds 1 and 2, one with an empty category, one without audio."""
    folder = root / "ESC-50-master"
    write_text(folder / "meta" / "esc50.csv", ESC50_HEADER +
               "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
               "1-100038-A-14.wav,1,14,chirping_birds,False,100038,A\n"
               "2-100648-A-43.wav,2,43,chirping_birds,False,100648,A\n"
               "1-115545-A-48.wav,1,48,,False,115545,A\n"
               "3-100018-A-3.wav,3,3,cow,False,100018,A\n")
    for name in ("1-100032-A-0.wav", "1-100038-A-14.wav", "2-100648-A-43.wav", "1-115545-A-48.wav"):
        write_audio(folder / "audio" / name)
    return folder, None


def write_fsd50k(root: Path) -> tuple[Path, str | None]:
    """FSD50K, train split by default: a clip per split, and in dev.csv empty labels, missing audio, a holdout split."""
    folder = root / "FSD50K"
    truth = folder / "FSD50K.ground_truth"
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
        write_audio(folder / "FSD50K.dev_audio" / f"{name}.wav")
    write_audio(folder / "FSD50K.eval_audio" / "37199.wav")
    return folder, None


MINIATURES = {"esc50": write_esc50, "fsd50k": write_fsd50k}
