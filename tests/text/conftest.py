"""Fixtures of the text tests: helpers that turn hand-written expected text into expected token ids and labels."""
from collections.abc import Callable

import numpy as np
import pytest


IGNORE = -100


def _assert_sequence(sequence, tokenizer, parts: list[tuple[str, bool]]) -> None:
    """`parts`: the expected sequence as (text, trained) pieces, special tokens spelled out.

    Each piece is encoded with special tokens read; labels keep the ids of trained pieces only. The piece boundaries
    must be token boundaries, which the whole-string encoding confirms.
    """
    ids, labels = [], []
    for text, trained in parts:
        part_ids = tokenizer.encode_with_special(text)
        ids += part_ids
        labels += part_ids if trained else [IGNORE] * len(part_ids)
    whole = "".join(text for text, _ in parts)
    assert tokenizer.encode_with_special(whole) == ids
    assert sequence.input_ids.dtype == np.int32 and sequence.labels.dtype == np.int32
    assert tokenizer.decode(sequence.input_ids) == whole
    np.testing.assert_array_equal(sequence.input_ids, np.array(ids, dtype=np.int32))
    np.testing.assert_array_equal(sequence.labels, np.array(labels, dtype=np.int32))


@pytest.fixture(scope="session")
def assert_sequence() -> Callable:
    return _assert_sequence
