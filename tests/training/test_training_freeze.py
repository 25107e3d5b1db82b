"""Freeze masks on a small model with the real top-level names: requires_grad per pattern, the errors (both, neither,
unmatched, nothing trainable) with the model left untouched, pipeline-split reports, and the printed table against
counts computed here from the modules themselves."""
from __future__ import annotations

import re

import pytest
from fake_qwen_audio_model import FakeQwenAudio
from torch import nn

from megatron_qwen_audio.training.config import ConfigError, StageConfig
from megatron_qwen_audio.training.freeze import FreezeReport, apply_freeze

STAGE1 = StageConfig("stage1_pretrain", trainable=("audio_encoder.*",),
                     frozen=("embedding.*", "decoder.*", "output_layer.*"))
STAGE2 = StageConfig("stage2_sft", trainable=("embedding.*", "decoder.*", "output_layer.*"),
                     frozen=("audio_encoder.*",))


def numel(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def requires_grad(model: nn.Module) -> dict[str, bool]:
    return {name: parameter.requires_grad for name, parameter in model.named_parameters()}


@pytest.mark.parametrize("stage, trained", [(STAGE1, {"audio_encoder"}),
                                            (STAGE2, {"embedding", "decoder", "output_layer"})])
def test_patterns_set_requires_grad_per_top_level_module(stage, trained):
    model = FakeQwenAudio()
    for parameter in model.parameters():  # start from the opposite of what the stage wants
        parameter.requires_grad_(False)
    for name, module in model.named_children():
        if name not in trained:
            for parameter in module.parameters():
                parameter.requires_grad_(True)
    apply_freeze(model, stage)
    for name, flag in requires_grad(model).items():
        assert flag == (name.split(".")[0] in trained), name


def test_report_counts_equal_the_modules_parameter_sizes():
    model = FakeQwenAudio()
    report = apply_freeze(model, STAGE1)
    encoder, decoder = model.audio_encoder, model.decoder
    expected = {
        "audio_encoder": (numel(encoder), 0),
        "audio_encoder.conv1": (numel(encoder.conv1), 0),
        "audio_encoder.blocks": (numel(encoder.blocks), 0),
        "audio_encoder.audio_bos_eos": (numel(encoder.audio_bos_eos), 0),
        "embedding": (0, numel(model.embedding)),
        "decoder": (0, numel(decoder)),
        "decoder.layers": (0, numel(decoder.layers)),
        "decoder.final_layernorm": (0, numel(decoder.final_layernorm)),
        "output_layer": (0, numel(model.output_layer)),
    }
    for row, (trainable, frozen) in expected.items():
        assert (report.counts[row].trainable, report.counts[row].frozen) == (trainable, frozen), row
    assert report.top_level_modules == ["audio_encoder", "embedding", "decoder", "output_layer"]
    assert (report.totals.trainable, report.totals.total) == (numel(encoder), numel(model))
    assert report.trainable_matches == {"audio_encoder.*": len(list(encoder.parameters()))}


def test_rendered_table_lists_modules_parts_totals_and_percentages():
    model = FakeQwenAudio()
    table = apply_freeze(model, STAGE2).render()
    lines = table.splitlines()
    total, encoder = numel(model), numel(model.audio_encoder)
    assert lines[0] == (f"stage 'stage2_sft': {total - encoder:,} of {total:,} parameters trainable "
                        f"({100 * (total - encoder) / total:.1f}%)")
    assert lines[1].split() == ["module", "trainable", "frozen", "total", "trainable", "of", "all"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert list(rows) == ["audio_encoder", "audio_encoder.conv1", "audio_encoder.conv2", "audio_encoder.blocks",
                          "audio_encoder.ln_post", "audio_encoder.proj", "audio_encoder.audio_bos_eos", "embedding",
                          "decoder", "decoder.layers", "decoder.final_layernorm", "output_layer", "total"]
    layers = numel(model.decoder.layers)
    assert rows["decoder.layers"] == [f"{layers:,}", "0", f"{layers:,}", "100.0%", f"{100 * layers / total:.1f}%"]
    assert rows["audio_encoder"] == ["0", f"{encoder:,}", f"{encoder:,}", "0.0%", f"{100 * encoder / total:.1f}%"]
    assert rows["total"][:3] == [f"{total - encoder:,}", f"{encoder:,}", f"{total:,}"] and rows["total"][4] == "100.0%"
    assert "  decoder.layers" in table  # parts are indented under their module


def test_parameter_matched_by_both_lists_is_an_error_and_nothing_changes():
    model = FakeQwenAudio()
    before = requires_grad(model)
    stage = StageConfig("overlap", trainable=("audio_encoder.*", "decoder.layers.*"),
                        frozen=("embedding.*", "decoder.*", "output_layer.*"))
    with pytest.raises(ConfigError) as error:
        apply_freeze(model, stage)
    overlapping = [name for name in before if name.startswith("decoder.layers.")]
    message = str(error.value)
    assert message.startswith(f"stage 'overlap': {len(overlapping)} parameters match both a trainable and a frozen "
                              f"pattern, e.g. {overlapping[0]} (trainable 'decoder.layers.*', frozen 'decoder.*'), ")
    assert len(re.findall(r"decoder\.layers\.\d", message)) == 5  # at most 5 examples of the 12
    assert message.endswith("; make stage.trainable and stage.frozen disjoint")
    assert requires_grad(model) == before


def test_parameter_matched_by_neither_list_is_an_error():
    model = FakeQwenAudio()
    stage = StageConfig("gap", trainable=("audio_encoder.*",), frozen=("embedding.*", "decoder.layers.*",
                                                                       "output_layer.*"))
    with pytest.raises(ConfigError) as error:
        apply_freeze(model, stage)
    assert str(error.value) == ("stage 'gap': 2 parameters match no trainable or frozen pattern, e.g. "
                                "decoder.final_layernorm.weight, decoder.final_layernorm.bias; add a pattern covering "
                                "them to stage.trainable or stage.frozen")


def test_pattern_matching_nothing_names_the_pattern_and_the_modules():
    model = FakeQwenAudio()
    before = requires_grad(model)
    stage = StageConfig("typo", trainable=("audio_encodr.*",), frozen=("embedding.*", "decoder.*", "output_layer.*"))
    with pytest.raises(ConfigError) as error:
        apply_freeze(model, stage)
    assert str(error.value) == ("stage 'typo': stage.trainable pattern 'audio_encodr.*' matches no parameter; the "
                                "model's top-level modules are audio_encoder, embedding, decoder, output_layer "
                                "(patterns match full dotted names, e.g. 'decoder.layers.*')")
    assert requires_grad(model) == before


def test_patterns_match_full_dotted_names():
    model = FakeQwenAudio()
    stage = StageConfig("partial", trainable=("audio_encoder.proj.*", "decoder.layers.2.*"),
                        frozen=("audio_encoder.[!p]*", "embedding.*", "decoder.layers.[01].*",
                                "decoder.final_layernorm.*", "output_layer.*"))
    apply_freeze(model, stage)
    trained = {name for name, flag in requires_grad(model).items() if flag}
    assert trained == {"audio_encoder.proj.weight", "audio_encoder.proj.bias", "decoder.layers.2.linear_qkv.weight",
                       "decoder.layers.2.linear_qkv.bias", "decoder.layers.2.linear_fc1.weight"}
    with pytest.raises(ConfigError, match="pattern 'proj.*' matches no parameter"):  # no implicit prefix
        apply_freeze(model, StageConfig("short", trainable=("proj.*",), frozen=("*",)))


def test_nothing_trainable_is_an_error_unless_the_caller_allows_it():
    everything_frozen = StageConfig("frozen", trainable=(), frozen=("*",))
    model = FakeQwenAudio()
    with pytest.raises(ConfigError) as error:
        apply_freeze(model, everything_frozen)
    assert str(error.value) == (f"stage 'frozen' leaves nothing to train: all {numel(model):,} parameters are frozen; "
                                "add patterns to stage.trainable")
    assert all(requires_grad(model).values())
    report = apply_freeze(model, everything_frozen, require_trainable=False)
    assert not any(requires_grad(model).values()) and report.totals.frozen == numel(model)


def test_pipeline_stages_freeze_alone_and_are_checked_together():
    """At PP=2 stage 1 (pretraining), the second pipeline stage holds no encoder: its patterns match nothing there and
    it trains nothing. Each rank defers those checks; the combined report equals the whole model's."""
    first, second = FakeQwenAudio(last_stage=False, layers=1), FakeQwenAudio(first_stage=False, layers=2)
    with pytest.raises(ConfigError, match="pattern 'audio_encoder.\\*' matches no parameter"):
        apply_freeze(second, STAGE1)
    with pytest.raises(ConfigError, match="stage.frozen pattern 'output_layer.\\*' matches no parameter"):
        apply_freeze(first, STAGE1)
    reports = [apply_freeze(part, STAGE1, require_trainable=False, require_every_pattern=False)
               for part in (first, second)]
    assert reports[1].totals.trainable == 0
    combined = FreezeReport.combine(reports)
    combined.raise_for_unmatched_patterns()
    combined.raise_if_nothing_trainable()
    whole = apply_freeze(FakeQwenAudio(layers=3), STAGE1)
    assert combined.counts == whole.counts
    assert combined.trainable_matches == whole.trainable_matches and combined.frozen_matches == whole.frozen_matches
    assert combined.render() == whole.render()


def test_combined_pipeline_report_still_catches_typos_and_an_all_frozen_stage():
    first, second = FakeQwenAudio(last_stage=False, layers=1), FakeQwenAudio(first_stage=False, layers=2)
    with_typo = StageConfig("typo", trainable=("audio_encoder.*",),
                            frozen=("embedding.*", "decoder.*", "output_layer.*", "adaptor.*"))
    combined = FreezeReport.combine([apply_freeze(part, with_typo, require_trainable=False,
                                                  require_every_pattern=False) for part in (first, second)])
    with pytest.raises(ConfigError, match="stage.frozen pattern 'adaptor.\\*' matches no parameter"):
        combined.raise_for_unmatched_patterns()
    all_frozen = StageConfig("frozen", trainable=(), frozen=("*",))
    combined = FreezeReport.combine([apply_freeze(part, all_frozen, require_trainable=False,
                                                  require_every_pattern=False) for part in (first, second)])
    with pytest.raises(ConfigError, match="stage 'frozen' leaves nothing to train"):
        combined.raise_if_nothing_trainable()
