"""AISHELL-1's miniature: data_aishell with the transcript and extracted train and dev wavs."""
from __future__ import annotations

from pathlib import Path

from corpus_miniatures import write_audio, write_text


def write_aishell1(root: Path) -> tuple[Path, str | None]:
    """2 train utterances and 1 dev one; a transcript line without text and a train wav without a line."""
    corpus = root / "data_aishell"
    write_text(corpus / "transcript" / "aishell_transcript_v0.8.txt",
               "BAC009S0002W0122 而 对 楼市 成交 抑制 作用 最 大 的 限 购\n"
               "BAC009S0002W0123 也 成为 地方 政府 的 眼中 钉\n"
               "BAC009S0724W0121 甚至 出现 交易 几乎 停滞 的 情况\n"
               "BAC009S0002W0124\n")
    for utterance in ("BAC009S0002W0122", "BAC009S0002W0123", "BAC009S0002W0124", "BAC009S0002W0125"):
        write_audio(corpus / "wav" / "train" / "S0002" / f"{utterance}.wav")
    write_audio(corpus / "wav" / "dev" / "S0724" / "BAC009S0724W0121.wav")
    return corpus, "train"


MINIATURES = {"aishell1": write_aishell1}
