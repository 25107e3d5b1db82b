"""A miniature VocalSound folder: audio_16k clips named SPEAKER_N_LABEL.wav, and badly named ones."""
from __future__ import annotations

from pathlib import Path

from corpus_miniatures import write_audio


def write_vocalsound(root: Path) -> tuple[Path, str | None]:
    """VocalSound's audio_16k: three labelled clips, an unknown label, and two names not SPEAKER_N_LABEL.wav."""
    folder = root / "vocalsound_16k"
    for name in ("f0003_0_cough.wav", "m0021_2_throatclearing.wav", "f0003_1_laughter.wav", "f0004_0_burp.wav",
                 "readme.wav", "m0021_x_sigh.wav"):
        write_audio(folder / "audio_16k" / name)
    return folder, None


MINIATURES = {"vocalsound": write_vocalsound}
