"""`mqa-train --plan`: the closed-form parameter, gradient and optimizer-state counts against what the trainer's own
builders allocate (tiny model, CPU, fp32) at TP=1, TP=2 and PP=2 under the stage 1 and stage 2 freeze masks; the
activation estimate under each activation-recompute setting."""
import json
import subprocess
import sys

import pytest
from test_training_trainer import (  # also the synthetic shard writer of tests/data, put on the path there
    REPO,
    STAGE1,
    STAGE2,
    _environment,
    _run,
    write_shard_set,
)

from megatron_qwen_audio.text.tokenizer import QwenTokenizer
from megatron_qwen_audio.training.config import load_config, validate
from megatron_qwen_audio.training.memory_plan import memory_plan, stage_parameters

WORKER = REPO / "tests" / "training" / "memory_plan_worker.py"
LAYOUTS = {  # name: (config, processes, overrides)
    "tp1_stage1": (STAGE1, 1, []),
    "tp2_stage2": (STAGE2, 2, ["parallel.tensor_parallel=2", "init_from=null"]),
    "pp2_stage1": (STAGE1, 2, ["parallel.pipeline_parallel=2", "parallel.stage_layers=[1,3]"]),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory, qwen_tokenizer_file):
    """Each layout's config and the records of its ranks."""
    root = tmp_path_factory.mktemp("plan")
    fingerprint = QwenTokenizer.from_file(qwen_tokenizer_file).fingerprint
    write_shard_set(root / "train", [6], seed=1, tokenizer_fingerprint=fingerprint)
    environment, timings, results = _environment(qwen_tokenizer_file), {}, {}
    for name, (config_file, processes, overrides) in LAYOUTS.items():
        common = [f"data.train=[{{path_or_url: {root / 'train'}}}]", "data.heldout=[]", "eval_interval=0",
                  "data.loader.workers=0", f"run_dir={root / name}", *overrides]
        out = root / f"{name}.json"
        _run(name, [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                    str(WORKER), str(config_file), str(out), *common], environment, timings)
        config = load_config(config_file, common)
        validate(config, processes)
        results[name] = (config, processes, json.loads(out.read_text()))
    print("launch wall times:", {name: f"{seconds:.1f} s" for name, seconds in timings.items()})
    return results


@pytest.mark.parametrize("layout", LAYOUTS)
def test_closed_form_parameters_are_those_the_model_builds(built, layout):
    config, _, records = built[layout]
    expected = stage_parameters(config)
    for record in records:
        actual = {name: elements for name, elements, _ in record["parameters"]}
        assert actual == dict(expected[record["pipeline_rank"]]), record["pipeline_rank"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_plan_counts_equal_built_trainables_gradient_buffers_and_optimizer_shards(built, layout):
    config, world_size, records = built[layout]
    plans = memory_plan(config, world_size)
    dp = world_size // (config.parallel.tensor_parallel * config.parallel.pipeline_parallel)
    for record in records:
        plan = plans[record["pipeline_rank"]]
        modules = {}
        for name, elements, trainable in record["parameters"]:
            counts = modules.setdefault(name.split(".")[0], [0, 0])
            counts[0] += elements
            counts[1] += elements if trainable else 0
        assert {module: total for module, (total, _) in modules.items()} == \
            {module: total for module, total in plan.parameters.items() if total}
        assert {module: trainable for module, (_, trainable) in modules.items()} == \
            {module: plan.trainable[module] for module in modules}
        trainable = sum(plan.trainable.values())
        assert record["gradient_buffer_parameter_elements"] == trainable
        # megatron aligns each parameter to 64 elements and each bucket's end to lcm(DP, 128): the plan leaves that out
        padding = record["gradient_buffer_elements"] - trainable
        assert 0 <= padding <= 64 * record["gradient_buffer_tensors"] + 128 * dp * record["gradient_buckets"]
        assert plan.gradient_bytes == 4 * trainable
        assert plan.optimizer_elements == 2 * -(-trainable // dp)  # fp32: exp_avg + exp_avg_sq, no master copy
    for stage, plan in enumerate(plans):  # the data-parallel shards of a stage cover its trainables exactly once
        shards = [record["optimizer_shard_elements"] for record in records
                  if record["pipeline_rank"] == stage and record["tensor_rank"] == 0]
        assert len(shards) == dp and sum(shards) == sum(plan.trainable.values())


def test_layouts_cover_frozen_stages_and_split_weights(built):
    _, _, tp1 = built["tp1_stage1"]
    _, _, tp2 = built["tp2_stage2"]
    _, _, pp2 = built["pp2_stage1"]
    later_stage = next(record for record in pp2 if record["pipeline_rank"] == 1)
    assert later_stage["gradient_buffer_elements"] == 0 and later_stage["optimizer_shard_elements"] == 0
    encoder = sum(e for n, e, _ in tp1[0]["parameters"] if n.startswith("audio_encoder."))
    for record in tp2:  # replicated encoder on every TP rank, frozen in stage 2
        assert sum(e for n, e, t in record["parameters"] if n.startswith("audio_encoder.") and not t) == encoder
    head = {n: e for n, e, _ in tp1[0]["parameters"]}["output_layer.weight"]
    assert {n: e for n, e, _ in tp2[0]["parameters"]}["output_layer.weight"] == head // 2


def test_plan_cli_prints_the_table_and_the_verdict(qwen_tokenizer_file):
    finished = subprocess.run(
        [sys.executable, "-m", "megatron_qwen_audio.training.main", "--plan", str(REPO / "configs" /
         "qwen_audio_7b_stage1.yaml"), "--world-size", "8", "--gpu-memory-gb", "40"],
        check=False, cwd=REPO, env=_environment(qwen_tokenizer_file), capture_output=True, text=True, timeout=120)
    assert finished.returncode == 3, finished.stderr
    assert "| audio encoder params (M) | 640.1 | 0.0 |" in finished.stdout  # Whisper-large-v2's 32 blocks + adapter
    assert "does NOT fit" in finished.stdout


def test_recompute_takes_its_share_off_the_decoder_activations():
    """7B stage 2 at TP 2 x PP 2: selective MLP recompute drops 16 / TP bytes per token x hidden from every decoder
    layer; full recompute keeps each layer's bf16 input plus one layer being rerun. Nothing else changes."""
    config_file = REPO / "configs" / "qwen_audio_7b_stage2_sft.yaml"
    plans = {setting: memory_plan(load_config(config_file, [f"parallel.recompute={setting}"]), 8)
             for setting in ("none", "selective", "full")}
    config = load_config(config_file, [])
    tokens, hidden, tp = config.data.loader.max_batch_tokens, config.model.hidden_size, 2
    layer = tokens * hidden * (10 + 24 // tp)
    for stage, kept in enumerate(plans["none"]):
        layers = kept.decoder_layers
        selective, full = plans["selective"][stage], plans["full"][stage]
        assert kept.activation_bytes_per_micro_batch - selective.activation_bytes_per_micro_batch \
            == layers * tokens * hidden * 16 // tp
        assert kept.activation_bytes_per_micro_batch - full.activation_bytes_per_micro_batch \
            == layers * layer - (layers * tokens * hidden * 2 + layer)
        assert kept.weight_bytes == full.weight_bytes and kept.optimizer_bytes == full.optimizer_bytes
