"""GigaSpeech's and WenetSpeech's miniatures: JSON metadata of segments in long Opus recordings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile
from corpus_miniatures import write_text


def write_opus(path: Path, seconds: float) -> Path:
    """A silent Ogg Opus recording, as both corpora publish theirs (write_audio cannot pick Opus from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros(int(seconds * 16000), dtype=np.float32), 16000, format="OGG", subtype="OPUS")
    return path


def segment(sid: str, begin: float, end: float, subsets: list[str], **text: object) -> dict:
    return {"sid": sid, "speaker": "N/A", "begin_time": begin, "end_time": end, "subsets": subsets, **text}


def write_metadata(path: Path, recordings: list[tuple[str, list[dict]]]) -> None:
    audios = [{"aid": Path(audio).stem, "path": audio, "duration": 4.0, "segments": segments}
              for audio, segments in recordings]
    write_text(path, json.dumps({"dataset": path.stem, "audios": audios}, ensure_ascii=False))


def write_gigaspeech(root: Path) -> tuple[Path, str | None]:
    """Two XS segments, one only in XL; garbage, empty, too long, tagged, wordless; two of a missing recording."""
    corpus = root / "GigaSpeech"
    podcast = "audio/podcast/P0000/POD0000000004.opus"
    write_opus(corpus / podcast, seconds=4.0)
    training = ["{XL}", "{L}", "{M}", "{S}", "{XS}"]
    write_metadata(corpus / "GigaSpeech.json", [
        (podcast, [
            segment("POD0000000004_S0000000", 0.0, 1.5, training,
                    text_tn="I'M LEAVING <COMMA> CAN I PULL ZAHRA ASIDE <QUESTIONMARK> YES <PERIOD>"),
            segment("POD0000000004_S0000001", 1.5, 2.0, training, text_tn="<MUSIC>"),
            segment("POD0000000004_S0000002", 2.0, 2.0, training, text_tn="HELLO"),
            segment("POD0000000004_S0000003", 0.0, 31.0, training, text_tn="TOO LONG"),
            segment("POD0000000004_S0000004", 2.0, 2.5, ["{XL}"], text_tn="ONLY IN XL"),
            segment("POD0000000004_S0000005", 2.5, 3.0, training, text_tn="<COMMA> WELL <EXCLAMATIONPOINT>"),
            segment("POD0000000004_S0000006", 3.0, 3.5, training, text_tn="HELLO <NOISE> THERE"),
            segment("POD0000000004_S0000007", 3.5, 4.0, training, text_tn="<PERIOD>"),
        ]),
        ("audio/youtube/P0001/YOU0000000315.opus", [
            segment("YOU0000000315_S0000000", 0.0, 1.0, training, text_tn="MISSING AUDIO"),
            segment("YOU0000000315_S0000001", 1.0, 2.0, training, text_tn="TWICE"),
        ]),
    ])
    return corpus, "XS"


def write_wenetspeech(root: Path) -> tuple[Path, str | None]:
    """Two L segments (one of confidence 0.6), one only in DEV; an empty, a reversed, one of a missing recording."""
    corpus = root / "WenetSpeech"
    video = "audio/train/youtube/B00000/Y0000000000_--5llN02F84.opus"
    write_opus(corpus / video, seconds=4.0)
    write_metadata(corpus / "WenetSpeech.json", [
        (video, [
            segment("Y0000000000_--5llN02F84_S00000", 0.5, 2.0, ["L"], text="怎么 样 这些 日子 住 得 还 习惯 吧",
                    confidence=1.0),
            segment("Y0000000000_--5llN02F84_S00001", 2.0, 3.5, ["S", "M", "L"], text="我 用 iPhone  X 拍 的 ",
                    confidence=0.6),
            segment("Y0000000000_--5llN02F84_S00002", 3.5, 4.0, ["L"], text=" ", confidence=1.0),
            segment("Y0000000000_--5llN02F84_S00003", 1.0, 0.5, ["L"], text="倒着", confidence=1.0),
            segment("Y0000000000_--5llN02F84_S00004", 0.0, 1.0, ["DEV"], text="开发", confidence=1.0),
        ]),
        ("audio/train/podcast/B00001/X0000000001_100638174_S00037.opus", [
            segment("X0000000001_100638174_S00037_S00000", 0.0, 1.0, ["L"], text="没有 音频", confidence=1.0),
        ]),
    ])
    return corpus, "L"


MINIATURES = {"gigaspeech": write_gigaspeech, "wenetspeech": write_wenetspeech}
