from collections import Counter
from dataclasses import replace

import pytest
from synthetic_shard_sets import SET_A_SHARDS, SET_B_SHARDS, in_memory_shard_set

from megatron_qwen_audio.data.epoch_plan import (
    EpochPlan,
    EpochPlanner,
    SampleRef,
    ShardRange,
    ShardRef,
    equalize_steps,
    mix_shards,
    slot_samples,
    split_samples,
)
from megatron_qwen_audio.data.shard_sets import ShardSetSpec, open_shard_sets


def all_samples(shard_sizes: list[list[int]]) -> set[tuple[int, int, int]]:
    return {(set_id, shard_id, position) for set_id, sizes in enumerate(shard_sizes)
            for shard_id, size in enumerate(sizes) for position in range(size)}


def assert_every_sample_once_in_runs(plan: EpochPlan, shard_sizes: list[list[int]]) -> None:
    """Kept and dropped samples are every sample exactly once; each slot reads only a run of consecutive samples
    (whole shards plus at most part of one at each end); its batches hold only samples of its run."""
    planned = [(s.set_id, s.shard_id, s.position) for batches in plan.slot_batches for b in batches for s in b]
    dropped = [(s.set_id, s.shard_id, s.position) for s in plan.dropped]
    assert len(planned) == len(set(planned))
    assert sorted(planned + dropped) == sorted(all_samples(shard_sizes))
    for ranges, batches in zip(plan.slot_ranges, plan.slot_batches, strict=True):
        for before, after in zip(ranges, ranges[1:]):
            assert before.stop == shard_sizes[before.shard.set_id][before.shard.shard_id] and after.start == 0
        assert {s for b in batches for s in b} <= set(slot_samples(ranges))


def test_weights_proportional_to_sizes_give_every_shard_exactly_once():
    sizes = [[5, 7, 6], [4, 4], [9]]
    shards = mix_shards(sizes, weights=[18, 8, 9], seed=3, epoch=0)
    assert sorted(shards) == [ShardRef(k, s, 0) for k, set_sizes in enumerate(sizes) for s in range(len(set_sizes))]
    assert shards != sorted(shards)  # shuffled


def test_weights_two_to_one_give_two_to_one_samples_within_half_a_shard():
    sizes = [[6] * 8, [6] * 8]  # 48 samples each, 96 in all: targets 64 and 32
    for epoch in range(4):
        shards = mix_shards(sizes, weights=[2.0, 1.0], seed=5, epoch=epoch)
        per_set = Counter()
        for shard in shards:
            per_set[shard.set_id] += sizes[shard.set_id][shard.shard_id]
        assert abs(per_set[0] - 64) <= 3 and abs(per_set[1] - 32) <= 3
        assert len(set(shards)) == len(shards)  # a shard read twice is told apart by its pass
        assert {s.pass_id for s in shards if s.set_id == 0} == {0, 1}  # one whole pass over "a" and part of another
    remainder_shards = [sorted(s.shard_id for s in mix_shards(sizes, [2.0, 1.0], 5, epoch) if s.pass_id == 1)
                        for epoch in range(4)]
    assert len({tuple(r) for r in remainder_shards}) > 1  # the remainder subset is drawn afresh each epoch


def test_split_samples_cuts_the_shards_end_to_end_into_runs_of_equal_cost():
    costs = {0: [1] * 5, 1: [2, 2, 2], 2: [1] * 7}  # 18 in all: a share of 6 for each of 3 slots
    s0, s1, s2 = (ShardRef(0, shard_id, 0) for shard_id in (0, 1, 2))
    slots = split_samples([s0, s1, s2], lambda shard: costs[shard.shard_id], num_slots=3)
    # Samples start at cost 0 1 2 3 4 | 5 7 9 | 11 12 ... 17: slot k takes those starting in [6k, 6k + 6).
    assert slots == [[ShardRange(s0, 0, 5), ShardRange(s1, 0, 1)],
                     [ShardRange(s1, 1, 3), ShardRange(s2, 0, 1)],
                     [ShardRange(s2, 1, 7)]]


def test_split_samples_shares_a_big_shard_between_slots_and_gives_small_ones_whole():
    big, *small = (ShardRef(0, shard_id, 0) for shard_id in range(5))
    slots = split_samples([*small, big], lambda shard: [1.0] * (40 if shard == big else 2), num_slots=6)
    assert slots == [[ShardRange(shard, 0, 2) for shard in small],
                     *([ShardRange(big, start, start + 8)] for start in range(0, 40, 8))]


def test_equalize_steps_keeps_the_fewest_batches_of_any_slot_and_reports_the_rest():
    batch = lambda *positions: [SampleRef(0, 0, 0, p) for p in positions]  # noqa: E731
    kept, dropped = equalize_steps([[batch(0), batch(1, 2), batch(3)], [batch(4), batch(5)],
                                    [batch(6), batch(7), batch(8)]])
    assert kept == [[batch(0), batch(1, 2)], [batch(4), batch(5)], [batch(6), batch(7)]]
    assert dropped == batch(3) + batch(8)


@pytest.fixture(scope="module")
def sets(shard_sets):
    return open_shard_sets([ShardSetSpec(str(shard_sets["a"]), weight=sum(SET_A_SHARDS)),
                            ShardSetSpec(str(shard_sets["b"]), weight=sum(SET_B_SHARDS))])


def test_plan_covers_every_sample_once_across_slots_except_what_it_dropped(sets, config):
    plan = EpochPlanner(sets, config, dp_size=3).plan(0)
    assert len(plan.slot_batches) == 3 * config.workers
    assert {len(batches) for batches in plan.slot_batches} == {plan.batches_per_slot}
    assert_every_sample_once_in_runs(plan, [SET_A_SHARDS, SET_B_SHARDS])
    assert len(plan.dropped) < plan.num_samples / 10


def test_far_fewer_shards_than_slots_still_feed_every_slot_and_drop_little(config):
    """3 shards over 2 ranks x 4 workers: whole shards would leave 5 of the 8 slots without a sample (and no steps)."""
    shard_sizes = [200, 150, 250]
    shard_set = in_memory_shard_set(shard_sizes, seed=3)
    for epoch in range(3):
        plan = EpochPlanner([shard_set], replace(config, workers=4), dp_size=2).plan(epoch)
        assert len(plan.slot_ranges) == 8 and all(plan.slot_ranges) and plan.batches_per_slot > 0
        assert_every_sample_once_in_runs(plan, [shard_sizes])
        assert len(plan.dropped) < 0.05 * sum(shard_sizes)


def test_rank_steps_take_worker_batches_round_robin(sets, config):
    plan = EpochPlanner(sets, replace(config, workers=3), dp_size=2).plan(0)
    steps = plan.rank_batches(1)
    assert len(steps) == plan.steps_per_rank == 3 * plan.batches_per_slot
    assert steps[:4] == [plan.slot_batches[3][0], plan.slot_batches[4][0], plan.slot_batches[5][0],
                         plan.slot_batches[3][1]]


def test_plan_is_a_function_of_seed_and_epoch(sets, config):
    first = EpochPlanner(sets, config, dp_size=2)
    again = EpochPlanner(sets, config, dp_size=2)
    assert first.plan(0).slot_batches == again.plan(0).slot_batches
    assert first.plan(0).fingerprint == again.plan(0).fingerprint
    assert first.plan(1).slot_batches != first.plan(0).slot_batches
    assert first.plan(1).fingerprint != first.plan(0).fingerprint
    other_seed = EpochPlanner(sets, replace(config, seed=config.seed + 1), dp_size=2)
    assert other_seed.plan(0).fingerprint != first.plan(0).fingerprint


def test_a_sample_over_the_budget_is_refused_by_name(sets, config):
    with pytest.raises(ValueError, match=r"set 'a' shard shard-\d+\.tar .* sample line-\d+: \d+ mel frames exceed "
                                         r"max_batch_frames=300; raise the batch budget"):
        EpochPlanner(sets, replace(config, max_batch_frames=300), dp_size=1)


def test_more_slots_than_samples_is_refused(config):
    with pytest.raises(ValueError, match=r"5 samples over 8 slots \(dp_size 4 x 2 workers\); use fewer ranks"):
        EpochPlanner([in_memory_shard_set([3, 2])], config, dp_size=4).plan(0)
