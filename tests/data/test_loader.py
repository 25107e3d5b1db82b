"""The loader end to end: real DataLoader workers, ranks simulated in one process (no process group needed)."""
import multiprocessing
import re
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_shard_sets import SET_A_SHARDS, SET_B_SHARDS, write_shard_set

from megatron_qwen_audio.audio import SpecAugmentConfig, audio_span_length
from megatron_qwen_audio.data import loader as loader_module
from megatron_qwen_audio.data.collate import AudioTextBatch
from megatron_qwen_audio.data.loader import AudioTextLoader, RankBatchStream
from megatron_qwen_audio.data.shard_reader import ShardReadError
from megatron_qwen_audio.data.shard_sets import ShardSetSpec
from megatron_qwen_audio.text.special_tokens import special_tokens

IDS = special_tokens()


def proportional_specs(shard_sets, **template) -> list[ShardSetSpec]:
    """Weights equal to the set sizes: every sample once per epoch."""
    return [ShardSetSpec(str(shard_sets["a"]), weight=sum(SET_A_SHARDS), **template),
            ShardSetSpec(str(shard_sets["b"]), weight=sum(SET_B_SHARDS), **template)]


def take(loader: AudioTextLoader, count: int) -> list[AudioTextBatch]:
    iterator = iter(loader)
    batches = [next(iterator) for _ in range(count)]
    iterator.close()  # stops the DataLoader workers
    return batches


def planned_keys(loader: AudioTextLoader, epoch: int) -> list[list[str]]:
    """The keys of each of this rank's batches, as the plan names them."""
    def key(sample):
        shard_set = loader.sets[sample.set_id]
        return f"{shard_set.name}/{shard_set.index.shards[sample.shard_id].samples[sample.position].key}"
    return [[key(sample) for sample in batch] for batch in loader.plan(epoch).rank_batches(loader.dp_rank)]


def clips_by_key(batch: AudioTextBatch) -> dict[str, list[np.ndarray]]:
    clips = {key: [] for key in batch.keys}
    packed = torch.split(batch.mel, batch.mel_lengths.tolist(), dim=1)
    for (row, _, _), mel in zip(batch.audio_spans.tolist(), packed):
        clips[batch.keys[row]].append(mel.numpy())
    return clips


def assert_matches_reference(batch: AudioTextBatch, reference_samples, pad: int) -> None:
    """Every row against the sample read independently from the tars: shifted labels, mask, spans, packed mels."""
    clips = clips_by_key(batch)
    for row, key in enumerate(batch.keys):
        tokens, labels = reference_samples[key]["tokens.npy"], reference_samples[key]["labels.npy"]
        n = len(tokens) - 1
        assert batch.tokens[row, :n].tolist() == tokens[:-1].tolist()
        assert (batch.tokens[row, n:] == pad).all() and (batch.labels[row, n:] == pad).all()
        counts = labels[1:] != -100
        assert batch.loss_mask[row, :n].tolist() == counts.astype(np.float32).tolist()
        assert batch.labels[row, :n].tolist() == np.where(counts, labels[1:], pad).tolist()
        mel_names = sorted(name for name in reference_samples[key] if name.startswith("mel"))
        expected = [reference_samples[key][name].astype(np.float32) for name in mel_names]
        assert len(clips[key]) == len(expected)
        assert all(np.array_equal(got, want) for got, want in zip(clips[key], expected))
    for (row, start, end), frames in zip(batch.audio_spans.tolist(), batch.mel_lengths.tolist()):
        assert batch.tokens[row, start] == IDS["<audio>"] and batch.tokens[row, end - 1] == IDS["</audio>"]
        assert end - start == audio_span_length(frames)
    assert batch.num_target_tokens == int(batch.loss_mask.sum())


def assert_same_batches(first: list[AudioTextBatch], second: list[AudioTextBatch]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second):
        for field in fields(AudioTextBatch):
            x, y = getattr(a, field.name), getattr(b, field.name)
            assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y, field.name


def test_two_ranks_with_two_workers_read_every_sample_once_in_equal_steps(shard_sets, reference_samples, config):
    seen, steps = [], []
    for rank in (0, 1):
        loader = AudioTextLoader(proportional_specs(shard_sets), config, dp_rank=rank, dp_size=2)
        batches = take(loader, loader.steps_per_epoch(0))
        assert [batch.keys for batch in batches] == planned_keys(loader, 0)
        assert (loader.epoch, loader.step) == (1, 0)
        for batch in batches:
            assert batch.tokens.numel() <= config.max_batch_tokens
            assert batch.mel.shape[1] <= config.max_batch_frames and batch.num_samples <= config.max_batch_samples
            assert_matches_reference(batch, reference_samples, config.pad_token_id)
            seen += batch.keys
        steps.append(len(batches))
    assert steps[0] == steps[1] == loader.steps_per_epoch(0) > 0
    dropped = {f"{loader.sets[s.set_id].name}/{loader.sets[s.set_id].index.shards[s.shard_id].samples[s.position].key}"
               for s in loader.plan(0).dropped}
    assert len(seen) == len(set(seen))
    assert set(seen) == set(reference_samples) - dropped


def test_a_restored_loader_continues_identically_and_decodes_none_of_the_skipped(shard_sets, config, tmp_path,
                                                                                 monkeypatch):
    specs = proportional_specs(shard_sets)
    uninterrupted = AudioTextLoader(specs, config, dp_rank=1, dp_size=2)
    epoch_steps = uninterrupted.steps_per_epoch(0)
    reference = take(uninterrupted, epoch_steps + 3)
    # The workers cross into epoch 1 with its own, different order.
    assert [batch.keys for batch in reference[epoch_steps:]] == planned_keys(uninterrupted, 1)[:3]
    assert planned_keys(uninterrupted, 1) != planned_keys(uninterrupted, 0)

    stop = epoch_steps - 3 - (epoch_steps - 3) % 2 + 1  # odd: the next batch is worker 1's, not worker 0's
    interrupted = AudioTextLoader(specs, config, dp_rank=1, dp_size=2)
    take(interrupted, stop)
    state = interrupted.state_dict()
    assert (state["epoch"], state["step"]) == (0, stop)

    decode_log = tmp_path / "decoded.txt"
    decode = RankBatchStream._decode

    def logging_decode(self, sample, raw, epoch):
        decoded = decode(self, sample, raw, epoch)
        with open(decode_log, "a") as log:
            log.write(f"{epoch} {decoded.key}\n")
        return decoded

    monkeypatch.setattr(RankBatchStream, "_decode", logging_decode)
    # forked workers inherit the patched decode (the loader's own fork server would start them without it)
    monkeypatch.setattr(loader_module, "worker_start_context", lambda: multiprocessing.get_context("fork"))
    restored = AudioTextLoader(specs, config, dp_rank=1, dp_size=2)
    restored.load_state_dict(state)
    resumed = take(restored, epoch_steps + 3 - stop)
    assert_same_batches(resumed, reference[stop:])
    decoded_in_epoch_0 = [line.split()[1] for line in decode_log.read_text().splitlines() if line.startswith("0 ")]
    assert sorted(decoded_in_epoch_0) == sorted(key for batch in reference[stop:epoch_steps] for key in batch.keys)


def test_slots_entering_a_shard_mid_way_decode_none_of_its_samples_before_their_start(shard_sets, config,
                                                                                       monkeypatch):
    decoded = []
    decode = loader_module.decode_sample

    def counting_decode(members, entry, key):
        decoded.append(key)
        return decode(members, entry, key)

    monkeypatch.setattr(loader_module, "decode_sample", counting_decode)
    in_process = replace(config, workers=0)  # one slot per rank, read in this process
    loaders = [AudioTextLoader(proportional_specs(shard_sets), in_process, rank, dp_size=3) for rank in range(3)]
    plan = loaders[0].plan(0)
    mid_shard_starts = [rank for rank, ranges in enumerate(plan.slot_ranges) if ranges[0].start > 0]
    assert mid_shard_starts
    for rank in mid_shard_starts:
        decoded.clear()
        take(loaders[rank], loaders[rank].steps_per_epoch(0))
        assert sorted(decoded) == sorted(key for batch in planned_keys(loaders[rank], 0) for key in batch)
        shard, start, _ = plan.slot_ranges[rank][0]
        shard_set = loaders[rank].sets[shard.set_id]
        before_start = {f"{shard_set.name}/{sample.key}"
                        for sample in shard_set.index.shards[shard.shard_id].samples[:start]}
        assert not before_start & set(decoded)


def test_restoring_under_another_world_size_or_seed_is_refused(shard_sets, config):
    state = AudioTextLoader(proportional_specs(shard_sets), config, dp_rank=0, dp_size=2).state_dict()
    with pytest.raises(ValueError, match=r"saved for other data or settings \(dp_size: saved 2, now 1\)"):
        AudioTextLoader(proportional_specs(shard_sets), config, 0, 1).load_state_dict(state)
    with pytest.raises(ValueError, match=r"\(seed: saved 7, now 8\)"):
        AudioTextLoader(proportional_specs(shard_sets), replace(config, seed=8), 0, 2).load_state_dict(state)
    with pytest.raises(ValueError, match=r"sets: saved \[\['a', 85, '\w+'\], \['b', 50, '\w+'\]\], now"):
        AudioTextLoader([ShardSetSpec(str(shard_sets["a"]), 85)], config, 0, 2).load_state_dict(state)
    with pytest.raises(ValueError, match=r"epoch 0 plans other batches than the saved run did"):
        AudioTextLoader(proportional_specs(shard_sets), config, 1, 2).load_state_dict(
            {**state, "plan_fingerprint": "0" * 16})


def test_slots_with_too_few_batches_to_equalize_are_reported(shard_sets, config, caplog):
    with caplog.at_level("WARNING", logger="megatron_qwen_audio.data.loader"):
        AudioTextLoader(proportional_specs(shard_sets), config, dp_rank=0, dp_size=4)
    assert not caplog.text  # 8 slots of a few batches each: within a batch of one another
    with caplog.at_level("WARNING", logger="megatron_qwen_audio.data.loader"):
        AudioTextLoader(proportional_specs(shard_sets), config, dp_rank=0, dp_size=10)
    assert re.search(r"equal steps drop \d\d% of epoch 0's samples \(20 slots, batches per slot: 1\)", caplog.text)


def test_spec_augment_masks_follow_the_sample_not_the_rank_layout(shard_sets, reference_samples, config):
    augmenting = replace(config, spec_augment=SpecAugmentConfig())
    single = AudioTextLoader(proportional_specs(shard_sets), replace(augmenting, workers=0), dp_rank=0, dp_size=1)
    clips = {}
    for batch in take(single, single.steps_per_epoch(0)):
        clips.update(clips_by_key(batch))
    compared, masked_rows = 0, []
    for rank in (0, 1):
        loader = AudioTextLoader(proportional_specs(shard_sets), replace(augmenting, workers=1), rank, dp_size=2)
        for batch in take(loader, loader.steps_per_epoch(0)):
            for key, mels in clips_by_key(batch).items():
                if key in clips:
                    assert all(np.array_equal(a, b) for a, b in zip(mels, clips[key], strict=True))
                    compared += 1
                for mel, name in zip(mels, sorted(n for n in reference_samples[key] if n.startswith("mel"))):
                    raw = reference_samples[key][name].astype(np.float32)
                    masked_rows.append(tuple(np.flatnonzero((mel != raw).all(axis=1))))
    assert compared > 80
    assert sum(map(len, masked_rows)) > 0
    assert len(set(masked_rows)) > 0.8 * len(masked_rows)  # masks differ from sample to sample


def test_a_set_read_through_a_pipe_url_gives_the_same_batches_as_the_folder(shard_sets, config):
    local = AudioTextLoader(proportional_specs(shard_sets), replace(config, workers=1), dp_rank=0, dp_size=1)
    piped = AudioTextLoader(proportional_specs(shard_sets, url_template="pipe:cat {root}/{name}"),
                            replace(config, workers=1), dp_rank=0, dp_size=1)
    assert piped.state_dict() == local.state_dict()
    assert_same_batches(take(piped, piped.steps_per_epoch(0)), take(local, local.steps_per_epoch(0)))


def test_a_shard_missing_behind_a_pipe_url_is_named_when_read(tmp_path: Path, config):
    write_shard_set(tmp_path / "remote", [8, 8, 8, 8])
    (tmp_path / "remote" / "shard-000002.tar").unlink()
    spec = ShardSetSpec(str(tmp_path / "remote"), url_template="pipe:cat {root}/{name} 2>/dev/null")
    # Read in-process: a worker's error reaches the caller with the same message, but torch then leaves its failed
    # DataLoader iterator to the cyclic garbage collector, whose late shutdown waits 5 s for the worker.
    loader = AudioTextLoader([spec], replace(config, workers=0), dp_rank=0, dp_size=1)
    with pytest.raises(ShardReadError, match=r"set 'remote' shard shard-000002\.tar \(pipe:cat .*\): cannot be read"):
        take(loader, loader.steps_per_epoch(0))
