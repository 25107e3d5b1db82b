import random

import pytest

from megatron_qwen_audio.data.length_batching import BatchBudget, SampleSize, batch_by_length, cut_batches

BUDGET = BatchBudget(max_tokens=100, max_frames=500, max_samples=4)


def within_budget(batch: list[SampleSize], budget: BatchBudget) -> bool:
    return (len(batch) <= budget.max_samples and len(batch) * max(s.sequence for s in batch) <= budget.max_tokens
            and sum(s.frames for s in batch) <= budget.max_frames)


def test_cut_batches_closes_a_batch_at_whichever_limit_binds_first():
    sizes = [SampleSize(10, 0), SampleSize(10, 0), SampleSize(30, 0),  # 3 x 30 = 90 fits; a 4th row would not
             SampleSize(30, 0), SampleSize(5, 300), SampleSize(5, 300),  # 600 frames > 500
             SampleSize(1, 0), SampleSize(1, 0), SampleSize(1, 0), SampleSize(1, 0), SampleSize(1, 0)]  # 4 samples
    batches = cut_batches(sizes, lambda s: s, BUDGET)
    assert [len(batch) for batch in batches] == [3, 2, 4, 2]
    assert [s for batch in batches for s in batch] == sizes


def test_a_packed_budget_bounds_the_summed_lengths_instead_of_the_padded_rectangle():
    packed = BatchBudget(max_tokens=100, max_frames=500, max_samples=4, packed=True)
    sizes = [SampleSize(10, 0), SampleSize(30, 0), SampleSize(30, 0), SampleSize(30, 0),  # 100 summed: one batch,
             SampleSize(60, 0), SampleSize(50, 0)]  # where padding would need 4 x 30 = 120; 110 > 100
    assert [len(batch) for batch in cut_batches(sizes, lambda s: s, packed)] == [4, 1, 1]
    assert [len(batch) for batch in cut_batches(sizes, lambda s: s, BUDGET)] == [3, 1, 1, 1]
    many_short = [SampleSize(1, 0)] * 6  # the sample bound still holds
    assert [len(batch) for batch in cut_batches(many_short, lambda s: s, packed)] == [4, 2]


def test_batch_by_length_emits_every_item_once_in_dense_batches_within_budget():
    rng = random.Random(0)
    items = [SampleSize(rng.randint(1, 50), rng.choice([0, rng.randint(1, 400)])) for _ in range(200)]
    batches = list(batch_by_length(iter(items), lambda s: s, BUDGET, pool_size=40, rng=random.Random(1)))
    assert sorted(s for batch in batches for s in batch) == sorted(items)
    assert all(within_budget(batch, BUDGET) for batch in batches)
    # Dense: inside one pool, batches are cut from the length-sorted pool, so their length ranges never interleave.
    position = 0
    for pool_start in range(0, 200, 40):
        pool = sorted(items[pool_start:pool_start + 40])
        pool_batches = []
        while sum(map(len, pool_batches)) < len(pool):
            pool_batches.append(batches[position])
            position += 1
        assert sorted(s for batch in pool_batches for s in batch) == pool
        ranges = sorted((min(batch), max(batch)) for batch in pool_batches)
        assert all(high <= next_low for (_, high), (next_low, _) in zip(ranges, ranges[1:]))


def test_batch_order_inside_a_pool_is_shuffled_by_the_given_generator():
    items = [SampleSize(length, 0) for length in range(1, 41)]
    first = list(batch_by_length(iter(items), lambda s: s, BUDGET, pool_size=40, rng=random.Random(1)))
    again = list(batch_by_length(iter(items), lambda s: s, BUDGET, pool_size=40, rng=random.Random(1)))
    other = list(batch_by_length(iter(items), lambda s: s, BUDGET, pool_size=40, rng=random.Random(2)))
    assert first == again
    assert first != other and sorted(map(min, first)) == sorted(map(min, other))


@pytest.mark.parametrize("size, reason", [
    (SampleSize(101, 0), "101 tokens exceed max_batch_tokens=100"),
    (SampleSize(10, 501), "501 mel frames exceed max_batch_frames=500"),
    (SampleSize(0, 0), "fewer than 2 tokens leave nothing to predict"),
])
def test_budget_names_why_a_sample_can_never_be_batched(size, reason):
    assert BUDGET.refusal(size) == reason
    assert BUDGET.refusal(SampleSize(100, 500)) is None
