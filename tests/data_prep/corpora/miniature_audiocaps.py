"""A miniature AudioCaps folder: the published test.csv and clips named by YouTube or audiocap id."""
from __future__ import annotations

from pathlib import Path

from corpus_miniatures import write_audio, write_text


def write_audiocaps(root: Path) -> tuple[Path, str | None]:
    """AudioCaps' test split: clips found by YouTube or audiocap id, one never downloaded, one empty caption."""
    folder = root / "audiocaps"
    write_text(folder / "test.csv",
               "audiocap_id,youtube_id,start_time,caption\n"
               "103549,7fmOlUlwoNg,20,Constant rattling noise and sharp vibrations\n"
               "103548,7fmOlUlwoNg,20,A rattling and vibrating engine\n"
               "103541,bD4nHDfwS3M,30,\"A man talks, then a car passes\"\n"
               "103540,GoneVideoId,0,A dog barks\n"
               "103539,7fmOlUlwoNg,20,\n")
    write_audio(folder / "test" / "7fmOlUlwoNg.wav")
    write_audio(folder / "test" / "103541.wav")
    return folder, "test"


MINIATURES = {"audiocaps": write_audiocaps}
