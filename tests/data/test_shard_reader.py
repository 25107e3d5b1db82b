import tarfile

import pytest
import webdataset
from synthetic_shard_sets import write_shard_set

from megatron_qwen_audio.data.epoch_plan import EpochPlanner, SampleRef, ShardRef, slot_samples
from megatron_qwen_audio.data.shard_format import ShardSetIndex
from megatron_qwen_audio.data.shard_reader import ShardReadError, gather_batches, read_needed_samples, read_shard
from megatron_qwen_audio.data.shard_sets import ShardSetSpec, open_shard_sets


@pytest.fixture
def opened_urls(monkeypatch) -> list[str]:
    urls = []
    real_gopen = webdataset.gopen

    def recording_gopen(url, *args, **kwargs):
        urls.append(url)
        return real_gopen(url, *args, **kwargs)

    monkeypatch.setattr(webdataset, "gopen", recording_gopen)
    return urls


class CountingStream:
    """A shard stream that counts the bytes taken from it."""

    def __init__(self, stream):
        self.stream, self.bytes_read = stream, 0

    def read(self, size=-1):
        data = self.stream.read(size)
        self.bytes_read += len(data)
        return data

    def close(self):
        self.stream.close()


@pytest.fixture
def counted_streams(monkeypatch) -> list[CountingStream]:
    streams = []
    real_gopen = webdataset.gopen

    def counting_gopen(url, *args, **kwargs):
        streams.append(CountingStream(real_gopen(url, *args, **kwargs)))
        return streams[-1]

    monkeypatch.setattr(webdataset, "gopen", counting_gopen)
    return streams


@pytest.fixture
def extracted_members(monkeypatch) -> list[str]:
    """Names of the tar members whose bytes are read."""
    names = []
    real_extractfile = tarfile.TarFile.extractfile

    def recording_extractfile(self, member):
        names.append(member.name)
        return real_extractfile(self, member)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", recording_extractfile)
    return names


def tar_members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {member.name: tar.extractfile(member).read() for member in tar.getmembers()}


def decoded_members(members: dict[str, bytes], key: str) -> dict[str, bytes]:
    """A sample's members as the reader hands them on: by suffix, without the json metadata."""
    return {name.split(".", 1)[1]: data for name, data in members.items()
            if name.startswith(key + ".") and not name.endswith(".json")}


def test_only_needed_samples_are_read_and_shards_without_any_are_not_opened(shard_sets, opened_urls):
    [shard_set] = open_shard_sets([ShardSetSpec(str(shard_sets["a"]))])
    shards = [ShardRef(0, shard_id, 0) for shard_id in (3, 0, 5)]
    needed = [SampleRef(0, 5, 0, 6), SampleRef(0, 3, 0, 2), SampleRef(0, 3, 0, 7)]
    got = list(read_needed_samples([shard_set], shards, needed))
    assert [ref for ref, _ in got] == [SampleRef(0, 3, 0, 2), SampleRef(0, 3, 0, 7), SampleRef(0, 5, 0, 6)]
    assert opened_urls == [shard_set.shard_url(3), shard_set.shard_url(5)]
    key = shard_set.index.shards[3].samples[2].key
    expected = decoded_members(tar_members(shard_sets["a"] / "shard-000003.tar"), key)
    assert got[0][1] == expected and "tokens.npy" in expected


def test_part_of_a_shard_reads_only_its_members_bytes_and_stops_after_its_last_sample(
    shard_sets, counted_streams, extracted_members
):
    [shard_set] = open_shard_sets([ShardSetSpec(str(shard_sets["a"]))])
    path = shard_sets["a"] / "shard-000002.tar"
    wanted = [sample.key for sample in shard_set.index.shards[2].samples[4:7]]  # of 15
    members = tar_members(path)
    with tarfile.open(path) as tar:
        last_wanted_end = max(m.offset_data + m.size for m in tar.getmembers() if m.name.startswith(wanted[-1] + "."))
    extracted_members.clear()
    got = list(read_shard(shard_set, 2, wanted))
    assert got == [(key, decoded_members(members, key)) for key in wanted]
    assert sorted(extracted_members) == sorted(f"{key}.{suffix}" for key, raw in got for suffix in raw)
    [stream] = counted_streams
    assert stream.bytes_read <= last_wanted_end + 2 * tarfile.RECORDSIZE  # a read-ahead record at most
    assert stream.bytes_read < 0.7 * path.stat().st_size  # not the rest of the shard


def test_gather_batches_holds_early_samples_until_their_batch():
    stream = iter([(SampleRef(0, 0, 0, p), {"p": bytes([p])}) for p in range(4)])
    batches = [[SampleRef(0, 0, 0, 2), SampleRef(0, 0, 0, 0)], [SampleRef(0, 0, 0, 3), SampleRef(0, 0, 0, 1)]]
    assert list(gather_batches(batches, stream)) == [[{"p": b"\x02"}, {"p": b"\x00"}], [{"p": b"\x03"}, {"p": b"\x01"}]]


def test_a_sample_the_index_lists_but_the_shard_lacks_is_named(tmp_path):
    write_shard_set(tmp_path / "gap", [6, 6])
    index = ShardSetIndex.read(tmp_path / "gap")
    index.shards[1].samples[2].key = "line-999999999"
    index.write(tmp_path / "gap")
    [shard_set] = open_shard_sets([ShardSetSpec(str(tmp_path / "gap"))])
    with pytest.raises(ShardReadError, match=r"set 'gap' shard shard-000001\.tar .*: lacks sample line-999999999 "
                                             r"\(and 0 more\) that its index lists; rebuild"):
        list(read_shard(shard_set, 1, [sample.key for sample in shard_set.index.shards[1].samples]))


def test_a_sample_missing_a_member_its_index_implies_is_named(tmp_path):
    write_shard_set(tmp_path / "hole", [6])
    path = tmp_path / "hole" / "shard-000000.tar"
    members = tar_members(path)
    with webdataset.TarWriter(str(path), encoder=False) as tar:
        for key in sorted({name.split(".", 1)[0] for name in members}):
            sample = {"__key__": key, **{name.split(".", 1)[1]: data for name, data in members.items()
                                         if name.startswith(key + ".") and name != "line-000000003.labels.npy"}}
            tar.write(sample)
    [shard_set] = open_shard_sets([ShardSetSpec(str(tmp_path / "hole"))])
    with pytest.raises(ShardReadError, match=r"shard-000000\.tar .*: sample line-000000003 lacks member\(s\) "
                                             r"\['labels\.npy'\] that its index implies; rebuild"):
        list(read_shard(shard_set, 0, [sample.key for sample in shard_set.index.shards[0].samples]))


def test_a_truncated_shard_is_named(tmp_path):
    write_shard_set(tmp_path / "cut", [6])
    shard = tmp_path / "cut" / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:5000])
    [shard_set] = open_shard_sets([ShardSetSpec(str(tmp_path / "cut"))])
    keys = [sample.key for sample in shard_set.index.shards[0].samples]
    with pytest.raises(ShardReadError, match=r"set 'cut' shard shard-000000\.tar .*: cannot be read"):
        list(read_shard(shard_set, 0, keys))


def test_samples_held_for_later_batches_stay_within_shuffle_buffer_plus_batching_pool(shard_sets, config):
    sets = open_shard_sets([ShardSetSpec(str(shard_sets["a"])), ShardSetSpec(str(shard_sets["b"]))])
    plan = EpochPlanner(sets, config, dp_size=1).plan(0)
    for ranges, batches in zip(plan.slot_ranges, plan.slot_batches):
        needed = {sample for batch in batches for sample in batch}
        pulled = 0

        def file_order_stream():
            nonlocal pulled
            for sample in slot_samples(ranges):
                if sample in needed:
                    pulled += 1
                    yield sample, {}

        emitted, most_held = 0, 0
        for batch in gather_batches(batches, file_order_stream()):
            most_held = max(most_held, pulled - emitted)
            emitted += len(batch)
        assert emitted == len(needed)
        assert config.batching_pool < most_held <= config.shuffle_buffer + config.batching_pool


def test_stopping_mid_shard_is_no_error_for_a_pipe_whose_writer_fails_on_the_broken_pipe(shard_sets):
    template = "pipe:cat {root}/{name} || exit 23"  # like clients that exit non-zero when their reader goes away
    [shard_set] = open_shard_sets([ShardSetSpec(str(shard_sets["a"]), url_template=template)])
    keys = [sample.key for sample in shard_set.index.shards[2].samples]
    samples = read_shard(shard_set, 2, keys)
    next(samples)
    samples.close()  # the consumer stops
    assert [key for key, _ in read_shard(shard_set, 2, keys[:1])] == keys[:1]  # the reader stops after its last
