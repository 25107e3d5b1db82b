"""VoxLingua107's miniature: language folders of clips, beside entries that are no language folder."""
from __future__ import annotations

from pathlib import Path

from corpus_miniatures import write_audio, write_text


def write_voxlingua107(root: Path) -> tuple[Path, str | None]:
    """Clips in en/ (2) and zh/ (1), 2 in untagged br/, a README.txt and an empty folder."""
    corpus = root / "voxlingua107"
    for clip in ("en/-0Ie2ZrA2hE__U__S0---0187.440-0197.530.wav", "en/b.wav", "zh/c.wav", "br/d.wav", "br/e.wav"):
        write_audio(corpus / clip)
    write_text(corpus / "README.txt", "not a language\n")
    (corpus / "empty").mkdir()
    return corpus, None


MINIATURES = {"voxlingua107": write_voxlingua107}
