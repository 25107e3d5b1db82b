import re

import pytest
from synthetic_shard_sets import write_shard_set

from megatron_qwen_audio.data.shard_format import ShardSetIndex
from megatron_qwen_audio.data.shard_sets import ShardSetSpec, open_shard_sets


def test_index_reads_the_same_through_a_pipe_url(shard_sets):
    local = ShardSetIndex.read(shard_sets["b"])
    piped = ShardSetIndex.read_url(f"pipe:cat {shard_sets['b']}/index.json")
    assert piped == local


def test_an_unreadable_index_url_is_named(tmp_path):
    url = f"pipe:cat {tmp_path}/index.json 2>/dev/null"
    with pytest.raises(FileNotFoundError, match=re.escape(url) + r": could not read the shard index .*exit 1"):
        ShardSetIndex.read_url(url)


def test_sets_are_named_after_their_folder_and_open_through_their_template(shard_sets):
    [shard_set] = open_shard_sets([ShardSetSpec(str(shard_sets["a"]) + "/", url_template="pipe:cat {root}/{name}")])
    assert shard_set.name == "a"
    assert shard_set.shard_url(2) == f"pipe:cat {shard_sets['a']}/shard-000002.tar"


def test_sets_built_with_different_tokenizers_are_refused_naming_both(tmp_path, shard_sets):
    write_shard_set(tmp_path / "other", [3], tokenizer_fingerprint="another-tokenizer")
    with pytest.raises(ValueError,
                       match=r"different tokenizers: a \(synthetic-tokenizer\), other \(another-tokenizer\)"):
        open_shard_sets([ShardSetSpec(str(shard_sets["a"])), ShardSetSpec(str(tmp_path / "other"))])


def test_a_missing_shard_is_named_with_its_set(tmp_path):
    write_shard_set(tmp_path / "gappy", [3, 4, 5])
    (tmp_path / "gappy" / "shard-000001.tar").unlink()
    with pytest.raises(FileNotFoundError, match=r"set 'gappy' shard shard-000001\.tar .* is listed in index\.json but "
                                                r"missing"):
        open_shard_sets([ShardSetSpec(str(tmp_path / "gappy"))])


@pytest.mark.parametrize("spec_changes, message", [
    ({"weight": 0.0}, r"shard set 'a': weight 0.0 must be positive"),
    ({"url_template": "pipe:cat {root}/shard.tar"}, r"must contain \{name\}"),
    ({"url_template": "{root}/{name}{other}"}, r"may only use \{root\} and \{name\}"),
])
def test_bad_set_specs_are_refused(shard_sets, spec_changes, message):
    with pytest.raises(ValueError, match=message):
        open_shard_sets([ShardSetSpec(str(shard_sets["a"]), **spec_changes)])


def test_two_sets_with_one_name_are_refused(shard_sets):
    with pytest.raises(ValueError, match=r"share the name\(s\) \['a'\]"):
        open_shard_sets([ShardSetSpec(str(shard_sets["a"])), ShardSetSpec(str(shard_sets["b"]), name="a")])
