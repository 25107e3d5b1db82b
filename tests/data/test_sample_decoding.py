import numpy as np
import pytest

from megatron_qwen_audio.data.sample_decoding import decode_sample
from megatron_qwen_audio.data.shard_format import SampleEntry, encode_npy


def members(tokens: int, clip_frames: list[int]) -> dict[str, bytes]:
    raw = {"tokens.npy": encode_npy(np.arange(tokens, dtype=np.int32)),
           "labels.npy": encode_npy(np.full(tokens, -100, np.int32))}
    for clip, frames in enumerate(clip_frames):
        name = "mel.npy" if len(clip_frames) == 1 else f"mel_{clip}.npy"
        raw[name] = encode_npy(np.full((80, frames), clip, np.float16))
    return raw


def test_decoding_gives_float16_mels_in_clip_order():
    sample = decode_sample(members(5, [7, 3]), SampleEntry("line-000000001", [7, 3], 5, "asr"), "s/line-000000001")
    assert [mel.shape for mel in sample.mels] == [(80, 7), (80, 3)]
    assert [float(mel[0, 0]) for mel in sample.mels] == [0.0, 1.0] and sample.mels[0].dtype == np.float16
    assert sample.tokens.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("raw, entry, message", [
    (members(5, [7]), SampleEntry("k", [7], 6, "asr"), r"s/k: tokens \(5,\) / labels \(5,\) disagree with the "
                                                       r"index's 6 tokens"),
    (members(5, [7]), SampleEntry("k", [8], 5, "asr"), r"s/k: clip 0 has mel shape \(80, 7\), not \(80, 8\)"),
    (members(5, [7]), SampleEntry("k", [7, 7], 5, "asr"), r"s/k: member mel_0.npy is missing from the shard"),
])
def test_a_sample_that_disagrees_with_its_index_entry_is_named(raw, entry, message):
    with pytest.raises(ValueError, match=message):
        decode_sample(raw, entry, "s/k")
